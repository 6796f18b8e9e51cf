"""In-memory span capture for the tracing tests (core/tracing.py turned on in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def spans() -> Iterator[Any]:
    """Tracing on for this test, spans kept in memory; instrumentation undone afterwards."""

    from core import tracing

    exporter = _exporter()
    exporter.clear()
    tracing.setup("scaivault-test", exporter, batch=False)
    try:
        yield exporter
    finally:
        tracing.disable()
        exporter.clear()


_EXPORTER: list[Any] = []


def _exporter() -> Any:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    if not _EXPORTER:  # one exporter per process: the provider (and its processors) can only be installed once
        _EXPORTER.append(InMemorySpanExporter())
    return _EXPORTER[0]


def by_id(finished: list[Any]) -> dict[int, Any]:
    return {s.context.span_id: s for s in finished}


def ancestors(span: Any, index: dict[int, Any]) -> list[Any]:
    out = []
    while span.parent is not None and span.parent.span_id in index:
        span = index[span.parent.span_id]
        out.append(span)
    return out


def server_span(finished: list[Any], method: str, route_part: str) -> Any:
    from opentelemetry.trace import SpanKind

    found = [s for s in finished if s.kind == SpanKind.SERVER and s.name.startswith(method)
             and route_part in s.name]
    assert found, f"no server span {method} {route_part}: {[s.name for s in finished]}"
    return found[-1]


def assert_no_value(finished: list[Any], *values: str) -> None:
    """No attribute of any span holds any of ``values`` (secret values, tokens, client secrets)."""
    for s in finished:
        for key, attr in (s.attributes or {}).items():
            for v in values:
                assert v not in str(attr), f"span {s.name} attribute {key} holds a secret"
