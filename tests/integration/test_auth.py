"""Authentication through the HTTP API against the ScaiKey emulator over real HTTP."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from tests.helpers import ADMIN, CI, PARTNER_ADMIN, bearer, client_token, mint


@pytest.fixture
async def api(scaikey, settings_factory, make_app_client, redis_clean):
    async with httpx.AsyncClient() as c:
        await c.post(f"{scaikey}/_emulator/reset")
    settings = settings_factory(jwks_min_refresh_interval_seconds=1)
    async with make_app_client(settings) as client:
        yield client


async def test_client_credentials_token_reads_whoami(api, scaikey):
    token = await client_token(scaikey, CI)
    r = await api.get("/v1/auth/whoami", headers=bearer(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["identity_id"] == "sa:ci-deployer"
    assert body["identity_type"] == "service_account"
    assert body["tenant_id"] == "tnt_acme_prod"
    assert body["partner_id"] == "prt_acme"
    assert set(body["scopes"]) == {"secrets:read", "secrets:write", "secrets:list"}
    assert body["token_expires_at"].endswith("Z")


async def test_user_token_maps_email_groups_roles_and_mfa(api, scaikey):
    token = await mint(scaikey, client_id="ci-deployer", user="alice@acme.example", mfa=True)
    body = (await api.get("/v1/auth/whoami", headers=bearer(token))).json()
    assert body["identity_id"] == "user:alice@acme.example"
    assert body["identity_type"] == "user"
    assert "tenant_admin" in body["roles"]
    assert all(g.startswith("group:") for g in body["groups"])
    assert body["mfa_verified_at"] is not None


@pytest.mark.parametrize(("header", "code"), [
    (None, "authentication_required"),
    ("Basic abc", "authentication_required"),
    ("Bearer", "authentication_required"),
    ("Bearer scai_live_abcdef", "token_invalid"),
    ("Bearer not.a.jwt", "token_invalid"),
    ("Bearer skt_short", "token_invalid"),
])
async def test_missing_or_malformed_credentials(api, header, code):
    headers = {"Authorization": header} if header else {}
    r = await api.get("/v1/auth/whoami", headers=headers)
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == code
    assert err["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize(("mint_args", "code"), [
    ({"expired": True}, "token_expired"),
    ({"not_yet_valid": True}, "token_invalid"),
    ({"wrong_aud": True}, "token_invalid"),
    ({"wrong_iss": True}, "token_invalid"),
    ({"unknown_kid": True}, "token_invalid"),
    ({"signing": "none"}, "token_invalid"),
    ({"signing": "hs256_public_key"}, "token_invalid"),
    ({"signing": "foreign"}, "token_invalid"),
    ({"tampered": True}, "token_invalid"),
])
async def test_bad_tokens_get_their_documented_401(api, scaikey, mint_args, code):
    token = await mint(scaikey, client_id="ci-deployer", **mint_args)
    r = await api.get("/v1/auth/whoami", headers=bearer(token))
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == code


async def test_skew_within_leeway_is_accepted(api, scaikey):
    token = await mint(scaikey, client_id="ci-deployer", time_offset=30)  # iat/nbf 30 s in the future
    assert (await api.get("/v1/auth/whoami", headers=bearer(token))).status_code == 200


async def test_revoked_token_is_refused(api, scaikey):
    token = await mint(scaikey, client_id="ci-deployer")
    async with httpx.AsyncClient() as c:
        await c.post(f"{scaikey}/_emulator/tokens/revoke", json={"token": token})
    r = await api.get("/v1/auth/whoami", headers=bearer(token))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "token_revoked"


async def test_key_rotation_is_picked_up_without_restart(api, scaikey):
    before = await client_token(scaikey, CI)
    assert (await api.get("/v1/auth/whoami", headers=bearer(before))).status_code == 200
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{scaikey}/_emulator/keys/rotate", json={})
        assert r.status_code == 200
    await asyncio.sleep(1.1)  # unknown-kid refreshes are rate limited (1 s in this test)
    after = await client_token(scaikey, CI)
    r = await api.get("/v1/auth/whoami", headers=bearer(after))
    assert r.status_code == 200, r.text
    # the previous key is still published, so tokens signed before the rotation keep working
    assert (await api.get("/v1/auth/whoami", headers=bearer(before))).status_code == 200


async def test_es256_tokens_are_accepted(api, scaikey):
    async with httpx.AsyncClient() as c:
        assert (await c.post(f"{scaikey}/_emulator/keys/alg", json={"alg": "ES256"})).status_code == 200
    await asyncio.sleep(1.1)
    token = await client_token(scaikey, CI)
    assert (await api.get("/v1/auth/whoami", headers=bearer(token))).status_code == 200


async def test_missing_scope_names_the_scope(api, scaikey):
    token = await client_token(scaikey, CI)
    r = await api.post("/v1/auth/introspect", json={"token": token}, headers=bearer(token))
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "insufficient_scope"
    assert err["details"]["required_scope"] == "admin"


async def test_introspect(api, scaikey):
    admin = await client_token(scaikey, ADMIN)
    ci = await client_token(scaikey, CI)
    r = await api.post("/v1/auth/introspect", json={"token": ci}, headers=bearer(admin))
    assert r.status_code == 200
    assert r.json()["active"] is True and r.json()["identity_id"] == "sa:ci-deployer"
    expired = await mint(scaikey, client_id="ci-deployer", expired=True)
    r = await api.post("/v1/auth/introspect", json={"token": expired}, headers=bearer(admin))
    assert r.json() == {"active": False}
    r = await api.post("/v1/auth/introspect", json={}, headers=bearer(admin))
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


async def test_pat_lifecycle_and_no_escalation(api, scaikey, settings):
    ci = await client_token(scaikey, CI)
    r = await api.post("/v1/auth/tokens", json={"name": "laptop", "scopes": ["secrets:read"]}, headers=bearer(ci))
    assert r.status_code == 201, r.text
    created = r.json()
    pat = created["token"]
    assert pat.startswith("skt_")
    # the PAT acts as its creator with the narrower scopes
    who = (await api.get("/v1/auth/whoami", headers=bearer(pat))).json()
    assert who["identity_id"] == "sa:ci-deployer" and who["scopes"] == ["secrets:read"]
    assert who["token_type"] == "pat"
    # default expiry is 90 days
    assert created["expires_at"] > created["created_at"]
    # escalation: neither the creator's JWT nor the PAT can mint wider scopes
    r = await api.post("/v1/auth/tokens", json={"name": "x", "scopes": ["admin"]}, headers=bearer(ci))
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    r = await api.post("/v1/auth/tokens", json={"name": "x", "scopes": ["secrets:write"]}, headers=bearer(pat))
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    # shown once: later reads never include the value
    got = (await api.get(f"/v1/auth/tokens/{created['id']}", headers=bearer(ci))).json()
    assert "token" not in got
    listing = (await api.get("/v1/auth/tokens", headers=bearer(ci))).json()
    assert [t["id"] for t in listing["tokens"]] == [created["id"]]
    # stored only as a keyed hash
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await conn.fetch("SELECT * FROM personal_access_tokens")
    finally:
        await conn.close()
    assert rows and all(pat not in str(dict(r)) for r in rows)
    # revocation is immediate
    assert (await api.delete(f"/v1/auth/tokens/{created['id']}", headers=bearer(ci))).status_code == 204
    r = await api.get("/v1/auth/whoami", headers=bearer(pat))
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_revoked"


async def test_pat_typo_is_rejected_offline(api):
    r = await api.get("/v1/auth/whoami", headers=bearer("skt_" + "a" * 38))
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_invalid"


async def test_tenant_switching_rules(api, scaikey):
    ci = await client_token(scaikey, CI)
    r = await api.get("/v1/auth/whoami", headers={**bearer(ci), "X-Tenant-ID": "tnt_acme_dev"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_access_denied"
    # make tnt_acme_dev known (first verified token from it records the tenant)
    erin = await mint(scaikey, client_id="ci-deployer", user="erin@acme.example")
    assert (await api.get("/v1/auth/whoami", headers=bearer(erin))).json()["tenant_id"] == "tnt_acme_dev"
    padmin = await client_token(scaikey, PARTNER_ADMIN)
    r = await api.get("/v1/t/tnt_acme_dev/auth/whoami", headers=bearer(padmin))
    assert r.status_code == 200, r.text
    assert r.json()["tenant_id"] == "tnt_acme_dev"
    r = await api.get("/v1/auth/whoami", headers={**bearer(padmin), "X-Tenant-ID": "tnt_acme_dev"})
    assert r.json()["tenant_id"] == "tnt_acme_dev"
    r = await api.get("/v1/t/tnt_nope/auth/whoami", headers=bearer(padmin))
    assert r.status_code == 404 and r.json()["error"]["code"] == "tenant_not_found"


@pytest.mark.parametrize("value", [
    "tnt acme", "tnt_acme_dev/../x", "tnt_acme_dev;x", "t" * 129, "", "tnt.acme", b"tnt_\xc3\xa9", b"tnt\x7f",
    "tnt_acme_dev\t\tx",
])
async def test_x_tenant_id_must_be_a_tenant_id(api, scaikey, settings, value):
    """The header follows the /v1/t/{tenant_id} rule (full string): anything else is 400 invalid_request, for a
    partner admin (who may switch) and for anyone, before the value is looked up, echoed or audited."""
    padmin = await client_token(scaikey, PARTNER_ADMIN)
    ci = await client_token(scaikey, CI)
    for token in (padmin, ci):
        r = await api.get("/v1/auth/whoami", headers=[("Authorization", f"Bearer {token}"), ("X-Tenant-ID", value)])
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_request" and "X-Tenant-ID" in err["message"]
        assert err["details"] == {"field": "X-Tenant-ID",
                                  "fields": [{"field": "X-Tenant-ID", "message": err["message"]}]}
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            assert await conn.fetch("SELECT 1 FROM audit_log WHERE request_id = $1", err["request_id"]) == []
        finally:
            await conn.close()
    # a valid header (optional whitespace around it is not part of the value) still works
    r = await api.get("/v1/auth/whoami", headers={**bearer(padmin), "X-Tenant-ID": " tnt_acme_prod "})
    assert r.status_code == 200 and r.json()["tenant_id"] == "tnt_acme_prod"
