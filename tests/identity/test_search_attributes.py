"""Workflows carry ScaiVaultTenant / ScaiVaultArea / ScaiVaultResourceId and a memo summary, so an operator
finds them with ``temporal workflow list --query`` (worker/visibility.py; docs/operations.md)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.helpers import ADMIN, TENANT
from worker import visibility


async def test_sync_workflow_is_findable_by_tenant_and_area(identity_stack):
    async with identity_stack() as stack:
        h = await stack.token(ADMIN)
        done = await stack.sync_and_wait(h, tenant_id=TENANT)
        assert done["status"] == "succeeded", done
        prefix = stack.settings.temporal_task_queue_prefix
        wf_id = f"{prefix}scaikey-sync/{TENANT}"
        desc = await stack.temporal.get_workflow_handle(wf_id).describe()
        attrs = desc.typed_search_attributes
        assert attrs.get(visibility.TENANT) == TENANT
        assert attrs.get(visibility.AREA) == "sync"
        assert attrs.get(visibility.RESOURCE) == TENANT
        assert (await desc.memo_value("summary")) == f"ScaiKey identity sync of tenant {TENANT}"
        # the documented query finds it (visibility is eventually consistent: poll)
        query = (f"ScaiVaultArea = 'sync' AND ScaiVaultTenant = '{TENANT}' "
                 f"AND WorkflowId STARTS_WITH '{prefix}'")
        deadline = time.monotonic() + 60
        while True:
            found = [wf.id async for wf in stack.temporal.list_workflows(query)]
            if wf_id in found:
                break
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.5)
        other = [wf.id async for wf in stack.temporal.list_workflows(
            f"ScaiVaultArea = 'sync' AND ScaiVaultTenant = 'tnt_nobody' AND WorkflowId STARTS_WITH '{prefix}'")]
        assert other == []


def test_start_options_validate_the_area_and_honour_the_switch(settings_factory):
    on = visibility.start_options(settings_factory(), area="delivery", tenant_id="tnt_a", resource_id="wh_1",
                                  summary="webhook wh_1")
    assert on["memo"] == {"summary": "webhook wh_1"}
    assert on["search_attributes"].get(visibility.RESOURCE) == "wh_1"
    off = visibility.start_options(settings_factory(temporal_search_attributes=False), area="delivery",
                                   tenant_id="tnt_a", summary="s")
    assert "search_attributes" not in off and off["memo"] == {"summary": "s"}
    sched = visibility.schedule_options(settings_factory(), area="housekeeping")
    assert "typed_search_attributes" in sched and "memo" not in sched
    with pytest.raises(ValueError, match="ScaiVaultArea"):
        visibility.start_options(settings_factory(), area="bogus")


async def test_lifecycle_starters_are_findable_by_area_and_tenant(settings_factory):
    """The rotation, lease, federation and renewal starters (each a signal-with-start or start against the real
    dev server; no worker: the workflows wait on their prefixed queue) carry the attributes and the memo, and the
    documented ``ScaiVaultArea = ... AND ScaiVaultTenant = ...`` query lists them."""
    from types import SimpleNamespace

    from services.acme import renewal
    from services.dynamic import revocation
    from services.federation import backends
    from services.rotation import schedule as rotation
    from worker.client import connect
    from workflows.types.dynamic import WAKE_SIGNAL, Wake

    settings = settings_factory()
    prefix = settings.temporal_task_queue_prefix
    client = await connect(settings)
    state = SimpleNamespace(temporal=client, settings=settings)
    await rotation.signal(client, settings, TENANT, 4242, reason="test")
    await revocation.signal(state, TENANT, "eng_vis", WAKE_SIGNAL, Wake("test"), strict=True)
    await backends.start_sync(state, {"tenant_id": TENANT, "id": "fb_vis", "sync_interval_seconds": 3600},
                              reason="test", strict=True)
    await renewal.start(client, settings, TENANT, "crt_vis", "ord_vis")
    expected = {
        "rotation": (rotation.workflow_id(settings, TENANT, 4242), "4242"),
        "lease": (revocation.workflow_id(settings, TENANT, "eng_vis"), "eng_vis"),
        "federation": (backends.workflow_id(settings, TENANT, "fb_vis"), "fb_vis"),
        "renewal": (renewal.workflow_id(settings, TENANT, "crt_vis"), "crt_vis"),
    }
    try:
        for area, (wf_id, resource) in expected.items():
            desc = await client.get_workflow_handle(wf_id).describe()
            attrs = desc.typed_search_attributes
            assert (attrs.get(visibility.AREA), attrs.get(visibility.TENANT), attrs.get(visibility.RESOURCE)) == (
                area, TENANT, resource)
            assert resource in (await desc.memo_value("summary"))
            query = (f'ScaiVaultArea = "{area}" AND ScaiVaultTenant = "{TENANT}" '
                     f'AND WorkflowId STARTS_WITH "{prefix}"')
            deadline = time.monotonic() + 60
            while True:  # visibility is eventually consistent
                found = [wf.id async for wf in client.list_workflows(query)]
                if found == [wf_id]:
                    break
                assert time.monotonic() < deadline, (area, found)
                await asyncio.sleep(0.5)
    finally:
        for wf_id, _ in expected.values():
            try:
                await client.get_workflow_handle(wf_id).terminate("test done")
            except Exception:  # best-effort cleanup
                pass


def test_reconcile_and_maintenance_schedules_carry_their_area(settings_factory):
    from worker import schedules

    settings = settings_factory()
    for build, area in ((schedules._rotation_reconcile, "rotation"), (schedules._lease_reconcile, "lease"),
                        (schedules._pki, "pki")):
        action = build(settings).action
        assert action.typed_search_attributes.get(visibility.AREA) == area
        assert action.memo and action.memo.get("summary")
