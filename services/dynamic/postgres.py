"""The PostgreSQL target (asyncpg): test connection, create a credential from a role's statements, renew,
revoke (batched, idempotent). Errors are ``TargetError`` with a scrubbed message (never a password).

Placeholders (Vault's convention): ``{{name}}`` (alias ``{{username}}``), ``{{password}}``, ``{{expiration}}``.
Values are substituted as generated text, so templates quote them: ``CREATE ROLE "{{name}}" ... PASSWORD
'{{password}}'``. Generated names use ``[a-z0-9-]`` and passwords ``[A-Za-z0-9]`` only, so no value can break
out of its quotes.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg

from services.dynamic.common import describe_error, invalid_config

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
CREATE_PLACEHOLDERS = frozenset({"name", "username", "password", "expiration"})
REVOKE_PLACEHOLDERS = frozenset({"name", "username"})
DEFAULT_REVOCATION = [
    # PostgreSQL 16+: a CREATEROLE root holds ADMIN on the roles it created but not their privileges; this grant
    # gives it the membership REASSIGN/DROP OWNED need (and pre-16 CREATEROLE may grant any non-superuser role).
    'GRANT "{{name}}" TO CURRENT_USER',
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}'",
    'REASSIGN OWNED BY "{{name}}" TO CURRENT_USER',
    'DROP OWNED BY "{{name}}"',
    'DROP ROLE IF EXISTS "{{name}}"',
]


CONFLICT_ATTEMPTS = 3  # a script that hit a concurrency conflict (is_conflict) is run again, at most this often


class TargetError(Exception):
    """The target refused or could not be reached; ``str()`` is safe to store and show.

    ``unavailable``: the target could not be reached or dropped the connection (a network blip, a restart, too
    many connections, a timeout) or reported a concurrency conflict that persisted (``is_conflict``): a retryable
    condition, not a configuration error. ``sent``: the statements may have taken effect at the target before the
    failure (they were sent and no answer came back), so whether they committed is unknown (the caller must
    confirm at the target, e.g. hand the lease to the revoker, instead of assuming nothing happened). An error the
    server answered with means its transaction rolled back: ``sent`` is then irrelevant to cleanup."""

    def __init__(self, message: str, *, unavailable: bool = False, sent: bool = True) -> None:
        super().__init__(message)
        self.unavailable = unavailable
        self.sent = sent


# SQLSTATE classes meaning "the server is not there / not now": 08 connection exception, 53 insufficient resources
# (too many connections, out of memory or disk), 57 operator intervention (admin shutdown, crash shutdown, cannot
# connect now, query canceled by a timeout).
_UNAVAILABLE_CLASSES = ("08", "53", "57")


def is_conflict(exc: BaseException) -> bool:
    """A concurrency conflict the server reported and rolled back: serialization failure, deadlock, or
    ``tuple concurrently updated`` (two sessions changing the same catalog row at once, e.g. concurrent
    ``GRANT CONNECT ON DATABASE`` in creation statements). Running the same script again is safe."""
    code = getattr(exc, "sqlstate", None)
    return code in ("40001", "40P01") or (code == "XX000" and "concurrently updated" in str(exc))


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the target is unreachable or went away (retryable), not that it refused the SQL."""
    if isinstance(exc, TargetError):
        return exc.unavailable
    if isinstance(exc, TimeoutError | OSError | asyncpg.PostgresConnectionError):
        return True  # refused, reset, DNS failure, connect/statement timeout, connection lost
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc) or "connection" in str(exc).lower()
    code = getattr(exc, "sqlstate", None)
    return isinstance(code, str) and code[:2] in _UNAVAILABLE_CLASSES


def target_error(exc: BaseException, secrets: Sequence[str], *, sent: bool) -> TargetError:
    if isinstance(exc, TimeoutError):
        return TargetError("TimeoutError: the target did not answer in time", unavailable=True, sent=sent)
    if is_conflict(exc):  # transient, and the server rolled the script back: retryable, nothing took effect
        return TargetError(describe_error(exc, secrets), unavailable=True, sent=False)
    return TargetError(describe_error(exc, secrets), unavailable=is_unavailable(exc), sent=sent)


@dataclass(frozen=True)
class Credential:
    username: str
    password: str


def placeholders(statement: str) -> set[str]:
    return set(PLACEHOLDER.findall(statement))


def render(statement: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), statement)


def build_dsn(template: str, username: str, password: str) -> str:
    return template.replace("{{username}}", quote(username, safe="")).replace("{{password}}", quote(password, safe=""))


def check_url_template(template: object) -> str:
    """A ``connection_url`` with ``{{username}}``/``{{password}}`` placeholders that parses as postgresql://."""
    if not isinstance(template, str) or not template or len(template) > 2048:
        raise invalid_config("config.connection_url is required (postgresql://{{username}}:{{password}}@host/db)",
                             field="config.connection_url")
    probe = build_dsn(template, "u", "p")
    try:
        parts = urlsplit(probe)
        port = parts.port
    except ValueError as exc:
        raise invalid_config(f"config.connection_url does not parse: {exc}", field="config.connection_url") from None
    if parts.scheme not in ("postgresql", "postgres") or not (parts.hostname or "host=" in (parts.query or "")):
        raise invalid_config("config.connection_url must be a postgresql:// URL naming a host",
                             field="config.connection_url")
    if port is not None and not 0 < port < 65536:
        raise invalid_config("config.connection_url has an invalid port", field="config.connection_url")
    leftover = placeholders(template) - {"username", "password"}
    if leftover:
        raise invalid_config(f"config.connection_url has unknown placeholders {sorted(leftover)}",
                             field="config.connection_url")
    return template


async def connect(dsn: str, limit: float, secrets: Sequence[str] = ()) -> asyncpg.Connection:
    try:
        return await asyncio.wait_for(asyncpg.connect(dsn, timeout=limit), limit + 1)
    except TimeoutError:
        raise TargetError(f"connection timed out after {limit:g}s", unavailable=True, sent=False) from None
    except Exception as exc:
        raise target_error(exc, secrets, sent=False) from None


async def check(dsn: str, limit: float, secrets: Sequence[str] = ()) -> None:
    conn = await connect(dsn, limit, secrets)
    try:
        await asyncio.wait_for(conn.fetchval("SELECT 1"), limit)
    except Exception as exc:
        raise target_error(exc, secrets, sent=False) from None
    finally:
        await conn.close(timeout=limit)


class Pool:
    """A small asyncpg pool to one target (one per engine per process; bounded size)."""

    def __init__(self, dsn: str, size: int, timeout: float, secrets: Sequence[str],
                 application_name: str = "scaivault-dynamic") -> None:
        self.dsn = dsn
        self.application_name = application_name
        self.size = size
        self.timeout = timeout
        self.secrets = tuple(secrets)
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    try:
                        self._pool = await asyncio.wait_for(asyncpg.create_pool(
                            self.dsn, min_size=0, max_size=self.size, timeout=self.timeout,
                            max_inactive_connection_lifetime=60,
                            server_settings={"application_name": self.application_name}), self.timeout + 1)
                    except Exception as exc:
                        raise target_error(exc, self.secrets, sent=False) from None
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except Exception:
                pool.terminate()

    @property
    def statement_timeout(self) -> float:
        """Bound on one script at the target (a black-holed connection must not hang a request): 3x the connect
        timeout."""
        return self.timeout * 3

    async def run(self, sql: str, *, secrets: Sequence[str] = ()) -> None:
        """Run ``sql`` (one or more statements) as one transaction in one round trip: a multi-statement simple
        query is an implicit transaction block in PostgreSQL (all statements commit or none), so no separate
        BEGIN/COMMIT round trips are needed. Failures say whether the script may have reached the target."""
        pool = await self.get()
        hide = (*self.secrets, *secrets)
        try:
            conn = await pool.acquire(timeout=self.timeout)
        except Exception as exc:  # connecting (pool min_size 0: a new connection is opened here) failed
            err = target_error(exc, hide, sent=False)
            if err.unavailable:
                await pool.expire_connections()
            raise err from None
        try:
            for attempt in range(CONFLICT_ATTEMPTS):
                try:
                    await conn.execute(sql, timeout=self.statement_timeout)
                    break
                except Exception as exc:
                    if attempt + 1 < CONFLICT_ATTEMPTS and is_conflict(exc):
                        await asyncio.sleep(random.uniform(0.005, 0.05) * (attempt + 1))  # jitter
                        continue
                    err = target_error(exc, hide, sent=True)
                    if err.unavailable and err.sent:  # pooled connections may be dead (target restarted)
                        await pool.expire_connections()
                    raise err from None
        finally:
            try:
                await pool.release(conn, timeout=self.timeout)
            except Exception:
                conn.terminate()

    async def existing(self, names: Sequence[str]) -> set[str]:
        pool = await self.get()
        try:
            async with pool.acquire(timeout=self.timeout) as conn:
                rows = await conn.fetch("SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", list(names),
                                        timeout=self.statement_timeout)
        except Exception as exc:
            err = target_error(exc, self.secrets, sent=False)
            if err.unavailable:
                await pool.expire_connections()
            raise err from None
        return {r["rolname"] for r in rows}


def script(statements: Sequence[str], values: dict[str, str]) -> str:
    return ";\n".join(render(s, values).rstrip().rstrip(";") for s in statements if s.strip())


async def create(pool: Pool, statements: Sequence[str], username: str, password: str, expiration: str) -> None:
    values = {"name": username, "username": username, "password": password, "expiration": expiration}
    await pool.run(script(statements, values), secrets=(password,))


async def renew(pool: Pool, statements: Sequence[str], username: str, expiration: str) -> None:
    if statements:
        await pool.run(script(statements, {"name": username, "username": username, "expiration": expiration}))


async def revoke(pool: Pool, statements: Sequence[str], usernames: Sequence[str]) -> dict[str, str | None]:
    """Revoke a batch: roles already gone are confirmed at once; the rest run in one transaction, and if that
    fails each runs alone so one bad role cannot hold back the others. ``{username: None | error}``."""
    out: dict[str, str | None] = {}
    try:
        present = await pool.existing(usernames)
    except TargetError as exc:
        return {u: str(exc) for u in usernames}
    for u in usernames:
        if u not in present:
            out[u] = None
    todo = [u for u in usernames if u in present]
    if not todo:
        return out
    stmts = list(statements) or DEFAULT_REVOCATION
    try:
        await pool.run(";\n".join(script(stmts, {"name": u, "username": u}) for u in todo))
        out.update({u: None for u in todo})
        return out
    except TargetError as exc:
        if len(todo) == 1:
            out[todo[0]] = str(exc)
            return out
    for u in todo:
        try:
            await pool.run(script(stmts, {"name": u, "username": u}))
            out[u] = None
        except TargetError as exc:
            out[u] = str(exc)
    return out


def as_dict(cred: Credential) -> dict[str, Any]:
    return {"username": cred.username, "password": cred.password}
