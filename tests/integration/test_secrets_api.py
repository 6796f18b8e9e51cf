"""Secrets API through HTTP: quickstart flow, validation codes, versions, expiry, batch, partner secrets."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from tests.integration import secrets_helpers
from tests.integration.secrets_helpers import DEV_USER, Api

api = secrets_helpers.api  # the fixture

pytestmark = pytest.mark.asyncio


async def test_quickstart_write_read_versions_delete_restore(api: Api) -> None:
    h = await api.token()
    r = await api.put("app/db/password", {"password": "s3cr3t-v1"}, h,
                      metadata={"description": "db", "tags": ["prod", "db"], "owner": "team:core"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert "data" not in body
    assert body["version"] == 1 and body["secret_type"] == "kv" and body["path"] == "app/db/password"
    assert body["metadata"]["tags"] == ["prod", "db"] and body["created_at"].endswith("Z")

    r = await api.put("app/db/password", {"password": "s3cr3t-v2"}, h)
    assert r.status_code == 200 and r.json()["version"] == 2
    assert r.json()["metadata"]["owner"] == "team:core"  # kept when the PUT sends no metadata

    got = (await api.client.get("/v1/secrets/app/db/password", headers=h)).json()
    assert got["data"] == {"password": "s3cr3t-v2"} and got["version"] == 2
    assert got["metadata"]["description"] == "db" and got["expires_at"] is None
    old = (await api.client.get("/v1/secrets/app/db/password?version=1", headers=h)).json()
    assert old["data"] == {"password": "s3cr3t-v1"} and old["version"] == 1

    versions = (await api.client.get("/v1/secrets/app/db/password:versions", headers=h)).json()["versions"]
    assert [(v["version"], v["is_current"]) for v in versions] == [(1, False), (2, True)]
    assert versions[0]["created_by"] == "user:alice@acme.example"
    meta = (await api.client.get("/v1/secrets/app/db/password:metadata", headers=h)).json()
    assert meta["version_count"] == 2 and meta["current_version"] == 2 and "data" not in meta

    r = await api.client.delete("/v1/secrets/app/db/password", headers=h)
    assert r.status_code == 204
    r = await api.client.get("/v1/secrets/app/db/password", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "secret_not_found"
    r = await api.put("app/db/password", {"password": "x"}, h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "secret_exists"
    r = await api.client.post("/v1/secrets/app/db/password:restore", headers=h)
    assert r.status_code == 200 and r.json()["deleted_at"] is None
    got = (await api.client.get("/v1/secrets/app/db/password", headers=h)).json()
    assert got["data"] == {"password": "s3cr3t-v2"}

    events = await api.sql("SELECT event_type, data::text AS data FROM events WHERE path = $1 ORDER BY seq",
                           "app/db/password")
    kinds = [e["event_type"] for e in events]
    assert kinds == ["secret.created", "secret.updated", "secret.deleted", "secret.restored"]
    data = [orjson.loads(e["data"]) for e in events]
    assert data[0] == {"version": 1, "secret_type": "kv", "created_by": "user:alice@acme.example",
                       "tags": ["prod", "db"], "expires_at": None}
    assert data[1] == {"old_version": 1, "new_version": 2, "updated_by": "user:alice@acme.example",
                       "is_rotation": False}
    assert data[2]["permanent"] is False and data[2]["version_count"] == 2
    deleted_until = dt.datetime.fromisoformat(data[2]["recoverable_until"].replace("Z", "+00:00"))
    assert dt.timedelta(days=29, hours=23) < deleted_until - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)


async def test_hard_delete_frees_the_path(api: Api) -> None:
    h = await api.token()
    await api.put("tmp/one", {"a": "1"}, h)
    await api.put("tmp/one", {"a": "2"}, h)
    r = await api.client.delete("/v1/secrets/tmp/one?permanent=true", headers=h)
    assert r.status_code == 204
    assert (await api.client.post("/v1/secrets/tmp/one:restore", headers=h)).status_code == 404
    r = await api.put("tmp/one", {"a": "3"}, h)
    assert r.status_code == 201 and r.json()["version"] == 1
    ev = await api.sql("SELECT data::text AS d FROM events WHERE event_type='secret.deleted' AND path='tmp/one'")
    assert orjson.loads(ev[0]["d"]) == {"version_count": 2, "deleted_by": "user:alice@acme.example",
                                        "permanent": True}


@pytest.mark.parametrize("path", [
    "/lead", "trail/", "a//b", "Upper/case", "sp ace", "dot.ted", "col", "a/b/c/d/e/f/g/h/i/j/k", "x" * 513,
    "%C3%A9",
])
async def test_invalid_paths_are_400_invalid_path(api: Api, path: str) -> None:
    h = await api.token()
    url = "/v1/secrets/" + path
    r = await api.client.put(url, json={"data": {"a": "b"}}, headers=h)
    if path == "col":  # a legal path; make sure the table row itself is right
        assert r.status_code == 201
        return
    assert r.status_code == 400, (path, r.text)
    assert r.json()["error"]["code"] == "invalid_path"
    r = await api.client.get(url, headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_path"


async def test_path_limits_are_inclusive(api: Api) -> None:
    h = await api.token()
    ten = "/".join("abcdefghij")
    assert (await api.put(ten, {"a": "b"}, h)).status_code == 201
    long = ("a" * 255) + "/" + ("b" * 256)
    assert len(long) == 512 and (await api.put(long, {"a": "b"}, h)).status_code == 201


def _cert_and_key() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def _ssh_pair() -> tuple[str, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption()).decode()
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return priv, pub.decode() + " deploy@ci"


async def test_typed_secrets_accept_valid_shapes(api: Api) -> None:
    h = await api.token()
    cert, key = _cert_and_key()
    priv, pub = _ssh_pair()
    cases = [
        ("certificate", {"cert_pem": cert, "key_pem": key, "chain_pem": cert + cert}),
        ("ssh_key", {"private_key": priv, "public_key": pub}),
        ("api_key", {"key": "sk_live_abc", "api_secret": "x"}),
        ("json", {"nested": {"a": [1, 2, {"b": None}]}}),
        ("kv", {"user": "u", "password": "p"}),
    ]
    for i, (kind, data) in enumerate(cases):
        r = await api.put(f"typed/s{i}", data, h, secret_type=kind)
        assert r.status_code == 201, (kind, r.text)
        got = (await api.client.get(f"/v1/secrets/typed/s{i}", headers=h)).json()
        assert got["data"] == data and got["secret_type"] == kind


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    ({"data": {"a": "b"}, "secret_type": "password"}, 400, "invalid_secret_type", None),
    ({"data": {"a": "b"}, "options": {"expires_in": "soon"}}, 400, "invalid_duration", None),
    ({"data": {"a": "b"}, "options": {"notify_before": "7d,x"}}, 400, "invalid_duration", None),
    ({}, 422, "validation_error", "data"),
    ({"data": {}}, 422, "validation_error", "data"),
    ({"data": "str"}, 422, "validation_error", "data"),
    # secret_type is a hint (spec §6.1): any non-empty object is stored for every type, see
    # tests/integration/robustness/test_hostile_input.py::test_any_non_empty_object_is_stored_for_every_type
    ({"data": {"a": "b"}, "metadata": {"description": "a\u0000b"}}, 422, "validation_error", "metadata"),
    ({"data": {"a": "b"}, "options": {"max_versions": 0}}, 422, "validation_error", "options.max_versions"),
    ({"data": {"a": "b"}, "options": {"max_versions": 101}}, 422, "validation_error", "options.max_versions"),
    ({"data": {"a": "b"}, "options": {"bogus": 1}}, 422, "validation_error", "options.bogus"),
    ({"data": {"a": "b"}, "options": {"rotation_policy_id": "nope"}}, 422, "validation_error",
     "options.rotation_policy_id"),
    ({"data": {"a": "b"}, "metadata": {"tags": ["ok", ""]}}, 422, "validation_error", "metadata.tags[1]"),
    ({"data": {"a": "b"}, "metadata": "x"}, 422, "validation_error", "metadata"),
    ({"data": {"a": "b"}, "extra": 1}, 422, "validation_error", "extra"),
    ({"data": {"a": "x" * (129 * 1024)}}, 413, "payload_too_large", None),
])
async def test_write_validation_errors(api: Api, body: dict, status: int, code: str, field: str | None) -> None:
    h = await api.token()
    r = await api.client.put("/v1/secrets/val/x", json=body, headers=h)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    if field is not None:
        assert [f["field"] for f in err["details"]["fields"]] == [field]
    assert (await api.client.get("/v1/secrets/val/x", headers=h)).status_code == 404  # nothing written


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b""])
async def test_malformed_body_is_invalid_request(api: Api, raw: bytes) -> None:
    h = await api.token()
    r = await api.client.put("/v1/secrets/val/x", content=raw, headers={**h, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"


async def test_bad_version_query_and_unknown_operation(api: Api) -> None:
    h = await api.token()
    await api.put("v/x", {"a": "b"}, h)
    r = await api.client.get("/v1/secrets/v/x?version=abc", headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = await api.client.get("/v1/secrets/v/x?version=7", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "version_not_found"
    r = await api.client.get("/v1/secrets/v/x:bogus", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await api.client.get("/v1/secrets/v/x:restore", headers=h)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = await api.client.get("/v1/secrets?limit=0", headers=h)
    assert r.status_code == 422
    r = await api.client.get("/v1/secrets?cursor=garbage!", headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"


async def test_scopes_are_enforced_per_operation(api: Api) -> None:
    writer = await api.token()
    await api.put("sc/x", {"a": "b"}, writer)
    read_only = await api.token(scope="secrets:read")
    cases = [
        ("PUT", "/v1/secrets/sc/x", {"data": {"a": "c"}}, "secrets:write"),
        ("GET", "/v1/secrets/sc/x:metadata", None, "secrets:list"),
        ("GET", "/v1/secrets/sc/x:versions", None, "secrets:list"),
        ("GET", "/v1/secrets", None, "secrets:list"),
        ("DELETE", "/v1/secrets/sc/x", None, "secrets:delete"),
        ("PATCH", "/v1/secrets/sc/x", {"metadata": {"owner": "x"}}, "secrets:write"),
        ("POST", "/v1/secrets/sc/x:restore", None, "secrets:write"),
        ("POST", "/v1/secrets/sc/x:destroy", {"versions": [1]}, "secrets:delete"),
        ("POST", "/v1/secrets/batch/metadata", {"paths": ["sc/x"]}, "secrets:list"),
    ]
    for method, url, body, scope in cases:
        r = await api.client.request(method, url, json=body, headers=read_only)
        assert r.status_code == 403, (method, url, r.text)
        assert r.json()["error"]["code"] == "insufficient_scope"
        assert r.json()["error"]["details"]["required_scope"] == scope
    assert (await api.client.get("/v1/secrets/sc/x", headers=read_only)).status_code == 200


async def test_cas_mismatch_is_version_conflict(api: Api) -> None:
    h = await api.token()
    r = await api.put("cas/x", {"a": "1"}, h, options={"cas": 0})
    assert r.status_code == 201
    r = await api.put("cas/x", {"a": "2"}, h, options={"cas": 0})
    assert r.status_code == 409 and r.json()["error"]["code"] == "version_conflict"
    assert r.json()["error"]["details"]["current_version"] == 1
    assert (await api.put("cas/x", {"a": "2"}, h, options={"cas": 1})).status_code == 200
    r = await api.put("cas/new", {"a": "1"}, h, options={"cas": 3})
    assert r.status_code == 409 and r.json()["error"]["details"]["current_version"] == 0


async def test_max_versions_prunes_oldest(api: Api) -> None:
    h = await api.token()
    for i in range(1, 4):
        r = await api.put("mv/x", {"v": str(i)}, h, options={"max_versions": 2} if i == 1 else None)
        assert r.status_code in (200, 201)
    r = await api.client.get("/v1/secrets/mv/x?version=1", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "version_not_found"
    assert (await api.client.get("/v1/secrets/mv/x?version=2", headers=h)).json()["data"] == {"v": "2"}
    versions = (await api.client.get("/v1/secrets/mv/x:versions", headers=h)).json()["versions"]
    assert [v["version"] for v in versions] == [2, 3]
    # shrinking max_versions through PATCH prunes at once, without a new version
    r = await api.client.patch("/v1/secrets/mv/x", json={"options": {"max_versions": 1}}, headers=h)
    assert r.status_code == 200 and r.json()["version_count"] == 1 and r.json()["current_version"] == 3
    assert (await api.client.get("/v1/secrets/mv/x?version=2", headers=h)).status_code == 404


async def test_patch_metadata_does_not_create_a_version(api: Api) -> None:
    h = await api.token()
    await api.put("pm/x", {"a": "b"}, h, metadata={"description": "d", "tags": ["t1"], "custom": {"k": "v"}})
    r = await api.client.patch("/v1/secrets/pm/x", headers=h,
                               json={"metadata": {"description": None, "owner": "team:x", "tags": ["t2"]}})
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["current_version"] == 1
    assert meta["metadata"] == {"tags": ["t2"], "custom": {"k": "v"}, "owner": "team:x"}
    r = await api.client.patch("/v1/secrets/pm/missing", json={"metadata": {}}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "secret_not_found"
    r = await api.client.patch("/v1/secrets/pm/x", json={"options": {"cas": 1}}, headers=h)
    assert r.status_code == 422


async def test_expiry_is_honoured_and_listed(api: Api) -> None:
    h = await api.token()
    r = await api.put("exp/x", {"a": "b"}, h, options={"expires_in": "30d"})
    exp = dt.datetime.fromisoformat(r.json()["expires_at"].replace("Z", "+00:00"))
    assert dt.timedelta(days=29, hours=23) < exp - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
    await api.put("exp/never", {"a": "b"}, h)
    listed = (await api.client.get("/v1/secrets?expiring_within=31d", headers=h)).json()["secrets"]
    assert [s["path"] for s in listed] == ["exp/x"]
    assert (await api.client.get("/v1/secrets?expiring_within=29d", headers=h)).json()["secrets"] == []
    r = await api.client.get("/v1/secrets?expiring_within=soon", headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_duration"
    # let it pass (moving the clock of the row instead of sleeping)
    await api.sql("UPDATE secret_versions SET expires_at = now() - interval '1 second'")
    r = await api.client.get("/v1/secrets/exp/x", headers=h)
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "secret_not_found" and err["details"]["expired"] is True
    # metadata still tells when; a new version without expires_in is readable again
    assert (await api.client.get("/v1/secrets/exp/x:metadata", headers=h)).status_code == 200
    await api.put("exp/x", {"a": "c"}, h)
    assert (await api.client.get("/v1/secrets/exp/x", headers=h)).json()["data"] == {"a": "c"}


async def test_destroy_versions(api: Api) -> None:
    h = await api.token()
    for i in range(3):
        await api.put("ds/x", {"v": str(i)}, h)
    r = await api.client.post("/v1/secrets/ds/x:destroy", json={"versions": [1, 9]}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["details"]["versions"] == [9]
    r = await api.client.post("/v1/secrets/ds/x:destroy", json={"versions": [1, 2]}, headers=h)
    assert r.status_code == 200 and r.json()["destroyed"] == [1, 2]
    r = await api.client.get("/v1/secrets/ds/x?version=1", headers=h)
    assert r.status_code == 404 and r.json()["error"]["details"]["destroyed"] is True
    assert (await api.client.get("/v1/secrets/ds/x", headers=h)).json()["data"] == {"v": "2"}
    versions = (await api.client.get("/v1/secrets/ds/x:versions", headers=h)).json()["versions"]
    assert [v["destroyed"] for v in versions] == [True, True, False]
    rows = await api.sql("SELECT count(*) AS n FROM secret_versions WHERE ciphertext IS NULL")
    assert rows[0]["n"] == 2
    r = await api.client.post("/v1/secrets/ds/x:destroy", json={"versions": []}, headers=h)
    assert r.status_code == 422


async def test_list_prefix_tags_and_cursor(api: Api) -> None:
    h = await api.token()
    for i in range(5):
        await api.put(f"lst/a/s{i}", {"k": "v"}, h, metadata={"tags": ["even" if i % 2 == 0 else "odd", "all"]})
    await api.put("lst/b/other", {"k": "v"}, h)
    await api.put("lst/a/gone", {"k": "v"}, h)
    await api.client.delete("/v1/secrets/lst/a/gone", headers=h)
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        url = "/v1/secrets?prefix=lst/a/&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.client.get(url, headers=h)).json()
        seen += [s["path"] for s in page["secrets"]]
        assert all("data" not in s for s in page["secrets"])
        cursor = page["cursor"]
        assert page["has_more"] is (cursor is not None)
        if not page["has_more"]:
            break
    assert seen == [f"lst/a/s{i}" for i in range(5)]
    evens = (await api.client.get("/v1/secrets?prefix=lst/&tag=even&tag=all", headers=h)).json()["secrets"]
    assert [s["path"] for s in evens] == ["lst/a/s0", "lst/a/s2", "lst/a/s4"]
    deleted = (await api.client.get("/v1/secrets?prefix=lst/a/g&include_deleted=true", headers=h)).json()
    assert [s["path"] for s in deleted["secrets"]] == ["lst/a/gone"]
    assert deleted["secrets"][0]["recoverable_until"] is not None


async def test_batch_read_partial_success(api: Api) -> None:
    h = await api.token()
    await api.put("b/one", {"k": "1"}, h, secret_type="json", metadata={"tags": ["x"]})
    await api.put("b/two", {"key": "sk_2"}, h, secret_type="api_key")
    await api.put("b/two", {"key": "sk_2b"}, h)
    paths = ["b/one", "b/two", "b/missing", "Bad/Path"]
    r = await api.client.post("/v1/secrets/batch", json={"paths": paths}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["secrets"] == {"b/one": {"data": {"k": "1"}, "version": 1, "secret_type": "json"},
                               "b/two": {"data": {"key": "sk_2b"}, "version": 2, "secret_type": "api_key"}}
    assert body["errors"]["b/missing"]["code"] == "secret_not_found"
    assert body["errors"]["Bad/Path"]["code"] == "invalid_path"
    r = await api.client.post("/v1/secrets/batch", headers=h,
                              json={"paths": ["b/one", "b/two"], "options": {"version": 1, "include_metadata": True}})
    body = r.json()
    assert body["secrets"]["b/two"]["data"] == {"key": "sk_2"}
    assert body["secrets"]["b/one"]["metadata"]["metadata"]["tags"] == ["x"]
    r = await api.client.post("/v1/secrets/batch", json={"paths": paths, "options": {"fail_fast": True}}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_path"
    r = await api.client.post("/v1/secrets/batch", json={"paths": [f"p/{i}" for i in range(101)]}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = await api.client.post("/v1/secrets/batch", json={"paths": []}, headers=h)
    assert r.status_code == 422


async def test_batch_metadata_expands_wildcards(api: Api) -> None:
    h = await api.token()
    for p in ("w/app/db", "w/app/api", "w/app/deep/x", "w/other/db"):
        await api.put(p, {"secret": "value"}, h)
    body = {"paths": ["w/app/*", "w/*/db", "w/missing"], "options": {"expand_wildcards": True}}
    r = await api.client.post("/v1/secrets/batch/metadata", json=body, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert sorted(out["secrets"]) == ["w/app/api", "w/app/db", "w/other/db"]
    assert all("data" not in m for m in out["secrets"].values())
    assert "value" not in r.text
    assert out["errors"]["w/missing"]["code"] == "secret_not_found"
    r = await api.client.post("/v1/secrets/batch/metadata", json={"paths": ["w/**"]}, headers=h)
    assert r.json()["errors"]["w/**"]["code"] == "invalid_path"
    r = await api.client.post("/v1/secrets/batch/metadata", headers=h,
                              json={"paths": ["w/**"], "options": {"expand_wildcards": True}})
    assert sorted(r.json()["secrets"]) == ["w/app/api", "w/app/db", "w/app/deep/x", "w/other/db"]
    assert r.json()["errors"] == {}  # the pattern's literal base "w" is not a secret: not a missing path either


async def test_partner_secrets(api: Api) -> None:
    admin = await api.partner_admin()
    r = await api.client.put("/v1/partner/secrets/shared/webhook-signing-key", headers=admin,
                             json={"data": {"key": "whsec_partner"}, "secret_type": "api_key"})
    assert r.status_code == 201, r.text
    assert r.json()["scope"] == "partner"
    prod_user = await api.token()
    dev_user = await api.token(DEV_USER)
    for h in (prod_user, dev_user):  # every tenant of the partner reads it
        got = await api.client.get("/v1/partner/secrets/shared/webhook-signing-key", headers=h)
        assert got.status_code == 200 and got.json()["data"] == {"key": "whsec_partner"}
        listed = (await api.client.get("/v1/partner/secrets", headers=h)).json()["secrets"]
        assert [s["path"] for s in listed] == ["shared/webhook-signing-key"]
        # not a tenant secret: tenant reads and lists do not see it
        assert (await api.client.get("/v1/secrets/shared/webhook-signing-key", headers=h)).status_code == 404
        assert (await api.client.get("/v1/secrets", headers=h)).json()["secrets"] == []
    # only partner admins write
    for method, url, body in [
        ("PUT", "/v1/partner/secrets/shared/webhook-signing-key", {"data": {"key": "evil"}}),
        ("PATCH", "/v1/partner/secrets/shared/webhook-signing-key", {"metadata": {"owner": "x"}}),
        ("DELETE", "/v1/partner/secrets/shared/webhook-signing-key", None),
        ("POST", "/v1/partner/secrets/shared/webhook-signing-key:destroy", {"versions": [1]}),
    ]:
        r = await api.client.request(method, url, json=body, headers=prod_user)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (method, r.text)
    # stored under the partner with partner-bound AAD: it is not readable as a tenant secret even if moved
    rows = await api.sql("SELECT scope, owner_id, tenant_id FROM secrets")
    assert [tuple(r) for r in rows] == [("partner", "prt_acme", None)]
    # another partner's tenant cannot see it
    other = await api.token(await _globex_user(api))
    r = await api.client.get("/v1/partner/secrets/shared/webhook-signing-key", headers=other)
    missing = await api.client.get("/v1/partner/secrets/shared/does-not-exist", headers=other)
    assert r.status_code in (403, 404) and "whsec_partner" not in r.text
    # exactly what a path that exists nowhere gets: nothing to infer
    assert (r.status_code, r.json()["error"]["code"]) == (missing.status_code, missing.json()["error"]["code"])


async def _globex_user(api: Api) -> str:
    """Add a second partner (prt_globex) with one tenant and user to the emulator; returns the email."""
    seed = json.loads((Path(__file__).parents[2] / "scaikey_emulator/seeds/dev.json").read_text())
    seed["partners"].append({"id": "prt_globex", "name": "Globex", "slug": "globex", "status": "ACTIVE"})
    seed["tenants"].append({"id": "tnt_globex", "slug": "globex", "name": "Globex", "partner_id": "prt_globex",
                            "status": "ACTIVE"})
    seed["users"].append({"id": "usr_gina", "tenant_id": "tnt_globex", "email": "gina@globex.example",
                          "first_name": "Gina", "last_name": "G"})
    async with httpx.AsyncClient() as c:
        assert (await c.post(f"{api.scaikey}/_emulator/seed", json=seed)).status_code == 200
    return "gina@globex.example"


async def test_last_accessed_is_recorded_off_the_read_path(api: Api) -> None:
    h = await api.token()
    await api.put("la/x", {"a": "b"}, h)
    meta = (await api.client.get("/v1/secrets/la/x:metadata", headers=h)).json()
    assert meta["last_accessed_at"] is None
    assert (await api.client.get("/v1/secrets/la/x", headers=h)).status_code == 200
    rows = await api.sql("SELECT last_accessed_at FROM secrets WHERE path = 'la/x'")
    assert rows[0]["last_accessed_at"] is None  # no write on the read itself
    assert await api.component("secrets").tracker.flush() == 1
    meta = (await api.client.get("/v1/secrets/la/x:metadata", headers=h)).json()
    assert meta["last_accessed_at"] is not None


async def test_housekeeping_purges_expired_soft_deletes_and_audits_it(api: Api) -> None:
    from services.housekeeping import load_all
    from tests.helpers import ADMIN, bearer, client_token

    h = await api.token()
    await api.put("old/one", {"v": "1"}, h)
    await api.put("old/two", {"v": "2"}, h)
    assert (await api.client.delete("/v1/secrets/old/one", headers=h)).status_code == 204
    assert (await api.client.delete("/v1/secrets/old/two", headers=h)).status_code == 204
    await api.sql("UPDATE secrets SET recoverable_until = now() - interval '1 second' WHERE path = 'old/one'")
    conn = await api.db()
    try:
        purged = await load_all()["purge_deleted_secrets"](conn, api.settings, 100)
    finally:
        await conn.close()
    assert purged == 1
    assert [r["path"] for r in await api.sql("SELECT path FROM secrets")] == ["old/two"]  # still recoverable
    # the path is free again, and the purge is in the audit log as a background action
    assert (await api.put("old/one", {"v": "new"}, h)).status_code == 201
    admin = bearer(await client_token(api.scaikey, ADMIN))
    logs = (await api.client.get("/v1/audit/logs?action=delete&path_prefix=old/one", headers=admin)).json()["logs"]
    system = [e for e in logs if e["identity_id"] == "system:housekeeping"]
    assert len(system) == 1 and system[0]["success"] is True
