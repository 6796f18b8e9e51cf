"""POST /v1/policies/test: the decision, every policy evaluated, which rule matched or why none did."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import bearer, user_token


async def make_policy(api: httpx.AsyncClient, admin: dict[str, str], name: str, rules: list[dict[str, Any]],
                      identity: str, itype: str) -> str:
    r = await api.post("/v1/policies", json={"name": name, "rules": rules}, headers=admin)
    pid = r.json()["id"]
    r = await api.post(f"/v1/policies/{pid}/bindings", headers=admin,
                       json={"identity_type": itype, "identity_id": identity})
    assert r.status_code == 201, r.text
    return pid


async def dry(api: httpx.AsyncClient, admin: dict[str, str], **body: Any) -> dict[str, Any]:
    r = await api.post("/v1/policies/test", json=body, headers=admin)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
async def setup(api, admin):
    prod = await make_policy(api, admin, "prod-read", [
        {"path_pattern": "env/prod/**", "permissions": ["read"], "conditions": {"ip_ranges": ["10.0.0.0/8"]}},
        {"path_pattern": "shared/*", "permissions": ["read"]},
    ], "group:developers", "group")
    ops = await make_policy(api, admin, "ops-window", [
        {"path_pattern": "ops/**", "permissions": ["write"], "conditions": {"time_window": {
            "days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}}},
    ], "user:bob@acme.example", "user")
    mfa = await make_policy(api, admin, "mfa", [
        {"path_pattern": "vault/**", "permissions": ["read"], "conditions": {"require_mfa": True}},
    ], "user:bob@acme.example", "user")
    return {"prod": prod, "ops": ops, "mfa": mfa}


async def test_allow_names_the_policy_and_rule(api, admin, setup):
    body = await dry(api, admin, identity_id="user:bob@acme.example", path="shared/ca", permission="read",
                     groups=["developers"])
    assert body["allowed"] is True
    assert body["matched_policy"] == {"id": setup["prod"], "name": "prod-read"}
    assert body["matched_rule"] == {"path_pattern": "shared/*", "permissions": ["read"], "effect": "allow"}
    assert body["identity_ids"] == ["user:bob@acme.example", "group:developers"]
    assert set(body["evaluated_policies"]) == set(setup.values())
    prod = next(p for p in body["explanation"] if p["policy_id"] == setup["prod"])
    assert [r["result"] for r in prod["rules"]] == ["path_mismatch", "allowed"]


async def test_deny_explains_the_failed_condition(api, admin, setup):
    body = await dry(api, admin, identity_id="user:bob@acme.example", path="env/prod/db", permission="read",
                     groups=["developers"], context={"source_ip": "8.8.8.8"})
    assert body["allowed"] is False
    assert body["code"] == "ip_not_allowed" and body["reason"] == "ip_not_allowed"
    assert body["failed_condition"] == {"type": "ip_ranges", "ip_ranges": ["10.0.0.0/8"], "source_ip": "8.8.8.8"}
    assert body["matched_policy"]["id"] == setup["prod"]
    prod = next(p for p in body["explanation"] if p["policy_id"] == setup["prod"])
    assert prod["rules"][0]["result"] == "condition_failed" and prod["rules"][0]["code"] == "ip_not_allowed"
    inside = await dry(api, admin, identity_id="user:bob@acme.example", path="env/prod/db", permission="read",
                       groups=["developers"], context={"source_ip": "10.2.3.4"})
    assert inside["allowed"] is True


async def test_no_matching_rule_lists_what_was_evaluated(api, admin, setup):
    body = await dry(api, admin, identity_id="user:bob@acme.example", path="env/prod/db", permission="write")
    assert body["allowed"] is False
    assert (body["code"], body["reason"]) == ("access_denied", "no_matching_rule")
    assert body["failed_condition"] is None
    assert set(body["evaluated_policies"]) == {setup["ops"], setup["mfa"]}  # no groups given: not developers
    results = {r["result"] for p in body["explanation"] for r in p["rules"]}
    assert results <= {"path_mismatch", "permission_mismatch"}


@pytest.mark.parametrize(("timestamp", "allowed"), [
    ("2026-04-22T12:00:00Z", True),    # Wednesday noon
    ("2026-04-22T19:00:00Z", False),   # Wednesday evening
    ("2026-04-25T12:00:00Z", False),   # Saturday
])
async def test_timestamp_drives_time_windows(api, admin, setup, timestamp, allowed):
    body = await dry(api, admin, identity_id="user:bob@acme.example", path="ops/deploy", permission="write",
                     context={"timestamp": timestamp})
    assert body["allowed"] is allowed
    if not allowed:
        assert body["code"] == "time_window_violation"
        assert body["failed_condition"]["type"] == "time_window"


@pytest.mark.parametrize(("mfa", "allowed"), [(True, True), (False, False)])
async def test_mfa_verified_flag(api, admin, setup, mfa, allowed):
    body = await dry(api, admin, identity_id="user:bob@acme.example", path="vault/x", permission="read",
                     context={"mfa_verified": mfa})
    assert body["allowed"] is allowed


async def test_testing_yourself_uses_your_token_groups(api, admin, setup, scaikey):
    bob = bearer(await user_token(scaikey, "bob@acme.example", scope="policies:read"))
    body = await dry(api, bob, identity_id="user:bob@acme.example", path="shared/ca", permission="read")
    assert body["allowed"] is True and "group:developers" in body["identity_ids"]


async def test_identity_cache_lookup_adds_groups(api, admin, setup):
    """The dry run asks the identity enricher (the request path's cache lookup) for a user's groups; the
    end-to-end comparison with real requests is tests/identity/test_dry_run_truth.py."""
    from types import SimpleNamespace

    from auth.identity_enrichment import CachedIdentity

    async def lookup(tenant_id: str, identity_id: str) -> CachedIdentity:
        found = identity_id == "user:carol@acme.example"
        return CachedIdentity(found=found, groups=("group:developers",) if found else ())

    api.app.state.sv.components["identity_enricher"] = SimpleNamespace(lookup=lookup)
    body = await dry(api, admin, identity_id="user:carol@acme.example", path="shared/ca", permission="read")
    assert body["allowed"] is True and body["identity_ids"] == ["user:carol@acme.example", "group:developers"]
    assert body["groups_source"] == {"identity_cache": ["group:developers"]}


async def test_dry_run_writes_no_audit_entry_and_no_event(api, admin, setup, db_url):
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        before = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM audit_log")
        events_before = await conn.fetchval("SELECT count(*) FROM events")
        await dry(api, admin, identity_id="user:bob@acme.example", path="nothing/here", permission="read")
        # read back from PostgreSQL: the dry run left no audit row and no event (no stand-in recorder)
        assert await conn.fetch("SELECT action FROM audit_log WHERE seq > $1", before) == []
        assert await conn.fetchval("SELECT count(*) FROM events") == events_before
    finally:
        await conn.close()


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"identity_id": "user:bob@acme.example", "path": "Bad/Path", "permission": "read"}, 400, "invalid_path"),
    ({"identity_id": "user:bob@acme.example", "path": "a//b", "permission": "read"}, 400, "invalid_path"),
    ({"identity_id": "user:bob@acme.example", "path": "a/b", "permission": "fly"}, 422, "validation_error"),
    ({"identity_id": "bob", "path": "a/b", "permission": "read"}, 422, "validation_error"),
    ({"identity_id": "user:bob@acme.example", "path": "a/b", "permission": "read", "extra": 1}, 422,
     "validation_error"),
])
async def test_bad_requests(api, admin, body, status, code):
    r = await api.post("/v1/policies/test", json=body, headers=admin)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


async def test_needs_policies_read(api, scaikey):
    token = bearer(await user_token(scaikey, "bob@acme.example", scope="secrets:read"))
    r = await api.post("/v1/policies/test", headers=token,
                       json={"identity_id": "user:bob@acme.example", "path": "a", "permission": "read"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
