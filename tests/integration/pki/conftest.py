"""Fixtures for the PKI API tests: the real app (in-process), tenant A's admin and a prober in tenant B.

Tenant A is ``tnt_acme_prod`` (the seeded tenant admin, scope ``admin``); tenant B is ``tnt_acme_dev``, reached by
the partner admin through the ``/v1/t/{tenant}`` prefix.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ADMIN, PARTNER_ADMIN, bearer, client_token, reset_emulator, user_token

TENANT_B_PREFIX = "/v1/t/tnt_acme_dev"


@pytest.fixture
def pki_settings(scaikey: str, settings_factory: Callable[..., Any]) -> Any:
    return settings_factory(base_url="https://vault.example.test",
                            rate_limit_overrides="pki_admin=100000, pki_issue=100000")


@pytest.fixture
async def api(scaikey: str, pki_settings: Any, redis_clean: str,
              make_app_client: Callable[[Any], AbstractAsyncContextManager[httpx.AsyncClient]],
              ) -> AsyncIterator[httpx.AsyncClient]:
    await reset_emulator(scaikey)
    async with make_app_client(pki_settings) as client:
        yield client


@pytest.fixture
async def admin(scaikey: str) -> dict[str, str]:
    return bearer(await client_token(scaikey, ADMIN))


@pytest.fixture
async def partner(api: httpx.AsyncClient, scaikey: str) -> dict[str, str]:
    """The partner admin of prt_acme; tenant B is recorded first (a token of one of its users is seen)."""
    erin = bearer(await user_token(scaikey, "erin@acme.example", scope="secrets:read"))
    assert (await api.get("/v1/auth/whoami", headers=erin)).status_code == 200
    return bearer(await client_token(scaikey, PARTNER_ADMIN))


async def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.content


async def make_hierarchy(api: httpx.AsyncClient, h: dict[str, str], *, prefix: str = "/v1", key_type: str = "rsa",
                         tag: str = "a", role_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """root -> intermediate -> role 'web-{tag}' on the intermediate."""
    size = 2048 if key_type == "rsa" else 256
    root = await ok(await api.post(f"{prefix}/pki/ca", headers=h, json={
        "name": f"root-{tag}", "common_name": f"Root {tag}", "ca_type": "root", "key_type": key_type,
        "key_size": size}), 201)
    inter = await ok(await api.post(f"{prefix}/pki/ca", headers=h, json={
        "name": f"inter-{tag}", "common_name": f"Intermediate {tag}", "ca_type": "intermediate",
        "parent_ca_id": root["id"], "key_type": key_type, "key_size": size}), 201)
    role = await ok(await api.post(f"{prefix}/pki/roles", headers=h, json={
        "name": f"web-{tag}", "ca_id": inter["id"], "allowed_domains": ["example.com", "*.svc.cluster.local"],
        "allow_subdomains": True, "allow_ip_sans": True, "max_ttl": "720h", "key_type": key_type,
        "key_bits": size, **(role_extra or {})}), 201)
    return {"root": root, "inter": inter, "role": role}


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=60, check=False)


def write(tmp: Path, name: str, data: str | bytes) -> str:
    p = tmp / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(p)
