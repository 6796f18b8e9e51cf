"""Tracing stays off (nothing imported, no middleware) without OTEL_* variables; log lines carry the workflow
id and run id inside Temporal code."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from core import tracing
from core.logging import JsonFormatter


def test_requested_only_by_the_standard_variables():
    assert not tracing.requested({})
    assert tracing.requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert tracing.requested({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not tracing.requested({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"})
    assert not tracing.requested({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"})


def test_off_by_default_imports_no_sdk_and_adds_no_middleware():
    code = (
        "import os, sys\n"
        "for k in list(os.environ):\n"
        "    if k.startswith('OTEL_'): del os.environ[k]\n"
        "from api.app import create_app\n"
        "from core.settings import Settings\n"
        "app = create_app(Settings(env='dev', database_url='postgresql://x@127.0.0.1:9/x'))\n"
        "names = [m.cls.__name__ for m in app.user_middleware]\n"
        "assert 'TraceStateMiddleware' not in names, names\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk.trace', 'opentelemetry.instrumentation', 'opentelemetry.exporter'))]\n"
        "assert not loaded, loaded\n"
        "from worker.client import interceptors\n"
        "assert [type(i).__name__ for i in interceptors()] == ['RequestIdInterceptor', 'MetricsInterceptor']\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def _line(**extra):
    record = logging.LogRecord("scaivault.test", logging.INFO, __file__, 1, "hello", None, None)
    record.__dict__.update(extra)
    return json.loads(JsonFormatter().format(record))


def test_workflow_logger_lines_carry_workflow_and_run_id():
    line = _line(temporal_workflow={"workflow_id": "scaikey-sync/tnt_a", "run_id": "r-1", "workflow_type": "X"})
    assert line["workflow_id"] == "scaikey-sync/tnt_a" and line["run_id"] == "r-1"
    assert "temporal_workflow" not in line


def test_activity_lines_carry_workflow_run_and_request_id(monkeypatch):
    import temporalio.activity as act

    class Info:
        workflow_id = "webhook-delivery/wh_1/evt_1"
        workflow_run_id = "run-9"

    monkeypatch.setattr(act, "in_activity", lambda: True)
    monkeypatch.setattr(act, "info", lambda: Info())
    from core.logging import request_id_var

    token = request_id_var.set("req_abc")
    try:
        line = _line()
    finally:
        request_id_var.reset(token)
    assert (line["workflow_id"], line["run_id"], line["request_id"]) == ("webhook-delivery/wh_1/evt_1", "run-9",
                                                                         "req_abc")
