"""Fixtures for the ACME tests: a real Pebble + pebble-challtestsrv on free ports (stopped by their own pids), the
real API as a uvicorn subprocess (Pebble validates http-01 on its port) and helpers to drive it over HTTP.

Pebble and challtestsrv come from the Debian package ``pebble``; devstack.services.find_pebble installs it when
running as root and otherwise fails with how to install it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson
import pytest

from devstack.acme_stack import PebbleStack, pebble_root, start_pebble
from tests.helpers import ADMIN, bearer, client_token, reset_emulator

_T = TypeVar("_T")

FAST = {"acme_retry_base_seconds": 2.0, "acme_retry_max_seconds": 5.0, "acme_heartbeat_timeout_seconds": 5.0,
        "acme_finalize_timeout_seconds": 60.0,
        "rate_limit_overrides": "pki_admin=100000, pki_issue=100000, acme_order=100000"}


async def poll(fn: Callable[[], Awaitable[_T | None]], what: str, timeout: float = 120.0) -> _T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@dataclass
class Acme:
    api: httpx.AsyncClient
    settings: Any
    admin: dict[str, str]
    pebble: PebbleStack
    workdir: Path
    api_url: str
    accounts: dict[str, str] = field(default_factory=dict)

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.settings.asyncpg_dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def ok(self, r: httpx.Response, status: int = 200) -> Any:
        assert r.status_code == status, r.text
        return r.json() if r.content else None

    async def account(self, name: str | None = None) -> dict[str, Any]:
        return await self.ok(await self.api.post("/v1/pki/acme/accounts", headers=self.admin, json={
            "name": name or f"pebble-{uuid.uuid4().hex[:8]}", "provider": "custom", "environment": "staging",
            "directory_url": self.pebble.directory_url, "email": "ops@acme.example"}), 201)

    async def challtestsrv_provider(self, zones: list[str], name: str | None = None) -> dict[str, Any]:
        return await self.ok(await self.api.post("/v1/dns/providers", headers=self.admin, json={
            "name": name or f"chall-{uuid.uuid4().hex[:8]}", "provider_type": "challtestsrv",
            "credentials": {"management_url": self.pebble.challtestsrv_url}, "managed_zones": zones,
            "verify": True}), 201)

    async def order(self, **body: Any) -> dict[str, Any]:
        return await self.ok(await self.api.post("/v1/pki/acme/orders", headers=self.admin, json=body), 201)

    async def get_order(self, order_id: str) -> dict[str, Any]:
        return await self.ok(await self.api.get(f"/v1/pki/acme/orders/{order_id}", headers=self.admin))

    async def wait_order(self, order_id: str, status: str = "valid", timeout: float = 120.0) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            o = await self.get_order(order_id)
            return o if o["status"] == status else None

        return await poll(check, f"order {order_id} to be {status}", timeout)

    async def managed(self, cert_id: str) -> dict[str, Any]:
        return await self.ok(await self.api.get(f"/v1/pki/acme/managed/{cert_id}", headers=self.admin))

    async def chall(self, path: str, body: dict[str, Any]) -> None:
        async with httpx.AsyncClient() as c:
            r = await c.post(self.pebble.challtestsrv_url + path, json=body)
            assert r.status_code == 200, r.text

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        rows = await self.sql("SELECT data::text AS data FROM events WHERE event_type = $1 ORDER BY seq", event_type)
        return [orjson.loads(r["data"]) for r in rows]

    def verify_chain(self, pem: str) -> None:
        """openssl verify the leaf against Pebble's root, the CA's intermediates as untrusted."""
        root = self.workdir / f"root-{uuid.uuid4().hex[:6]}.pem"
        root.write_text(pebble_root(self.pebble))
        parts = [p + "-----END CERTIFICATE-----\n" for p in pem.split("-----END CERTIFICATE-----") if "BEGIN" in p]
        assert len(parts) >= 2, "the stored PEM is the CA's chain, leaf first"
        leaf, chain = self.workdir / "leaf.pem", self.workdir / "chain.pem"
        leaf.write_text(parts[0].lstrip())
        chain.write_text("".join(p.lstrip() for p in parts[1:]))
        out = subprocess.run(["openssl", "verify", "-CAfile", str(root), "-untrusted", str(chain), str(leaf)],
                             capture_output=True, text=True, check=False)
        assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stdout + out.stderr


@pytest.fixture
def pebble_workdir(tmp_path: Path) -> Path:
    return tmp_path / "pebble"


@pytest.fixture
async def acme_factory(scaikey: str, redis_clean: str, settings_factory: Callable[..., Any],
                       api_server_factory: Callable[..., Any], pebble_workdir: Path,
                       ) -> AsyncIterator[Callable[..., Awaitable[Acme]]]:
    """``await make(validity_seconds=None, **settings)``: API subprocess, then Pebble validating http-01 on its
    port. The worker is started by each test (``worker_process(acme.settings)``)."""
    await reset_emulator(scaikey)
    stacks: list[PebbleStack] = []
    clients: list[httpx.AsyncClient] = []

    async def make(validity_seconds: int | None = None, dns_server: str | None = None, **overrides: Any) -> Acme:
        workdir = pebble_workdir / str(len(stacks))
        settings = settings_factory(**{**FAST, "acme_ca_bundle": str(workdir / "listener-ca.pem"), **overrides})
        server = api_server_factory(settings)
        port = int(server.url.rsplit(":", 1)[1])
        stack = await asyncio.to_thread(start_pebble, workdir, http_port=port, validity_seconds=validity_seconds,
                                        dns_server=dns_server)
        stacks.append(stack)
        api = httpx.AsyncClient(base_url=server.url, timeout=30,  # idle connections dropped before uvicorn's 5 s
                             limits=httpx.Limits(keepalive_expiry=2.0))  # keep-alive close, so a reuse never races it
        clients.append(api)
        admin = bearer(await client_token(scaikey, ADMIN))
        return Acme(api=api, settings=settings, admin=admin, pebble=stack, workdir=workdir, api_url=server.url)

    yield make
    for c in clients:
        await c.aclose()
    for s in stacks:
        s.stop()


@pytest.fixture
def moto_url(moto: str) -> Iterator[str]:
    httpx.post(f"{moto}/moto-api/reset")
    yield moto


@dataclass
class Bind:
    address: str  # host:port, TCP and UDP
    zone: str
    key_name: str
    secret: str


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[Bind]:
    """BIND (Debian ``bind9``) on a free port, authoritative for ``rfc.example`` and accepting TSIG-signed RFC 2136
    updates of TXT records under it; stopped by its pid. Installed with apt-get when root, like Pebble."""
    import base64
    import secrets as pysecrets
    import shutil

    from devstack import services as svc

    named = shutil.which("named") or "/usr/sbin/named"
    if not Path(named).exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "bind9"], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                       capture_output=True, check=False)
    if not Path(named).exists():
        raise svc.ServiceStartError("cannot find named: run `sudo apt-get install -y bind9` (Debian package bind9)")
    d = tmp_path / "bind"
    d.mkdir()
    port, zone, key = svc.free_port(), "rfc.example", "scaivault-acme"
    secret = base64.b64encode(pysecrets.token_bytes(32)).decode()
    (d / f"{zone}.zone").write_text(
        f"$TTL 60\n@ IN SOA ns.{zone}. admin.{zone}. 1 60 60 600 60\n@ IN NS ns.{zone}.\nns IN A 127.0.0.1\n")
    (d / "named.conf").write_text(f"""
options {{ directory "{d}"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
  pid-file "{d}/named.pid"; recursion no; dnssec-validation no; }};
controls {{ }};
key "{key}" {{ algorithm hmac-sha256; secret "{secret}"; }};
zone "{zone}" {{ type primary; file "{d}/{zone}.zone"; update-policy {{ grant {key} zonesub TXT; }}; }};
""")
    handle = svc.start_process("named", [named, "-g", "-c", str(d / "named.conf")], None, d / "named.log",
                               svc.log_says(d / "named.log", "running"), timeout=30)
    try:
        yield Bind(address=f"127.0.0.1:{port}", zone=zone, key_name=key, secret=secret)
    finally:
        handle.stop(timeout=10)
