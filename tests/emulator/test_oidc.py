"""OIDC surface over real HTTP: discovery, JWKS, token grants, PKCE, refresh rotation, introspect/revoke."""

from __future__ import annotations

import jwt
import pytest

from tests.emulator.conftest import (
    PLATFORM,
    PROD,
    SECRETS,
    Running,
    authorize,
    pkce_pair,
    redirect_params,
    verify_like_scaivault,
)


def test_discovery_both_flavours(emu: Running) -> None:
    plat = emu.client.get(f"{PLATFORM}/oauth/.well-known/openid-configuration").json()
    ten = emu.client.get(f"{PROD}/.well-known/openid-configuration").json()
    assert plat["issuer"] == f"{emu.base_url}/platform"
    assert plat["jwks_uri"] == f"{emu.base_url}/api/v1/platform/.well-known/jwks.json"
    assert plat["token_endpoint"] == f"{emu.base_url}/api/v1/platform/oauth/token"
    assert ten["issuer"] == f"{emu.base_url}/tenants/tnt_acme_prod"
    assert ten["authorization_endpoint"] == f"{emu.base_url}{PROD}/oauth/authorize"
    for doc in (plat, ten):
        assert doc["code_challenge_methods_supported"] == ["S256"]
        assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
        assert doc["introspection_endpoint"].endswith("/oauth/introspect")
        assert doc["revocation_endpoint"].endswith("/oauth/revoke")
        assert doc["userinfo_endpoint"].endswith("/oauth/userinfo")
    assert emu.client.get("/api/v1/auth/tenants/nope/.well-known/openid-configuration").status_code == 404


def test_jwks_same_keys_and_cache_header(emu: Running) -> None:
    plat = emu.client.get(f"{PLATFORM}/.well-known/jwks.json")
    ten = emu.client.get(f"{PROD}/.well-known/jwks.json")
    assert plat.json() == ten.json()
    assert "max-age=300" in plat.headers["cache-control"]
    (key,) = plat.json()["keys"]
    assert key["use"] == "sig" and key["alg"] == "RS256" and key["kid"]


def test_client_credentials_platform_claims_basic(emu: Running) -> None:
    resp = emu.client.post(
        f"{PLATFORM}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("scaivault", SECRETS["scaivault"]),
    )
    body = resp.json()
    assert resp.status_code == 200
    assert (
        body["token_type"] == "Bearer"
        and body["expires_in"] == 3600
        and body["scope"] == "admin:read admin:write"
    )
    assert "refresh_token" not in body
    claims = verify_like_scaivault(
        body["access_token"], emu.jwks(), audience="scaivault", issuer=f"{emu.base_url}/platform"
    )
    assert claims["sub"] == claims["client_id"] == "scaivault"
    assert claims["platform_token"] is True and claims["app_scope"] == "GLOBAL"
    assert claims["token_type"] == "client_credentials"
    assert "tenant_id" not in claims and "partner_id" not in claims
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"] and claims["jti"]
    assert jwt.get_unverified_header(body["access_token"])["kid"] == emu.jwks()["keys"][0]["kid"]


def test_client_credentials_tenant_app_form_auth(emu: Running) -> None:
    resp = emu.client.post(
        f"{PROD}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "ci-deployer",
              "client_secret": SECRETS["ci-deployer"], "scope": "secrets:read"},
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    claims = verify_like_scaivault(
        resp.json()["access_token"],
        emu.jwks(),
        audience="scaivault",
        issuer=f"{emu.base_url}/tenants/tnt_acme_prod",
    )
    assert claims["scope"] == "secrets:read"
    assert claims["tenant_id"] == "tnt_acme_prod" and claims["partner_id"] == "prt_acme"
    assert claims["platform_token"] is False and claims["app_scope"] == "TENANT" and "role" not in claims


def test_role_apps_carry_role_and_partner(emu: Running) -> None:
    admin = jwt.decode(emu.cc_token("dev-admin"), options={"verify_signature": False})
    assert admin["role"] == "tenant_admin" and admin["aud"] == "scaivault" and admin["scope"] == "admin"
    partner = jwt.decode(emu.cc_token("partner-admin-svc"), options={"verify_signature": False})
    assert partner["role"] == "partner_admin" and partner["partner_id"] == "prt_acme"
    assert partner["app_scope"] == "PARTNER" and partner["tenant_id"] == "tnt_acme_prod"
    # a PARTNER app may get a token for another tenant of its partner through that tenant's endpoint
    other = emu.cc_token("partner-admin-svc", root="/api/v1/auth/tenants/acme-dev")
    assert jwt.decode(other, options={"verify_signature": False})["tenant_id"] == "tnt_acme_dev"


@pytest.mark.parametrize(
    ("root", "data", "auth", "status", "error"),
    [
        (PLATFORM, {}, ("scaivault", "wrong"), 401, "invalid_client"),
        (PLATFORM, {}, ("nobody", "x"), 401, "invalid_client"),
        (
            PLATFORM,
            {"scope": "admin:read users:read"},
            ("scaivault", SECRETS["scaivault"]),
            400,
            "invalid_scope",
        ),
        (PLATFORM, {}, ("ci-deployer", SECRETS["ci-deployer"]), 400, "unauthorized_client"),
        (PLATFORM, {"client_id": "vault-ui"}, None, 400, "unauthorized_client"),
        (
            "/api/v1/auth/tenants/acme-dev",
            {},
            ("ci-deployer", SECRETS["ci-deployer"]),
            400,
            "unauthorized_client",
        ),
    ],
)
def test_client_credentials_errors(
    emu: Running, root: str, data: dict, auth: tuple | None, status: int, error: str
) -> None:
    resp = emu.client.post(
        f"{root}/oauth/token", data={"grant_type": "client_credentials", **data}, auth=auth
    )
    assert resp.status_code == status
    assert resp.json()["error"] == error


def test_es256_switch_and_rotation(emu: Running) -> None:
    old_token = emu.cc_token("scaivault")
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    keys = emu.client.post("/_emulator/keys/alg", json={"alg": "ES256"}).json()
    assert keys["alg"] == "ES256" and keys["active"] != old_kid
    doc = emu.client.get(f"{PLATFORM}/oauth/.well-known/openid-configuration").json()
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
    new_token = emu.cc_token("scaivault")
    header = jwt.get_unverified_header(new_token)
    assert header["alg"] == "ES256" and header["kid"] == keys["active"]
    jwks = emu.jwks()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, keys["active"]}
    issuer = f"{emu.base_url}/platform"
    assert verify_like_scaivault(new_token, jwks, audience="scaivault", issuer=issuer)["sub"] == "scaivault"
    assert verify_like_scaivault(old_token, jwks, audience="scaivault", issuer=issuer)["sub"] == "scaivault"
    # retire the old RS256 key: it leaves JWKS and the emulator itself stops accepting its tokens
    emu.client.post(f"/_emulator/keys/retire/{old_kid}").raise_for_status()
    jwks = emu.jwks()
    assert [k["kid"] for k in jwks["keys"]] == [keys["active"]]
    with pytest.raises(jwt.InvalidKeyError):
        verify_like_scaivault(old_token, jwks, audience="scaivault", issuer=issuer)
    intro = emu.client.post(
        f"{PLATFORM}/oauth/introspect", data={"token": old_token}, auth=("scaivault", SECRETS["scaivault"])
    )
    assert intro.json() == {"active": False}
    assert emu.client.post(f"/_emulator/keys/retire/{keys['active']}").status_code == 409


def test_rotate_keeps_old_key_published(emu: Running) -> None:
    before = emu.jwks()["keys"][0]["kid"]
    after = emu.client.post("/_emulator/keys/rotate").json()["active"]
    token = emu.cc_token("scaivault")
    assert jwt.get_unverified_header(token)["kid"] == after
    assert {k["kid"] for k in emu.jwks()["keys"]} == {before, after}


# ------------------------------------------------------------------- authorization code + PKCE
def _login(emu: Running, user: str = "alice@acme.example", **extra: str) -> tuple[dict, str]:
    verifier, challenge = pkce_pair()
    params = redirect_params(
        authorize(emu, login_hint=user, code_challenge=challenge, code_challenge_method="S256", **extra)
    )
    assert params["state"] == "st-1"
    resp = emu.client.post(
        f"{PLATFORM}/oauth/token",
        data={"grant_type": "authorization_code", "code": params["code"], "client_id": "vault-ui",
              "redirect_uri": "http://127.0.0.1/callback", "code_verifier": verifier},
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    return resp.json(), params["code"]


def test_auth_code_pkce_user_claims(emu: Running) -> None:
    body, _ = _login(emu)
    jwks = emu.jwks()
    issuer = f"{emu.base_url}/tenants/tnt_acme_prod"
    access = verify_like_scaivault(body["access_token"], jwks, audience="scaivault", issuer=issuer)
    assert (
        access["sub"] == "usr_alice"
        and access["email"] == "alice@acme.example"
        and access["name"] == "Alice Anders"
    )
    assert access["groups"] == ["developers", "sre"]
    assert access["role"] == "tenant_admin" and access["partner_id"] == "prt_acme"
    assert access["amr"] == ["pwd", "mfa"] and isinstance(access["auth_time"], int)
    assert access["client_id"] == "vault-ui" and "token_type" not in access
    idt = verify_like_scaivault(body["id_token"], jwks, audience="vault-ui", issuer=issuer)
    assert idt["nonce"] == "n-1" and idt["sub"] == "usr_alice"
    assert body["refresh_token"] and body["token_type"] == "Bearer"


def test_nested_groups_expand_in_token(emu: Running) -> None:
    body, _ = _login(emu, "bob@acme.example")
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["groups"] == ["developers", "oncall", "sre"]
    assert claims["amr"] == ["pwd"] and "role" not in claims


def test_auth_code_single_use(emu: Running) -> None:
    verifier, challenge = pkce_pair()
    code = redirect_params(authorize(emu, login_hint="bob@acme.example", code_challenge=challenge))["code"]
    data = {"grant_type": "authorization_code", "code": code, "client_id": "vault-ui",
            "redirect_uri": "http://127.0.0.1/callback", "code_verifier": verifier}  # fmt: skip
    first = emu.client.post(f"{PLATFORM}/oauth/token", data=data)
    assert first.status_code == 200
    second = emu.client.post(f"{PLATFORM}/oauth/token", data=data)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    # the refresh token issued from the replayed code's family is revoked
    refresh = emu.client.post(
        f"{PLATFORM}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first.json()["refresh_token"],
            "client_id": "vault-ui",
        },
    )
    assert refresh.json()["error"] == "invalid_grant"


def test_pkce_wrong_verifier_and_missing_challenge(emu: Running) -> None:
    _, challenge = pkce_pair()
    code = redirect_params(authorize(emu, login_hint="bob@acme.example", code_challenge=challenge))["code"]
    resp = emu.client.post(
        f"{PLATFORM}/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "client_id": "vault-ui",
              "redirect_uri": "http://127.0.0.1/callback", "code_verifier": "not-the-verifier"},
    )  # fmt: skip
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    params = redirect_params(authorize(emu, login_hint="bob@acme.example"))
    assert params["error"] == "invalid_request" and "code" not in params


def test_authorize_errors(emu: Running) -> None:
    _, challenge = pkce_pair()
    bad_redirect = authorize(emu, login_hint="bob@acme.example", code_challenge=challenge,
                             redirect_uri="http://127.0.0.1/callback/evil")  # fmt: skip
    assert bad_redirect.status_code == 400
    assert (
        redirect_params(authorize(emu, prompt="none", code_challenge=challenge))["error"] == "login_required"
    )
    assert (
        redirect_params(authorize(emu, login_hint="dave@acme.example", code_challenge=challenge))["error"]
        == "access_denied"
    )
    assert redirect_params(authorize(emu, login_hint="bob@acme.example", code_challenge=challenge,
                                     scope="openid admin:write"))["error"] == "invalid_scope"  # fmt: skip
    erin = authorize(emu, PROD, login_hint="erin@acme.example", code_challenge=challenge)
    assert redirect_params(erin)["error"] == "access_denied"


def test_prompt_none_with_session(emu: Running) -> None:
    _, challenge = pkce_pair()
    redirect_params(authorize(emu, login_hint="bob@acme.example", code_challenge=challenge))
    silent = redirect_params(authorize(emu, prompt="none", code_challenge=challenge))
    assert "code" in silent and silent["state"] == "st-1"


def test_refresh_rotation_and_reuse(emu: Running) -> None:
    body, _ = _login(emu)
    old = body["refresh_token"]
    data = {"grant_type": "refresh_token", "refresh_token": old, "client_id": "vault-ui"}
    rotated = emu.client.post(f"{PLATFORM}/oauth/token", data=data)
    assert rotated.status_code == 200
    new = rotated.json()["refresh_token"]
    assert new != old and rotated.json()["access_token"]
    reuse = emu.client.post(f"{PLATFORM}/oauth/token", data=data)
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # reuse revoked the whole family, including the rotated token
    after = emu.client.post(f"{PLATFORM}/oauth/token", data={**data, "refresh_token": new})
    assert after.json()["error"] == "invalid_grant"


def test_refresh_reuse_without_family_revocation(emu: Running) -> None:
    emu.client.post("/_emulator/settings", json={"revoke_family_on_reuse": False}).raise_for_status()
    body, _ = _login(emu)
    data = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": "vault-ui"}
    new = emu.client.post(f"{PLATFORM}/oauth/token", data=data).json()["refresh_token"]
    assert emu.client.post(f"{PLATFORM}/oauth/token", data=data).json()["error"] == "invalid_grant"
    assert emu.client.post(f"{PLATFORM}/oauth/token", data={**data, "refresh_token": new}).status_code == 200


def test_introspect_and_revoke(emu: Running) -> None:
    auth = ("scaivault", SECRETS["scaivault"])
    token = emu.cc_token("ci-deployer")
    url = f"{PLATFORM}/oauth/introspect"
    active = emu.client.post(url, data={"token": token}, auth=auth).json()
    assert (
        active["active"] is True
        and active["client_id"] == "ci-deployer"
        and active["token_type"] == "client_credentials"
    )
    assert emu.client.post(url, data={"token": token}).status_code == 401
    assert emu.client.post(url, data={"token": token}, auth=("scaivault", "bad")).status_code == 401
    assert emu.client.post(url, data={"token": "garbage"}, auth=auth).json() == {"active": False}
    expired = emu.mint(client_id="ci-deployer", expired=True)
    assert emu.client.post(url, data={"token": expired}, auth=auth).json() == {"active": False}
    revoke = emu.client.post(
        f"{PROD}/oauth/revoke", data={"token": token}, auth=("ci-deployer", SECRETS["ci-deployer"])
    )
    assert revoke.status_code == 200
    assert emu.client.post(url, data={"token": token}, auth=auth).json() == {"active": False}


def test_revoke_refresh_token(emu: Running) -> None:
    body, _ = _login(emu)
    rt = body["refresh_token"]
    auth = ("scaivault", SECRETS["scaivault"])
    assert (
        emu.client.post(f"{PLATFORM}/oauth/introspect", data={"token": rt}, auth=auth).json()["active"]
        is True
    )
    assert (
        emu.client.post(f"{PLATFORM}/oauth/revoke", data={"token": rt, "client_id": "vault-ui"}).status_code
        == 200
    )
    resp = emu.client.post(f"{PLATFORM}/oauth/token", data={"grant_type": "refresh_token", "refresh_token": rt,
                                                           "client_id": "vault-ui"})  # fmt: skip
    assert resp.json()["error"] == "invalid_grant"
    assert emu.client.post(f"{PLATFORM}/oauth/introspect", data={"token": rt}, auth=auth).json() == {
        "active": False
    }


def test_userinfo(emu: Running) -> None:
    body, _ = _login(emu, "bob@acme.example")
    info = emu.client.get(f"{PLATFORM}/oauth/userinfo", headers=emu.bearer(body["access_token"]))
    assert info.status_code == 200
    assert info.json()["email"] == "bob@acme.example" and info.json()["groups"] == [
        "developers",
        "oncall",
        "sre",
    ]
    assert info.json()["tenant_id"] == "tnt_acme_prod"
    svc = emu.client.get(f"{PLATFORM}/oauth/userinfo", headers=emu.bearer(emu.cc_token("scaivault")))
    assert svc.status_code == 401
    assert emu.client.get(f"{PLATFORM}/oauth/userinfo").status_code == 401


def test_pkce_plain_method_rejected(emu: Running) -> None:
    verifier, _ = pkce_pair()
    params = redirect_params(authorize(emu, login_hint="bob@acme.example", code_challenge=verifier,
                                       code_challenge_method="plain"))  # fmt: skip
    assert params["error"] == "invalid_request"


def test_control_revoke_refresh_family(emu: Running) -> None:
    body, _ = _login(emu)
    rt = body["refresh_token"]
    emu.client.post("/_emulator/tokens/revoke", json={"refresh_token": rt, "family": True}).raise_for_status()
    resp = emu.client.post(f"{PLATFORM}/oauth/token", data={"grant_type": "refresh_token", "refresh_token": rt,
                                                           "client_id": "vault-ui"})  # fmt: skip
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
