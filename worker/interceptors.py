"""Temporal interceptors: the starting request's ``request_id`` into workflows and activities
(:class:`RequestIdInterceptor`), and the background-job metrics of every activity run (:class:`MetricsInterceptor`).

The client side (API, CLI, activities that start workflows) puts the current request id in the
``scaivault-request-id`` header of a workflow start or signal-with-start; the workflow copies its start header
onto every activity and child workflow it schedules; an activity runs with ``core.logging.request_id_var`` set
from it. So every JSON log line of a workflow or activity started by a request carries that request's id next
to ``workflow_id`` and ``run_id`` (core/logging.py). Installed on the client in worker/client.py; a worker
built from that client inherits it (the SDK adds client interceptors that are also worker interceptors).

The header holds the request id only (validated by api/middleware.py: ``[A-Za-z0-9._:-]{1,128}``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import temporalio.activity
import temporalio.client
import temporalio.converter
import temporalio.worker
import temporalio.workflow
from temporalio.api.common.v1 import Payload

from core import metrics
from core.logging import REQUEST_ID_HEADER, request_id_var


def _with_request_id(headers: Mapping[str, Payload], rid: str | None) -> Mapping[str, Payload]:
    if not rid or REQUEST_ID_HEADER in headers:
        return headers
    return {**headers, REQUEST_ID_HEADER: temporalio.converter.PayloadConverter.default.to_payloads([rid])[0]}


class RequestIdInterceptor(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    def intercept_client(self, next: temporalio.client.OutboundInterceptor) -> temporalio.client.OutboundInterceptor:
        return _ClientOutbound(next)

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        return _ActivityInbound(next)

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor] | None:
        return _WorkflowInbound


class _ClientOutbound(temporalio.client.OutboundInterceptor):
    async def start_workflow(self, input: temporalio.client.StartWorkflowInput) -> Any:
        input.headers = _with_request_id(input.headers, request_id_var.get())
        return await super().start_workflow(input)


class _ActivityInbound(temporalio.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        payload = input.headers.get(REQUEST_ID_HEADER)
        rid = None
        if payload is not None:
            try:
                rid = temporalio.converter.PayloadConverter.default.from_payloads([payload])[0]
            except Exception:
                rid = None
        if not isinstance(rid, str) or not rid:
            return await super().execute_activity(input)
        token = request_id_var.set(rid)
        try:
            return await super().execute_activity(input)
        finally:
            request_id_var.reset(token)


def _start_header() -> Payload | None:
    return temporalio.workflow.info().headers.get(REQUEST_ID_HEADER)


class _WorkflowInbound(temporalio.worker.WorkflowInboundInterceptor):
    def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))


class _WorkflowOutbound(temporalio.worker.WorkflowOutboundInterceptor):
    @staticmethod
    def _copy(headers: Mapping[str, Payload]) -> Mapping[str, Payload]:
        header = _start_header()
        if header is None or REQUEST_ID_HEADER in headers:
            return headers
        return {**headers, REQUEST_ID_HEADER: header}

    def start_activity(self, input: temporalio.worker.StartActivityInput) -> temporalio.workflow.ActivityHandle[Any]:
        input.headers = self._copy(input.headers)
        return super().start_activity(input)

    def start_local_activity(
        self, input: temporalio.worker.StartLocalActivityInput
    ) -> temporalio.workflow.ActivityHandle[Any]:
        input.headers = self._copy(input.headers)
        return super().start_local_activity(input)

    async def start_child_workflow(
        self, input: temporalio.worker.StartChildWorkflowInput
    ) -> temporalio.workflow.ChildWorkflowHandle[Any, Any]:
        input.headers = self._copy(input.headers)
        return await super().start_child_workflow(input)


# --------------------------------------------------------------------------------------------- job metrics
class MetricsInterceptor(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    """``worker_scheduler_runs_total{task,outcome}`` and ``worker_scheduler_run_duration_seconds{task}`` for every
    activity run (a retry is another run). A client interceptor too (a no-op there), so it sits in the client's
    list from worker/client.py and every Worker built on that client inherits it. ``task`` is the activity type; an input with a ``step`` field (the
    housekeeping sweepers) adds it: ``housekeeping.run_step:<step>``. Outcome: success, failure, cancelled."""

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        return _MetricsActivityInbound(next)


def job_task(activity_type: str, args: Any) -> str:
    step = getattr(args[0], "step", None) if args else None
    return f"{activity_type}:{step}" if isinstance(step, str) and step else activity_type


class _MetricsActivityInbound(temporalio.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        task = job_task(temporalio.activity.info().activity_type, input.args)
        outcome = "failure"
        t0 = time.perf_counter()
        try:
            result = await super().execute_activity(input)
            outcome = "success"
            return result
        except BaseException as exc:
            if temporalio.activity.is_cancelled() or isinstance(exc, asyncio.CancelledError):
                outcome = "cancelled"
            raise
        finally:
            metrics.WORKER_RUNS.labels(task, outcome).inc()
            metrics.WORKER_RUN_DURATION.labels(task).observe(time.perf_counter() - t0)
