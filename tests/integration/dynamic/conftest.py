"""Fixtures for dynamic-credential tests: an API client with an admin token, a real PostgreSQL target (a fresh
database and a ``CREATEROLE`` root role in the session's PostgreSQL), its root secret stored through the API, and
helpers to create engines and roles and to inspect the target."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.helpers import ADMIN, bearer, client_token, grant, reset_emulator

CREATE = ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'",
          'GRANT CONNECT ON DATABASE {db} TO "{{name}}"']


@dataclass
class Target:
    admin_url: str     # superuser, on the target database
    host: str
    port: int
    database: str
    root_user: str
    root_password: str

    def url_template(self) -> str:
        return f"postgresql://{{{{username}}}}:{{{{password}}}}@{self.host}:{self.port}/{self.database}"

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.admin_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def role_exists(self, name: str) -> bool:
        return bool(await self.sql("SELECT 1 FROM pg_roles WHERE rolname = $1", name))

    async def password_matches(self, name: str, password: str) -> bool:
        """Verify ``password`` against the role's SCRAM verifier (the cluster itself uses trust auth)."""
        rows = await self.sql("SELECT rolpassword FROM pg_authid WHERE rolname = $1", name)
        if not rows or not rows[0]["rolpassword"]:
            return False
        mech, rest = rows[0]["rolpassword"].split("$", 1)
        iter_salt, keys = rest.split("$", 1)
        iterations, salt = iter_salt.split(":")
        stored_key, _ = keys.split(":")
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        return mech == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == base64.b64decode(stored_key)

    async def can_login(self, user: str, password: str) -> bool:
        try:
            conn = await asyncpg.connect(host=self.host, port=self.port, user=user, password=password,
                                         database=self.database, timeout=10)
        except (asyncpg.PostgresError, OSError):
            return False
        await conn.close()
        return True

    async def generated_roles(self) -> list[str]:
        return [r["rolname"] for r in await self.sql("SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%'")]


@dataclass
class Stack:
    api: httpx.AsyncClient
    settings: Any
    admin: dict[str, str]
    scaikey: str
    target: Target
    extra: dict[str, Any] = field(default_factory=dict)

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.settings.asyncpg_dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def root_secret(self, path: str = "infra/postgres/root", **data: Any) -> str:
        body = data or {"username": self.target.root_user, "password": self.target.root_password}
        r = await self.api.put(f"/v1/secrets/{path}", json={"data": body}, headers=self.admin)
        assert r.status_code in (200, 201), r.text
        return path

    async def engine(self, name: str | None = None, **kw: Any) -> dict[str, Any]:
        path = await self.root_secret()
        body: dict[str, Any] = {"name": name or f"pg-{uuid.uuid4().hex[:8]}", "type": "database",
                                "config": {"plugin": "postgresql", "connection_url": self.target.url_template(),
                                           "root_credentials_path": path},
                                "default_ttl": "1h", "max_ttl": "24h"}
        body.update(kw)
        r = await self.api.post("/v1/dynamic/engines", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def role(self, engine: str, name: str = "readonly", **kw: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "creation_statements": [s.replace("{db}", f'"{self.target.database}"')
                                                                      for s in CREATE]}
        body.update(kw)
        r = await self.api.post(f"/v1/dynamic/engines/{engine}/roles", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def creds(self, engine: str, role: str = "readonly", **body: Any) -> httpx.Response:
        return await self.api.post(f"/v1/dynamic/engines/{engine}/creds/{role}", json=body, headers=self.admin)

    async def lease(self, lease_id: str) -> dict[str, Any]:
        r = await self.api.get(f"/v1/dynamic/leases/{lease_id}", headers=self.admin)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def audit(self, action: str) -> list[asyncpg.Record]:
        return await self.sql("SELECT identity_id, resource_id, success, extra_data FROM audit_log WHERE action = $1"
                              " ORDER BY ts", action)

    async def events(self, *types: str) -> list[asyncpg.Record]:
        return await self.sql("SELECT event_type, identity_id, data::text AS data FROM events"
                              " WHERE event_type = ANY($1) ORDER BY seq", list(types))


@pytest.fixture
async def target(services: Any) -> AsyncIterator[Target]:
    """A fresh database and a CREATEROLE (not superuser) root role in the session's PostgreSQL."""
    suffix = uuid.uuid4().hex[:10]
    db, root, pw = f"dyn_{suffix}", f"root_{suffix}", uuid.uuid4().hex
    admin = await asyncpg.connect(services.pg_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{db}"')
        await admin.execute(f"CREATE ROLE \"{root}\" LOGIN CREATEROLE NOSUPERUSER PASSWORD '{pw}'")
        await admin.execute(f'GRANT ALL ON DATABASE "{db}" TO "{root}" WITH GRANT OPTION')
    finally:
        await admin.close()
    parts = urlsplit(services.pg_admin_url)
    admin_url = services.pg_admin_url.rsplit("/", 1)[0] + f"/{db}"
    yield Target(admin_url, parts.hostname or "127.0.0.1", parts.port or 5432, db, root, pw)
    admin = await asyncpg.connect(services.pg_admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        for r in await admin.fetch("SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%'"):
            await admin.execute(f'DROP ROLE IF EXISTS "{r["rolname"]}"')
        await admin.execute(f'DROP ROLE IF EXISTS "{root}"')
    finally:
        await admin.close()


@pytest.fixture
async def stack_factory(scaikey: str, make_app_client: Any, redis_clean: str, target: Target,
                        settings_factory: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    await reset_emulator(scaikey)
    opened: list[Any] = []

    async def make(**overrides: Any) -> Stack:
        settings = settings_factory(**overrides)
        cm = make_app_client(settings)
        api = await cm.__aenter__()
        opened.append(cm)
        admin = bearer(await client_token(scaikey, ADMIN))
        await grant(api, admin, ["sa:dev-admin"], name="dynamic-tests-all")
        return Stack(api=api, settings=settings, admin=admin, scaikey=scaikey, target=target)

    yield make
    for cm in reversed(opened):
        await cm.__aexit__(None, None, None)


@pytest.fixture
async def stack(stack_factory: Callable[..., Any]) -> Stack:
    return await stack_factory()  # type: ignore[no-any-return]
