"""The shared stack of the matrix tests: identities, tokens, probes that compare answers, event quiescence."""

from __future__ import annotations

import base64
import json
import re
import secrets as pysecrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.fixtures.services import TestServices
from tests.helpers import bearer, grant, mint, user_token
from tests.webhook_receiver import Receiver, wait_for

SEED = Path(__file__).resolve().parents[3] / "scaikey_emulator" / "seeds" / "dev.json"

TENANT_A = "tnt_acme_prod"        # partner prt_acme
TENANT_B = "tnt_acme_dev"         # same partner
TENANT_G = "tnt_globex"           # the second partner, prt_globex
PERMISSIONS = ("read", "list", "write", "delete", "rotate")
NARROW = {p: f"m-{p}@acme.example" for p in PERMISSIONS}   # users of tenant A, one narrow grant each
# partner admins of prt_acme (home tnt_acme_prod), one narrow partner-scope grant each: on partner secrets
# only partner admins may write, so these callers make the policy the only thing that decides.
PARTNER_NARROW = {p: f"m-pn-{p}" for p in PERMISSIONS}
NOBODY = "m-none@acme.example"                             # tenant A, no grant at all
SENTINEL = "m-sentinel@acme.example"                       # tenant A, read + list on ** (event quiescence)
USER_SCOPES = ("secrets:read secrets:write secrets:list secrets:delete secrets:rotate "
               "subscriptions:read subscriptions:write")

# Service accounts (emulator applications); mint(client_id=...) gives their token-endpoint claims.
ADMIN_A = "dev-admin"             # seeded: tenant_admin of tnt_acme_prod
PARTNER_ACME = "partner-admin-svc"  # seeded: partner_admin of prt_acme (home tnt_acme_prod)
ADMIN_B = "m-admin-dev"           # tenant_admin of tnt_acme_dev
ADMIN_G = "m-admin-globex"        # tenant_admin of tnt_globex
PARTNER_GLOBEX = "m-partner-globex"  # partner_admin of prt_globex (home tnt_globex)
ADMIN_NOGRANT = "m-admin-nogrant"  # tenant_admin of tnt_acme_prod bound to no policy at all

FAST: dict[str, Any] = {
    "webhook_allow_private": True,
    "webhook_retry_schedule": "300ms,300ms,300ms",
    "webhook_timeout_seconds": 3,
    "event_relay_sweep_seconds": 1,
    "event_relay_heartbeat_seconds": 5,
    "event_relay_run_seconds": 60,
    "subscription_poll_recheck_seconds": 1,
    "jwks_min_refresh_interval_seconds": 1,
}


def _b64key() -> str:
    return base64.b64encode(pysecrets.token_bytes(32)).decode("ascii")


def make_settings(services: TestServices, db_url: str, scaikey: str, client_secret: str) -> Any:
    from core.settings import Settings
    from ratelimit.categories import DEFAULT_LIMITS

    # hundreds of probes from a handful of identities within a minute: no bucket may run dry
    overrides = ",".join(f"{c}=1000000" for c in DEFAULT_LIMITS)
    values: dict[str, Any] = {
        "env": "test", "database_url": db_url, "redis_url": services.redis_url,
        "temporal_address": services.temporal_address, "temporal_namespace": "default",
        "temporal_task_queue_prefix": f"m{pysecrets.token_hex(4)}-", "kms_provider": "local",
        "kms_local_key": _b64key(), "token_hmac_key": _b64key(), "audit_hmac_key": _b64key(),
        "temporal_codec_key": _b64key(), "scaikey_client_secret": client_secret, "scaikey_base_url": scaikey,
        "scaikey_audience": "scaivault", "scaikey_client_id": "scaivault", **FAST,
        "rate_limit_overrides": overrides}
    return Settings(**values)


def seed_document() -> dict[str, Any]:
    """The dev seed plus: one narrow user per permission, a second partner (prt_globex) with its own tenant
    admin and partner admin, a tenant admin for tnt_acme_dev, and a group named ``developers`` in
    tnt_acme_dev (the same name as tnt_acme_prod's group: the partner-binding-by-name hole)."""
    seed = json.loads(SEED.read_text())
    for i, email in enumerate([*NARROW.values(), NOBODY, SENTINEL]):
        seed["users"].append({"id": f"usr_m{i}", "tenant_id": TENANT_A, "email": email, "first_name": "M",
                              "last_name": email.split("@")[0]})
    seed["partners"].append({"id": "prt_globex", "name": "Globex", "slug": "globex", "status": "ACTIVE"})
    seed["tenants"].append({"id": TENANT_G, "slug": "globex", "name": "Globex", "partner_id": "prt_globex",
                            "status": "ACTIVE"})
    seed["users"].append({"id": "usr_gina", "tenant_id": TENANT_G, "email": "gina@globex.example",
                          "first_name": "Gina", "last_name": "G"})
    seed["groups"].append({"id": "grp_dev_developers", "tenant_id": TENANT_B, "name": "developers"})
    seed["memberships"].append({"group_id": "grp_dev_developers", "user_id": "usr_erin"})
    seed["groups"].append({"id": "grp_globex_developers", "tenant_id": TENANT_G, "name": "developers"})
    seed["memberships"].append({"group_id": "grp_globex_developers", "user_id": "usr_gina"})
    common = {"application_type": "SERVICE", "audience": "scaivault", "allowed_scopes": ["admin"]}
    seed["applications"] += [
        {**common, "id": "app_m_admin_dev", "client_id": ADMIN_B, "name": "matrix admin dev", "scope": "TENANT",
         "tenant_id": TENANT_B, "partner_id": "prt_acme", "role": "tenant_admin", "client_secret": "m-admin-dev"},
        {**common, "id": "app_m_admin_nogrant", "client_id": ADMIN_NOGRANT, "name": "matrix admin no grant",
         "scope": "TENANT", "tenant_id": TENANT_A, "partner_id": "prt_acme", "role": "tenant_admin",
         "client_secret": "m-admin-nogrant"},
        {**common, "id": "app_m_admin_globex", "client_id": ADMIN_G, "name": "matrix admin globex",
         "scope": "TENANT", "tenant_id": TENANT_G, "partner_id": "prt_globex", "role": "tenant_admin",
         "client_secret": "m-admin-globex"},
        {**common, "id": "app_m_partner_globex", "client_id": PARTNER_GLOBEX, "name": "matrix partner globex",
         "scope": "PARTNER", "tenant_id": TENANT_G, "partner_id": "prt_globex", "role": "partner_admin",
         "client_secret": "m-partner-globex"},
    ]
    seed["applications"] += [
        {**common, "id": f"app_m_pn_{p}", "client_id": cid, "name": f"matrix partner narrow {p}", "scope": "PARTNER",
         "tenant_id": TENANT_A, "partner_id": "prt_acme", "role": "partner_admin", "client_secret": cid,
         "allowed_scopes": USER_SCOPES.split()}
        for p, cid in PARTNER_NARROW.items()]
    return seed


async def seed_emulator(scaikey: str) -> None:
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{scaikey}/_emulator/seed", json=seed_document())
    assert r.status_code == 200, r.text


def normalize(resp: httpx.Response, *ids: str) -> tuple[int, Any]:
    """(status, body) with the request id dropped and every occurrence of ``ids`` replaced by ``<ID>``:
    the shape a caller can observe, for comparing a cross-tenant probe with a probe of a missing resource."""
    text = resp.text
    for i in sorted((i for i in ids if i), key=len, reverse=True):
        text = text.replace(json.dumps(i)[1:-1], "<ID>")
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = text
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body["error"].pop("request_id", None)
    return resp.status_code, body


@dataclass
class Stack:
    api: httpx.AsyncClient
    app: Any
    settings: Any
    scaikey: str
    worker_log: Path
    receivers: list[Receiver] = field(default_factory=list)
    _tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------ identities
    async def sa(self, client_id: str) -> dict[str, str]:
        if client_id not in self._tokens:
            self._tokens[client_id] = bearer(await mint(self.scaikey, client_id=client_id))
        return self._tokens[client_id]

    async def user(self, email: str, scope: str = USER_SCOPES) -> dict[str, str]:
        key = f"{email} {scope}"
        if key not in self._tokens:
            self._tokens[key] = bearer(await user_token(self.scaikey, email, scope=scope, client_id="vault-ui"))
        return self._tokens[key]

    async def bootstrap(self) -> None:
        """Record every tenant (first token seen) and give the admins full access for setting up data."""
        for cid in (ADMIN_A, ADMIN_B, ADMIN_G, PARTNER_ACME, PARTNER_GLOBEX):
            r = await self.api.get("/v1/auth/whoami", headers=await self.sa(cid))
            assert r.status_code == 200, r.text
        await grant(self.api, await self.sa(ADMIN_A), ["sa:dev-admin"], name="matrix-setup-a")
        await grant(self.api, await self.sa(ADMIN_B), [f"sa:{ADMIN_B}"], name="matrix-setup-b")
        await grant(self.api, await self.sa(ADMIN_G), [f"sa:{ADMIN_G}"], name="matrix-setup-g")
        await grant(self.api, await self.sa(PARTNER_ACME), ["sa:partner-admin-svc"], scope="partner",
                    name="matrix-setup-partner-acme")
        await grant(self.api, await self.sa(PARTNER_GLOBEX), [f"sa:{PARTNER_GLOBEX}"], scope="partner",
                    name="matrix-setup-partner-globex")

    # ------------------------------------------------------------------------------------------ helpers
    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.settings.asyncpg_dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    def receiver(self, secret: str) -> Receiver:
        rx = Receiver([secret]).start()
        self.receivers.append(rx)
        return rx

    def stop_receivers(self) -> None:
        for rx in self.receivers:
            rx.stop()

    async def write(self, headers: dict[str, str], path: str, value: str, *, partner: bool = False,
                    tenant: str | None = None) -> None:
        base = "/v1/partner/secrets" if partner else (f"/v1/t/{tenant}/secrets" if tenant else "/v1/secrets")
        r = await self.api.put(f"{base}/{path}", json={"data": {"value": value}}, headers=headers)
        assert r.status_code in (200, 201), r.text

    async def quiescent(self, event_ids: list[str] | None = None) -> None:
        """Every outbox event relayed and no webhook delivery still pending (generous deadline)."""

        async def done() -> bool:
            rows = await self.sql("SELECT (SELECT count(*) FROM events WHERE dispatched_at IS NULL) AS e,"
                                  " (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS d")
            return rows[0]["e"] == 0 and rows[0]["d"] == 0

        await wait_for(done, timeout=90, interval=0.2, what="outbox relayed and deliveries settled")


def has_text(resp: httpx.Response | str, needle: str) -> bool:
    text = resp if isinstance(resp, str) else resp.text
    return re.search(re.escape(needle), text) is not None
