"""Tracing switched on only by the standard OTEL_* variables, exported over OTLP/HTTP to a collector: the API
and worker subprocesses of a forced identity sync send spans that form one trace, from the API's server span
to the worker's HTTP call to ScaiKey (the issue's "Done when" with a real exporter, not an in-memory one)."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.helpers import ADMIN, TENANT, bearer, client_token


class Collector:
    """A minimal OTLP/HTTP trace receiver (POST /v1/traces, protobuf)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, object]] = []  # (service.name, span)
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                with collector._lock:
                    for rs in req.resource_spans:
                        service = next((a.value.string_value for a in rs.resource.attributes
                                        if a.key == "service.name"), "")
                        for ss in rs.scope_spans:
                            collector.spans.extend((service, s) for s in ss.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self) -> list[tuple[str, object]]:
        with self._lock:
            return list(self.spans)


def _attr(span, key: str) -> str | None:
    return next((a.value.string_value for a in span.attributes if a.key == key), None)


async def test_otlp_env_vars_export_one_trace_from_api_to_scaikey_call(
        scaikey, settings_factory, api_server_factory, worker_process, monkeypatch):
    collector = Collector()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
        settings = settings_factory()
        api = api_server_factory(settings)
        worker_process(settings)
        h = bearer(await client_token(scaikey, ADMIN), **{"X-Request-ID": "req-otlp-sync"})
        async with httpx.AsyncClient(base_url=api.url) as c:
            r = await c.post("/v1/identity/sync", params={"tenant_id": TENANT}, headers=h)
            assert r.status_code == 202, r.text
            sync_id = r.json()["sync_id"]
            deadline = time.monotonic() + 90
            while (await c.get(f"/v1/identity/sync/{sync_id}", headers=h)).json()["status"] not in (
                    "succeeded", "failed", "skipped"):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.3)

        def trace_complete() -> list[tuple[str, object]] | None:
            spans = collector.snapshot()
            roots = [s for svc, s in spans if svc == "scaivault-api" and _attr(s, "scaivault.request_id")
                     == "req-otlp-sync" and s.name.startswith("POST")]
            if not roots:
                return None
            trace = [(svc, s) for svc, s in spans if s.trace_id == roots[0].trace_id]
            if not any(s.name == "RunActivity:identity.run_sync" for _, s in trace):
                return None
            return trace

        deadline = time.monotonic() + 60
        while (trace := trace_complete()) is None:
            assert time.monotonic() < deadline, sorted({(svc, s.name) for svc, s in collector.snapshot()})[:60]
            await asyncio.sleep(0.3)
        services = {svc for svc, _ in trace}
        assert services == {"scaivault-api", "scaivault-worker"}, services
        by_id = {s.span_id: s for _, s in trace}
        activity = next(s for _, s in trace if s.name == "RunActivity:identity.run_sync")
        # an HTTP client span under the activity, in the worker, to ScaiKey
        deadline = time.monotonic() + 30
        while True:
            calls = []
            for svc, s in trace:
                p = s
                while p.parent_span_id and p.parent_span_id in by_id and p is not activity:
                    p = by_id[p.parent_span_id]
                if svc == "scaivault-worker" and p is activity and s is not activity and s.kind == 3:  # CLIENT
                    calls.append(s)
            if calls:
                break
            assert time.monotonic() < deadline, [s.name for _, s in trace]
            await asyncio.sleep(0.5)
            trace = trace_complete() or trace
            by_id = {s.span_id: s for _, s in trace}
        assert _attr(activity, "scaivault.tenant") == TENANT
        assert _attr(activity, "scaivault.request_id") == "req-otlp-sync"
    finally:
        collector.server.shutdown()
