"""Issue 21 item 3: every request body of policies, bindings, secret policies, webhooks, subscriptions and tokens
is typed in /openapi.json with an example; each example is accepted by the real route; validation errors carry
``details.fields[]`` on every endpoint."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from api.schemas.bodies import EXAMPLES
from tests.helpers import ADMIN, bearer, client_token, grant, reset_emulator

TYPED = ("/v1/policies", "/v1/secret-policies", "/v1/webhooks", "/v1/subscriptions", "/v1/auth/tokens")


async def _doc(client: Any) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def _schema_of(doc: dict[str, Any], op: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ref = op["requestBody"]["content"]["application/json"]["schema"].get("$ref")
    assert ref, f"untyped body: {op.get('operationId')}"
    name = ref.rsplit("/", 1)[-1]
    schema = {**doc["components"]["schemas"][name], "components": doc["components"]}
    return name, schema


def _validate(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    resolver_doc = {"components": doc["components"]}
    jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator,
                        resolver=jsonschema.RefResolver("", resolver_doc))


async def test_bodies_of_the_area_are_typed_with_a_valid_example(app_client):
    doc = await _doc(app_client)
    seen = 0
    for path, item in doc["paths"].items():
        if not path.startswith(TYPED):
            continue
        for method, op in item.items():
            if "requestBody" not in op:
                continue
            name, schema = _schema_of(doc, op)
            example = op["requestBody"]["content"]["application/json"].get("example")
            assert example is not None or name in {"PolicyTest", "GenerateBody", "IntrospectBody"}, (method, path)
            if example is not None:
                _validate(doc, schema, example)
            seen += 1
    assert seen >= 15
    token = doc["components"]["schemas"]["TokenCreate"]["properties"]["expires_in"]
    assert "30d" in token["description"] and token["examples"] == ["30d"]


@pytest.fixture
async def admin(scaikey, app_client) -> dict[str, str]:
    await reset_emulator(scaikey)
    h = bearer(await client_token(scaikey, ADMIN))
    await grant(app_client, h, ["sa:dev-admin"], pattern="**", name="admin-all")
    return h


async def test_examples_are_accepted_by_the_routes(app_client, admin):
    r = await app_client.post("/v1/policies", json=EXAMPLES["PolicyCreate"], headers=admin)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = await app_client.put(f"/v1/policies/{pid}", json=EXAMPLES["PolicyReplace"], headers=admin)
    assert r.status_code == 200, r.text
    r = await app_client.post(f"/v1/policies/{pid}/bindings", json=EXAMPLES["BindingCreate"], headers=admin)
    assert r.status_code == 201, r.text
    r = await app_client.patch(f"/v1/policies/{pid}", json=EXAMPLES["PolicyPatch"], headers=admin)
    assert r.status_code == 200, r.text
    r = await app_client.post("/v1/secret-policies", json=EXAMPLES["SecretPolicyCreate"], headers=admin)
    assert r.status_code == 201, r.text
    sp = r.json()["id"]
    r = await app_client.patch(f"/v1/secret-policies/{sp}", json=EXAMPLES["SecretPolicyPatch"], headers=admin)
    assert r.status_code == 200, r.text
    r = await app_client.put(f"/v1/secret-policies/{sp}", json=EXAMPLES["SecretPolicyCreate"], headers=admin)
    assert r.status_code == 200, r.text
    r = await app_client.post("/v1/auth/tokens", json=EXAMPLES["TokenCreate"], headers=admin)
    assert r.status_code == 201, r.text
    r = await app_client.post("/v1/subscriptions", json=EXAMPLES["SubscriptionCreate"], headers=admin)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(("method", "path", "body", "code", "field"), [
    ("post", "/v1/policies", {"name": "x", "rules": []}, "invalid_policy", "rules"),
    ("post", "/v1/policies", {"name": "x", "rules": [{"path_pattern": "a/**", "permissions": ["fly"]}]},
     "invalid_policy", "rules[0].permissions[0]"),
    ("post", "/v1/secret-policies", {"name": "x", "fields": []}, None, "fields"),
    ("post", "/v1/auth/tokens", {"name": "t", "scopes": ["secrets:read"], "expires_in": "forever"},
     "invalid_duration", "expires_in"),
    ("post", "/v1/auth/tokens", {"name": "t", "scopes": []}, "validation_error", "scopes"),
    ("post", "/v1/webhooks", {"name": "w", "url": "https://a.example/h", "secret": "short", "events": ["x.y"]},
     None, "events"),
])
async def test_validation_errors_name_their_fields_in_one_shape(app_client, admin, method, path, body, code, field):
    r = await app_client.request(method, path, json=body, headers=admin)
    assert r.status_code in (400, 422), r.text
    err = r.json()["error"]
    if code is not None:
        assert err["code"] == code, r.text
    fields = err["details"]["fields"]
    assert isinstance(fields, list) and fields and all({"field", "message"} <= set(f) for f in fields), r.text
    assert any(f["field"].startswith(field) for f in fields), r.text


async def test_secret_policy_unknown_key_names_the_field(app_client, admin):
    r = await app_client.post("/v1/secret-policies", json=EXAMPLES["SecretPolicyCreate"], headers=admin)
    assert r.status_code == 201, r.text
    r = await app_client.patch(f"/v1/secret-policies/{r.json()['id']}", json={"colour": "red"}, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["fields"] == [{"field": "colour", "message": r.json()["error"]["message"]}]


async def test_huge_durations_the_typed_bodies_allow_are_client_errors(app_client, admin):
    """The typed policy body allows ``mfa_max_age`` as any integer or duration string: a value past what a
    timedelta (or a datetime) holds is 400, not an OverflowError 500 (core/durations.py caps at 1000 years)."""
    for age in (10**20, "999999999w"):
        r = await app_client.post("/v1/policies", headers=admin, json={"name": "huge", "rules": [
            {"path_pattern": "a/**", "permissions": ["read"], "conditions": {"require_mfa": True, "mfa_max_age": age}}]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_policy", r.text
        assert r.json()["error"]["details"]["fields"][0]["field"] == "rules[0].conditions.mfa_max_age"
    r = await app_client.get("/v1/secrets", params={"expiring_within": "99999999w"}, headers=admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_duration", r.text
