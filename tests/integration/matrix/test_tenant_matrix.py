"""Cross-tenant matrix for every resource (issue 22 item 2), through HTTP on the real routes.

Tenant A (tnt_acme_prod) owns one of everything: webhook (with a delivery), subscriptions, secret policy, access
policy with a binding, a personal access token, a rate-limit override, secrets, audit entries, an identity sync.
Probers from elsewhere -- tenant B's admin (same partner), the second partner's tenant admin, the first partner's
admin switched into tenant B, the second partner's admin reaching for tenant A through ``/v1/t/{tenant}`` --
address A's resources by id; each answer must be exactly (status, code, body shape) the answer for a random id
that exists nowhere, and must change nothing (each change attempt is followed by a snapshot of A). Collections seen from elsewhere contain nothing of A's, and the
events of tenants B and G never reach A's webhook or subscriptions.

A route joins by a row in ``ID_PROBES``/``LIST_PROBES``/``TENANT_PROBES`` (or ``EXTRA_ROUTES``);
test_route_coverage.py fails for any served route that is in no matrix and not exempt.
"""

from __future__ import annotations

import random
import secrets as pysecrets
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.integration.matrix.stack import (
    ADMIN_A,
    ADMIN_B,
    ADMIN_G,
    PARTNER_ACME,
    PARTNER_GLOBEX,
    TENANT_A,
    TENANT_B,
    TENANT_G,
    Stack,
    normalize,
)
from tests.webhook_receiver import Receiver, wait_for

MARK = "mxq7k2p9d"   # fixed (xdist workers must collect the same ids); in every name/path tenant A creates: must never reach another tenant
TEAM = "teamq7k2p9d"  # the partner-binding rows' partner secrets
SP_BODY = {"name": f"{MARK}-sp", "policy_type": "password",
           "fields": [{"name": "password", "generator": "random", "config": {"length": 20}}]}
POLICY_BODY = {"name": f"{MARK}-policy", "rules": [{"path_pattern": f"{MARK}/**", "permissions": ["read"]}]}


def fake_id(real: str) -> str:
    """An id of the same shape (prefix, length, alphabet) that exists nowhere."""
    prefix, sep, body = real.rpartition("_")
    rnd = random.Random(real)
    while True:
        other = "".join(rnd.sample(body, len(body)))
        if other != body:
            return f"{prefix}{sep}{other}"


# ------------------------------------------------------------------------------------------------ tenant A's world
@dataclass
class World:
    stack: Stack
    ids: dict[str, str]
    receivers: dict[str, Receiver]
    subs: dict[str, str]
    override: int
    events: dict[str, set[str]] = field(default_factory=dict)

    def markers(self) -> list[str]:
        return [MARK, *self.ids.values()]


async def _json(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


@pytest.fixture(scope="module")
async def world(stack: Stack) -> World:
    api, a = stack.api, await stack.sa(ADMIN_A)
    ids: dict[str, str] = {}
    receivers = {k: stack.receiver(pysecrets.token_urlsafe(32)) for k in ("a_hook", "a_sub", "b_hook", "g_hook")}
    hook = await _json(await api.post("/v1/webhooks", headers=a, json={
        "name": f"{MARK}-hook", "url": receivers["a_hook"].url, "secret": receivers["a_hook"].secrets[0],
        "events": ["*"]}), 201)
    ids["webhook"] = hook["id"]
    for who, client_id in (("b_hook", ADMIN_B), ("g_hook", ADMIN_G)):
        await _json(await api.post("/v1/webhooks", headers=await stack.sa(client_id), json={
            "name": "sentinel", "url": receivers[who].url, "secret": receivers[who].secrets[0],
            "events": ["*"]}), 201)
    # events committed from here on reach every hook above (earlier ones were relayed before they existed)
    first_seq = (await stack.sql("SELECT coalesce(max(seq), 0) AS s FROM events"))[0]["s"]
    subs = {}
    for kind in ("polling", "webhook"):
        delivery: dict[str, Any] = {"type": kind}
        if kind == "webhook":
            delivery |= {"url": receivers["a_sub"].url, "secret": receivers["a_sub"].secrets[0]}
        sub = await _json(await api.post("/v1/subscriptions", headers=a, json={
            "name": f"{MARK}-{kind}", "paths": ["**"], "events": ["*"], "delivery": delivery}), 201)
        subs[kind] = sub["id"]
    ids["subscription"] = subs["polling"]
    ids["secret_policy"] = (await _json(await api.post("/v1/secret-policies", headers=a, json=SP_BODY), 201))["id"]
    pol = await _json(await api.post("/v1/policies", headers=a, json=POLICY_BODY), 201)
    ids["policy"] = pol["id"]
    bind = await _json(await api.post(f"/v1/policies/{pol['id']}/bindings", headers=a, json={
        "identity_type": "user", "identity_id": "user:alice@acme.example"}), 201)
    ids["binding"] = bind["id"]
    pat = await _json(await api.post("/v1/auth/tokens", headers=a, json={
        "name": f"{MARK}-pat", "scopes": ["secrets:read"]}), 201)
    ids["token"] = pat["id"]
    rot = await _json(await api.post("/v1/rotation/policies", headers=a, json={
        "name": f"{MARK}-rotation", "interval": "90d"}), 201)
    ids["rotation_policy"] = rot["id"]
    fed = await _json(await api.post("/v1/federation/backends?verify=false", headers=a, json={
        "name": f"{MARK}-fed", "type": "hashicorp-vault", "mode": "proxy", "path_mapping": {
            f"{MARK}fed/**": "secret/data/**"}, "config": {"endpoint": "http://127.0.0.1:9", "auth_method": "token",
                                                         "auth_config_path": f"{MARK}/db"}}), 201)
    ids["federation_backend"] = fed["id"]
    ids["federation_conflict"] = "fcf_01M8TRBWQT0RT2135TDPRPVBXC"  # a conflict row of A's backend (issue 18)
    await stack.sql("INSERT INTO federation_conflicts (id, tenant_id, backend_id, path, backend_path)"
                    " VALUES ($1, $2, $3, $4, 'secret/x')", ids["federation_conflict"], TENANT_A, fed["id"],
                    f"{MARK}fed/x")
    override = 4321
    await _json(await api.put("/v1/admin/rate-limits", headers=a, json={"limits": {"read_secrets": override}}))
    await stack.write(a, f"{MARK}/db", "tenant-a-value")
    await _json(await api.post(f"/v1/rotation/policies/{rot['id']}/secrets", headers=a,
                               json={"secret_path": f"{MARK}/db"}), 201)
    await stack.write(await stack.sa(PARTNER_ACME), f"{MARK}/partner", "tenant-a-value-partner", partner=True)
    # B and G: a webhook each (the sentinels that prove their events were relayed) and a secret each
    b, g = await stack.sa(ADMIN_B), await stack.sa(ADMIN_G)
    await stack.write(b, "bside/db", "tenant-b-value")
    await stack.write(g, "gside/db", "tenant-g-value")
    await stack.write(await stack.sa(PARTNER_GLOBEX), "gside/shared", "partner-g-value", partner=True)
    sync = await _json(await api.post(f"/v1/identity/sync?tenant_id={TENANT_A}", headers=a), 202)
    ids["sync"] = sync["sync_id"]

    async def sync_done() -> bool:
        s = await _json(await api.get(f"/v1/identity/sync/{ids['sync']}", headers=a))
        assert s["status"] not in ("failed", "error"), s
        return s["status"] in ("completed", "succeeded", "success", "done")

    await wait_for(sync_done, timeout=90, interval=0.5, what="tenant A's identity sync")
    await wait_for(lambda: receivers["a_hook"].successes(), timeout=90, what="a delivery to A's webhook")
    deliveries = await _json(await api.get(f"/v1/webhooks/{ids['webhook']}/deliveries", headers=a))
    ids["delivery"] = deliveries["deliveries"][0]["id"]
    rows = await stack.sql("SELECT event_id, tenant_id FROM events WHERE seq > $1", first_seq)
    events = {t: {r["event_id"] for r in rows if r["tenant_id"] == t} for t in (TENANT_A, TENANT_B, TENANT_G)}
    return World(stack, ids, receivers, subs, override, events)


# ------------------------------------------------------------------------------------------------ probers
@dataclass(frozen=True)
class Prober:
    name: str
    client_id: str
    prefix: str           # "/v1" or "/v1/t/{tenant}"


PROBERS = [
    Prober("tenant_b_admin", ADMIN_B, "/v1"),                          # same partner, another tenant
    Prober("globex_admin", ADMIN_G, "/v1"),                            # another partner's tenant
    Prober("acme_partner_admin_in_b", PARTNER_ACME, f"/v1/t/{TENANT_B}"),  # A's own partner admin, switched to B
    Prober("globex_partner_admin_into_a", PARTNER_GLOBEX, f"/v1/t/{TENANT_A}"),  # across partners into A
]


# ------------------------------------------------------------------------------------------------ id probes
@dataclass(frozen=True)
class IdProbe:
    """``path`` is the documented template; ``{x}`` placeholders are filled with A's ids (or fakes of them)."""

    method: str
    path: str
    body: Any = None
    params: str = ""

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}{self.params}"


ID_KEYS = {"webhook_id": "webhook", "delivery_id": "delivery", "sub_id": "subscription",
           "policy_id": "policy", "binding_id": "binding", "token_id": "token", "sync_id": "sync",
           "backend_id": "federation_backend", "conflict_id": "federation_conflict"}

ID_PROBES = [
    IdProbe("get", "/v1/webhooks/{webhook_id}"),
    IdProbe("patch", "/v1/webhooks/{webhook_id}", {"name": "pwned"}),
    IdProbe("get", "/v1/webhooks/{webhook_id}/deliveries"),
    IdProbe("post", "/v1/webhooks/{webhook_id}/test"),
    IdProbe("post", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"),
    IdProbe("delete", "/v1/webhooks/{webhook_id}"),
    IdProbe("get", "/v1/subscriptions/{sub_id}"),
    IdProbe("patch", "/v1/subscriptions/{sub_id}", {"name": "pwned"}),
    IdProbe("get", "/v1/subscriptions/{sub_id}/poll", params="?timeout=0"),
    IdProbe("post", "/v1/subscriptions/{sub_id}/ack", {"event_ids": ["evt_01M8TRBWQT0RT2135TDPRPVBXC"]}),
    IdProbe("delete", "/v1/subscriptions/{sub_id}"),
    IdProbe("get", "/v1/secret-policies/{policy_id}"),
    IdProbe("put", "/v1/secret-policies/{policy_id}", {**SP_BODY, "name": "pwned"}),
    IdProbe("patch", "/v1/secret-policies/{policy_id}", {"is_active": False}),
    IdProbe("post", "/v1/secret-policies/{policy_id}/preview"),
    IdProbe("post", "/v1/secret-policies/{policy_id}/generate", {"path": "pwned/generated"}),
    IdProbe("delete", "/v1/secret-policies/{policy_id}"),
    IdProbe("get", "/v1/policies/{policy_id}"),
    IdProbe("put", "/v1/policies/{policy_id}", {**POLICY_BODY, "name": "pwned"}),
    IdProbe("patch", "/v1/policies/{policy_id}", {"description": "pwned"}),
    IdProbe("get", "/v1/policies/{policy_id}/bindings"),
    IdProbe("post", "/v1/policies/{policy_id}/bindings", {"identity_type": "user", "identity_id": "user:m@x.example"}),
    IdProbe("delete", "/v1/policies/{policy_id}/bindings/{binding_id}"),
    IdProbe("delete", "/v1/policies/{policy_id}", params="?force=true"),
    IdProbe("get", "/v1/auth/tokens/{token_id}"),
    IdProbe("delete", "/v1/auth/tokens/{token_id}"),
    IdProbe("get", "/v1/identity/sync/{sync_id}"),
    IdProbe("get", "/v1/rotation/policies/{policy_id}"),
    IdProbe("patch", "/v1/rotation/policies/{policy_id}", {"interval": "1d"}),
    IdProbe("post", "/v1/rotation/policies/{policy_id}/disable"),
    IdProbe("post", "/v1/rotation/policies/{policy_id}/enable"),
    IdProbe("post", "/v1/rotation/policies/{policy_id}/secrets", {"secret_path": f"{MARK}/db"}),
    IdProbe("post", "/v1/rotation/policies/{policy_id}/rotate", {"secret_paths": [f"{MARK}/db"]}),
    IdProbe("post", "/v1/rotation/policies/{policy_id}/rotate"),
    IdProbe("get", "/v1/rotation/policies/{policy_id}/history"),
    IdProbe("delete", "/v1/rotation/policies/{policy_id}/secrets/{secret_path}"),
    IdProbe("delete", "/v1/rotation/policies/{policy_id}"),
    IdProbe("get", "/v1/federation/backends/{backend_id}"),
    IdProbe("patch", "/v1/federation/backends/{backend_id}", {"name": "pwned"}),
    IdProbe("get", "/v1/federation/backends/{backend_id}/status"),
    IdProbe("post", "/v1/federation/backends/{backend_id}/sync"),
    IdProbe("get", "/v1/federation/backends/{backend_id}/conflicts"),
    IdProbe("post", "/v1/federation/backends/{backend_id}/conflicts/{conflict_id}/resolve", {"keep": "local"}),
    IdProbe("delete", "/v1/federation/backends/{backend_id}"),
]
# secret policies and rotation policies share the {policy_id} name with access policies
SP_PATHS = "/v1/secret-policies/"
ROT_PATHS = "/v1/rotation/"


def _fill(probe: IdProbe, world: World, fake: bool) -> tuple[str, list[str]]:
    url, used = probe.path, []
    for placeholder, key in ID_KEYS.items():
        if "{" + placeholder + "}" not in url:
            continue
        if placeholder == "policy_id" and url.startswith(SP_PATHS):
            key = "secret_policy"
        if placeholder == "policy_id" and url.startswith(ROT_PATHS):
            key = "rotation_policy"
        real = world.ids[key]
        value = fake_id(real) if fake else real
        used.append(value)
        url = url.replace("{" + placeholder + "}", value)
    url = url.replace("{secret_path}", f"{MARK}/db")  # A's attached secret: the same in both probes
    return url + probe.params, used


def _with_prefix(prober: Prober, url: str) -> str:
    return prober.prefix + url.removeprefix("/v1")


def _id_rows() -> list[Any]:
    return [pytest.param(pr, probe, id=f"{pr.name}-{probe.method}-{probe.path}")
            for probe in ID_PROBES for pr in PROBERS]


async def _snapshot(world: World) -> dict[str, Any]:
    """Tenant A's resources as A sees them (to prove the probes changed nothing)."""
    api, a, i = world.stack.api, await world.stack.sa(ADMIN_A), world.ids

    async def get(url: str) -> Any:
        r = await api.get(url, headers=a)
        assert r.status_code == 200, (url, r.text)
        body = r.json()
        for volatile in ("stats", "last_delivery", "last_used_at", "buffered_events", "dropped_events",
                         "statistics", "updated_at"):
            body.pop(volatile, None)
        return body

    return {
        "webhook": await get(f"/v1/webhooks/{i['webhook']}"),
        "subscription": await get(f"/v1/subscriptions/{i['subscription']}"),
        "secret_policy": await get(f"/v1/secret-policies/{i['secret_policy']}"),
        "policy": await get(f"/v1/policies/{i['policy']}"),
        "bindings": await get(f"/v1/policies/{i['policy']}/bindings"),
        "token": await get(f"/v1/auth/tokens/{i['token']}"),
        "limits": (await get("/v1/admin/rate-limits"))["overrides"],
        "secret": (await get(f"/v1/secrets/{MARK}/db"))["data"],
        "alice_roles": await get("/v1/identity/users/usr_alice/roles"),
        "rotation_policy": await get(f"/v1/rotation/policies/{i['rotation_policy']}"),
        "rotation_due": await get(f"/v1/rotation/due?within_hours=87600&policy_id={i['rotation_policy']}"),
        "federation_backend": await get(f"/v1/federation/backends/{i['federation_backend']}"),
        "federation_conflicts": await get(f"/v1/federation/backends/{i['federation_backend']}/conflicts"),
    }


@pytest.fixture(scope="module")
async def before(world: World) -> dict[str, Any]:
    return await _snapshot(world)


# Identity sync runs follow the principal's reach, not the addressed tenant (services/identity/cache.py): prt_acme's
# partner admin, even when switched into tenant B, sees the sync of tenant A -- a tenant it may address anyway.
PRINCIPAL_REACH = {("acme_partner_admin_in_b", "/v1/identity/sync/{sync_id}"),
                   ("acme_partner_admin_in_b", "/v1/identity/sync/history")}


@pytest.mark.parametrize(("prober", "probe"), _id_rows())
async def test_id_probe_is_a_missing_resource(world: World, before: dict[str, Any], prober: Prober,
                                              probe: IdProbe) -> None:
    st = world.stack
    if (prober.name, probe.path) in PRINCIPAL_REACH:
        return  # checked by test_identity_sync_follows_the_principals_reach
    h = await st.sa(prober.client_id)
    real_url, real_ids = _fill(probe, world, fake=False)
    fake_url, fake_ids = _fill(probe, world, fake=True)
    kw: dict[str, Any] = {"headers": h} if probe.body is None else {"headers": h, "json": probe.body}
    r_fake = await st.api.request(probe.method.upper(), _with_prefix(prober, fake_url), **kw)
    r_real = await st.api.request(probe.method.upper(), _with_prefix(prober, real_url), **kw)
    assert r_real.status_code in (403, 404), (prober.name, probe.name, r_real.status_code, r_real.text)
    assert normalize(r_real, *real_ids) == normalize(r_fake, *fake_ids), (prober.name, probe.name)
    assert MARK not in r_real.text.replace(f'"{MARK}/db"', '"<the path the probe sent>"'), r_real.text
    # positive control: the id really is A's, and A reaches it; a change attempt changed nothing of A's
    if probe.method == "get":
        r_own = await st.api.get(real_url, headers=await st.sa(ADMIN_A))
        assert r_own.status_code == 200, r_own.text
    else:
        assert await _snapshot(world) == before, f"{prober.name} {probe.name} changed tenant A's resources"


# ------------------------------------------------------------------------------------------------ collections
@dataclass(frozen=True)
class ListProbe:
    method: str
    path: str              # documented template
    url: str               # concrete
    body: Any = None
    echo: tuple[str, ...] = ()   # strings the probe itself sends that the answer may quote back


LIST_PROBES = [
    ListProbe("get", "/v1/webhooks", "/v1/webhooks"),
    ListProbe("get", "/v1/federation/backends", "/v1/federation/backends"),
    ListProbe("get", "/v1/subscriptions", "/v1/subscriptions"),
    ListProbe("get", "/v1/secret-policies", "/v1/secret-policies?include_inactive=true"),
    ListProbe("get", "/v1/policies", "/v1/policies?include_inactive=true"),
    ListProbe("get", "/v1/policies", "/v1/policies?scope=partner&include_inactive=true"),
    ListProbe("post", "/v1/policies/test", "/v1/policies/test",
              {"identity_id": "user:alice@acme.example", "path": f"{MARK}/db", "permission": "read"},
              echo=(f"{MARK}/db",)),
    ListProbe("get", "/v1/auth/tokens", "/v1/auth/tokens?all=true"),
    ListProbe("get", "/v1/auth/tokens", "/v1/auth/tokens"),
    ListProbe("get", "/v1/audit/logs", "/v1/audit/logs?limit=1000"),
    ListProbe("get", "/v1/audit/logs/export", "/v1/audit/logs/export"),
    ListProbe("get", "/v1/audit/summary", "/v1/audit/summary"),
    ListProbe("get", "/v1/audit/secrets/{path}", f"/v1/audit/secrets/{MARK}/db", echo=(f"{MARK}/db",)),
    ListProbe("get", "/v1/audit/identities/{identity_id}", "/v1/audit/identities/sa:dev-admin"),
    ListProbe("get", "/v1/audit/verify", "/v1/audit/verify"),
    ListProbe("get", "/v1/admin/rate-limits", "/v1/admin/rate-limits"),
    ListProbe("get", "/v1/rotation/policies", "/v1/rotation/policies"),
    ListProbe("get", "/v1/rotation/due", "/v1/rotation/due?within_hours=87600"),
    ListProbe("get", "/v1/rotation/pending", "/v1/rotation/pending?within_hours=87600"),
    ListProbe("get", "/v1/identity/sync/history", "/v1/identity/sync/history"),
    ListProbe("get", "/v1/secrets", f"/v1/secrets?prefix={MARK}/"),
    ListProbe("get", "/v1/secrets/{path}", f"/v1/secrets/{MARK}/db", echo=(f"{MARK}/db",)),
    ListProbe("post", "/v1/secrets/batch/metadata", "/v1/secrets/batch/metadata",
              {"paths": [f"{MARK}/**"], "options": {"expand_wildcards": True}}, echo=(f"{MARK}/**", MARK)),
    ListProbe("post", "/v1/secrets/batch", "/v1/secrets/batch", {"paths": [f"{MARK}/db"]}, echo=(f"{MARK}/db",)),
    # prt_acme's partner secret: out of reach of tnt_acme_dev's admin (no partner grant) and of prt_globex
    ListProbe("get", "/v1/partner/secrets", "/v1/partner/secrets?limit=1000"),
    ListProbe("get", "/v1/partner/secrets/{path}", f"/v1/partner/secrets/{MARK}/partner",
              echo=(f"{MARK}/partner",)),
    ListProbe("post", "/v1/partner/secrets/batch", "/v1/partner/secrets/batch", {"paths": [f"{MARK}/partner"]},
              echo=(f"{MARK}/partner",)),
    ListProbe("post", "/v1/partner/secrets/batch/metadata", "/v1/partner/secrets/batch/metadata",
              {"paths": [f"{MARK}/**"], "options": {"expand_wildcards": True}}, echo=(f"{MARK}/**", MARK)),
]


def _list_rows() -> list[Any]:
    return [pytest.param(pr, lp, id=f"{pr.name}-{lp.method}-{lp.url}") for lp in LIST_PROBES for pr in PROBERS]


A_ONLY = {"sa:dev-admin", "user:alice@acme.example"}   # identities that act only in tenant A


def _tenant_of(prober: Prober) -> str:
    return {"tenant_b_admin": TENANT_B, "globex_admin": TENANT_G, "acme_partner_admin_in_b": TENANT_B}[prober.name]


def _audit_entries(lp: ListProbe, r: httpx.Response) -> list[dict[str, Any]]:
    import json

    if lp.path == "/v1/audit/logs/export":
        return [json.loads(line) for line in r.text.splitlines() if line.strip()]
    return list(r.json().get("logs", []))


@pytest.mark.parametrize(("prober", "lp"), _list_rows())
async def test_collections_hold_nothing_of_another_tenant(world: World, prober: Prober, lp: ListProbe) -> None:
    st = world.stack
    h = await st.sa(prober.client_id)
    r = await st.api.request(lp.method.upper(), _with_prefix(prober, lp.url), headers=h,
                             **({} if lp.body is None else {"json": lp.body}))
    if prober.prefix.endswith(TENANT_A):
        # across partners into A: refused outright (test_another_tenant_looks_like_a_missing_tenant: how)
        assert r.status_code in (403, 404), r.text
        assert MARK not in r.text and "tenant-a-value" not in r.text
        return
    assert r.status_code in (200, 403, 404), (prober.name, lp.url, r.text)
    if r.status_code == 403:  # a policy denial comes before any lookup (so it says nothing about existence)
        assert r.json()["error"]["code"] == "access_denied", r.text
    if (prober.name, lp.path) not in PRINCIPAL_REACH:
        assert "tenant-a-value" not in r.text
    if (prober.name, lp.path) in PRINCIPAL_REACH:
        return  # checked by test_identity_sync_follows_the_principals_reach
    if lp.path.startswith("/v1/audit/"):
        # the prober's own attempts on A's ids are its own tenant's entries; nothing else may show
        for e in _audit_entries(lp, r):
            assert e["tenant_id"] == _tenant_of(prober), e
            assert e["identity_id"] not in A_ONLY, e
        if lp.path != "/v1/audit/identities/{identity_id}":  # (that one echoes the identity it was asked for)
            for ident in A_ONLY:
                assert ident not in r.text, (lp.url, ident)
        else:
            body = r.json()
            assert body["logs"] == [] and body["summary"]["events_30d"] == 0, body
        return
    text = r.text
    # exactly the strings the probe sent, quoted back (a path in an error, a pattern's literal prefix): the
    # prober's own words, not A's data; anything else of A's -- a path under MARK/ -- still counts
    for echo in lp.echo:
        text = text.replace(f'"{echo}"', '"<ECHO>"').replace(f"'{echo}'", "'<ECHO>'")
    leaked = [m for m in world.markers() if m in text]
    assert not leaked, f"{prober.name} {lp.url}: {leaked}"
    assert f'"read_secrets":{world.override}' not in text.replace(" ", "")
    if lp.path == "/v1/policies/test":
        body = r.json()
        assert body["allowed"] is False and world.ids["policy"] not in body.get("evaluated_policies", [])


# ------------------------------------------------------------------------------------------------ tenant addressing
def _tenant_rows() -> list[Any]:
    rows = []
    urls = ["/secrets/{m}/db", "/secrets/{m}/db:metadata", "/webhooks", "/policies", "/audit/logs",
            "/admin/rate-limits", "/identity/tenants/{t}/users", "/identity/tenants/{t}/groups"]
    for who, target in ((PARTNER_GLOBEX, TENANT_A), (PARTNER_ACME, TENANT_G), (ADMIN_B, TENANT_A),
                        (ADMIN_G, TENANT_A)):
        for u in urls:
            for via in ("prefix", "header"):
                rows.append(pytest.param(who, target, u, via, id=f"{who}-{target}-{via}-{u}"))
    return rows


@pytest.mark.parametrize(("who", "target", "url", "via"), _tenant_rows())
async def test_another_tenant_looks_like_a_missing_tenant(world: World, who: str, target: str, url: str,
                                                          via: str) -> None:
    """Addressing a tenant one may not reach answers exactly as addressing a tenant that does not exist (except
    where the spec says otherwise: a partner admin naming another partner's tenant)."""
    st = world.stack
    h = await st.sa(who)
    missing = "tnt_" + pysecrets.token_hex(6)

    def req(tenant: str) -> tuple[str, dict[str, str]]:
        rel = url.format(m=MARK, t=tenant)
        if "/identity/tenants/" in rel or via == "prefix":
            return (f"/v1/t/{tenant}{rel}" if via == "prefix" else f"/v1{rel}"), h
        return f"/v1{rel}", {**h, "X-Tenant-ID": tenant}

    u_real, h_real = req(target)
    u_fake, h_fake = req(missing)
    r_real = await st.api.get(u_real, headers=h_real)
    r_fake = await st.api.get(u_fake, headers=h_fake)
    assert MARK not in r_real.text and "tenant-a-value" not in r_real.text
    if who in (PARTNER_ACME, PARTNER_GLOBEX):
        # The one place the spec is explicit that existence shows (core.md section 4.2): a partner admin naming
        # another partner's tenant gets 403 access_denied, a tenant that does not exist 404 tenant_not_found.
        # Nothing but the tenant id it named comes back.
        assert normalize(r_real, target) == (403, {"error": {
            "code": "access_denied", "message": "that tenant belongs to another partner",
            "details": {"tenant_id": "<ID>"}}}), r_real.text
        assert normalize(r_fake, missing) == (404, {"error": {
            "code": "tenant_not_found", "message": "tenant '<ID>' does not exist",
            "details": {"tenant_id": "<ID>"}}}), r_fake.text
        return
    assert r_real.status_code in (403, 404), (u_real, r_real.text)
    assert normalize(r_real, target) == normalize(r_fake, missing), (u_real, r_real.text, r_fake.text)


# ------------------------------------------------------------------------------------------------ identity
IDENTITY_PROBES = [
    ("get", "/v1/identity/groups/{group_id}/members", "/v1/identity/groups/{}/members", "grp_developers"),
    ("get", "/v1/identity/resolve/{identity_type}/{identity_id}", "/v1/identity/resolve/user/{}", "usr_alice"),
    ("get", "/v1/identity/resolve/{identity_type}/{identity_id}", "/v1/identity/resolve/group/{}",
     "grp_developers"),
    ("get", "/v1/identity/users/{user_id}/roles", "/v1/identity/users/{}/roles", "usr_alice"),
    ("put", "/v1/identity/users/{user_id}/roles", "/v1/identity/users/{}/roles", "usr_alice"),
]


@pytest.mark.parametrize(("prober", "probe"), [
    pytest.param(pr, p, id=f"{pr.name}-{p[0]}-{p[2]}-{p[3]}") for p in IDENTITY_PROBES for pr in PROBERS])
async def test_identity_of_another_tenant_is_missing(world: World, before: dict[str, Any], prober: Prober,
                                                     probe: tuple[str, str, str, str]) -> None:
    st = world.stack
    method, _, url, real = probe
    fake = fake_id(real)
    h = await st.sa(prober.client_id)
    kw: dict[str, Any] = {"headers": h, "json": {"roles": []}} if method == "put" else {"headers": h}
    r_real = await st.api.request(method.upper(), _with_prefix(prober, url.format(real)), **kw)
    r_fake = await st.api.request(method.upper(), _with_prefix(prober, url.format(fake)), **kw)
    assert r_real.status_code in (403, 404), r_real.text
    assert normalize(r_real, real) == normalize(r_fake, fake), (prober.name, url)
    if method == "get":  # positive control: A sees it
        r = await st.api.get(url.format(real), headers=await st.sa(ADMIN_A))
        assert r.status_code == 200, r.text
    else:
        assert await _snapshot(world) == before, f"{prober.name} {url} changed tenant A"


async def test_identity_directory_of_another_partner_is_invisible(world: World) -> None:
    g = await world.stack.sa(ADMIN_G)
    for url in ("/v1/identity/partners", "/v1/identity/tenants", "/v1/identity/tenants?partner_id=prt_acme",
                "/v1/identity/sync/history"):
        r = await world.stack.api.get(url, headers=g)
        assert r.status_code in (200, 403), r.text
        for needle in ("prt_acme", TENANT_A, TENANT_B, world.ids["sync"]):
            assert needle not in r.text, (url, needle)
    r_real = await world.stack.api.post(f"/v1/identity/sync?tenant_id={TENANT_A}", headers=g)
    r_fake = await world.stack.api.post("/v1/identity/sync?tenant_id=tnt_" + pysecrets.token_hex(6), headers=g)
    assert r_real.status_code in (403, 404), r_real.text
    assert normalize(r_real, TENANT_A) == normalize(r_fake, r_fake.request.url.params["tenant_id"])


async def test_identity_sync_follows_the_principals_reach(world: World) -> None:
    st, sync_id = world.stack, world.ids["sync"]
    pa = await st.sa(PARTNER_ACME)
    r = await st.api.get(f"/v1/t/{TENANT_B}/identity/sync/{sync_id}", headers=pa)
    assert r.status_code == 200 and r.json()["sync_id"] == sync_id, r.text
    r = await st.api.get(f"/v1/t/{TENANT_B}/identity/sync/history", headers=pa)
    assert r.status_code == 200 and sync_id in r.text, r.text
    for who in (ADMIN_B, ADMIN_G, PARTNER_GLOBEX):  # nobody outside prt_acme's reach
        h = await st.sa(who)
        r_real = await st.api.get(f"/v1/identity/sync/{sync_id}", headers=h)
        r_fake = await st.api.get(f"/v1/identity/sync/{fake_id(sync_id)}", headers=h)
        assert r_real.status_code == 404, r_real.text
        assert normalize(r_real, sync_id) == normalize(r_fake, fake_id(sync_id))
        assert sync_id not in (await st.api.get("/v1/identity/sync/history", headers=h)).text


async def test_partner_secret_grants_stay_in_the_tenant_they_were_bound_in(world: World) -> None:
    """prt_acme's partner admin was granted partner secrets while acting in tenant A: it reads them there, and
    nowhere else -- switched into tenant B it is denied exactly as for a path that does not exist (bindings
    belong to one tenant, docs/policies.md); B's admin and the second partner get nothing either."""
    st = world.stack
    url, missing = f"/v1/partner/secrets/{MARK}/partner", f"/v1/partner/secrets/{MARK}/missing"
    pa = await st.sa(PARTNER_ACME)
    r = await st.api.get(url, headers=pa)
    assert r.status_code == 200 and r.json()["data"] == {"value": "tenant-a-value-partner"}, r.text
    for who, prefix in ((PARTNER_ACME, f"/v1/t/{TENANT_B}"), (ADMIN_B, "/v1"), (ADMIN_G, "/v1"),
                        (PARTNER_GLOBEX, "/v1")):
        h = await st.sa(who)
        r_real = await st.api.get(prefix + url.removeprefix("/v1"), headers=h)
        r_fake = await st.api.get(prefix + missing.removeprefix("/v1"), headers=h)
        assert r_real.status_code in (403, 404) and "tenant-a-value" not in r_real.text, (who, r_real.text)
        assert normalize(r_real, f"{MARK}/partner") == normalize(r_fake, f"{MARK}/missing"), who


# ------------------------------------------------------------------------------------------------ mutations
async def test_rate_limit_override_of_another_tenant_is_untouched(world: World) -> None:
    st = world.stack
    for who in (ADMIN_B, ADMIN_G):
        r = await st.api.put("/v1/admin/rate-limits", headers=await st.sa(who), json={"limits": {"read_secrets": 7}})
        assert r.status_code == 200, r.text
        assert r.json()["tenant_id"] != TENANT_A
    r = await st.api.get("/v1/admin/rate-limits", headers=await st.sa(ADMIN_A))
    assert r.json()["overrides"] == {"read_secrets": world.override}
    for who in (ADMIN_B, ADMIN_G):  # leave no low limit behind for later rows
        await st.api.put("/v1/admin/rate-limits", headers=await st.sa(who), json={"limits": {"read_secrets": None}})


# ------------------------------------------------------------------------------------------------ partner bindings
async def test_partner_binding_by_group_name_reaches_only_the_intended_tenant(world: World) -> None:
    """A partner policy bound (in tenant A) to A's group ``developers``: a same-named group in tenant B (same
    partner) or in another partner's tenant gives no access to the partner secret."""
    st = world.stack
    pa = await st.sa(PARTNER_ACME)
    r = await st.api.post(f"/v1/t/{TENANT_A}/policies", headers=pa, json={
        "name": f"{TEAM}-partner-devs", "scope": "partner",
        "rules": [{"path_pattern": f"{TEAM}/**", "permissions": ["read"]}]})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = await st.api.post(f"/v1/t/{TENANT_A}/policies/{pid}/bindings", headers=pa,
                          json={"identity_type": "group", "identity_id": "group:developers"})
    if r.status_code != 201:  # bindings may need the group's id once they are tied to (tenant, group id)
        r = await st.api.post(f"/v1/t/{TENANT_A}/policies/{pid}/bindings", headers=pa,
                              json={"identity_type": "group", "identity_id": "group:grp_developers"})
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    await st.write(pa, f"{TEAM}/key", "partner-team-value", partner=True)
    alice = await st.user("alice@acme.example", "secrets:read")
    r = await st.api.get(f"/v1/partner/secrets/{TEAM}/key", headers=alice)
    assert r.status_code == 200 and r.json()["data"] == {"value": "partner-team-value"}, r.text  # the intended group
    for email in ("erin@acme.example", "gina@globex.example"):
        h = await st.user(email, "secrets:read")
        r_real = await st.api.get(f"/v1/partner/secrets/{TEAM}/key", headers=h)
        r_fake = await st.api.get(f"/v1/partner/secrets/{TEAM}/missing", headers=h)
        assert r_real.status_code in (403, 404), (email, r_real.text)
        assert "partner-team-value" not in r_real.text
        assert normalize(r_real, "key") == normalize(r_fake, "missing"), email
    # the policy is partner-wide, its binding is tenant A's: tenant B sees the policy, not A's binding
    b = await st.sa(ADMIN_B)
    r = await st.api.get(f"/v1/policies/{pid}/bindings", headers=b)
    assert r.status_code == 200 and bid not in r.text and "developers" not in r.text, r.text
    r_real = await st.api.delete(f"/v1/policies/{pid}/bindings/{bid}", headers=b)
    r_fake = await st.api.delete(f"/v1/policies/{pid}/bindings/{fake_id(bid)}", headers=b)
    assert r_real.status_code in (403, 404), r_real.text
    assert normalize(r_real, bid) == normalize(r_fake, fake_id(bid)), r_real.text
    r = await st.api.get(f"/v1/t/{TENANT_A}/policies/{pid}/bindings", headers=pa)
    assert r.status_code == 200 and bid in r.text, r.text  # A's binding is still there


# ------------------------------------------------------------------------------------------------ events
async def test_other_tenants_events_never_reach_tenant_a(world: World) -> None:
    st = world.stack
    rx = world.receivers

    def relayed() -> bool:
        got_b = {x.event["event_id"] for x in rx["b_hook"].successes()}
        got_g = {x.event["event_id"] for x in rx["g_hook"].successes()}
        return got_b >= world.events[TENANT_B] and got_g >= world.events[TENANT_G]

    assert world.events[TENANT_B] and world.events[TENANT_G]
    await wait_for(relayed, timeout=90, what="B's and G's events at their own webhooks")
    await st.quiescent()
    a = await st.sa(ADMIN_A)
    polled = (await _json(await st.api.get(f"/v1/subscriptions/{world.subs['polling']}/poll",
                                           params={"timeout": 0, "max_events": 1000}, headers=a)))["events"]
    for name, events in (("A's webhook", [x.event for x in rx["a_hook"].snapshot()]),
                         ("A's webhook subscription", [x.event for x in rx["a_sub"].snapshot()]),
                         ("A's polling subscription", polled)):
        foreign = [e for e in events if e.get("tenant_id") != TENANT_A
                   or e["event_id"] in world.events[TENANT_B] | world.events[TENANT_G]]
        assert not foreign, f"{name} got other tenants' events: {foreign[:3]}"
        assert "tenant-b-value" not in str(events) and "partner-g-value" not in str(events)
    assert {x.event["event_id"] for x in rx["a_hook"].successes()} >= world.events[TENANT_A]  # A's own do arrive
    for who in ("b_hook", "g_hook"):  # and the other tenants never see A's
        got = {x.event["event_id"] for x in rx[who].snapshot()}
        assert not got & world.events[TENANT_A], who


async def test_other_probes_changed_nothing_of_tenant_a(world: World, before: dict[str, Any]) -> None:
    """Whatever ran before (lists, identity, tenant addressing, rate-limit PUTs elsewhere): A is as it was."""
    assert await _snapshot(world) == before


# ------------------------------------------------------------------------------------------------ coverage
# PKI routes: cross-tenant probes of every one (ids, role names, collections, CA ids named in bodies and filters,
# the unauthenticated CRL through another tenant's prefix) in tests/integration/pki/test_pki_tenancy.py (pki owner).
PKI_ROUTES = {
    ("post", "/v1/pki/ca"), ("get", "/v1/pki/ca"), ("get", "/v1/pki/ca/{ca_id}"),  # pki
    ("get", "/v1/pki/ca/{ca_id}/certificate"), ("post", "/v1/pki/ca/{ca_id}/revoke"),  # pki
    ("post", "/v1/pki/ca/{ca_id}/crl"), ("get", "/v1/pki/ca/{ca_id}/crl"),  # pki
    ("post", "/v1/pki/roles"), ("get", "/v1/pki/roles"), ("get", "/v1/pki/roles/{name}"),  # pki
    ("patch", "/v1/pki/roles/{name}"), ("delete", "/v1/pki/roles/{name}"),  # pki
    ("post", "/v1/pki/issue/{role}"), ("post", "/v1/pki/sign/{role}"),  # pki
    ("get", "/v1/pki/certificates"), ("get", "/v1/pki/certificates/{cert_id}"),  # pki
    ("get", "/v1/pki/certificates/{cert_id}/pem"), ("post", "/v1/pki/certificates/{cert_id}/revoke"),  # pki
    ("get", "/v1/pki/certificates/{cert_id}/private-key"),  # pki
    ("post", "/v1/pki/csr"), ("get", "/v1/pki/csr"), ("get", "/v1/pki/csr/{csr_id}"),  # pki
    ("post", "/v1/pki/csr/{csr_id}/approve"), ("post", "/v1/pki/csr/{csr_id}/reject"),  # pki
    ("post", "/v1/pki/trust-anchors"), ("get", "/v1/pki/trust-anchors"),  # pki
    ("get", "/v1/pki/trust-anchors/{anchor_id}"), ("delete", "/v1/pki/trust-anchors/{anchor_id}"),  # pki
}  # PKI_ROUTES
# Dynamic-credential routes: cross-tenant probes of every one (engine and role names, lease ids, creds, pause,
# revoke-prefix) in tests/integration/dynamic/test_leases_api.py::test_cross_tenant_probes_answer_not_found.
DYNAMIC_ROUTES = {
    ("post", "/v1/dynamic/engines"), ("get", "/v1/dynamic/engines"), ("get", "/v1/dynamic/engines/{name}"),
    ("patch", "/v1/dynamic/engines/{name}"), ("delete", "/v1/dynamic/engines/{name}"),
    ("post", "/v1/dynamic/engines/{name}/revocation/pause"), ("post", "/v1/dynamic/engines/{name}/revocation/resume"),
    ("post", "/v1/dynamic/engines/{name}/rotate-root"),
    ("post", "/v1/dynamic/engines/{engine}/roles"), ("get", "/v1/dynamic/engines/{engine}/roles"),
    ("get", "/v1/dynamic/engines/{engine}/roles/{name}"), ("patch", "/v1/dynamic/engines/{engine}/roles/{name}"),
    ("delete", "/v1/dynamic/engines/{engine}/roles/{name}"), ("post", "/v1/dynamic/engines/{engine}/creds/{role}"),
    ("get", "/v1/dynamic/leases"), ("post", "/v1/dynamic/leases/revoke-prefix"),
    ("get", "/v1/dynamic/leases/{lease_id}"), ("post", "/v1/dynamic/leases/{lease_id}/renew"),
    ("post", "/v1/dynamic/leases/{lease_id}/revoke"),
}  # DYNAMIC_ROUTES
# ACME and DNS-provider routes: cross-tenant probes of every one (account, provider, order, managed certificate ids
# and the lists) in tests/integration/acme/test_acme_tenancy.py::test_cross_tenant_probes_answer_exactly_like_missing_ids.
ACME_ROUTES = {
    ("post", "/v1/pki/acme/accounts"), ("get", "/v1/pki/acme/accounts"), ("get", "/v1/pki/acme/accounts/{account_id}"),
    ("delete", "/v1/pki/acme/accounts/{account_id}"), ("post", "/v1/pki/acme/orders"), ("get", "/v1/pki/acme/orders"),
    ("get", "/v1/pki/acme/orders/{order_id}"), ("get", "/v1/pki/acme/managed/{cert_id}"),
    ("post", "/v1/pki/acme/managed/{cert_id}/{action}"), ("post", "/v1/dns/providers"), ("get", "/v1/dns/providers"),
    ("get", "/v1/dns/providers/{provider_id}"), ("patch", "/v1/dns/providers/{provider_id}"),
    ("delete", "/v1/dns/providers/{provider_id}"), ("post", "/v1/dns/providers/{provider_id}/test"),
}  # ACME_ROUTES
EXTRA_ROUTES = {
    ("get", "/v1/identity/partners"), ("get", "/v1/identity/tenants"), ("post", "/v1/identity/sync"),
    ("put", "/v1/admin/rate-limits"), ("get", "/v1/identity/tenants/{tenant_id}/users"),
    ("get", "/v1/identity/tenants/{tenant_id}/groups"), ("post", "/v1/webhooks"), ("post", "/v1/subscriptions"),
    ("post", "/v1/secret-policies"), ("post", "/v1/policies"), ("post", "/v1/auth/tokens"),
    ("post", "/v1/rotation/policies"), ("post", "/v1/federation/backends"),
    ("get", "/v1/partner/secrets/{path}"), ("get", "/v1/secrets/{path}:metadata"),
    *PKI_ROUTES,
    *DYNAMIC_ROUTES,
    *ACME_ROUTES,
}


def covered_routes() -> set[tuple[str, str]]:
    out = set(EXTRA_ROUTES)
    out |= {(p.method, p.path) for p in ID_PROBES}
    out |= {(p.method, p.path) for p in LIST_PROBES}
    out |= {(p[0], p[1]) for p in IDENTITY_PROBES}
    return out

