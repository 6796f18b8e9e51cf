"""Hostile input through the HTTP API (issue 12): paths are never rewritten, bad bytes get a clear 4xx in the
envelope (never a 5xx), and one bad request never fails another's audit entry.

* paths: every control character, NUL and anything outside the spec §6.2 alphabet is ``400 invalid_path`` on every
  route that takes a secret path (tenant, partner and ``/v1/t/{tenant}`` secrets, ``:suffix`` forms, batch, list
  ``prefix``, audit trails); route matching is full-string (a trailing ``%0A`` never routes to the path without it);
* the audit group commit: a NUL request amid concurrent good ones fails alone; a row PostgreSQL cannot store
  fails alone; the recorder escapes what PostgreSQL cannot hold;
* query values: NUL / invalid UTF-8 / control characters, datetimes that overflow in UTC, cursors beyond int8
  are ``422``/``400`` before any byte is sent (also for the NDJSON export);
* the ScaiKey receiver: a non-ASCII signature is ``401 invalid_signature``;
* secret_type is a hint: any non-empty JSON object is stored for every type; a certificate read adds parsed fields.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import ADMIN, bearer, client_token
from tests.integration import secrets_helpers
from tests.integration.secrets_helpers import Api

api = secrets_helpers.api  # the fixture

pytestmark = pytest.mark.asyncio

# Raw (already percent-encoded) path forms that must all be refused. httpx sends them as written.
BAD_PATHS = [
    "app/x%0A",          # trailing LF: `$` also matches before a final newline
    "app/x%0D%0A",       # trailing CRLF
    "a%0D%0Ab",          # CR/LF in the middle
    "a%0Ab",             # LF in the middle ('.' does not match it)
    "a%00b",             # NUL
    "app/x%00",          # trailing NUL
    "a%09b",             # TAB
    "app/x%7F",          # DEL
    "app/x%C2%85",       # NEL (C1 control)
    "app/x%E2%80%A8",    # LINE SEPARATOR
    "app/%C3%A9",        # non-ASCII letter
    "app/x%FF",          # invalid UTF-8
    "App/x",             # upper case
    "app/x%20y",         # space
    "app/x.y",           # dot
]


async def _no_secret_at(api: Api, h: dict[str, str], path: str = "app/x") -> None:
    r = await api.client.get(f"/v1/secrets/{path}", headers=h)
    assert r.status_code == 404, (path, r.status_code, r.text)


def _is_invalid_path(r: httpx.Response, what: str) -> None:
    assert r.status_code == 400, (what, r.status_code, r.text)
    assert r.json()["error"]["code"] == "invalid_path", (what, r.text)


# ------------------------------------------------------------------------------------------------ 1. paths


@pytest.mark.parametrize("bad", BAD_PATHS)
async def test_bad_paths_are_invalid_path_on_every_secret_route(api: Api, bad: str) -> None:
    h = await api.token()
    partner = await api.partner_admin()
    body = {"data": {"k": "v"}}
    calls: list[tuple[str, str, dict[str, str], Any]] = []
    for base, headers in (("/v1/secrets", h), ("/v1/partner/secrets", partner),
                          ("/v1/t/tnt_acme_prod/secrets", h)):
        calls += [
            ("PUT", f"{base}/{bad}", headers, body),
            ("GET", f"{base}/{bad}", headers, None),
            ("GET", f"{base}/{bad}:metadata", headers, None),
            ("GET", f"{base}/{bad}:versions", headers, None),
            ("PATCH", f"{base}/{bad}", headers, {"metadata": {"owner": "x"}}),
            ("PATCH", f"{base}/{bad}:metadata", headers, {"metadata": {"owner": "x"}}),
            ("DELETE", f"{base}/{bad}", headers, None),
            ("POST", f"{base}/{bad}:restore", headers, None),
            ("POST", f"{base}/{bad}:destroy", headers, {"versions": [1]}),
        ]
    for method, url, headers, json_body in calls:
        r = await api.client.request(method, url, headers=headers, json=json_body)
        _is_invalid_path(r, f"{method} {url}")
    await _no_secret_at(api, h)


async def test_a_trailing_newline_never_stores_at_the_path_without_it(api: Api) -> None:
    h = await api.token()
    for bad in ("app/x%0A", "app/x%0D%0A", "app/x%00"):
        r = await api.client.put(f"/v1/secrets/{bad}", json={"data": {"k": "v"}}, headers=h)
        _is_invalid_path(r, bad)
    await _no_secret_at(api, h)
    # and an existing secret is never overwritten or deleted through such a path
    assert (await api.put("app/x", {"k": "v1"}, h)).status_code == 201
    r = await api.client.put("/v1/secrets/app/x%0A", json={"data": {"k": "evil"}}, headers=h)
    _is_invalid_path(r, "put")
    _is_invalid_path(await api.client.delete("/v1/secrets/app/x%0A", headers=h), "delete")
    got = await api.client.get("/v1/secrets/app/x", headers=h)
    assert got.status_code == 200 and got.json()["data"] == {"k": "v1"} and got.json()["version"] == 1


@pytest.mark.parametrize("bad", ["app%0A", "a%00b", "a%0D%0Ab", "App", "a%FF", "app/%0A/"])
async def test_bad_list_prefix_and_batch_paths_and_audit_trail(api: Api, bad: str) -> None:
    h = await api.token()
    admin = bearer(await client_token(api.scaikey, ADMIN))
    r = await api.client.get(f"/v1/secrets?prefix={bad}", headers=h)
    _is_invalid_path(r, "list prefix")
    r = await api.client.get(f"/v1/audit/secrets/{bad}", headers=admin)
    _is_invalid_path(r, "audit trail")
    raw = httpx.URL(f"http://x/{bad}").path[1:]  # the decoded form, as a JSON body carries it
    for url in ("/v1/secrets/batch", "/v1/secrets/batch/metadata"):
        r = await api.client.post(url, json={"paths": [raw]}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["errors"][raw]["code"] == "invalid_path", r.text


async def test_a_control_character_in_any_url_path_is_refused_not_routed_without_it(api: Api) -> None:
    """Starlette anchors routes with `$` (also true before a final newline): `/v1/secrets%0A` must not be the list,
    `/v1/policies/pol_x%00` must not reach SQL. Refused before routing, for every route."""
    h = await api.token()
    admin = bearer(await client_token(api.scaikey, ADMIN))
    for url, headers in (("/v1/secrets%0A", h), ("/v1/auth/whoami%0A", h), ("/v1/audit/summary%0A", admin),
                         ("/v1/t/tnt_acme_prod/auth/whoami%0A", h), ("/v1/policies/pol_x%00", admin),
                         ("/v1/webhooks/wh_%0D%0Ax", admin), ("/v1/identity/tenants/a%00/users", admin),
                         ("/v1/audit/identities/sa:x%0A", admin), ("/v1/secrets/batch%0A", h)):
        r = await api.client.get(url, headers=headers)
        _is_invalid_path(r, url)


async def test_a_control_character_in_any_query_value_is_a_validation_error(api: Api) -> None:
    h = await api.token()
    admin = bearer(await client_token(api.scaikey, ADMIN))
    for url, headers, name in (("/v1/secrets?tag=a%00", h, "tag"), ("/v1/secrets?expiring_within=1d%0A", h,
                                                                      "expiring_within"),
                               ("/v1/identity/tenants/tnt_acme_prod/users?q=a%00", admin, "q"),
                               ("/v1/secrets/app/x?version=1%0A", h, "version"),
                               ("/v1/policies?scope=tenant%00", admin, "scope")):
        r = await api.client.get(url, headers=headers)
        assert r.status_code == 422, (url, r.status_code, r.text)
        assert r.json()["error"]["details"]["fields"][0]["field"] == name, r.text


async def test_request_id_header_with_a_newline_is_replaced(api: Api) -> None:
    h = await api.token()
    r = await api.client.get("/v1/auth/whoami", headers={**h, "X-Request-ID": "abc\n"})
    assert r.status_code == 200 and r.headers["x-request-id"].startswith("req_")


# ---------------------------------------------------------------------------------- 2. audit group commit


async def _audit_rows(api: Api, request_ids: list[str]) -> dict[str, asyncpg.Record]:
    rows = await api.sql("SELECT * FROM audit_log WHERE request_id = ANY($1::text[])", request_ids)
    return {r["request_id"]: r for r in rows}


async def test_a_nul_request_amid_concurrent_good_ones_fails_alone(api: Api) -> None:
    h = await api.token()
    admin = bearer(await client_token(api.scaikey, ADMIN))
    assert (await api.put("app/ok", {"k": "v"}, h)).status_code == 201
    bad_urls = ["/v1/secrets/a%00b", "/v1/secrets/app/x%00:metadata", "/v1/audit/logs?action=%00",
                "/v1/audit/logs?identity_id=a%00b", "/v1/secrets?prefix=a%00"]

    async def call(i: int) -> tuple[str, bool, httpx.Response]:
        rid = f"rob-{i}-{time.monotonic_ns()}"
        bad = i % 6 == 3
        if bad:
            url = bad_urls[(i // 6) % len(bad_urls)]
            r = await api.client.get(url, headers={**(admin if "audit" in url else h), "X-Request-ID": rid})
        else:
            r = await api.client.get("/v1/secrets/app/ok", headers={**h, "X-Request-ID": rid})
        return rid, bad, r

    for _ in range(3):  # several rounds, so that bad and good entries share group-commit batches
        results = await asyncio.gather(*(call(i) for i in range(36)))
        rows = await _audit_rows(api, [rid for rid, _, _ in results])
        for rid, bad, r in results:
            if bad:
                assert r.status_code in (400, 422), r.text
                assert r.json()["error"]["code"] in ("invalid_path", "validation_error")
                if rid in rows:  # refused before authentication: no entry; after it: a failure entry without NUL
                    assert rows[rid]["success"] is False
                    assert all("\x00" not in str(v) for v in rows[rid].values())
            else:
                assert r.status_code == 200, r.text
                assert rid in rows and rows[rid]["success"] is True and rows[rid]["secret_path"] == "app/ok"


async def test_group_commit_retries_a_failed_batch_row_by_row(api: Api) -> None:
    """A row PostgreSQL refuses (here: a NUL in a text column, bypassing the recorder) fails alone."""
    from audit.entry import COLUMNS, AuditEntry
    from audit.sink import AuditUnavailable, GroupCommitSink
    from core.ids import new_id

    sink = GroupCommitSink(api.settings.asyncpg_dsn, timeout=30)
    await sink.start()
    try:
        entries = [AuditEntry(id=new_id("log"), tenant_id="tnt_robust", identity_id="sa:x",
                              identity_type="service_account", action="read", success=True,
                              request_id=f"gc-{i}-{time.monotonic_ns()}") for i in range(20)]
        rows = [list(e.as_row()) for e in entries]
        rows[7][COLUMNS.index("request_id")] = "bad\x00row"       # refused by the server (SQLSTATE 22021)
        rows[13][COLUMNS.index("user_agent")] = "bad\ud800row"    # refused while encoding, client side
        results = await asyncio.gather(*(sink.submit(row) for row in rows), return_exceptions=True)
        again = await asyncio.gather(*(sink.submit(list(e.as_row())) for e in entries[:3]))  # still writing
    finally:
        await sink.stop()
    assert isinstance(results[7], AuditUnavailable) and isinstance(results[13], AuditUnavailable), results
    assert [i for i, r in enumerate(results) if r is not None] == [7, 13], results
    assert again == [None, None, None]
    stored = await api.sql("SELECT request_id FROM audit_log WHERE tenant_id = 'tnt_robust'")
    assert sorted(r["request_id"] for r in stored) == sorted(
        [e.request_id for i, e in enumerate(entries) if i not in (7, 13)] + [e.request_id for e in entries[:3]])


async def test_recorder_escapes_what_postgresql_cannot_store(api: Api) -> None:
    from api.context import RequestContext
    from auth.principal import system_principal

    recorder = api.component("audit")
    rid = f"esc-{time.monotonic_ns()}"
    ctx = RequestContext(principal=system_principal("robustness", "tnt_acme_prod", None), tenant_id="tnt_acme_prod",
                         partner_id=None, request_id=rid, source_ip=None, user_agent="ua\x00x\ud800",
                         scope=None, category=None)
    ctx.describe("read", path="p\x00q", resource_type="t\x00", resource_id="id\x00")
    await recorder.record(ctx, extra={"k\x00": "v\x00", "nested": ["a\x00", {"b": "\udcff"}]})
    [row] = await api.sql("SELECT * FROM audit_log WHERE request_id = $1", rid)
    assert row["secret_path"] == "p\\u0000q" and row["resource_id"] == "id\\u0000"
    assert row["user_agent"].startswith("ua\\u0000x")
    extra = orjson.loads(row["extra_data"])
    assert extra["k\\u0000"] == "v\\u0000" and extra["nested"][0] == "a\\u0000"


# ------------------------------------------------------------------------------------ 3. query values


@pytest.mark.parametrize("param", ["action", "identity_id", "identity_type", "path_prefix", "source_ip",
                                   "request_id"])
@pytest.mark.parametrize("value", ["%00", "a%00", "%FF", "x%0Ay", "%C3%28"])
async def test_audit_filters_refuse_nul_control_and_invalid_utf8(api: Api, param: str, value: str) -> None:
    admin = bearer(await client_token(api.scaikey, ADMIN))
    urls = [f"/v1/audit/logs?{param}={value}", f"/v1/audit/secrets/app/x?{param}={value}",
            f"/v1/audit/logs/export?{param}={value}"]
    if param != "identity_id":  # that route takes identity_id from its path
        urls.append(f"/v1/audit/identities/sa:ci-deployer?{param}={value}")
    for url in urls:
        r = await api.client.get(url, headers=admin)
        assert r.status_code == 422, (url, r.status_code, r.text)
        err = r.json()["error"]
        assert err["code"] == "validation_error" and err["details"]["fields"][0]["field"] == param, r.text


@pytest.mark.parametrize(("value", "status", "code"), [("a%00b", 400, "invalid_path"), ("a%0Ab", 400, "invalid_path"),
                                                     ("%FF", 422, "validation_error"),
                                                     ("a%C2%85", 422, "validation_error")])
async def test_identity_trail_refuses_bad_identity(api: Api, value: str, status: int, code: str) -> None:
    admin = bearer(await client_token(api.scaikey, ADMIN))
    r = await api.client.get(f"/v1/audit/identities/{value}", headers=admin)
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text


async def test_export_is_validated_before_the_first_byte(api: Api) -> None:
    admin = bearer(await client_token(api.scaikey, ADMIN))
    async with api.client.stream("GET", "/v1/audit/logs/export?action=%00", headers=admin) as r:
        body = await r.aread()
    assert r.status_code == 422 and orjson.loads(body)["error"]["code"] == "validation_error"


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00%2B00:01", "0001-01-01T11:20:59%2B11:21",
                                   "9999-12-31T23:59:59-01:00", "9999-12-31T23:30:00-00:31"])
async def test_datetimes_that_overflow_in_utc_are_validation_errors(api: Api, value: str) -> None:
    admin = bearer(await client_token(api.scaikey, ADMIN))
    for url, name in ((f"/v1/audit/summary?to={value}", "to"), (f"/v1/audit/summary?from={value}", "from"),
                      (f"/v1/audit/logs?from={value}", "from"), (f"/v1/audit/logs?until={value}", "until"),
                      (f"/v1/audit/logs/export?since={value}", "since"),
                      (f"/v1/audit/secrets/app/x?to={value}", "to")):
        r = await api.client.get(url, headers=admin)
        assert r.status_code == 422, (url, r.status_code, r.text)
        err = r.json()["error"]
        assert err["code"] == "validation_error" and err["details"]["fields"][0]["field"] == name, r.text


async def test_datetimes_in_range_with_offsets_still_work(api: Api) -> None:
    admin = bearer(await client_token(api.scaikey, ADMIN))
    # the fuzzer's value: in range, but 30 days before it is not (the default window is clamped)
    r = await api.client.get("/v1/audit/summary?to=0001-01-12T00:14:01%2B11:21", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["from"] == "0001-01-01T00:00:00.000000Z" and r.json()["to"] == "0001-01-11T12:53:01.000000Z"
    r = await api.client.get("/v1/audit/summary?from=2026-01-01T10:00:00%2B02:00&to=2026-01-02T00:00:00Z",
                             headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["from"] == "2026-01-01T08:00:00.000000Z"
    r = await api.client.get("/v1/audit/summary?from=2026-01-01T00:00:00", headers=admin)  # naive: UTC
    assert r.status_code == 200 and r.json()["from"] == "2026-01-01T00:00:00.000000Z", r.text


def _b64(doc: Any) -> str:
    raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    _b64(b'{"id": 9223372036854775808}'), _b64(b'{"id": 18446744073709551616}'), _b64({"id": 0}),
    _b64({"id": -5}), _b64({"id": True}), _b64({"id": 1.5}), _b64({"id": "1"}), _b64([1]), "%C3%A9", "a%FF",
    _b64(b'{"id": 1}\x00'), _b64(b'{"id": 1}') + "%C2%85",
])
async def test_bad_audit_cursors_are_invalid_cursor(api: Api, cursor: str) -> None:
    admin = bearer(await client_token(api.scaikey, ADMIN))
    for url in (f"/v1/audit/logs?cursor={cursor}", f"/v1/audit/secrets/app/x?cursor={cursor}",
                f"/v1/audit/identities/sa:ci-deployer?cursor={cursor}"):
        r = await api.client.get(url, headers=admin)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor", (url, r.text)


async def test_largest_audit_cursor_is_accepted(api: Api) -> None:
    admin = bearer(await client_token(api.scaikey, ADMIN))
    r = await api.client.get(f"/v1/audit/logs?cursor={_b64({'id': 2**63 - 1})}&limit=1", headers=admin)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("url", "prefix"), [("/v1/policies", b"pol_"), ("/v1/auth/tokens", b"pat_"),
                                           ("/v1/webhooks", b"wh_"), ("/v1/secret-policies", b"sp_"),
                                           ("/v1/subscriptions", b"sub_")])
async def test_id_cursors_with_bytes_postgresql_cannot_hold_are_invalid_cursor(api: Api, url: str,
                                                                                 prefix: bytes) -> None:
    admin = bearer(await client_token(api.scaikey, ADMIN))
    for inner in (prefix + b"\x00", prefix + b"a\nb", prefix + "\u00e9".encode(), prefix + b"\xff", b"\xff\xfe"):
        for cursor in (base64.urlsafe_b64encode(inner).decode(), base64.urlsafe_b64encode(inner).decode() + "%C3%A9"):
            r = await api.client.get(f"{url}?cursor={cursor}", headers=admin)
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor", (url, inner, r.text)


async def test_scaikey_signature_with_non_ascii_v1_is_401(api: Api, settings_factory: Any,
                                                          make_app_client: Any) -> None:
    settings = settings_factory(scaikey_webhook_secret="robustness-webhook-secret-0123456789abcdef")
    async with make_app_client(settings) as client:
        now = int(time.time())
        for sig in (f"t={now},v1=\u00e9\u00e9".encode(), f"t={now},v1=caf\u00e9".encode("latin-1"),
                    f"t={now},v1={'0' * 63}\u00ff".encode()):
            r = await client.post("/v1/identity/webhooks/scaikey", content=b"{}",
                                  headers={"X-ScaiKey-Signature": sig, "content-type": "application/json"})
            assert r.status_code == 401, (sig, r.status_code, r.text)
            assert r.json()["error"]["code"] == "invalid_signature"


async def test_openapi_documents_metrics_as_text_and_the_receivers_401(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    metrics = doc["paths"]["/v1/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"], metrics
    r = await api.client.get("/v1/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    receiver = doc["paths"]["/v1/identity/webhooks/scaikey"]["post"]["responses"]
    assert "401" in receiver and "ErrorEnvelope" in orjson.dumps(receiver["401"]).decode()


# ----------------------------------------------------------------------------------- 6. secret_type hint


def _cert() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "robust.example")])
    not_after = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(4242).not_valid_before(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
            .not_valid_after(not_after).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(("secret_type", "data"), [
    ("kv", {"a": {"nested": "x"}}),
    ("kv", {"n": 1, "b": True, "l": [1, "x"], "z": None}),
    ("certificate", {"cert_pem": "not a pem", "chain_pem": "-----BEGIN CERTIFICATE-----\n!!\n"}),
    ("certificate", {"anything": "goes"}),
    ("ssh_key", {"public_key": "ssh-foo AAAA", "comment": 3}),
    ("ssh_key", {"note": "no key at all"}),
    ("api_key", {"token": {"x": 1}}),
    ("json", {"x": [1, {"y": None}]}),
])
async def test_any_non_empty_object_is_stored_for_every_type(api: Api, secret_type: str,
                                                             data: dict[str, Any]) -> None:
    h = await api.token()
    r = await api.put(f"typed/{secret_type}", data, h, secret_type=secret_type)
    assert r.status_code == 201, r.text
    got = (await api.client.get(f"/v1/secrets/typed/{secret_type}", headers=h)).json()
    assert got["data"] == data and got["secret_type"] == secret_type
    assert "parsed" not in got  # nothing parses, nothing is added


@pytest.mark.parametrize("body", [{"data": {}}, {"data": []}, {"data": "x"}, {"data": None}, {}])
async def test_data_must_still_be_a_non_empty_object(api: Api, body: dict[str, Any]) -> None:
    h = await api.token()
    for secret_type in ("kv", "certificate", "json"):
        r = await api.client.put("/v1/secrets/typed/empty", json={**body, "secret_type": secret_type}, headers=h)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", r.text


async def test_certificate_read_adds_parsed_fields_when_the_pem_parses(api: Api) -> None:
    h = await api.token()
    cert = _cert()
    data = {"cert_pem": cert, "chain_pem": "garbage"}
    assert (await api.put("tls/robust", data, h, secret_type="certificate")).status_code == 201
    got = (await api.client.get("/v1/secrets/tls/robust", headers=h)).json()
    assert got["data"] == data
    parsed = got["parsed"]
    assert parsed["not_after"] == "2031-05-06T07:08:09Z" and parsed["not_before"] == "2026-01-01T00:00:00Z"
    assert parsed["subject"] == "CN=robust.example" and parsed["serial_number"] == format(4242, "x")
    batch = (await api.client.post("/v1/secrets/batch", json={"paths": ["tls/robust"]}, headers=h)).json()
    assert batch["secrets"]["tls/robust"]["parsed"]["not_after"] == "2031-05-06T07:08:09Z"
    # the same data under another type gets no parsed fields (the type is the hint)
    assert (await api.put("tls/as-json", data, h, secret_type="json")).status_code == 201
    assert "parsed" not in (await api.client.get("/v1/secrets/tls/as-json", headers=h)).json()


# ------------------------------------------------------------------------- datetimes in policy bodies


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z",
                                "9999-12-31T23:59:59Z"])
async def test_policy_datetimes_at_the_edges_are_never_a_5xx(api: Api, ts: str) -> None:
    admin = bearer(await client_token(api.scaikey, ADMIN))
    r = await api.client.post("/v1/policies", headers=admin, json={"name": "edge-window", "rules": [
        {"path_pattern": "ops/**", "permissions": ["write"], "conditions": {"time_window": {
            "days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00",
            "timezone": "Pacific/Kiritimati"}}}]})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = await api.client.post(f"/v1/policies/{pid}/bindings", headers=admin,
                              json={"identity_type": "user", "identity_id": "user:edge@acme.example",
                                    "expires_at": ts})
    assert r.status_code in (201, 400), r.text  # 400 invalid_policy: in the past, or out of range in UTC
    r = await api.client.post("/v1/policies/test", headers=admin, json={
        "identity_id": "user:edge@acme.example", "path": "ops/x", "permission": "write",
        "context": {"timestamp": ts}})
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert r.json()["error"]["details"]["fields"][0]["field"] == "context.timestamp", r.text


async def test_nul_in_a_stored_body_field_is_a_validation_error(api: Api) -> None:
    """A body text field no validator checks for NUL (a policy description, a token name) reaches PostgreSQL,
    which refuses it: that is the client's error, 422, not a 500."""
    admin = bearer(await client_token(api.scaikey, ADMIN))
    h = await api.token()
    r = await api.client.post("/v1/policies", headers=admin, json={
        "name": "nul-desc", "description": "a\u0000b", "rules": [{"path_pattern": "x/**", "permissions": ["read"]}]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", r.text
    r = await api.client.post("/v1/auth/tokens", headers=h, json={"name": "t\u0000", "scopes": ["secrets:read"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", r.text
    assert (await api.client.get("/v1/policies", headers=admin)).status_code == 200


@pytest.mark.parametrize("identity", ["user:a\u0001b", "user:a\u0000b", "group:x\u0085", "sa:ci\u007f"])
async def test_binding_identity_with_control_characters_is_refused(api: Api, identity: str) -> None:
    admin = bearer(await client_token(api.scaikey, ADMIN))
    r = await api.client.post("/v1/policies", headers=admin, json={
        "name": "ctl-ident", "rules": [{"path_pattern": "x/**", "permissions": ["read"]}]})
    assert r.status_code == 201, r.text
    r = await api.client.post(f"/v1/policies/{r.json()['id']}/bindings", headers=admin,
                              json={"identity_type": identity.split(":")[0].replace("sa", "service_account"),
                                    "identity_id": identity})
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["code"] in ("invalid_policy", "validation_error"), r.text


@pytest.mark.parametrize("raw", ["%2B5", "5%20", "%205", "%D9%A5", "0x5", "5.0", "1e3", "99999999999999999999999"])
async def test_query_integers_are_ascii_digits_in_range(api: Api, raw: str) -> None:
    h = await api.token()
    for url, name in ((f"/v1/secrets?limit={raw}", "limit"), (f"/v1/secrets/app/x?version={raw}", "version")):
        r = await api.client.get(url, headers=h)
        assert r.status_code == 422, (url, r.status_code, r.text)
        assert r.json()["error"]["details"]["fields"][0]["field"] == name, r.text
    assert (await api.client.get("/v1/secrets?limit=5", headers=h)).status_code == 200


@pytest.mark.parametrize("version", [0, -1, 2**31, 657156063321789184, True, 1.0, "1"])
async def test_destroy_refuses_versions_outside_the_column_range(api: Api, version: Any) -> None:
    """Found by schemathesis: a version above 2^31-1 reached PostgreSQL's int4 and answered 500."""
    h = await api.token()
    partner = await api.partner_admin()
    for base, headers in (("/v1/secrets", h), ("/v1/partner/secrets", partner)):
        assert (await api.client.put(f"{base}/fuzz/destroy", json={"data": {"k": "v"}}, headers=headers)).status_code in (200, 201)
        r = await api.client.post(f"{base}/fuzz/destroy:destroy", json={"versions": [version]}, headers=headers)
        assert r.status_code == 422, (base, r.status_code, r.text)
        assert r.json()["error"]["details"]["fields"][0]["field"] == "versions", r.text
        # nothing was destroyed: version 1 still reads back
        got = await api.client.get(f"{base}/fuzz/destroy?version=1", headers=headers)
        assert got.status_code == 200 and got.json()["data"] == {"k": "v"}, got.text
