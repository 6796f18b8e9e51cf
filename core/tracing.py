"""OpenTelemetry tracing: off unless the standard ``OTEL_*`` variables ask for it (docs/operations.md).

Off (the default) nothing here imports OpenTelemetry's SDK or instrumentation packages, no middleware or
interceptor is added, and the request path runs exactly as without tracing. On, :func:`configure_from_env`
installs a ``TracerProvider`` exporting over OTLP (http/protobuf, configured by ``OTEL_EXPORTER_OTLP_*``), and
instruments httpx, Redis and asyncpg (which is also SQLAlchemy's driver, so one span per statement, raw hot path
included); the API adds the FastAPI/ASGI server span (:func:`instrument_app`) and the Temporal client and
worker get ``temporalio.contrib.opentelemetry.TracingInterceptor`` (worker/client.py), so one trace runs from
the HTTP request through the workflow into its activities and their outbound HTTP calls.

Every span carries ``scaivault.request_id``, ``scaivault.tenant`` and ``scaivault.identity`` when known
(:class:`ContextAttributes`): in a request from the request's scope state, in a workflow or activity from W3C
baggage that the Temporal interceptor carries in workflow headers. Baggage never leaves ScaiVault: the global
propagator (outbound HTTP to ScaiKey and webhook receivers) is trace-context only. No span attribute holds a
secret value: SQL is parameterised ($1...), the Redis instrumentation keeps only the command name, httpx URLs
are redacted (credentials, signed query parameters), and request/response bodies and headers are never
captured.

Enabled when ``OTEL_SDK_DISABLED`` is not ``true`` and any of ``OTEL_TRACES_EXPORTER`` (``otlp`` or
``console``; ``none`` keeps it off), ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
is set.
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Mapping
from typing import Any

from core.logging import request_id_var

log = logging.getLogger("scaivault.tracing")

ATTR_REQUEST_ID = "scaivault.request_id"
ATTR_TENANT = "scaivault.tenant"
ATTR_IDENTITY = "scaivault.identity"
_BAGGAGE_KEYS = (ATTR_REQUEST_ID, ATTR_TENANT, ATTR_IDENTITY)

# The ASGI scope state of the request being served (set by TraceStateMiddleware only while tracing is on).
# RequestContextMiddleware and authorized() fill it as the request proceeds (request_id, then ctx).
_scope_state: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("trace_scope_state",
                                                                                      default=None)
_active = False
_provider: Any = None
# OpenTelemetry modules used from span-processor callbacks, imported once in setup(): a workflow span is
# started from inside Temporal's workflow sandbox, where importing them would be refused (os.environ).
_otel: dict[str, Any] = {}
_instrumented: list[Any] = []


def requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard OTEL_* variables ask for traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def active() -> bool:
    return _active


def configure_from_env(service_name: str) -> bool:
    """Turn tracing on if the environment asks for it (idempotent). Returns whether tracing is active."""
    if _active or not requested():
        return _active
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter_name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporter: Any = ConsoleSpanExporter()
    else:
        if exporter_name != "otlp":
            log.warning("unsupported OTEL_TRACES_EXPORTER, using otlp", extra={"exporter": exporter_name})
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT/HEADERS/TIMEOUT itself
    setup(service_name, exporter)
    log.info("tracing enabled", extra={"exporter": exporter_name, "service": service_name})
    return True


def setup(service_name: str, exporter: Any, *, batch: bool = True) -> Any:
    """Install the tracer provider (once per process) with ``exporter`` and instrument the client libraries.
    Tests pass an ``InMemorySpanExporter`` with ``batch=False``. Returns the provider."""
    global _active, _provider
    from opentelemetry import baggage, context, propagate, trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _otel.update(baggage=baggage, context=context, trace=trace)
    if _provider is None:
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name})
        _provider = TracerProvider(resource=resource)
        _provider.add_span_processor(ContextAttributes())
        trace.set_tracer_provider(_provider)
    _provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    # Outbound HTTP carries traceparent only: tenant and identity (baggage) stay inside ScaiVault.
    propagate.set_global_textmap(TraceContextTextMapPropagator())
    _instrument_libraries()
    _active = True
    return _provider


def _instrument_libraries() -> None:
    if _instrumented:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    for instrumentor in (HTTPXClientInstrumentor(), RedisInstrumentor(), AsyncPGInstrumentor()):
        instrumentor.instrument()
        _instrumented.append(instrumentor)


def disable() -> None:
    """Undo the library instrumentation and stop adding interceptors (tests; the provider stays installed)."""
    global _active
    while _instrumented:
        _instrumented.pop().uninstrument()
    _active = False


def temporal_interceptors() -> list[Any]:
    """Interceptors for the Temporal client (the worker inherits them): empty while tracing is off."""
    if not _active:
        return []
    return [TracingBaggageInterceptor(), _signal_aware_tracing_interceptor()]


def _signal_aware_tracing_interceptor() -> Any:
    """temporalio's TracingInterceptor, with one change: an activity a workflow starts after receiving a signal
    is traced under that signal's sender (e.g. ``POST /v1/identity/sync`` signalling the already-running
    ``scaikey-sync/<tenant>`` entity), not under the request that first started the workflow long ago. The SDK
    records a signal as a span linked to the sender only; without this a forced sync of a running entity would
    leave its activity and the HTTP calls to ScaiKey in another trace. The next activity after the signal takes
    its context; later ones (timer-driven) go back to the workflow's own."""
    from temporalio.contrib.opentelemetry import TracingInterceptor, TracingWorkflowInboundInterceptor

    class SignalAwareInbound(TracingWorkflowInboundInterceptor):
        _signal_context: Any = None

        async def handle_signal(self, input: Any) -> None:
            header = input.headers.get(self.header_key)
            if header is not None:
                carrier = self.payload_converter.from_payloads([header])[0]
                self._signal_context = self._set_on_context(self.text_map_propagator.extract(carrier))
            await super().handle_signal(input)

        def _completed_span(self, span_name: str, **kw: Any) -> None:
            ctx = self._signal_context
            if ctx is None or not span_name.startswith("StartActivity:"):
                return super()._completed_span(span_name, **kw)
            self._signal_context = None
            token = _otel["context"].attach(ctx)
            try:
                return super()._completed_span(span_name, **kw)
            finally:
                _otel["context"].detach(token)

    class SignalAwareTracingInterceptor(TracingInterceptor):
        def workflow_interceptor_class(self, input: Any) -> type[TracingWorkflowInboundInterceptor]:
            super().workflow_interceptor_class(input)  # registers the extern span function
            return SignalAwareInbound

    return SignalAwareTracingInterceptor()


def is_active() -> bool:
    """Whether tracing was set up for this process (``setup``)."""
    return _active


def instrument_app(app: Any) -> None:
    """Add the server span (FastAPI instrumentation, outermost) and the scope-state layer to the ASGI app."""
    if not _active:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    app.add_middleware(TraceStateMiddleware)
    FastAPIInstrumentor.instrument_app(app, exclude_spans=["receive", "send"])


# --------------------------------------------------------------------------------------------- attributes
def _request_values(state: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if not state:
        return out
    rid = state.get("request_id")
    if rid:
        out[ATTR_REQUEST_ID] = str(rid)
    ctx = state.get("ctx")
    principal = getattr(ctx, "principal", None) or state.get("principal")
    tenant = getattr(ctx, "tenant_id", None) or getattr(principal, "tenant_id", None)
    if tenant:
        out[ATTR_TENANT] = str(tenant)
    identity = getattr(principal, "identity_id", None)
    if identity:
        out[ATTR_IDENTITY] = str(identity)
    return out


def current_values(parent_context: Any = None) -> dict[str, str]:
    """request_id, tenant and identity for a span starting now: the request's, else the baggage's."""
    values = _request_values(_scope_state.get())
    if len(values) < len(_BAGGAGE_KEYS) and _otel:
        for key, value in _otel["baggage"].get_all(parent_context).items():
            if key in _BAGGAGE_KEYS and key not in values and value:
                values[key] = str(value)
    if ATTR_REQUEST_ID not in values:
        rid = request_id_var.get()
        if rid:
            values[ATTR_REQUEST_ID] = rid
    return values


class ContextAttributes:
    """SpanProcessor: stamps request_id, tenant and identity on every span as it starts."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        for key, value in current_values(parent_context).items():
            span.set_attribute(key, value)

    def on_end(self, span: Any) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class TraceStateMiddleware:
    """Pure ASGI, installed only while tracing is on, outside RequestContextMiddleware (so fast routes are
    covered): publishes the scope state to ContextAttributes and, when the request ends, stamps the server span
    with the request id, tenant and identity that the inner layers resolved (as the response starts)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        token = _scope_state.set(state)
        span = _otel["trace"].get_current_span()

        async def stamped_send(message: Any) -> None:
            # the ASGI instrumentation ends the server span with the last body chunk: stamp it at the start
            if message["type"] == "http.response.start" and span.is_recording():
                for key, value in _request_values(state).items():
                    span.set_attribute(key, value)
            await send(message)

        try:
            await self.app(scope, receive, stamped_send)
        finally:
            _scope_state.reset(token)


# --------------------------------------------------------------------------------------------- Temporal
try:
    import temporalio.client as _tclient

    class TracingBaggageInterceptor(_tclient.Interceptor):
        """Client interceptor placed before TracingInterceptor: puts the request's request_id, tenant and
        identity into W3C baggage, which TracingInterceptor carries in the workflow's headers, so the workflow's
        and activities' spans carry them too."""

        def intercept_client(self, next: _tclient.OutboundInterceptor) -> _tclient.OutboundInterceptor:
            return _BaggageOutbound(next)

    class _BaggageOutbound(_tclient.OutboundInterceptor):
        async def start_workflow(self, input: Any) -> Any:
            with _baggage():
                return await super().start_workflow(input)

        async def signal_workflow(self, input: Any) -> None:
            with _baggage():
                await super().signal_workflow(input)
except ImportError:  # pragma: no cover - temporalio is a hard dependency
    pass


class _baggage:
    def __enter__(self) -> None:
        baggage, context = _otel["baggage"], _otel["context"]
        ctx = context.get_current()
        for key, value in current_values(ctx).items():
            ctx = baggage.set_baggage(key, value, ctx)
        self._token = context.attach(ctx)

    def __exit__(self, *exc: Any) -> None:
        _otel["context"].detach(self._token)
