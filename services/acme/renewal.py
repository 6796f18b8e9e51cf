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

__all__ = ["renewal_point", "signal", "start", "start_internal", "state", "workflow_id"]

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
    from worker.visibility import start_options

    visibility = start_options(settings, area="renewal", tenant_id=tenant_id, resource_id=managed_id,
                               summary=f"ACME certificate {managed_id} (order {order_id}): order and renewals")
    await with_deadline(settings, lambda rpc_timeout: temporal.start_workflow(
        MANAGED_WORKFLOW, workflow_input(settings, tenant_id, managed_id, order_id),
        id=workflow_id(settings, tenant_id, managed_id), task_queue=settings.task_queue(PKI_QUEUE),
        rpc_timeout=rpc_timeout, **visibility), action="acme.start")


async def start_internal(temporal: Any, settings: Settings, tenant_id: str, cert: Any,
                         renew_before_seconds: float | None) -> None:
    """Start the ``internal`` kind for an internal-CA certificate just issued (``cert``: its row). Called inside
    the issuing transaction: if Temporal cannot take it the request fails (503) and nothing is issued."""
    from worker.client import with_deadline

    if temporal is None:
        from core.errors import AppError

        raise AppError("service_unavailable", "Temporal is not configured; auto_renew needs the workflow engine")
    iso = _iso
    st = ManagedState(status="waiting", current_certificate_id=cert["id"], not_before=iso(cert["not_before"]),
                      not_after=iso(cert["not_after"]), auto_renew=True, renew_before_seconds=renew_before_seconds,
                      history=[cert["id"]])
    inp = ManagedInput(**{**workflow_input(settings, tenant_id, cert["id"], "").__dict__, "kind": "internal",
                          "state": st})
    from worker.visibility import start_options

    cn = cert.get("common_name") if hasattr(cert, "get") else None
    visibility = start_options(settings, area="renewal", tenant_id=tenant_id, resource_id=cert["id"],
                               summary=f"auto-renewal of internal-CA certificate {cert['id']}"
                               + (f" ({cn})" if cn else ""))
    await with_deadline(settings, lambda rpc_timeout: temporal.start_workflow(
        MANAGED_WORKFLOW, inp, id=workflow_id(settings, tenant_id, cert["id"]),
        task_queue=settings.task_queue(PKI_QUEUE), rpc_timeout=rpc_timeout, **visibility), action="acme.start")


def _iso(ts: Any) -> str:
    from datetime import UTC

    return str(ts.astimezone(UTC).isoformat().replace("+00:00", "Z"))


def _not_found(tenant_id: str, managed_id: str) -> Exception:
    from core.errors import AppError

    return AppError("certificate_not_found", f"certificate '{managed_id}' has no renewal workflow (it was not"
                    " issued with auto_renew)", {"id": managed_id, "tenant_id": tenant_id})


async def _or_not_found(aw: Any) -> Any:
    from temporalio.service import RPCError, RPCStatusCode

    try:
        return await aw
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return _MISSING
        raise


_MISSING = object()


async def signal(temporal: Any, settings: Settings, tenant_id: str, managed_id: str, name: str) -> None:
    from worker.client import with_deadline

    handle = temporal.get_workflow_handle(workflow_id(settings, tenant_id, managed_id))
    out = await with_deadline(settings, lambda rpc_timeout: _or_not_found(handle.signal(name, rpc_timeout=rpc_timeout)),
                              action=f"acme.{name}")
    if out is _MISSING:
        raise _not_found(tenant_id, managed_id)


async def state(temporal: Any, settings: Settings, tenant_id: str, managed_id: str) -> ManagedState:
    from worker.client import with_deadline

    handle = temporal.get_workflow_handle(workflow_id(settings, tenant_id, managed_id))
    out = await with_deadline(settings, lambda rpc_timeout: _or_not_found(handle.query(
        STATE_QUERY, result_type=ManagedState, rpc_timeout=rpc_timeout)), action="acme.state")
    if out is _MISSING:
        raise _not_found(tenant_id, managed_id)
    return out  # type: ignore[no-any-return]
