"""`make dev` runs Pebble and pebble-challtestsrv with a ready ACME account and DNS provider: the one curl the
banner prints orders a certificate (wildcard and apex, dns-01) that becomes valid, and stopping the stack stops
Pebble and challtestsrv by their pids."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from devstack import services as svc
from tests.devstack_run import dev_stack

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


def test_make_dev_orders_a_certificate_from_the_local_pebble_in_one_curl(tmp_path: Path) -> None:
    def acme_ready(i: dict) -> bool:
        return bool(i.get("running") and i.get("acme_account_id") and i.get("dns_provider_id"))

    with dev_stack(tmp_path, ready=acme_ready) as stack:
        info = stack.info
        assert info.get("acme_account_id"), f"make dev seeds an ACME account: {info}"
        assert {"pebble", "pebble-challtestsrv"} <= set(info["pids"])
        api, token = info["api_url"], info["admin_token"]
        out = subprocess.run(
            ["curl", "-s", "-H", f"Authorization: Bearer {token}", "-H", "content-type: application/json",
             f"{api}/v1/pki/acme/orders", "-d",
             json.dumps({"account_id": info["acme_account_id"], "domains": ["app.dev.test", "*.dev.test"]})],
            capture_output=True, text=True, timeout=30, check=True)
        order = json.loads(out.stdout)
        assert order["status"] == "pending" and order["dns_provider_id"] == info["dns_provider_id"], order
        h = {"Authorization": f"Bearer {token}"}
        deadline = time.time() + 120
        while time.time() < deadline:
            order = httpx.get(f"{api}/v1/pki/acme/orders/{order['id']}", headers=h).json()
            if order["status"] in ("valid", "invalid"):
                break
            time.sleep(0.5)
        assert order["status"] == "valid", order
        cert = httpx.get(f"{api}/v1/pki/certificates/{order['certificate_id']}", headers=h).json()
        assert sorted(cert["alt_names"]) == ["*.dev.test", "app.dev.test"] and cert["source"] == "acme"
        pids = dict(info.get("pids", {}))
    for name in ("pebble", "pebble-challtestsrv"):
        assert not svc.pid_alive(pids[name]), f"{name} still running after the stack stopped"
