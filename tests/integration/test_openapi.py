"""The OpenAPI description (api/openapi.py) is complete and true to the code.

* every route the app registers (FastAPI, plain Starlette and the middleware's fast routes) is documented, and
  every documented operation exists;
* bearer security covers everything but the public operations, with the scope the code actually requires
  (checked against real 403 ``insufficient_scope`` answers for the secrets routes);
* real secrets responses and errors have the documented status, fields and error codes.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from api import openapi as oa
from tests.helpers import ADMIN, bearer, client_token, grant, reset_emulator, user_token

IGNORED_PATHS = {"/docs", "/openapi.json", "/docs/oauth2-redirect", "/metrics"}
SECRETS_BASES = ("/v1/secrets", "/v1/partner/secrets")
ALL_SCOPES = "secrets:read secrets:write secrets:list secrets:delete"
USER = "alice@acme.example"  # tnt_acme_prod in the emulator's dev seed


def _app(client: httpx.AsyncClient) -> Any:
    return client._transport.app  # type: ignore[attr-defined]


async def _doc(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def registered_operations(app: Any) -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves, including the middleware's fast routes."""
    ops: set[tuple[str, str]] = set()
    for rc in iter_route_contexts(app.routes):
        path = rc.path_format
        if path is None or path in IGNORED_PATHS:
            continue
        methods = set(rc.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")  # Starlette adds HEAD to every GET route
        ops |= {(m.lower(), path) for m in methods}
    for mw in app.user_middleware:
        for fast in mw.kwargs.get("fast_routes", ()):
            ops.add((fast.method.lower(), re.sub(r"\{(\w+):\w+\}", r"{\1}", fast.path)))
    return ops


def documented_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "patch", "delete", "head", "options"}
    return {(m, path) for path, item in doc["paths"].items() for m in item if m in methods}


def _route_of(documented_path: str) -> str:
    """``/v1/secrets/{path}:restore`` is served by the ``/v1/secrets/{path}`` route (the ``:suffix`` form)."""
    return re.sub(r"\}:[a-z]+$", "}", documented_path)


def _codes(response_doc: dict[str, Any]) -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", response_doc["description"]))


def _conforms(model: type[BaseModel], body: dict[str, Any]) -> None:
    """``body`` has only documented fields, all required ones, of the documented types."""
    assert set(body) <= set(model.model_fields), f"undocumented fields {set(body) - set(model.model_fields)}"
    model.model_validate(body)


# ------------------------------------------------------------------------------------------- the document


async def test_document_is_openapi_3_with_envelope_and_bearer_scheme(app_client):
    doc = await _doc(app_client)
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "ScaiVault" and doc["info"]["version"]
    assert "/v1/t/{tenant_id}/" in doc["info"]["description"]
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearerAuth"][
            "description"]}
    schemas = doc["components"]["schemas"]
    assert schemas["ErrorEnvelope"]["required"] == ["error"]
    assert set(schemas["ErrorBody"]["required"]) == {"code", "message", "details", "request_id"}
    assert "HTTPValidationError" not in schemas  # the app answers validation failures with the envelope
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', str(doc).replace("'", '"')))
    assert refs <= set(schemas), f"dangling $refs: {refs - set(schemas)}"
    # served from the cache: the same document object
    assert _app(app_client).openapi() is _app(app_client).openapi()


async def test_document_passes_the_openapi_validator(app_client):
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(await _doc(app_client))


async def test_every_registered_route_is_documented_and_nothing_else(app_client):
    doc = await _doc(app_client)
    registered = registered_operations(_app(app_client))
    # the walk sees plain Starlette routes, FastAPI routes and fast routes (else this test proves nothing)
    assert {("put", "/v1/secrets/{path}"), ("post", "/v1/partner/secrets/batch"), ("get", "/v1/health"),
            ("get", "/v1/secrets/{path}"), ("post", "/v1/identity/webhooks/scaikey")} <= registered
    documented = documented_operations(doc)
    missing = {(m, p) for m, p in registered
               if (m, p) not in documented and not any(dm == m and _route_of(dp) == p for dm, dp in documented)}
    assert not missing, f"routes missing from /openapi.json: {sorted(missing)}"
    stale = {(m, p) for m, p in documented if (m, _route_of(p)) not in registered}
    assert not stale, f"documented operations no route serves: {sorted(stale)}"
    for base in SECRETS_BASES:
        for suffix in (":metadata", ":versions"):
            assert "get" in doc["paths"][f"{base}/{{path}}{suffix}"]
        for suffix in (":restore", ":destroy"):
            assert "post" in doc["paths"][f"{base}/{{path}}{suffix}"]


async def test_bearer_security_everywhere_but_public_operations(app_client):
    doc = await _doc(app_client)
    public = {(m, p) for m, p in documented_operations(doc) if doc["paths"][p][m]["security"] == []}
    assert public == {op for op in oa.PUBLIC_OPERATIONS if op[1] in doc["paths"]}
    assert ("post", "/v1/identity/webhooks/scaikey") in public and ("get", "/v1/health") in public
    for m, p in documented_operations(doc) - public:
        assert list(doc["paths"][p][m]["security"][0]) == ["bearerAuth"], (m, p)
    # PUBLIC_OPERATIONS is exactly the set of FastAPI routes without an api.deps.authorized dependency
    for rc in iter_route_contexts(_app(app_client).routes):
        if isinstance(rc.original_route, APIRoute) and rc.include_in_schema:
            for method in rc.methods:
                needs_token = oa.auth_requirement(rc.original_route) is not None
                assert needs_token == ((method.lower(), rc.path_format) not in oa.PUBLIC_OPERATIONS), rc.path


async def test_secrets_put_documents_201_200_body_and_error_envelope(app_client):
    doc = await _doc(app_client)
    for base in SECRETS_BASES:
        put = doc["paths"][f"{base}/{{path}}"]["put"]
        assert put["security"] == [{"bearerAuth": ["secrets:write"]}]
        responses = put["responses"]
        for status in ("201", "200"):
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/SecretWritten"}
        for status in ("400", "401", "403", "404", "409", "413", "422", "429", "500", "503"):
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorEnvelope"}, status
        assert {"secret_exists", "version_conflict"} <= _codes(responses["409"])
        assert {"invalid_path", "invalid_secret_type", "invalid_request"} <= _codes(responses["400"])
        assert put["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/SecretWrite"}
        assert doc["paths"][f"{base}/{{path}}"]["delete"]["responses"]["204"] == {"description": "Deleted"}
    write = doc["components"]["schemas"]["SecretWrite"]
    assert write["required"] == ["data"] and write["additionalProperties"] is False
    assert doc["components"]["schemas"]["SecretType"]["enum"] == ["kv", "json", "certificate", "ssh_key", "api_key"]
    assert "forbidden" in _codes(doc["paths"]["/v1/partner/secrets/{path}"]["put"]["responses"]["403"])
    tag = next(p for p in doc["paths"]["/v1/secrets"]["get"]["parameters"] if p["name"] == "tag")
    assert tag["schema"]["type"] == "array" and tag["explode"] is True


async def test_swagger_ui_is_served(app_client):
    r = await app_client.get("/docs")
    assert r.status_code == 200
    assert "/openapi.json" in r.text and "swagger" in r.text.lower()


# --------------------------------------------------------------------------- the document against the code


def _secrets_calls(doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(method, documented path, concrete url, documented scope) of every secrets operation."""
    calls = []
    for path, item in doc["paths"].items():
        if not path.startswith(SECRETS_BASES):
            continue
        for method, op in item.items():
            url = path.replace("{path}", "app/db")
            calls.append((method, path, url, op["security"][0]["bearerAuth"][0]))
    return calls


async def test_secrets_scopes_match_what_the_routes_require(scaikey, app_client):
    await reset_emulator(scaikey)
    doc = await _doc(app_client)
    calls = _secrets_calls(doc)
    assert len(calls) == 24  # 12 operations x 2 bases (incl. :rotate)
    headers = bearer(await user_token(scaikey, USER, scope="identity:read", client_id="vault-ui"))
    for method, path, url, scope in calls:
        r = await app_client.request(method.upper(), url, headers=headers, json={})
        assert r.status_code == 403, (method, url, r.text)
        error = r.json()["error"]
        assert error["code"] == "insufficient_scope" and error["details"]["required_scope"] == scope, (method, url)
        assert "insufficient_scope" in _codes(doc["paths"][path][method]["responses"]["403"])


def _check_error(doc: dict[str, Any], method: str, path: str, r: httpx.Response) -> str:
    """A real error answer: documented status, documented code, envelope shape."""
    responses = doc["paths"][path][method]["responses"]
    assert str(r.status_code) in responses, (method, path, r.status_code)
    envelope = r.json()
    _conforms(oa.ErrorEnvelope, envelope)
    _conforms(oa.ErrorBody, envelope["error"])
    assert envelope["error"]["code"] in _codes(responses[str(r.status_code)]), (method, path, envelope)
    return str(envelope["error"]["code"])


async def test_secrets_responses_match_the_documented_schemas(scaikey, app_client):
    await reset_emulator(scaikey)
    doc = await _doc(app_client)
    admin = bearer(await client_token(scaikey, ADMIN))
    await grant(app_client, admin, [f"user:{USER}"], name="openapi-tests")
    h = bearer(await user_token(scaikey, USER, scope=ALL_SCOPES, client_id="vault-ui"))
    item, base = "/v1/secrets/{path}", "/v1/secrets"
    url = "/v1/secrets/app/db"
    body = {"data": {"password": "pw-1"}, "metadata": {"tags": ["db"], "description": "d"},
            "options": {"max_versions": 5, "expires_in": "90d", "notify_before": "7d"}}

    r = await app_client.put(url, json=body, headers=h)
    assert r.status_code == 201, r.text
    assert "201" in doc["paths"][item]["put"]["responses"]
    _conforms(oa.SecretWritten, r.json())
    r = await app_client.put(url, json={"data": {"password": "pw-2"}, "options": {"cas": 1}}, headers=h)
    assert r.status_code == 200, r.text
    _conforms(oa.SecretWritten, r.json())
    r = await app_client.put(url, json={"data": {"password": "x"}, "options": {"cas": 1}}, headers=h)
    assert _check_error(doc, "put", item, r) == "version_conflict"
    r = await app_client.put(url, json={"data": {"password": "x"}, "secret_type": "nope"}, headers=h)
    assert _check_error(doc, "put", item, r) == "invalid_secret_type"
    r = await app_client.put("/v1/secrets/Bad_Path", json={"data": {"a": "b"}}, headers=h)
    assert _check_error(doc, "put", item, r) == "invalid_path"
    r = await app_client.put(url, json={"data": {"a": "b"}, "bogus": 1}, headers=h)
    assert _check_error(doc, "put", item, r) == "validation_error"

    r = await app_client.get(url, headers=h)
    assert r.status_code == 200
    _conforms(oa.Secret, r.json())
    r = await app_client.get(url, params={"version": 9}, headers=h)
    assert _check_error(doc, "get", item, r) == "version_not_found"
    r = await app_client.get("/v1/secrets/app/db:nope", headers=h)
    assert _check_error(doc, "get", item, r) == "not_found"
    r = await app_client.get(url + ":metadata", headers=h)
    assert r.status_code == 200
    _conforms(oa.SecretMetadata, r.json())
    r = await app_client.get(url + ":versions", headers=h)
    assert r.status_code == 200
    _conforms(oa.SecretVersions, r.json())
    _conforms(oa.SecretVersion, r.json()["versions"][0])
    r = await app_client.patch(url, json={"metadata": {"owner": "team"}, "options": {"max_versions": 3}}, headers=h)
    assert r.status_code == 200, r.text
    _conforms(oa.SecretMetadata, r.json())

    r = await app_client.get(base, params=[("prefix", "app/"), ("tag", "db"), ("limit", "1")], headers=h)
    assert r.status_code == 200
    _conforms(oa.SecretList, r.json())
    _conforms(oa.SecretMetadata, r.json()["secrets"][0])
    r = await app_client.get(base, params={"cursor": "garbage!"}, headers=h)
    assert _check_error(doc, "get", base, r) == "invalid_cursor"

    r = await app_client.post(base + "/batch", json={"paths": ["app/db", "app/none"],
                                                     "options": {"include_metadata": True}}, headers=h)
    assert r.status_code == 200
    _conforms(oa.BatchReadResult, r.json())
    _conforms(oa.BatchSecret, r.json()["secrets"]["app/db"])
    _conforms(oa.BatchItemError, r.json()["errors"]["app/none"])
    r = await app_client.post(base + "/batch/metadata", json={"paths": ["app/*"],
                                                              "options": {"expand_wildcards": True}}, headers=h)
    assert r.status_code == 200
    _conforms(oa.BatchMetadataResult, r.json())
    r = await app_client.post(base + "/batch", json={"paths": []}, headers=h)
    assert _check_error(doc, "post", base + "/batch", r) == "validation_error"

    r = await app_client.post(url + ":destroy", json={"versions": [1]}, headers=h)
    assert r.status_code == 200
    _conforms(oa.SecretDestroyed, r.json())
    r = await app_client.delete(url, headers=h)
    assert r.status_code == 204 and r.content == b""
    r = await app_client.get(url, headers=h)
    assert _check_error(doc, "get", item, r) == "secret_not_found"
    r = await app_client.put(url, json={"data": {"password": "x"}}, headers=h)
    assert _check_error(doc, "put", item, r) == "secret_exists"
    r = await app_client.post(url + ":restore", headers=h)
    assert r.status_code == 200
    _conforms(oa.SecretMetadata, r.json())

    # unauthenticated: documented 401 with the envelope
    r = await app_client.get(url)
    assert _check_error(doc, "get", item, r) == "authentication_required"
