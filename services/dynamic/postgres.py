"""The PostgreSQL target (asyncpg): test connection, create a credential from a role's statements, renew,
revoke (batched, idempotent). Errors are ``TargetError`` with a scrubbed message (never a password).

Placeholders (Vault's convention): ``{{name}}`` (alias ``{{username}}``), ``{{password}}``, ``{{expiration}}``.
Values are substituted as generated text, so templates quote them: ``CREATE ROLE "{{name}}" ... PASSWORD
'{{password}}'``. Generated names use ``[a-z0-9-]`` and passwords ``[A-Za-z0-9]`` only, so no value can break
out of its quotes.
"""

from __future__ import annotations

import asyncio
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


class TargetError(Exception):
    """The target refused or could not be reached; ``str()`` is safe to store and show."""


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
        raise TargetError(f"connection timed out after {limit:g}s") from None
    except Exception as exc:
        raise TargetError(describe_error(exc, secrets)) from None


async def check(dsn: str, limit: float, secrets: Sequence[str] = ()) -> None:
    conn = await connect(dsn, limit, secrets)
    try:
        await asyncio.wait_for(conn.fetchval("SELECT 1"), limit)
    except Exception as exc:
        raise TargetError(describe_error(exc, secrets)) from None
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
                        raise TargetError(describe_error(exc, self.secrets)) from None
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except Exception:
                pool.terminate()

    async def run(self, sql: str, *, secrets: Sequence[str] = ()) -> None:
        """One transaction running ``sql`` (one or more statements, simple protocol: one round trip)."""
        pool = await self.get()
        try:
            async with pool.acquire(timeout=self.timeout) as conn, conn.transaction():
                await conn.execute(sql)
        except Exception as exc:
            raise TargetError(describe_error(exc, (*self.secrets, *secrets))) from None

    async def existing(self, names: Sequence[str]) -> set[str]:
        pool = await self.get()
        try:
            async with pool.acquire(timeout=self.timeout) as conn:
                rows = await conn.fetch("SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", list(names))
        except Exception as exc:
            raise TargetError(describe_error(exc, self.secrets)) from None
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
