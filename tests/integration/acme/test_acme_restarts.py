"""A restart of the Temporal dev server (same database file) and of the worker loses no renewal: the managed
certificate's renewal timer, set before the restart, fires afterwards and renews."""

from __future__ import annotations

import secrets as pysecrets
from pathlib import Path
from typing import Any

from devstack import services as svc
from tests.integration.acme.conftest import Acme, poll

ZONE = "acme.example"


async def test_temporal_and_worker_restart_lose_no_renewal(acme_factory, worker_process, services: Any) -> None:
    base: Path = services.tmp_dir / f"acme-temporal-{pysecrets.token_hex(3)}"
    port = svc.free_port()
    temporal = svc.start_temporal(base, port)
    try:
        # 120 s certificates renewed 60 s before expiry: the renewal is due about a minute after issuance
        acme: Acme = await acme_factory(validity_seconds=120, temporal_address=temporal.address)
        worker = worker_process(acme.settings)
        acct = await acme.account()
        await acme.challtestsrv_provider([ZONE])
        o = await acme.order(account_id=acct["id"], domains=[f"restart.{ZONE}"], renew_before="60s")
        first = (await acme.wait_order(o["id"]))["certificate_id"]
        st = await acme.managed(first)
        assert st["status"] == "waiting" and st["renewals"] == 0 and st["next_renewal"]
        # everything that holds the timer goes away and comes back
        worker.kill()
        temporal.stop()
        temporal = svc.start_temporal(base, port)
        worker_process(acme.settings)

        async def renewed() -> dict[str, Any] | None:
            try:
                s = await acme.managed(first)
            except AssertionError:  # the API's Temporal client may need a moment to reconnect (503)
                return None
            return s if s["renewals"] == 1 else None

        st = await poll(renewed, "the renewal after the restarts", timeout=240)
        rows = await acme.sql("SELECT id, renewed_from_id FROM pki_certificates WHERE renewed_from_id = $1", first)
        assert [r["id"] for r in rows] == [st["current_certificate_id"]]
    finally:
        temporal.stop()
