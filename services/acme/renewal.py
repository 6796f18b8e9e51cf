"""The managed-certificate workflow from the outside: its id, start, signals and the ``state`` query.

Workflow id ``<prefix>cert-renewal/<tenant_id>/<cert_id>`` where ``cert_id`` is the first certificate of the
lineage (reserved when the order is placed); renewed certificates are new records chaining ``renewed_from_id``,
the workflow keeps its id. Renewal point: ``not_after - renew_before`` if configured, else ``not_after - 30d``
for certificates living over 90 days, else ``not_after - max(lifetime / 3, 1h)``.
"""

from __future__ import annotations

from typing import Any

from core.settings import Settings
from workflows.types.acme import MANAGED_WORKFLOW, STATE_QUERY, ManagedInput, ManagedState, renewal_point

__all__ = ["renewal_point", "signal", "start", "state", "workflow_id"]

PKI_QUEUE = "pki"


def workflow_id(settings: Settings, tenant_id: str, managed_id: str) -> str:
    return f"{settings.temporal_task_queue_prefix}cert-renewal/{tenant_id}/{managed_id}"


def workflow_input(settings: Settings, tenant_id: str, managed_id: str, order_id: str) -> ManagedInput:
    return ManagedInput(tenant_id=tenant_id, managed_id=managed_id, order_id=order_id,
                        retry_base_seconds=settings.acme_retry_base_seconds,
                        retry_max_seconds=settings.acme_retry_max_seconds,
                        max_order_tries=settings.acme_order_max_tries,
                        heartbeat_timeout_seconds=settings.acme_heartbeat_timeout_seconds)


async def start(temporal: Any, settings: Settings, tenant_id: str, managed_id: str, order_id: str) -> None:
    from worker.client import with_deadline

    if temporal is None:
        from core.errors import AppError

        raise AppError("service_unavailable", "Temporal is not configured; the order cannot run")
    await with_deadline(settings, lambda rpc_timeout: temporal.start_workflow(
        MANAGED_WORKFLOW, workflow_input(settings, tenant_id, managed_id, order_id),
        id=workflow_id(settings, tenant_id, managed_id), task_queue=settings.task_queue(PKI_QUEUE),
        rpc_timeout=rpc_timeout), action="acme.start")


async def signal(temporal: Any, settings: Settings, tenant_id: str, managed_id: str, name: str) -> None:
    from worker.client import with_deadline

    handle = temporal.get_workflow_handle(workflow_id(settings, tenant_id, managed_id))
    await with_deadline(settings, lambda rpc_timeout: handle.signal(name, rpc_timeout=rpc_timeout),
                        action=f"acme.{name}")


async def state(temporal: Any, settings: Settings, tenant_id: str, managed_id: str) -> ManagedState:
    from worker.client import with_deadline

    handle = temporal.get_workflow_handle(workflow_id(settings, tenant_id, managed_id))
    return await with_deadline(settings, lambda rpc_timeout: handle.query(  # type: ignore[no-any-return]
        STATE_QUERY, result_type=ManagedState, rpc_timeout=rpc_timeout), action="acme.state")
