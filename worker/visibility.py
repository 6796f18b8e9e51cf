"""The Temporal UI as an operator's console: search attributes and memos every workflow start carries
(docs/operations.md "Temporal: finding workflows").

* ``ScaiVaultTenant`` (Keyword): the tenant the work belongs to (absent for platform-wide work).
* ``ScaiVaultArea`` (Keyword): one of :data:`AREAS` (``sync``, ``delivery``, ``housekeeping``, ``rotation``,
  ``renewal``, ``lease``, ``federation``, ``relay``, ``pki``).
* ``ScaiVaultResourceId`` (Keyword): the entity's id (webhook, sync, secret, certificate, lease, backend id).

Search attributes are stored in plain text by Temporal's visibility store: ids only, never a secret path, a
name or a value. The human summary goes in the memo (``{"summary": ...}``), which passes through the encrypting
data converter like every payload, so it may name a path or a certificate (readable in the UI with the codec).

Every starter calls :func:`start_options` (``client.start_workflow(..., **start_options(...))``) or
:func:`schedule_options` (``ScheduleActionStartWorkflow(..., **schedule_options(...))``). The attributes must
be registered on the namespace: the dev stack starts Temporal with them, the worker registers missing ones at
start (:func:`ensure_search_attributes`, self-hosted clusters), and for Temporal Cloud an operator adds them
once (docs/operations.md). ``TEMPORAL_SEARCH_ATTRIBUTES=false`` leaves them off (memo only), for a namespace
where they cannot be registered.
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from core.settings import Settings

log = logging.getLogger("scaivault.temporal")

TENANT = SearchAttributeKey.for_keyword("ScaiVaultTenant")
AREA = SearchAttributeKey.for_keyword("ScaiVaultArea")
RESOURCE = SearchAttributeKey.for_keyword("ScaiVaultResourceId")
KEYS = (TENANT, AREA, RESOURCE)
AREAS = frozenset({"sync", "delivery", "housekeeping", "rotation", "renewal", "lease", "federation", "relay",
                   "pki"})
_SUMMARY_MAX = 400


def search_attributes(area: str, tenant_id: str | None = None, resource_id: str | None = None
                      ) -> TypedSearchAttributes:
    if area not in AREAS:
        raise ValueError(f"unknown ScaiVaultArea {area!r}; add it to worker/visibility.AREAS")
    pairs: list[SearchAttributePair[Any]] = [SearchAttributePair(AREA, area)]
    if tenant_id:
        pairs.append(SearchAttributePair(TENANT, tenant_id))
    if resource_id:
        pairs.append(SearchAttributePair(RESOURCE, resource_id))
    return TypedSearchAttributes(pairs)


def memo(summary: str | None) -> dict[str, Any] | None:
    return {"summary": summary[:_SUMMARY_MAX]} if summary else None


def start_options(settings: Settings, *, area: str, tenant_id: str | None = None, resource_id: str | None = None,
                  summary: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``Client.start_workflow``: ``search_attributes`` and ``memo``."""
    out: dict[str, Any] = {}
    attrs = search_attributes(area, tenant_id, resource_id)  # validates the area even when attributes are off
    if settings.temporal_search_attributes:
        out["search_attributes"] = attrs
    m = memo(summary)
    if m is not None:
        out["memo"] = m
    return out


def schedule_options(settings: Settings, *, area: str, tenant_id: str | None = None,
                     resource_id: str | None = None, summary: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``ScheduleActionStartWorkflow``: ``typed_search_attributes`` and ``memo``."""
    out = start_options(settings, area=area, tenant_id=tenant_id, resource_id=resource_id, summary=summary)
    if "search_attributes" in out:
        out["typed_search_attributes"] = out.pop("search_attributes")
    return out


async def ensure_search_attributes(client: Any, settings: Settings) -> bool:
    """Register the missing attributes on the namespace (idempotent; self-hosted and dev servers). Returns
    whether all are registered; logs the documented manual step when it cannot (e.g. Temporal Cloud)."""
    if not settings.temporal_search_attributes:
        return False
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=settings.temporal_namespace))
        missing = {k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in KEYS
                   if k.name not in listed.custom_attributes}
        if missing:
            await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
                namespace=settings.temporal_namespace, search_attributes=missing))
            log.info("registered Temporal search attributes", extra={"attributes": sorted(missing)})
        return True
    except Exception as exc:
        log.error("cannot register Temporal search attributes ScaiVaultTenant, ScaiVaultArea, ScaiVaultResourceId "
                  "(Keyword): register them once (docs/operations.md) or set TEMPORAL_SEARCH_ATTRIBUTES=false; "
                  "until then workflow starts that carry them fail",
                  extra={"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
        return False
