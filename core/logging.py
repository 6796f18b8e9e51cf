"""Structured JSON logs. Every line carries the request_id bound to the current context and, inside a Temporal
workflow or activity, ``workflow_id`` and ``run_id`` (plus the request_id of the request that started the
workflow: worker/interceptors.py carries it in a workflow header), so one grep follows a request end to end."""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds").replace(
                "+00:00", "Z"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        workflow = temporal_ids(record)
        if workflow is not None:
            out["workflow_id"], out["run_id"] = workflow[0], workflow[1]
            rid = rid or workflow[2]
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_") and key not in _TEMPORAL_EXTRAS:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        rid = request_id_var.get()
        base = super().format(record)
        workflow = temporal_ids(record)
        if workflow is not None:
            base = f"{base} workflow_id={workflow[0]} run_id={workflow[1]}"
            rid = rid or workflow[2]
        return f"{base} request_id={rid}" if rid else base


_TEMPORAL_EXTRAS = frozenset({"temporal_workflow", "temporal_activity"})
REQUEST_ID_HEADER = "scaivault-request-id"  # Temporal header carrying the starting request's id


def temporal_ids(record: logging.LogRecord) -> tuple[str, str, str | None] | None:
    """(workflow_id, run_id, request_id) when the line is logged inside a workflow or an activity."""
    activity = sys.modules.get("temporalio.activity")
    if activity is not None and activity.in_activity():
        a = activity.info()
        return a.workflow_id or "", a.workflow_run_id or "", None  # request_id: set by the activity interceptor
    workflow = sys.modules.get("temporalio.workflow")
    if workflow is not None and workflow.in_workflow():
        w = workflow.info()
        rid = None
        header = w.headers.get(REQUEST_ID_HEADER)
        if header is not None:
            try:
                rid = orjson.loads(header.data)
            except Exception:
                rid = None
        return w.workflow_id, w.run_id, rid if isinstance(rid, str) else None
    extra = record.__dict__.get("temporal_workflow")  # workflow.logger's extra (e.g. a replayed line)
    if isinstance(extra, dict) and extra.get("workflow_id"):
        return str(extra["workflow_id"]), str(extra.get("run_id") or ""), None
    return None


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    lvl = {"warn": "WARNING"}.get(level.lower(), level.upper())
    root.setLevel(lvl)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "botocore", "urllib3", "temporalio.activity"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
