"""Every served route is in a matrix or on the exemption list with its reason (issue 22: a new route that is not
in the matrices fails a test).

* a route that touches secret paths (``/v1/secrets``, ``/v1/partner/secrets``, ``{path}`` routes, ``generate``,
  any ``rotate``) must be in the permission matrix (test_permission_matrix.py);
* a route with an id in its path (any parameter but ``{path}``) must be in the cross-tenant matrix
  (test_tenant_matrix.py);
* every other route must be in one of them or exempt here, with the reason;
* no matrix names a route that is not served (stale rows fail too).

Routes come from the OpenAPI document (which test_openapi.py keeps equal to what the app serves, ``:suffix``
forms included) plus the app's own route table, so nothing served can be missed.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

from tests.integration.matrix import test_permission_matrix as perm
from tests.integration.matrix import test_tenant_matrix as tenant

Op = tuple[str, str]

# Routes in no matrix, each with the reason it needs none. Adding a route here needs a reason a reviewer accepts.
EXEMPT: dict[Op, str] = {
    ("get", "/v1/health"): "public liveness; no tenant data",
    ("get", "/v1/health/ready"): "public readiness; no tenant data",
    ("get", "/v1/health/detailed"): "platform component status (admin scope); no tenant-owned data",
    ("get", "/v1/version"): "public build information",
    ("get", "/v1/metrics"): "process metrics (admin scope); no tenant-owned data",
    ("get", "/v1/auth/whoami"): "describes the caller only (its own token)",
    ("post", "/v1/auth/introspect"): "validates a token given in the body; answers about that token only",
    ("get", "/v1/identity/roles"): "the static list of assignable roles",
    ("post", "/v1/identity/webhooks/scaikey"): "ScaiKey -> ScaiVault, HMAC-signed, no bearer token or tenant "
                                               "context (tests/identity/test_webhooks.py)",
    ("get", "/.well-known/acme-challenge/{token}"): "the ACME CA's http-01 probe: no token and no tenant; answers "
                                                    "only the key authorization of an unguessable token while an "
                                                    "order runs (tests/integration/acme/test_acme_orders.py)",
}

SECRET_TEMPLATE = re.compile(r"^/v1/(partner/)?secrets(/|$)|\{path\}|/generate$|rotate")


def _settings() -> Any:
    from core.settings import Settings

    key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    values: dict[str, Any] = {
        "env": "test", "database_url": "postgresql://x@127.0.0.1:9/x", "redis_url": "redis://127.0.0.1:9",
        "kms_provider": "local", "kms_local_key": key, "token_hmac_key": key, "audit_hmac_key": key,
        "temporal_codec_key": key, "scaikey_client_secret": "x", "scaikey_base_url": "http://127.0.0.1:9",
        "scaikey_audience": "scaivault", "scaikey_client_id": "scaivault"}
    return Settings(**values)


@pytest.fixture(scope="module")
def served() -> tuple[set[Op], set[Op]]:
    """(documented operations, registered operations) of a freshly built app (no lifespan: nothing connects)."""
    from api.app import create_app
    from api.openapi import build_openapi

    app = create_app(_settings())
    doc = build_openapi(app)
    methods = {"get", "put", "post", "patch", "delete"}
    documented = {(m, p) for p, item in doc["paths"].items() for m in item if m in methods}
    registered: set[Op] = set()
    for rc in iter_route_contexts(app.routes):
        path = rc.path_format
        if path is None or path in {"/docs", "/openapi.json", "/docs/oauth2-redirect", "/metrics"}:
            continue
        registered |= {(m.lower(), path) for m in (rc.methods or ()) if m != "HEAD"}
    for mw in app.user_middleware:
        fast_routes: Any = mw.kwargs.get("fast_routes", ())
        for fast in fast_routes:
            registered.add((fast.method.lower(), re.sub(r"\{(\w+):\w+\}", r"{\1}", fast.path)))
    return documented, registered


def _route_of(template: str) -> str:
    return re.sub(r"\}:[a-z]+$", "}", template)


def test_every_served_route_is_documented(served: tuple[set[Op], set[Op]]) -> None:
    documented, registered = served
    doc_routes = {(m, _route_of(t)) for m, t in documented}
    assert registered - doc_routes == set(), "served but not documented (so not classified for the matrices)"


def test_every_route_is_in_a_matrix_or_exempt(served: tuple[set[Op], set[Op]]) -> None:
    documented, _ = served
    in_perm, in_tenant = perm.covered_routes(), tenant.covered_routes()
    unclassified = documented - in_perm - in_tenant - set(EXEMPT)
    assert not unclassified, (
        "routes in no matrix: add rows to tests/integration/matrix/test_permission_matrix.py (secret paths) "
        f"and/or test_tenant_matrix.py (ids), or an EXEMPT entry with its reason: {sorted(unclassified)}")
    both = set(EXEMPT) & (in_perm | in_tenant)
    assert not both, f"exempt and in a matrix at once: {sorted(both)}"


def test_secret_path_routes_are_in_the_permission_matrix(served: tuple[set[Op], set[Op]]) -> None:
    documented, _ = served
    needs = {op for op in documented if SECRET_TEMPLATE.search(op[1])}
    assert ("post", "/v1/secret-policies/{policy_id}/generate") in needs  # the rule sees generate
    missing = needs - perm.covered_routes()
    assert not missing, f"secret-path routes not in the permission matrix: {sorted(missing)}"


def test_id_routes_are_in_the_tenant_matrix(served: tuple[set[Op], set[Op]]) -> None:
    documented, _ = served
    needs = {op for op in documented if re.search(r"\{(?!path\})\w+\}", op[1])} - set(EXEMPT)
    missing = needs - tenant.covered_routes()
    assert not missing, f"routes with ids not in the cross-tenant matrix: {sorted(missing)}"


def test_no_matrix_row_names_a_route_that_is_not_served(served: tuple[set[Op], set[Op]]) -> None:
    documented, _ = served
    stale = (perm.covered_routes() | tenant.covered_routes() | set(EXEMPT)) - documented
    assert not stale, f"matrix rows or exemptions for routes that are not served: {sorted(stale)}"
