"""Trace of a secret read (the fast route served by RequestContextMiddleware): the server span carries the
request id, tenant and identity, PostgreSQL and Redis spans are its children, and no span holds the value."""

from __future__ import annotations

from opentelemetry.trace import SpanKind

from tests.integration import secrets_helpers
from tests.integration.secrets_helpers import Api
from tests.observability.tracing_helpers import ancestors, assert_no_value, by_id, server_span, spans

__all__ = ["spans"]


async def test_secret_read_span_tree(spans, scaikey, settings_factory, make_app_client, redis_clean):
    from tests.helpers import reset_emulator

    await reset_emulator(scaikey)
    settings = settings_factory()
    value = "tr4ce-s3cret-value-do-not-log"
    async with make_app_client(settings) as client:
        api = Api(client, settings, scaikey, client._transport.app)
        await secrets_helpers.grant_test_identities(api)
        h = await api.token()
        r = await api.put("app/traced/password", {"password": value}, h)
        assert r.status_code == 201, r.text
        spans.clear()
        r = await client.get("/v1/secrets/app/traced/password", headers={**h, "X-Request-ID": "req-trace-read"})
        assert r.status_code == 200 and r.json()["data"] == {"password": value}
    finished = list(spans.get_finished_spans())
    root = server_span(finished, "GET", "/v1/secrets")
    assert root.attributes["scaivault.request_id"] == "req-trace-read"
    assert root.attributes["scaivault.tenant"] == "tnt_acme_prod"
    assert root.attributes["scaivault.identity"] == "user:alice@acme.example"
    index = by_id(finished)
    children = [s for s in finished if root in ancestors(s, index)]
    assert any(s.kind == SpanKind.CLIENT and s.attributes.get("db.system") == "postgresql" for s in children), \
        [(s.name, dict(s.attributes)) for s in children]
    for s in children:
        assert s.attributes.get("scaivault.request_id") == "req-trace-read", s.name
    assert_no_value(finished, value, h["Authorization"].split()[1])
