"""Control plane: bad-token minting, faults, request log, reset; plus the CLI entry point."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from scaikey_emulator.keys import b64url
from tests.emulator.conftest import PLATFORM, PROD, SECRETS, Running, free_port, verify_like_scaivault

ROOT = Path(__file__).resolve().parents[2]


def test_minted_good_token_verifies(emu: Running) -> None:
    token = emu.mint(client_id="ci-deployer")
    claims = verify_like_scaivault(
        token, emu.jwks(), audience="scaivault", issuer=f"{emu.base_url}/tenants/tnt_acme_prod"
    )
    assert claims["token_type"] == "client_credentials" and claims["sub"] == "ci-deployer"
    user = emu.mint(client_id="vault-ui", user="alice@acme.example", claims={"extra": 1}, omit=["partner_id"])
    uc = verify_like_scaivault(
        user, emu.jwks(), audience="scaivault", issuer=f"{emu.base_url}/tenants/tnt_acme_prod"
    )
    assert uc["email"] == "alice@acme.example" and uc["amr"] == ["pwd", "mfa"] and uc["extra"] == 1
    assert "partner_id" not in uc


@pytest.mark.parametrize(
    ("mint", "error"),
    [
        ({"expired": True}, jwt.ExpiredSignatureError),
        ({"not_yet_valid": True}, jwt.ImmatureSignatureError),
        ({"wrong_aud": True}, jwt.InvalidAudienceError),
        ({"wrong_iss": True}, jwt.InvalidIssuerError),
        ({"unknown_kid": True}, jwt.InvalidKeyError),
        ({"signing": "foreign"}, jwt.InvalidKeyError),
        ({"signing": "foreign", "kid": "ACTIVE"}, jwt.InvalidSignatureError),
        ({"signing": "retired"}, jwt.InvalidKeyError),
        ({"signing": "none"}, jwt.InvalidAlgorithmError),
        ({"signing": "hs256_public_key"}, jwt.InvalidAlgorithmError),
        ({"tampered": True}, jwt.InvalidSignatureError),
        ({"time_offset": -3700}, jwt.ExpiredSignatureError),
    ],
)
def test_bad_tokens_are_rejected(emu: Running, mint: dict, error: type[Exception]) -> None:
    jwks = emu.jwks()
    if mint.get("kid") == "ACTIVE":
        mint = {**mint, "kid": jwks["keys"][0]["kid"]}
    token = emu.mint(client_id="ci-deployer", **mint)
    with pytest.raises(error):
        verify_like_scaivault(
            token, jwks, audience="scaivault", issuer=f"{emu.base_url}/tenants/tnt_acme_prod"
        )
    intro = emu.client.post("/_emulator/tokens/introspect", json={"token": token}).json()
    # introspection authenticates the token, it does not check the audience
    assert intro["active"] is bool(mint.get("wrong_aud"))


def test_hs256_token_really_is_hmac_over_public_pem(emu: Running) -> None:
    token = emu.mint(client_id="ci-deployer", signing="hs256_public_key")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    public_key = jwt.PyJWK(emu.jwks()["keys"][0]).key
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input, sig = token.rsplit(".", 1)
    assert b64url(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()) == sig


def test_control_revoke_by_jti(emu: Running) -> None:
    token = emu.cc_token("scaivault")
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert emu.client.get("/api/v1/admin/tenants", headers=emu.bearer(token)).status_code == 200
    emu.client.post("/_emulator/tokens/revoke", json={"jti": jti}).raise_for_status()
    resp = emu.client.get("/api/v1/admin/tenants", headers=emu.bearer(token))
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"]


def test_faults_status_times_and_jwks_down(emu: Running) -> None:
    emu.client.post(
        "/_emulator/faults", json={"path": "/api/v1/admin/groups*", "status": 429, "times": 1}
    ).raise_for_status()
    token = emu.cc_token("scaivault")
    assert emu.client.get("/api/v1/admin/groups/", headers=emu.bearer(token)).status_code == 429
    assert emu.client.get("/api/v1/admin/groups/", headers=emu.bearer(token)).status_code == 200
    emu.client.post("/_emulator/faults", json={"jwks_down": True}).raise_for_status()
    assert emu.client.get(f"{PLATFORM}/.well-known/jwks.json").status_code == 503
    assert emu.client.get(f"{PROD}/.well-known/jwks.json").status_code == 503
    emu.client.delete("/_emulator/faults").raise_for_status()
    assert emu.client.get(f"{PLATFORM}/.well-known/jwks.json").status_code == 200


def test_fault_custom_body_and_lying_total(emu: Running) -> None:
    token = emu.cc_token("scaivault")
    body = {"detail": "Platform token requires admin:read or admin:write scope"}
    emu.client.post(
        "/_emulator/faults", json={"path": "*/effective-users", "status": 403, "body": body}
    ).raise_for_status()
    resp = emu.client.get(
        "/api/v1/tenants/tnt_acme_prod/applications/me/effective-users", headers=emu.bearer(token)
    )
    assert resp.status_code == 403 and resp.json() == body
    emu.client.delete("/_emulator/faults").raise_for_status()
    emu.client.post(
        "/_emulator/faults", json={"path": "/api/v1/admin/groups/", "lying_total": 99}
    ).raise_for_status()
    env = emu.client.get("/api/v1/admin/groups/", headers=emu.bearer(token)).json()
    assert env["total"] == 99 and len(env["items"]) == 2


def test_request_log(emu: Running) -> None:
    emu.client.get(f"{PLATFORM}/.well-known/jwks.json")
    emu.cc_token("scaivault")
    log = emu.client.get("/_emulator/log").json()["items"]
    assert [(e["method"], e["path"]) for e in log] == [
        ("GET", f"{PLATFORM}/.well-known/jwks.json"),
        ("POST", f"{PLATFORM}/oauth/token"),
    ]
    assert (
        log[1]["client_id"] == "scaivault" and log[1]["status"] == 200 and isinstance(log[0]["time"], float)
    )
    only = emu.client.get("/_emulator/log", params={"path": "*jwks.json"}).json()
    assert only["total"] == 1


def test_reset_restores_seed(emu: Running) -> None:
    token = emu.cc_token("scaivault")
    emu.client.delete("/api/v1/admin/users/usr_bob", headers=emu.bearer(token)).raise_for_status()
    emu.client.post("/_emulator/reset").raise_for_status()
    assert emu.client.get("/api/v1/admin/users/usr_bob", headers=emu.bearer(token)).status_code == 200
    emu.client.post("/_emulator/seed", json={"name": "empty"}).raise_for_status()
    assert emu.client.get(f"{PROD}/.well-known/openid-configuration").status_code == 404


def test_cli_entry_point(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "emulator.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "scaikey_emulator", "--host", "127.0.0.1", "--port", str(port), "--seed", "dev",
         "--scaivault-client-secret", "s3cret-from-cli", "--admin-token-lifetime", "120"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/_emulator/health").json() == {"ok": True}:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "emulator CLI did not start"
            time.sleep(0.1)
        tok = httpx.post(f"{base}{PLATFORM}/oauth/token", data={"grant_type": "client_credentials"},
                         auth=("scaivault", "s3cret-from-cli"))  # fmt: skip
        assert tok.status_code == 200
        assert (
            jwt.decode(tok.json()["access_token"], options={"verify_signature": False})["iss"]
            == f"{base}/platform"
        )
        old = httpx.post(f"{base}{PLATFORM}/oauth/token", data={"grant_type": "client_credentials"},
                         auth=("scaivault", SECRETS["scaivault"]))  # fmt: skip
        assert old.status_code == 401
        admin = httpx.post(f"{base}{PROD}/oauth/token", data={"grant_type": "client_credentials"},
                           auth=("dev-admin", SECRETS["dev-admin"]))  # fmt: skip
        assert admin.json()["expires_in"] == 120
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_reset_restores_single_startup_key(emu: Running) -> None:
    startup = emu.jwks()["keys"][0]["kid"]
    emu.client.post("/_emulator/keys/rotate").raise_for_status()
    emu.client.post(f"/_emulator/keys/retire/{startup}").raise_for_status()
    emu.client.post("/_emulator/reset").raise_for_status()
    assert [k["kid"] for k in emu.jwks()["keys"]] == [startup]
    emu.client.post("/_emulator/reset", json={"new_keys": True}).raise_for_status()
    assert [k["kid"] for k in emu.jwks()["keys"]] != [startup]
