"""Auto-renewal through the real worker against a real Pebble + challtestsrv: a short-lived managed certificate
renews by itself (twice) into new records chaining renewed_from_id; a challenge failure is classified, audited and
shown by the workflow's state query, then the renewal succeeds once the DNS record is fixed; a worker SIGKILLed in
the middle of a renewal order loses nothing."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.pki import maintenance
from tests.integration.acme.conftest import Acme, poll

ZONE = "acme.example"


async def _issued(acme: Acme, **body: Any) -> tuple[dict[str, Any], str]:
    acct = await acme.account()
    if body.get("challenge_type", "dns-01") == "dns-01":
        await acme.challtestsrv_provider([ZONE])
    o = await acme.order(account_id=acct["id"], **body)
    done = await acme.wait_order(o["id"])
    return done, done["certificate_id"]


async def _lineage(acme: Acme, managed_id: str) -> list[dict[str, Any]]:
    rows = await acme.sql(
        "SELECT c.id, c.renewed_from_id, c.not_after FROM pki_certificates c JOIN acme_orders o"
        " ON o.id = c.acme_order_id WHERE o.managed_id = $1 ORDER BY c.created_at, c.id", managed_id)
    return [dict(r) for r in rows]


async def test_a_short_lived_managed_certificate_renews_by_itself_twice(acme_factory, worker_process) -> None:
    acme: Acme = await acme_factory(validity_seconds=120)
    worker_process(acme.settings)
    # 120 s certificates renewed 110 s before expiry: a renewal about every 10 s
    _, first = await _issued(acme, domains=[f"short.{ZONE}"], challenge_type="dns-01", renew_before="110s")

    async def renewed_twice() -> dict[str, Any] | None:
        st = await acme.managed(first)
        return st if st["renewals"] >= 2 else None

    st = await poll(renewed_twice, "two renewals", timeout=180)
    assert st["workflow_id"].endswith(f"cert-renewal/tnt_acme_prod/{first}")
    r = await acme.api.post(f"/v1/pki/acme/managed/{first}/pause", headers=acme.admin)
    assert r.status_code == 202, r.text
    paused = await poll(lambda: _status(acme, first, "paused"), "the paused state")
    assert paused["paused"] is True
    chain = await _lineage(acme, first)
    assert chain[0]["id"] == first and chain[0]["renewed_from_id"] is None
    assert len(chain) >= 3
    for prev, cur in itertools.pairwise(chain):
        assert cur["renewed_from_id"] == prev["id"] and cur["not_after"] > prev["not_after"]
    renewed = await acme.events("certificate.renewed")
    assert [(e["old_certificate_id"], e["certificate_id"]) for e in renewed][:2] == [
        (chain[0]["id"], chain[1]["id"]), (chain[1]["id"], chain[2]["id"])]
    audit = await acme.sql("SELECT resource_id FROM audit_log WHERE action = 'pki_acme_renew' AND success"
                           " AND identity_id = 'system:acme-renewer' ORDER BY seq")
    assert [a["resource_id"] for a in audit][:2] == [chain[1]["id"], chain[2]["id"]]
    acme.verify_chain((await acme.api.get(f"/v1/pki/certificates/{chain[2]['id']}/pem", headers=acme.admin)).text)
    cert = await acme.ok(await acme.api.get(f"/v1/pki/certificates/{chain[2]['id']}", headers=acme.admin))
    assert cert["renewed_from_id"] == chain[1]["id"]
    # certificate.expiring covers ACME records (the PKI maintenance sweep), whatever the renewal does
    chain = await _lineage(acme, first)
    conn = await asyncpg.connect(acme.settings.asyncpg_dsn)
    try:
        now = datetime.now(UTC)
        await maintenance.emit_expiring(conn, now=now)
    finally:
        await conn.close()
    live = {c["id"] for c in chain if c["not_after"] > now}
    expiring = {e["certificate_id"]: e for e in await acme.events("certificate.expiring")}
    assert chain[-1]["id"] in live and live <= set(expiring)
    assert expiring[chain[-1]["id"]]["threshold_days"] == 1 and expiring[chain[-1]["id"]]["ca_id"] is None


async def _status(acme: Acme, cert_id: str, status: str) -> dict[str, Any] | None:
    st = await acme.managed(cert_id)
    return st if st["status"] == status else None


async def test_challenge_failure_is_classified_audited_and_queried_then_fixed(acme_factory, worker_process) -> None:
    acme: Acme = await acme_factory(acme_order_max_tries=2)
    worker_process(acme.settings)
    host = f"flaky.{ZONE}"
    _, first = await _issued(acme, domains=[host], challenge_type="http-01")
    st = await acme.managed(first)
    assert st["status"] == "waiting" and st["renewals"] == 0 and st["last_error"] is None
    # break DNS: the name now resolves to an address where nothing answers, and renew now
    await acme.chall("/add-a", {"host": host + ".", "addresses": ["127.0.0.2"]})
    assert (await acme.api.post(f"/v1/pki/acme/managed/{first}/renew", headers=acme.admin)).status_code == 202

    async def failed() -> dict[str, Any] | None:
        s = await acme.managed(first)
        return s if s["last_error"] and s["last_error"]["code"] == "acme_challenge_failed" else None

    st = await poll(failed, "the classified challenge failure")
    assert st["attempts"] >= 1 and st["current_order_id"] and host in st["last_error"]["message"]
    audit = await acme.sql("SELECT success, error_code, extra_data::text AS extra FROM audit_log"
                           " WHERE action = 'pki_acme_renew' AND NOT success ORDER BY seq")
    assert audit and {a["error_code"] for a in audit} == {"acme_challenge_failed"}
    order = await acme.get_order(st["current_order_id"])
    assert order["error"]["code"] == "acme_challenge_failed" and order["status"] in ("pending", "processing")
    assert [c["status"] for c in order["challenges"]] == ["invalid"] and order["challenges"][0]["error"]

    # after ACME_ORDER_MAX_TRIES (2) failed attempts the order is abandoned and a fresh one placed
    async def abandoned() -> list[dict[str, Any]] | None:
        rows = await acme.sql("SELECT id, status, tries, error::text AS error FROM acme_orders"
                              " WHERE managed_id = $1 AND renewal_of_id IS NOT NULL ORDER BY id", first)
        return [dict(r) for r in rows] if len(rows) >= 2 else None

    orders = await poll(abandoned, "a fresh renewal order after the abandoned one")
    assert orders[0]["status"] == "invalid" and orders[0]["tries"] == 2
    assert "acme_challenge_failed" in orders[0]["error"]
    assert orders[1]["status"] != "invalid"
    # fix the record: the next retry (backoff 2-5 s in tests) renews
    await acme.chall("/clear-a", {"host": host + "."})

    async def renewed() -> dict[str, Any] | None:
        s = await acme.managed(first)
        return s if s["renewals"] == 1 and s["last_error"] is None else None

    st = await poll(renewed, "the renewal after the fix")
    assert st["status"] == "waiting" and st["current_certificate_id"] != first
    chain = await _lineage(acme, first)
    assert [c["renewed_from_id"] for c in chain] == [None, first]
    [renewal_order] = await acme.sql("SELECT acme_order_id FROM pki_certificates WHERE id = $1", chain[1]["id"])
    assert renewal_order["acme_order_id"] != orders[0]["id"]  # issued by a fresh order, not the abandoned one
    ok = await acme.sql("SELECT resource_id FROM audit_log WHERE action = 'pki_acme_renew' AND success")
    assert [a["resource_id"] for a in ok] == [chain[1]["id"]]


async def test_worker_killed_during_a_renewal_order_and_the_renewal_completes(acme_factory, worker_process) -> None:
    acme: Acme = await acme_factory()
    normal = worker_process(acme.settings)
    _, first = await _issued(acme, domains=[f"durable.{ZONE}"], challenge_type="dns-01")
    normal.stop()
    pausing = worker_process(acme.settings.model_copy(update={"acme_crash_test_pause_seconds": 600.0}))
    assert (await acme.api.post(f"/v1/pki/acme/managed/{first}/renew", headers=acme.admin)).status_code == 202

    async def processing() -> dict[str, Any] | None:
        rows = await acme.sql("SELECT id, status FROM acme_orders WHERE managed_id = $1 AND renewal_of_id = $2",
                              first, first)
        return dict(rows[0]) if rows and rows[0]["status"] == "processing" else None

    order = await poll(processing, "the renewal order to reach processing (challenges published)")
    pausing.kill()
    assert not pausing.alive()
    worker_process(acme.settings)

    async def renewed() -> dict[str, Any] | None:
        s = await acme.managed(first)
        return s if s["renewals"] == 1 else None

    st = await poll(renewed, "the renewal after the worker restart", timeout=180)
    done = await acme.get_order(order["id"])
    assert done["status"] == "valid" and done["certificate_id"] == st["current_certificate_id"]
    chain = await _lineage(acme, first)
    assert [c["renewed_from_id"] for c in chain] == [None, first]  # exactly one renewed certificate
    assert [e["certificate_id"] for e in await acme.events("certificate.renewed")] == [chain[1]["id"]]
    acme.verify_chain((await acme.api.get(f"/v1/pki/certificates/{chain[1]['id']}/pem", headers=acme.admin)).text)
