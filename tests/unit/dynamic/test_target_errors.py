"""Classification of target failures while issuing: unreachable/dropped (retryable 503) vs refused SQL or
configuration (400 invalid_config)."""

from __future__ import annotations

import asyncpg
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from services.dynamic import aws, postgres


def _pg(cls: type[asyncpg.PostgresError], sqlstate: str) -> asyncpg.PostgresError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, "x")
    exc.sqlstate = sqlstate  # type: ignore[misc]
    return exc


def test_postgres_unreachable_or_gone_is_unavailable() -> None:
    assert postgres.is_unavailable(ConnectionRefusedError(111, "Connect call failed"))
    assert postgres.is_unavailable(TimeoutError())
    assert postgres.is_unavailable(asyncpg.ConnectionDoesNotExistError("connection was closed in the middle"))
    assert postgres.is_unavailable(asyncpg.InterfaceError("cannot perform operation: connection is closed"))
    assert postgres.is_unavailable(_pg(asyncpg.TooManyConnectionsError, "53300"))
    assert postgres.is_unavailable(_pg(asyncpg.AdminShutdownError, "57P01"))
    assert postgres.is_unavailable(_pg(asyncpg.CannotConnectNowError, "57P03"))


def test_postgres_refusals_are_not_unavailable() -> None:
    assert not postgres.is_unavailable(_pg(asyncpg.UndefinedTableError, "42P01"))
    assert not postgres.is_unavailable(_pg(asyncpg.DuplicateObjectError, "42710"))
    assert not postgres.is_unavailable(_pg(asyncpg.InsufficientPrivilegeError, "42501"))
    assert not postgres.is_unavailable(_pg(asyncpg.InvalidPasswordError, "28P01"))  # wrong root password: config
    assert not postgres.is_unavailable(ValueError("bad"))


def test_target_error_keeps_stage_and_scrubs() -> None:
    err = postgres.target_error(ConnectionRefusedError(111, "refused for pw-s3cret"), ("pw-s3cret",), sent=False)
    assert err.unavailable and not err.sent and "pw-s3cret" not in str(err)
    err = postgres.target_error(TimeoutError(), (), sent=True)
    assert err.unavailable and err.sent
    err = postgres.target_error(_pg(asyncpg.UndefinedTableError, "42P01"), (), sent=True)
    assert not err.unavailable


def test_aws_classification() -> None:
    assert aws.unavailable(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert aws.unavailable(ReadTimeoutError(endpoint_url="http://127.0.0.1:1"))
    throttled = ClientError({"Error": {"Code": "Throttling", "Message": "slow down"},
                             "ResponseMetadata": {"HTTPStatusCode": 400}}, "CreateUser")
    assert aws.unavailable(throttled)
    server = ClientError({"Error": {"Code": "Whatever"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "CreateUser")
    assert aws.unavailable(server)
    denied = ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                         "CreateUser")
    assert not aws.unavailable(denied)


def test_concurrency_conflicts_are_retryable_and_rolled_back() -> None:
    conflict = _pg(asyncpg.InternalServerError, "XX000")
    Exception.__init__(conflict, "tuple concurrently updated")
    assert postgres.is_conflict(conflict) and postgres.is_conflict(_pg(asyncpg.DeadlockDetectedError, "40P01"))
    assert not postgres.is_conflict(_pg(asyncpg.InternalServerError, "XX000"))  # another internal error
    err = postgres.target_error(conflict, (), sent=True)
    assert err.unavailable and not err.sent  # 503, and the server rolled it back: nothing to clean up
