"""db.engine.connection_lost: which exceptions mean "the database connection is gone" (-> 503, api/errors.py)."""

from __future__ import annotations

import asyncpg
import pytest
from asyncpg.exceptions import _base as asyncpg_base
from sqlalchemy import exc as sa_exc

from api.errors import dependency_unavailable
from db.engine import connection_lost
from devstack import services as svc


async def test_refused_connect_is_lost() -> None:
    with pytest.raises(OSError) as info:  # nothing listens there: ConnectionRefusedError from asyncpg.connect
        await asyncpg.connect(f"postgresql://x:y@127.0.0.1:{svc.free_port()}/db", timeout=5)
    assert connection_lost(info.value)
    err = dependency_unavailable(info.value)
    assert err is not None and (err.status, err.code, err.details) == (503, "service_unavailable",
                                                                       {"dependency": "database"})
    assert err.headers == {"Retry-After": "2"}


def test_server_side_connection_errors_are_lost() -> None:
    for exc in (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
                asyncpg.AdminShutdownError("terminating connection due to administrator command"),
                asyncpg.CannotConnectNowError("the database system is starting up"),
                asyncpg.TooManyConnectionsError("too many clients"),
                asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed")):
        assert connection_lost(exc), exc


def test_wrapped_errors_are_lost() -> None:
    inner = asyncpg.ConnectionDoesNotExistError("gone")
    wrapped = sa_exc.DBAPIError("SELECT 1", None, inner, connection_invalidated=False)
    assert connection_lost(wrapped)  # through .orig
    assert connection_lost(sa_exc.DBAPIError("SELECT 1", None, Exception("x"), connection_invalidated=True))
    try:
        try:
            raise inner
        except Exception as exc:
            raise RuntimeError("service failed") from exc
    except RuntimeError as outer:
        assert connection_lost(outer)  # through __cause__


def test_other_errors_are_not_lost() -> None:
    assert not connection_lost(ConnectionRefusedError("not the database"))  # no driver frame
    assert not connection_lost(asyncpg_base.DataError("invalid input for query argument $1"))
    assert not connection_lost(asyncpg.InterfaceError("cannot perform operation: another operation is in progress"))
    assert not connection_lost(asyncpg.UniqueViolationError("duplicate key"))
    assert not connection_lost(ValueError("x"))
    assert dependency_unavailable(ValueError("x")) is None
