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
