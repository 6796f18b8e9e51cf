"""One trace from POST /v1/identity/sync through the sync workflow into its activity and the activity's HTTP
calls to the ScaiKey emulator (core/tracing.py, TracingInterceptor on the client and worker)."""

from __future__ import annotations

from opentelemetry.trace import SpanKind

from tests.helpers import ADMIN, TENANT
from tests.observability.tracing_helpers import ancestors, assert_no_value, by_id, server_span, spans

__all__ = ["spans"]


async def test_forced_sync_is_one_trace_from_request_to_scaikey_call(identity_stack, emu, spans,
                                                                     scaikey_client_secret):
    async with identity_stack() as stack:
        h = await stack.token(ADMIN)
        r = await stack.api.post("/v1/identity/sync", params={"tenant_id": TENANT},
                                 headers={**h, "X-Request-ID": "req-trace-sync-1"})
        assert r.status_code == 202, r.text
        done = await stack.wait_sync(r.json()["sync_id"], h)
        assert done["status"] == "succeeded", done
    finished = list(spans.get_finished_spans())
    root = server_span(finished, "POST", "/v1/identity/sync")
    assert root.attributes["scaivault.request_id"] == "req-trace-sync-1"
    assert root.attributes["scaivault.tenant"] == TENANT
    assert root.attributes["scaivault.identity"] == "sa:dev-admin"
    trace = [s for s in finished if s.context.trace_id == root.context.trace_id]
    names = {s.name for s in trace}
    index = by_id(trace)
    # the API's Temporal client span, the workflow run, the activity, all in the request's trace
    assert any(n.startswith(("StartWorkflow:", "SignalWithStartWorkflow:")) for n in names), names
    assert "RunWorkflow:ScaiKeySync" in names, names
    run_activity = [s for s in trace if s.name == "RunActivity:identity.run_sync"]
    assert run_activity, names
    # the activity's outbound HTTP calls to the emulator are children of the activity span, in the same trace
    http_calls = [s for s in trace if s.kind == SpanKind.CLIENT and s.name in ("GET", "POST")
                  and run_activity[0] in ancestors(s, index)]
    assert http_calls, [(s.name, s.kind) for s in trace]
    assert any(root in ancestors(s, index) for s in http_calls)
    # workflow and activity spans carry the request's id, tenant and identity (baggage through Temporal headers)
    for s in [*run_activity, *http_calls]:
        assert s.attributes.get("scaivault.request_id") == "req-trace-sync-1", (s.name, dict(s.attributes))
        assert s.attributes.get("scaivault.tenant") == TENANT, (s.name, dict(s.attributes))
        assert s.attributes.get("scaivault.identity") == "sa:dev-admin"
    assert run_activity[0].attributes["temporalWorkflowID"].endswith(f"scaikey-sync/{TENANT}")
    # no credential in any span: the bearer token, the client secret
    assert_no_value(finished, h["Authorization"].split()[1], scaikey_client_secret)


async def test_forced_sync_of_a_running_entity_joins_the_request_trace(identity_stack, emu, spans):
    """The entity ``scaikey-sync/<tenant>`` already runs (started by an earlier sync): the second request only
    signals it, and the activity the signal causes is still traced under that request."""
    async with identity_stack() as stack:
        h = await stack.token(ADMIN)
        first = await stack.sync_and_wait(h, tenant_id=TENANT)
        assert first["status"] == "succeeded", first
        r = await stack.api.post("/v1/identity/sync", params={"tenant_id": TENANT},
                                 headers={**h, "X-Request-ID": "req-trace-sync-2"})
        assert r.status_code == 202, r.text
        done = await stack.wait_sync(r.json()["sync_id"], h)
        assert done["status"] == "succeeded", done
    finished = list(spans.get_finished_spans())
    root = [s for s in finished if s.kind == SpanKind.SERVER
            and (s.attributes or {}).get("scaivault.request_id") == "req-trace-sync-2" and s.name.startswith("POST")]
    assert root, "the second request's server span"
    trace = [s for s in finished if s.context.trace_id == root[0].context.trace_id]
    names = {s.name for s in trace}
    assert "RunWorkflow:ScaiKeySync" not in names  # the workflow was not started by this request
    run_activity = [s for s in trace if s.name == "RunActivity:identity.run_sync"]
    assert run_activity, names
    index = by_id(trace)
    assert any(s.kind == SpanKind.CLIENT and run_activity[0] in ancestors(s, index) for s in trace)
    assert run_activity[0].attributes.get("scaivault.request_id") == "req-trace-sync-2"
