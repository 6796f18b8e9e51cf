"""The PKI maintenance sweeps (workflows/pki.py runs them hourly): certificate.expiring exactly once per threshold,
the tightest threshold only for a certificate first seen inside several, and CRLs rebuilt before nextUpdate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from cryptography import x509

from services.pki import maintenance
from tests.integration.pki.conftest import make_hierarchy, ok


def _state(api: httpx.AsyncClient) -> Any:
    return api._transport.app.state.sv  # type: ignore[attr-defined]


async def _expiring(state: Any) -> list[dict[str, Any]]:
    async with state.db.raw() as conn:
        rows = await conn.fetch("SELECT tenant_id, identity_id, data FROM events"
                                " WHERE event_type = 'certificate.expiring' ORDER BY seq")
    return [{**orjson.loads(r["data"]), "tenant_id": r["tenant_id"], "identity_id": r["identity_id"]} for r in rows]


async def test_certificate_expiring_fires_once_per_threshold(api, admin):
    await make_hierarchy(api, admin, key_type="ec", role_extra={"max_ttl": "2000h"})
    certs = {}
    for name, ttl in (("five", "120h"), ("twenty", "480h"), ("sixty", "1440h")):
        certs[name] = await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={
            "common_name": f"{name}.example.com", "ttl": ttl}))
    revoked = await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "r.example.com",
                                                                                  "ttl": "24h"}))
    await ok(await api.post(f"/v1/pki/certificates/{revoked['id']}/revoke", headers=admin))
    state = _state(api)
    async with state.db.raw() as conn:
        assert await maintenance.emit_expiring(conn) == 2
        assert await maintenance.emit_expiring(conn) == 0  # exactly once
    events = await _expiring(state)
    got = {(e["certificate_id"], e["threshold_days"]) for e in events}
    assert got == {(certs["five"]["id"], 7), (certs["twenty"]["id"], 30)}
    five = next(e for e in events if e["certificate_id"] == certs["five"]["id"])
    assert five["tenant_id"] == "tnt_acme_prod" and five["identity_id"] == "system:pki-maintenance"
    assert five["common_name"] == "five.example.com" and five["days_remaining"] == 4
    assert five["serial_number"] == certs["five"]["serial_number"] and five["not_after"] == certs["five"]["not_after"]
    # 4.5 days later: the 5-day certificate crosses 1 day; nothing else is due; again exactly once
    later = datetime.now(UTC) + timedelta(days=4, hours=12)
    async with state.db.raw() as conn:
        assert await maintenance.emit_expiring(conn, now=later) == 1
        assert await maintenance.emit_expiring(conn, now=later) == 0
    events = await _expiring(state)
    assert [(e["certificate_id"], e["threshold_days"]) for e in events][-1] == (certs["five"]["id"], 1)
    assert len(events) == 3


async def test_crls_are_rebuilt_before_next_update(api, admin):
    h = await make_hierarchy(api, admin, key_type="ec")
    state = _state(api)
    url = f"/v1/pki/ca/{h['inter']['id']}/crl"
    first = x509.load_der_x509_crl((await api.get(url)).content)
    keyring, base = state.get("keyring"), state.settings.base_url
    async with state.db.raw() as conn:
        assert await maintenance.rebuild_due_crls(conn, keyring, base) == 0  # fresh CRLs are not due
        soon = datetime.now(UTC) + timedelta(hours=49)  # nextUpdate (72 h) is now less than 24 h away
        assert await maintenance.rebuild_due_crls(conn, keyring, base, now=soon) == 2  # root and intermediate
        assert await maintenance.rebuild_due_crls(conn, keyring, base, now=soon) == 0
    second = x509.load_der_x509_crl((await api.get(url)).content)
    num = x509.CRLNumber
    assert second.extensions.get_extension_for_class(num).value.crl_number > \
        first.extensions.get_extension_for_class(num).value.crl_number
    assert second.next_update_utc is not None and first.next_update_utc is not None
    assert second.next_update_utc > first.next_update_utc + timedelta(hours=40)
    ica = x509.load_pem_x509_certificate((await ok(await api.get(
        f"/v1/pki/ca/{h['inter']['id']}/certificate", headers=admin)))["certificate_pem"].encode())
    assert second.is_signature_valid(ica.public_key())  # type: ignore[arg-type]


async def test_worker_schedules_and_runs_the_maintenance_workflow(api, admin, pki_settings, worker_process):
    """Through Temporal: the worker creates the hourly schedule on the pki queue, and a run emits the notices."""
    from worker.client import connect
    from worker.registry import PKI
    from workflows.types.pki import MAINTENANCE_WORKFLOW, MaintenanceInput, MaintenanceResult

    await make_hierarchy(api, admin, key_type="ec")
    leaf = await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "w.example.com",
                                                                               "ttl": "48h"}))
    worker_process(pki_settings)
    client = await connect(pki_settings)
    sid = f"{pki_settings.temporal_task_queue_prefix}pki-maintenance"
    handle = client.get_schedule_handle(sid)
    try:
        desc = await handle.describe()
        assert desc.schedule.action.workflow == MAINTENANCE_WORKFLOW  # type: ignore[attr-defined]
        assert desc.schedule.action.task_queue == pki_settings.task_queue(PKI)  # type: ignore[attr-defined]
    finally:
        await handle.delete()
    result = await client.execute_workflow(
        MAINTENANCE_WORKFLOW, MaintenanceInput(), id=f"{pki_settings.temporal_task_queue_prefix}pki-test-run",
        task_queue=pki_settings.task_queue(PKI), result_type=MaintenanceResult,
        execution_timeout=timedelta(seconds=120))
    assert result.expiring_emitted == 1 and result.crls_rebuilt == 0
    assert [(e["certificate_id"], e["threshold_days"]) for e in await _expiring(_state(api))] == [(leaf["id"], 7)]
