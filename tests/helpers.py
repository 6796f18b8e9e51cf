"""Helpers for tests that talk to the ScaiKey emulator and the API over HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

# Seeded applications in scaikey_emulator/seeds/dev.json (client id, secret)
CI = ("ci-deployer", "dev-ci-deployer-secret")              # sa:ci-deployer, secrets:read/write/list
ADMIN = ("dev-admin", "dev-admin-secret")                   # sa:dev-admin, scope admin, role tenant_admin
PARTNER_ADMIN = ("partner-admin-svc", "dev-partner-admin-secret")  # role partner_admin, scope admin
TENANT = "tnt_acme_prod"
OTHER_TENANT = "tnt_acme_dev"


async def client_token(scaikey: str, creds: tuple[str, str], scope: str | None = None,
                       slug: str = "acme-prod") -> str:
    """A real client_credentials token from the emulator's tenant token endpoint."""
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{scaikey}/api/v1/auth/tenants/{slug}/oauth/token", data=data, auth=creds)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def mint(scaikey: str, **body: object) -> str:
    """POST /_emulator/tokens/mint (see scaikey_emulator/control.py for the options)."""
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{scaikey}/_emulator/tokens/mint", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


async def user_token(scaikey: str, email: str, *, scope: str = "", client_id: str = "ci-deployer",
                     **extra: object) -> str:
    """A user token (user:<email>, groups from the emulator) with the given ScaiVault scopes."""
    body: dict[str, object] = {"client_id": client_id, "user": email, **extra}
    if scope:
        body["scope"] = scope
    return await mint(scaikey, **body)


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


async def reset_emulator(scaikey: str) -> None:
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{scaikey}/_emulator/reset")
        assert r.status_code == 200


ALL_PERMISSIONS = ("read", "write", "delete", "list", "rotate")


def identity_type(identity_id: str) -> str:
    return {"user": "user", "sa": "service_account", "group": "group"}[identity_id.split(":", 1)[0]]


async def grant(client: httpx.AsyncClient, admin_headers: dict[str, str], identities: list[str], *,
                pattern: str = "**", permissions: tuple[str, ...] = ALL_PERMISSIONS, scope: str = "tenant",
                tenant: str | None = None, name: str | None = None) -> str:
    """Create a policy (through the API) granting ``permissions`` on ``pattern`` to ``identities``.

    Policies deny by default, so tests that exercise other features bind what they need explicitly.
    ``tenant`` addresses another tenant through the /v1/t/{tenant} prefix (needs a partner admin).
    """
    base = f"/v1/t/{tenant}" if tenant else "/v1"
    body = {"name": name or f"grant-{len(identities)}-{abs(hash((pattern, tuple(identities), scope))) % 10**8}",
            "rules": [{"path_pattern": pattern, "permissions": list(permissions)}], "scope": scope}
    r = await client.post(f"{base}/policies", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    pid = str(r.json()["id"])
    for ident in identities:
        r = await client.post(f"{base}/policies/{pid}/bindings", headers=admin_headers,
                              json={"identity_type": identity_type(ident), "identity_id": ident})
        assert r.status_code == 201, r.text
    return pid


async def poll(fn: Any, what: str, timeout: float = 90.0, interval: float = 0.3) -> Any:
    """Await ``fn()`` until it returns something truthy (returned), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = await fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(interval)
