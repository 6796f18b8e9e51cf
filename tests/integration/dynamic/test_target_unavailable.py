"""A target that goes away while a credential is issued: ``503 service_unavailable`` (retryable, the documented
envelope with ``details.dependency: "target"`` and ``Retry-After``), never ``400 invalid_config``, and no role left
behind — whether the connection failed before the statements were sent or after they committed at the target.

The engine reaches its target through a TCP proxy in the test (same event loop as the in-process API) that can
refuse connections, or forward ``CREATE ROLE`` and then cut the connection before the answer comes back."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.integration.dynamic.conftest import Stack, Target


class Proxy:
    """127.0.0.1:<port> -> the target. ``stop()`` closes the listener and every live connection (new connections
    are refused); ``cut_after_create`` forwards the next chunk holding ``CREATE ROLE``, waits until the role exists
    at the target (committed), then closes both sides without relaying the answer."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.port = 0
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.cut_after_create = False
        self.cut_role_seen = False

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.writers):
            w.close()
        await self.server.wait_closed()
        self.server = None

    def url_template(self) -> str:
        return f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{self.port}/{self.target.database}"

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(self.target.host, self.target.port)
        except OSError:
            cw.close()
            return
        self.writers |= {cw, uw}
        muted = asyncio.Event()

        async def up() -> None:
            while data := await cr.read(65536):
                if self.cut_after_create and b"CREATE ROLE" in data:
                    self.cut_after_create = False
                    muted.set()
                    uw.write(data)
                    await uw.drain()
                    for _ in range(200):  # the statement runs and commits at the target; its answer is dropped
                        if await self.target.sql("SELECT 1 FROM pg_roles WHERE rolname LIKE 'v-%'"):
                            self.cut_role_seen = True
                            break
                        await asyncio.sleep(0.05)
                    break
                uw.write(data)
                await uw.drain()

        async def down() -> None:
            while data := await ur.read(65536):
                if muted.is_set():
                    continue
                cw.write(data)
                await cw.drain()

        tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        for w in (cw, uw):
            w.close()
            self.writers.discard(w)


async def _engine_via(stack: Stack, proxy: Proxy) -> dict[str, Any]:
    path = await stack.root_secret()
    return await stack.engine(config={"plugin": "postgresql", "connection_url": proxy.url_template(),
                                      "root_credentials_path": path})


def _unavailable(r: Any, engine: str) -> dict[str, Any]:
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "service_unavailable" and err["request_id"], err
    assert err["details"]["dependency"] == "target" and err["details"]["engine"] == engine, err
    assert r.headers["Retry-After"] == "2"
    return err  # type: ignore[no-any-return]


async def test_refused_target_is_a_retryable_503_and_leaves_nothing(stack: Stack) -> None:
    proxy = Proxy(stack.target)
    await proxy.start()
    try:
        eng = await _engine_via(stack, proxy)
        await stack.role(eng["name"])
        first = await stack.creds(eng["name"])
        assert first.status_code == 200, first.text  # the engine's pool now holds a connection through the proxy

        await proxy.stop()  # the blip: live connections dropped, new ones refused
        r = await stack.creds(eng["name"])
        err = _unavailable(r, eng["name"])
        assert "lease_id" not in err["details"]  # nothing reached the target: no lease kept
        assert [x["id"] for x in await stack.sql("SELECT id FROM dynamic_leases")] == [first.json()["lease_id"]]
        assert await stack.target.generated_roles() == [first.json()["data"]["username"]]
        generated = await stack.sql("SELECT resource_id FROM audit_log WHERE action = 'dynamic_generate'"
                                    " AND success AND resource_id LIKE 'lease_%'")
        assert [g["resource_id"] for g in generated] == [first.json()["lease_id"]]

        await proxy.start()  # the target is back on the same address: issuing works again, no config change
        again = await stack.creds(eng["name"])
        assert again.status_code == 200, again.text
        assert await stack.target.password_matches(again.json()["data"]["username"], again.json()["data"]["password"])
    finally:
        if proxy.server is not None:
            await proxy.stop()


async def test_connection_cut_after_create_role_hands_the_lease_to_the_revoker(stack: Stack) -> None:
    proxy = Proxy(stack.target)
    await proxy.start()
    try:
        eng = await _engine_via(stack, proxy)
        await stack.role(eng["name"])
        proxy.cut_after_create = True
        r = await stack.creds(eng["name"])
        err = _unavailable(r, eng["name"])
        assert proxy.cut_role_seen  # the role was committed at the target, but the API never heard back
        lease_id = err["details"]["lease_id"]
        assert err["details"]["lease_status"] == "revoking"
        lease = await stack.lease(lease_id)
        assert lease["status"] == "revoking" and lease["revoke_reason"] == "issue_failed", lease
        (role,) = await stack.target.generated_roles()
        assert role == lease["username"]
        assert "data" not in r.json()  # no credential in an error

        # the revoker's path (here the explicit retry, the same confirmation): the role is dropped at the target
        r = await stack.api.post(f"/v1/dynamic/leases/{lease_id}/revoke", headers=stack.admin)
        assert r.status_code == 200 and r.json()["status"] == "revoked", r.text
        assert await stack.target.generated_roles() == []
        rows = await stack.sql("SELECT identity_id, extra_data::text AS extra FROM audit_log"
                               " WHERE action = 'dynamic_revoke' AND resource_id = $1", lease_id)
        assert any(x["identity_id"] == "system:lease-revoker" and "issue_failed" in x["extra"] for x in rows), rows
        assert await stack.sql("SELECT 1 FROM audit_log WHERE action = 'dynamic_generate' AND success"
                               " AND resource_id = $1", lease_id) == []
        created = await stack.events("lease.created")
        assert all(lease_id not in e["data"] for e in created)
    finally:
        if proxy.server is not None:
            await proxy.stop()


async def test_statement_refused_by_a_reachable_target_stays_invalid_config(stack: Stack) -> None:
    eng = await stack.engine()
    await stack.role(eng["name"], "dup", creation_statements=[
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'", 'CREATE ROLE "{{name}}"'])
    r = await stack.creds(eng["name"], "dup")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_config", r.text
    assert "dependency" not in r.json()["error"]["details"]
    assert await stack.target.generated_roles() == []
    assert await stack.sql("SELECT id FROM dynamic_leases") == []

