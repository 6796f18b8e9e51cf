"""Permission matrix on the real routes (issue 22 item 1), through HTTP, with NARROW grants.

Every caller holds exactly one policy: one permission (read, list, write, delete or rotate) on ``m/allowed/**``.
For every secrets route (tenant and partner), every permission is tried on an allowed path, on a denied path that
exists and on a denied path that does not exist; the row asserts the exact status and error code, that the denied
answer is byte-for-byte the missing-path answer (no existence oracle), that a denied change changed nothing, and
that no denied path or value appears in any answer, list, batch result, subscription poll or webhook delivery.

Tenant secrets are probed by users of tnt_acme_prod; partner secrets by partner admins of prt_acme (partner
writes need a partner admin, so only then does the policy decide) with the same narrow grants in partner scope.

A route joins the matrix by an ``Op`` in ``PATH_OPS``/``COLLECTION_OPS`` (or a test below naming it in
``EXTRA_ROUTES``); test_route_coverage.py fails for any served route that is in no matrix and not exempt.
"""

from __future__ import annotations

import secrets as pysecrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.helpers import grant
from tests.integration.matrix.stack import (
    ADMIN_A,
    ADMIN_NOGRANT,
    NARROW,
    NOBODY,
    PARTNER_ACME,
    PARTNER_NARROW,
    PERMISSIONS,
    SENTINEL,
    Stack,
    normalize,
)

TENANT = "/v1/secrets"
PARTNER = "/v1/partner/secrets"
BASES = {"tenant": TENANT, "partner": PARTNER}

# A subscription owner receives an event only on paths it may ``read`` or ``list`` (an event carries metadata,
# never a value) -- by polling and by webhook alike, in the scope of the secret (services/events/visibility.py;
# issue 11 item 6; docs/events.md).
EVENT_VISIBLE_WITH = {"read", "list"}


# ------------------------------------------------------------------------------------------------ the table
Call = Callable[["Ctx", str], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Ctx:
    stack: Stack
    base: str                  # /v1/secrets or /v1/partner/secrets
    headers: dict[str, str]    # the narrow caller
    sp_id: str                 # a value-generation policy of tenant A (for generate)
    rot_id: str                # a rotation policy of tenant A (for the rotate rows)

    @property
    def api(self) -> httpx.AsyncClient:
        return self.stack.api


@dataclass(frozen=True)
class Op:
    """One way to touch one secret path. ``permission``: what the policy must grant; ``ok``: the status then;
    ``change``: a write (partner secrets: partner admins only); ``prepare``: state the path needs first."""

    name: str
    routes: tuple[tuple[str, str], ...]   # documented (method, template), {base} = /v1/secrets | /v1/partner/secrets
    permission: str
    ok: int
    call: Call
    change: bool = False
    prepare: str | None = None            # "soft_delete" | "attach" (to tenant A's rotation policy)
    bases: tuple[str, ...] = ("tenant", "partner")
    ok_partner: tuple[int, str] | None = None   # the allowed answer on partner secrets when it differs


PATH_OPS = [
    Op("read", (("get", "{base}/{path}"),), "read", 200,
       lambda c, p: c.api.get(f"{c.base}/{p}", headers=c.headers)),
    Op("read_version", (("get", "{base}/{path}"),), "read", 200,
       lambda c, p: c.api.get(f"{c.base}/{p}?version=1", headers=c.headers)),
    Op("metadata", (("get", "{base}/{path}:metadata"),), "list", 200,
       lambda c, p: c.api.get(f"{c.base}/{p}:metadata?include_deleted=true", headers=c.headers)),
    Op("versions", (("get", "{base}/{path}:versions"),), "list", 200,
       lambda c, p: c.api.get(f"{c.base}/{p}:versions", headers=c.headers)),
    Op("put", (("put", "{base}/{path}"),), "write", 200,
       lambda c, p: c.api.put(f"{c.base}/{p}", json={"data": {"value": "overwritten"}}, headers=c.headers),
       change=True),
    Op("patch", (("patch", "{base}/{path}"),), "write", 200,
       lambda c, p: c.api.patch(f"{c.base}/{p}", json={"metadata": {"description": "patched"}}, headers=c.headers),
       change=True),
    Op("patch_metadata", (("patch", "{base}/{path}"),), "write", 200,
       lambda c, p: c.api.patch(f"{c.base}/{p}:metadata", json={"metadata": {"owner": "m"}}, headers=c.headers),
       change=True),
    Op("delete", (("delete", "{base}/{path}"),), "delete", 204,
       lambda c, p: c.api.delete(f"{c.base}/{p}", headers=c.headers), change=True),
    Op("delete_permanent", (("delete", "{base}/{path}"),), "delete", 204,
       lambda c, p: c.api.delete(f"{c.base}/{p}?permanent=true", headers=c.headers), change=True),
    Op("restore", (("post", "{base}/{path}:restore"),), "write", 200,
       lambda c, p: c.api.post(f"{c.base}/{p}:restore", headers=c.headers), change=True, prepare="soft_delete"),
    Op("destroy", (("post", "{base}/{path}:destroy"),), "delete", 200,
       lambda c, p: c.api.post(f"{c.base}/{p}:destroy", json={"versions": [1]}, headers=c.headers), change=True),
    Op("generate", (("post", "/v1/secret-policies/{policy_id}/generate"),), "write", 201,
       lambda c, p: c.api.post(f"/v1/secret-policies/{c.sp_id}/generate", json={"path": p}, headers=c.headers),
       change=True, bases=("tenant",)),
    # rotation (lifecycle.md section 1.4): rotate now through the secret's policy; partner secrets have no
    # rotation policy (attachments are tenant secrets), so an allowed partner rotate is 409 conflict
    Op("rotate", (("post", "{base}/{path}:rotate"),), "rotate", 200,
       lambda c, p: c.api.post(f"{c.base}/{p}:rotate", headers=c.headers), change=True, prepare="attach",
       ok_partner=(409, "conflict")),
    Op("rotate_policy", (("post", "/v1/rotation/policies/{policy_id}/rotate"),), "rotate", 200,
       lambda c, p: c.api.post(f"/v1/rotation/policies/{c.rot_id}/rotate", json={"secret_paths": [p]},
                               headers=c.headers),
       change=True, prepare="attach", bases=("tenant",)),
]


@dataclass(frozen=True)
class CollectionOp:
    """A route answering about many paths at once: ``permission`` decides which appear."""

    name: str
    routes: tuple[tuple[str, str], ...]
    permission: str
    call: Callable[[Ctx, str, str], Awaitable[httpx.Response]]   # (ctx, allowed path, denied path)
    bases: tuple[str, ...] = ("tenant", "partner")
    prepare: str | None = None            # "attach"


COLLECTION_OPS = [
    CollectionOp("list_prefix", (("get", "{base}"),), "list",
                 lambda c, a, d: c.api.get(f"{c.base}?prefix=m/&include_deleted=true&limit=1000", headers=c.headers)),
    CollectionOp("list_all", (("get", "{base}"),), "list",
                 lambda c, a, d: c.api.get(f"{c.base}?limit=1000", headers=c.headers)),
    CollectionOp("batch_read", (("post", "{base}/batch"),), "read",
                 lambda c, a, d: c.api.post(f"{c.base}/batch", json={"paths": [a, d, d + "-missing"],
                                                                    "options": {"include_metadata": True}},
                                            headers=c.headers)),
    CollectionOp("batch_metadata", (("post", "{base}/batch/metadata"),), "list",
                 lambda c, a, d: c.api.post(f"{c.base}/batch/metadata", json={"paths": [a, d, d + "-missing"]},
                                            headers=c.headers)),
    CollectionOp("batch_metadata_expand", (("post", "{base}/batch/metadata"),), "list",
                 lambda c, a, d: c.api.post(f"{c.base}/batch/metadata", headers=c.headers, json={
                     "paths": ["m/**", "m/denied/**", a.rsplit("/", 1)[0] + "/*"],
                     "options": {"expand_wildcards": True}})),
    # every attached secret is "due" within ten years; the list shows the paths the caller may list
    CollectionOp("rotation_due", (("get", "/v1/rotation/due"),), "list",
                 lambda c, a, d: c.api.get("/v1/rotation/due?within_hours=87600", headers=c.headers),
                 bases=("tenant",), prepare="attach"),
    CollectionOp("rotation_pending", (("get", "/v1/rotation/pending"),), "list",
                 lambda c, a, d: c.api.get("/v1/rotation/pending?within_hours=87600", headers=c.headers),
                 bases=("tenant",), prepare="attach"),
]

# Routes covered by the dedicated tests at the end of this module.
EXTRA_ROUTES = {
    ("get", "/v1/audit/secrets/{path}"),       # test_audit_trail_*
    ("get", "/v1/rotation/policies/{policy_id}/history"),  # test_audit_trail_* (audit:read, like audit trails)
    ("post", "/v1/rotation/policies/{policy_id}/secrets"),  # test_rotation_attach_*
    ("delete", "/v1/rotation/policies/{policy_id}/secrets/{secret_path}"),  # test_rotation_attach_*
    ("post", "/v1/subscriptions"),             # the fan-out rows
    # rotate on the engine's root secret path: tests/integration/dynamic/test_root_rotation.py::
    # test_rotate_root_needs_rotate_on_the_root_secret (dynamic owner)
    ("post", "/v1/dynamic/engines/{name}/rotate-root"),
    ("get", "/v1/subscriptions/{sub_id}/poll"),
}


def _expand(routes: tuple[tuple[str, str], ...], bases: tuple[str, ...]) -> set[tuple[str, str]]:
    return {(m, t.replace("{base}", BASES[b])) for m, t in routes for b in bases}


def covered_routes() -> set[tuple[str, str]]:
    """Every documented (method, template) a row of this matrix exercises."""
    out = set(EXTRA_ROUTES)
    for op in PATH_OPS:
        out |= _expand(op.routes, op.bases)
    for cop in COLLECTION_OPS:
        out |= _expand(cop.routes, cop.bases)
    return out


# ------------------------------------------------------------------------------------------------ fixtures
@dataclass
class Narrow:
    stack: Stack
    admin: dict[str, str]
    partner_admin: dict[str, str]
    sp_id: str
    rot_id: str

    async def caller(self, base: str, permission: str) -> dict[str, str]:
        if base == "partner":
            return await self.stack.sa(PARTNER_NARROW[permission])
        return await self.stack.user(NARROW[permission])

    def owner_headers(self, base: str) -> dict[str, str]:
        return self.partner_admin if base == "partner" else self.admin


@pytest.fixture(scope="module")
async def narrow(stack: Stack) -> Narrow:
    admin, partner_admin = await stack.sa(ADMIN_A), await stack.sa(PARTNER_ACME)
    for p in PERMISSIONS:
        await grant(stack.api, admin, [f"user:{NARROW[p]}"], pattern="m/allowed/**", permissions=(p,),
                    name=f"narrow-{p}")
        await grant(stack.api, partner_admin, [f"sa:{PARTNER_NARROW[p]}"], pattern="m/allowed/**",
                    permissions=(p,), scope="partner", name=f"narrow-partner-{p}")
    await grant(stack.api, admin, [f"user:{SENTINEL}"], permissions=("read", "list"), name="sentinel")
    r = await stack.api.post("/v1/secret-policies", headers=admin, json={
        "name": "matrix-gen", "policy_type": "password",
        "fields": [{"name": "password", "generator": "random", "config": {"length": 24}}]})
    assert r.status_code == 201, r.text
    sp_id = r.json()["id"]
    r = await stack.api.post("/v1/rotation/policies", headers=admin, json={"name": "matrix-rot", "interval": "90d"})
    assert r.status_code == 201, r.text
    return Narrow(stack, admin, partner_admin, sp_id, r.json()["id"])


# ------------------------------------------------------------------------------------------------ path rows
def _path_rows() -> list[Any]:
    return [pytest.param(base, op, perm, id=f"{base}-{op.name}-{perm}")
            for op in PATH_OPS for base in op.bases for perm in PERMISSIONS]


def _expected(base: str, op: Op, perm: str, allowed: bool) -> tuple[int, str | None]:
    if allowed and perm == op.permission:
        if base == "partner" and op.ok_partner:
            return op.ok_partner
        return op.ok, None
    return 403, "access_denied"


async def _state(n: Narrow, base: str, path: str) -> tuple[int, Any]:
    """What the owner sees of ``path`` (deleted ones included): to prove a denied change changed nothing."""
    r = await n.stack.api.get(f"{BASES[base]}/{path}:metadata?include_deleted=true", headers=n.owner_headers(base))
    if r.status_code != 200:
        return r.status_code, None
    m = r.json()
    return 200, (m.get("version"), m.get("deleted_at"), m.get("description"), m.get("owner"),
                 m.get("metadata"), m.get("versions_count"))


@pytest.mark.parametrize(("base", "op", "perm"), _path_rows())
async def test_path_route(narrow: Narrow, base: str, op: Op, perm: str) -> None:
    st, owner = narrow.stack, narrow.owner_headers(base)
    tag = f"{base}-{op.name}-{perm}"
    allowed, denied, missing = f"m/allowed/{tag}/s", f"m/denied/{tag}/s", f"m/denied/{tag}/missing"
    secret_value = f"denied-value-{pysecrets.token_hex(6)}"
    await st.write(owner, allowed, "allowed-value", partner=base == "partner")
    await st.write(owner, denied, secret_value, partner=base == "partner")
    if op.prepare == "soft_delete":
        for p in (allowed, denied):
            assert (await st.api.delete(f"{BASES[base]}/{p}", headers=owner)).status_code == 204
    if op.prepare == "attach" and base == "tenant":
        for p in (allowed, denied):
            r = await st.api.post(f"/v1/rotation/policies/{narrow.rot_id}/secrets", headers=owner,
                                  json={"secret_path": p})
            assert r.status_code == 201, r.text
    before = await _state(narrow, base, denied)
    ctx = Ctx(st, BASES[base], await narrow.caller(base, perm), narrow.sp_id, narrow.rot_id)

    r_allowed = await op.call(ctx, allowed)
    r_denied = await op.call(ctx, denied)
    r_missing = await op.call(ctx, missing)

    status, code = _expected(base, op, perm, allowed=True)
    assert r_allowed.status_code == status, (tag, r_allowed.text)
    if code:
        assert r_allowed.json()["error"]["code"] == code, r_allowed.text
    for r in (r_denied, r_missing):
        assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied", (tag, r.text)
    # a denied path that exists answers exactly as one that does not
    assert normalize(r_denied, denied) == normalize(r_missing, missing), tag
    for r in (r_allowed, r_denied, r_missing):
        assert secret_value not in r.text
    assert await _state(narrow, base, denied) == before, f"{tag}: a denied {op.name} changed the secret"
    assert (await _state(narrow, base, missing))[0] == 404, f"{tag}: a denied {op.name} created the secret"


# ------------------------------------------------------------------------------------------------ collection rows
def _collection_rows() -> list[Any]:
    return [pytest.param(base, cop, perm, id=f"{base}-{cop.name}-{perm}")
            for cop in COLLECTION_OPS for base in cop.bases for perm in PERMISSIONS]


@pytest.mark.parametrize(("base", "cop", "perm"), _collection_rows())
async def test_collection_route(narrow: Narrow, base: str, cop: CollectionOp, perm: str) -> None:
    st, owner = narrow.stack, narrow.owner_headers(base)
    tag = f"{base}-{cop.name}-{perm}"
    allowed, denied = f"m/allowed/{tag}/s", f"m/denied/{tag}/s"
    allowed_value = f"allowed-value-{pysecrets.token_hex(6)}"
    denied_value = f"denied-value-{pysecrets.token_hex(6)}"
    await st.write(owner, allowed, allowed_value, partner=base == "partner")
    await st.write(owner, denied, denied_value, partner=base == "partner")
    if cop.prepare == "attach":
        for p in (allowed, denied):
            r = await st.api.post(f"/v1/rotation/policies/{narrow.rot_id}/secrets", headers=owner,
                                  json={"secret_path": p})
            assert r.status_code == 201, r.text
    ctx = Ctx(st, BASES[base], await narrow.caller(base, perm), narrow.sp_id, narrow.rot_id)

    r = await cop.call(ctx, allowed, denied)
    assert r.status_code == 200, (tag, r.text)
    body = r.json()
    grants = perm == cop.permission
    assert denied_value not in r.text
    named = {denied, denied + "-missing"} if cop.name in ("batch_read", "batch_metadata") else set()
    # no denied path the caller did not name itself appears anywhere in the answer
    leaked = {p for p in _strings(body) if p.startswith("m/denied/") and p not in named}
    assert not leaked, f"{tag}: denied paths in the answer: {sorted(leaked)}"
    if cop.name.startswith("list"):
        paths = [s["path"] for s in body["secrets"]]
        assert (allowed in paths) is grants, (tag, paths)
        assert all(p.startswith("m/allowed/") for p in paths), paths
        if not grants:
            assert paths == [], (tag, paths)
    elif cop.name == "batch_read":
        if grants:
            assert body["secrets"][allowed]["data"] == {"value": allowed_value}
            assert set(body["secrets"]) == {allowed}
        else:
            assert body["secrets"] == {} and allowed_value not in r.text
            assert body["errors"][allowed]["code"] == "access_denied"
        assert body["errors"][denied] == body["errors"][denied + "-missing"]
        assert body["errors"][denied]["code"] == "access_denied"
    elif cop.name == "batch_metadata":
        assert (allowed in body["secrets"]) is grants and set(body["secrets"]) <= {allowed}
        assert body["errors"][denied] == body["errors"][denied + "-missing"]
        assert body["errors"][denied]["code"] == "access_denied"
    elif cop.name.startswith("rotation_"):
        paths = [i["secret_path"] for i in body["data"]]
        assert (allowed in paths) is grants, (tag, paths)
        assert all(p.startswith("m/allowed/") for p in paths), paths
        if not grants:
            assert paths == [], (tag, paths)
    else:  # batch_metadata_expand: expanded paths the caller may not list are dropped silently
        assert (allowed in body["secrets"]) is grants, (tag, sorted(body["secrets"]))
        assert all(p.startswith("m/allowed/") for p in body["secrets"]), sorted(body["secrets"])
        assert all(not k.startswith("m/denied/") for k in body.get("errors", {})), body.get("errors")
        if not grants:
            assert body["secrets"] == {}


def _strings(doc: Any) -> list[str]:
    """Every string (keys included) in a JSON document."""
    if isinstance(doc, dict):
        return [s for k, v in doc.items() for s in (k, *_strings(v))]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v)]
    return [doc] if isinstance(doc, str) else []


# ------------------------------------------------------------------------------------------------ audit trails
@pytest.mark.parametrize("perm", PERMISSIONS)
async def test_audit_trail_needs_the_audit_scope_whatever_the_path_grant(narrow: Narrow, perm: str) -> None:
    """A path grant never opens an audit trail: without ``audit:read`` every trail is 403 insufficient_scope."""
    h = await narrow.caller("tenant", perm)
    for url in ("/v1/audit/secrets/m/allowed/x", "/v1/audit/secrets/m/denied/x",
                f"/v1/rotation/policies/{narrow.rot_id}/history"):
        r = await narrow.stack.api.get(url, headers=h)
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope", r.text


# ------------------------------------------------------------------------------------------------ events
@dataclass
class Fanout:
    events: dict[str, set[str]]                   # "tenant-allowed", "tenant-denied", "partner-allowed", ...
    got: dict[tuple[str, str, str], list[dict[str, Any]]]   # (base, permission, channel) -> events received


@pytest.fixture(scope="module")
async def fanout(narrow: Narrow) -> Fanout:
    """Each narrow caller -- tenant users and partner admins -- subscribes to ``m/**`` by polling and by webhook,
    as does a sentinel that may read every tenant path; then the admins change an allowed and a denied secret,
    tenant and partner; everything is collected once the outbox is relayed and every delivery has settled."""
    st = narrow.stack
    subscribers: dict[tuple[str, str], dict[str, str]] = {("sentinel", ""): await st.user(SENTINEL)}
    for p in PERMISSIONS:
        subscribers[("tenant", p)] = await narrow.caller("tenant", p)
        subscribers[("partner", p)] = await narrow.caller("partner", p)
    subs: dict[tuple[str, str], str] = {}
    receivers = {}
    for key, h in subscribers.items():
        r = await st.api.post("/v1/subscriptions", headers=h, json={
            "name": f"poll-{key}", "paths": ["m/**"], "events": ["*"], "delivery": {"type": "polling"}})
        assert r.status_code == 201, r.text
        subs[key] = r.json()["id"]
        secret = pysecrets.token_urlsafe(32)
        receivers[key] = st.receiver(secret)
        r = await st.api.post("/v1/subscriptions", headers=h, json={
            "name": f"hook-{key}", "paths": ["m/**"], "events": ["*"],
            "delivery": {"type": "webhook", "url": receivers[key].url, "secret": secret}})
        assert r.status_code == 201, r.text
    for base, suffix in (("tenant", "s"), ("partner", "p")):
        owner = narrow.owner_headers(base)
        for kind in ("allowed", "denied"):
            path = f"m/{kind}/events/{suffix}"
            await st.write(owner, path, f"{kind}-1", partner=base == "partner")
            await st.write(owner, path, f"{kind}-2", partner=base == "partner")
            assert (await st.api.delete(f"{BASES[base]}/{path}", headers=owner)).status_code == 204
    nobody = await st.user(NOBODY)  # denied attempts: policy.violation events (sampled) follow the same rule
    for path in ("m/denied/events/s", "m/allowed/events/s"):
        r = await st.api.get(f"/v1/secrets/{path}", headers=nobody)
        assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied", r.text
    rows = await st.sql("SELECT event_id, path FROM events WHERE path LIKE 'm/%/events/%'"
                        " AND event_type LIKE 'secret.%'")
    events = {f"{base}-{kind}": {r["event_id"] for r in rows if r["path"] == f"m/{kind}/events/{suffix}"}
              for base, suffix in (("tenant", "s"), ("partner", "p")) for kind in ("allowed", "denied")}
    assert all(len(v) == 3 for v in events.values()), rows  # created, updated, deleted
    tenant_events = events["tenant-allowed"] | events["tenant-denied"]

    def sentinel_has_all() -> bool:
        return {x.event["event_id"] for x in receivers[("sentinel", "")].successes()} >= tenant_events

    from tests.webhook_receiver import wait_for

    await wait_for(sentinel_has_all, timeout=90, what="the sentinel's webhook to receive every tenant event")
    await st.quiescent()
    got: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for key, h in subscribers.items():
        r = await st.api.get(f"/v1/subscriptions/{subs[key]}/poll", params={"timeout": 0, "max_events": 1000},
                             headers=h)
        assert r.status_code == 200, r.text
        got[(*key, "poll")] = r.json()["events"]
        got[(*key, "webhook")] = [x.event for x in receivers[key].snapshot()]
    assert {e["event_id"] for e in got[("sentinel", "", "poll")]} >= tenant_events, "the sentinel's poll misses"
    return Fanout(events, got)


@pytest.mark.parametrize("channel", ["poll", "webhook"])
@pytest.mark.parametrize("perm", PERMISSIONS)
@pytest.mark.parametrize("base", ["tenant", "partner"])
async def test_subscription_fanout(fanout: Fanout, base: str, perm: str, channel: str) -> None:
    """A subscriber gets the events of exactly the paths it may see, in the scope of the secret (a tenant grant
    never shows a partner secret's events); never a denied path."""
    events = fanout.got[(base, perm, channel)]
    paths = sorted({str(e.get("path")) for e in events})
    assert not [p for p in paths if not p.startswith("m/allowed/")], f"{base}/{perm}/{channel} got {paths}"
    matrix_events = set().union(*fanout.events.values())
    got = {e["event_id"] for e in events} & matrix_events
    # partner-scope policies apply in every tenant of the partner too (docs/policies.md "Partner scope"); tenant
    # policies never decide about partner secrets
    visible = ["tenant-allowed", "partner-allowed"] if base == "partner" else ["tenant-allowed"]
    expected = set().union(*(fanout.events[k] for k in visible)) if perm in EVENT_VISIBLE_WITH else set()
    wrong = {k for k, v in fanout.events.items() if got & v and not v <= expected}
    assert got == expected, f"{base}/{perm}/{channel}: got events of {sorted(wrong) or 'nothing'}; " \
                            f"{len(got)} of the matrix events, expected {len(expected)}"


# ------------------------------------------------------------------------------------------------ rotation attach
async def test_rotation_attach_needs_a_path_grant(narrow: Narrow) -> None:
    """Attaching a secret to a rotation policy changes it on a schedule: a tenant admin with no grant on the path
    is refused exactly as for a path that does not exist -- and so is detaching one (the row found this hole;
    fixed in a31ca26)."""
    st = narrow.stack
    await st.write(narrow.admin, "m/denied/attach/s", "attach-value")
    await st.write(narrow.admin, "m/denied/attach/attached", "attached-value")
    r = await st.api.post(f"/v1/rotation/policies/{narrow.rot_id}/secrets", headers=narrow.admin,
                          json={"secret_path": "m/denied/attach/attached"})
    assert r.status_code == 201, r.text
    h = await st.sa(ADMIN_NOGRANT)
    r_real = await st.api.post(f"/v1/rotation/policies/{narrow.rot_id}/secrets", headers=h,
                               json={"secret_path": "m/denied/attach/s"})
    r_fake = await st.api.post(f"/v1/rotation/policies/{narrow.rot_id}/secrets", headers=h,
                               json={"secret_path": "m/denied/attach/missing"})
    assert r_real.status_code == 403 and r_real.json()["error"]["code"] == "access_denied", r_real.text
    assert normalize(r_real, "m/denied/attach/s") == normalize(r_fake, "m/denied/attach/missing")
    r_real = await st.api.delete(f"/v1/rotation/policies/{narrow.rot_id}/secrets/m/denied/attach/attached",
                                 headers=h)
    r_fake = await st.api.delete(f"/v1/rotation/policies/{narrow.rot_id}/secrets/m/denied/attach/missing",
                                 headers=h)
    assert r_real.status_code == 403 and r_real.json()["error"]["code"] == "access_denied", r_real.text
    assert normalize(r_real, "m/denied/attach/attached") == normalize(r_fake, "m/denied/attach/missing")
    meta = (await st.api.get("/v1/secrets/m/denied/attach/attached:metadata", headers=narrow.admin)).json()
    assert meta["rotation_policy_id"] == narrow.rot_id  # still attached
    meta = (await st.api.get("/v1/secrets/m/denied/attach/s:metadata", headers=narrow.admin)).json()
    assert meta["rotation_policy_id"] is None  # never attached

