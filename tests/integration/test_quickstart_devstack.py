"""`make dev` end to end: the stack comes up, the printed admin token works for the quickstart with curl,
and SIGTERM (what Ctrl-C sends the process group) stops every process it started."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from devstack import services as svc
from tests.devstack_run import dev_stack

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def curl(*args: str) -> tuple[int, dict]:
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=30)
    body, _, code = out.stdout.rpartition("\n")
    try:
        return int(code), json.loads(body)
    except ValueError:  # empty (204) or not JSON (the Temporal UI's HTML)
        return int(code), {}


def test_make_dev_stack_serves_the_quickstart_and_stops_cleanly(tmp_path):
    with dev_stack(tmp_path, timeout=150) as stack:
        state, info = stack.state, stack.info
        assert info.get("admin_token"), "the dev stack prints a usable admin token"
        api, auth = info["api_url"], f"Authorization: Bearer {info['admin_token']}"
        for key in ("temporal_address", "temporal_ui_url", "database_url", "redis_url", "scaikey_url"):
            assert info[key]

        code, who = curl(f"{api}/v1/auth/whoami", "-H", auth)
        assert code == 200 and who["identity_id"] == "sa:dev-admin" and who["tenant_id"] == "tnt_acme_prod"
        url = f"{api}/v1/secrets/environments/production/db/password"
        code, body = curl("-X", "PUT", url, "-H", auth, "-H", "content-type: application/json",
                          "-d", '{"data": {"password": "s3cr3t"}, "secret_type": "kv"}')
        assert code == 201, body
        code, body = curl("-X", "PUT", url, "-H", auth, "-H", "content-type: application/json",
                          "-d", '{"data": {"password": "rotated"}}')
        assert code == 200 and body["version"] == 2
        code, body = curl(url, "-H", auth)
        assert code == 200 and body["data"] == {"password": "rotated"}
        code, body = curl(f"{url}?version=1", "-H", auth)
        assert body["data"] == {"password": "s3cr3t"}
        code, body = curl(f"{url}:versions", "-H", auth)
        assert [v["version"] for v in body["versions"]] == [1, 2]
        code, body = curl(f"{api}/v1/secrets?prefix=environments/", "-H", auth)
        assert [s["path"] for s in body["secrets"]] == ["environments/production/db/password"]
        assert curl("-X", "DELETE", url, "-H", auth)[0] == 204
        assert curl(url, "-H", auth)[0] == 404
        assert curl("-X", "POST", f"{url}:restore", "-H", auth)[0] == 200
        code, body = curl(f"{api}/v1/audit/logs?path_prefix=environments/", "-H", auth)
        assert code == 200 and {e["action"] for e in body["logs"]} >= {"read", "write", "delete"}
        assert curl(f"{api}/v1/health/ready")[0] == 200
        assert curl(info["temporal_ui_url"])[0] == 200
        _seeded_tenants_partner_names_and_scaikey_webhook(info, state)
    pids = json.loads(stack.stack_file.read_text()).get("pids", {})
    assert pids, "stack.json records the pid of every process it started"
    assert not [name for name, pid in pids.items() if svc.pid_alive(int(pid))], "everything it started is stopped"


def _token(scaikey: str, path: str, client: str, secret: str) -> str:
    out = subprocess.run(["curl", "-s", "-X", "POST", f"{scaikey}{path}", "-u", f"{client}:{secret}",
                          "-d", "grant_type=client_credentials"], capture_output=True, text=True, timeout=30)
    return str(json.loads(out.stdout)["access_token"])


def _seeded_tenants_partner_names_and_scaikey_webhook(info: dict, state: Path) -> None:
    """Issue 21 item 5: right after start-up every seeded tenant exists (no tenant_not_found for tnt_acme_dev
    before a sync), the seed's partner and tenant names came through, and the emulator has ScaiVault's receiver
    registered with the generated secret, so a change made in ScaiKey reaches ScaiVault by webhook."""
    api, scaikey = info["api_url"], info["scaikey_url"]
    assert info.get("identity_synced") is True and info.get("scaikey_webhook_id"), info
    partner = f"Authorization: Bearer {_token(scaikey, '/api/v1/auth/tenants/acme-prod/oauth/token', 'partner-admin-svc', 'dev-partner-admin-secret')}"
    code, who = curl(f"{api}/v1/t/tnt_acme_dev/auth/whoami", "-H", partner)
    assert code == 200 and who["tenant_id"] == "tnt_acme_dev", who
    code, body = curl(f"{api}/v1/identity/tenants", "-H", partner)
    assert code == 200 and {t["id"]: t["name"] for t in body["tenants"]} == {
        "tnt_acme_prod": "Acme Production", "tnt_acme_dev": "Acme Development"}, body
    code, body = curl(f"{api}/v1/identity/partners", "-H", partner)
    assert code == 200 and [(p["id"], p["name"]) for p in body["partners"]] == [("prt_acme", "Acme Corp")], body

    secret = json.loads((state / "secrets.json").read_text())["SCAIKEY_CLIENT_SECRET"]
    platform = f"Authorization: Bearer {_token(scaikey, '/api/v1/platform/oauth/token', 'scaivault', secret)}"
    code, hooks = curl(f"{scaikey}/api/v1/admin/webhooks", "-H", platform)
    assert [h["url"] for h in hooks["items"]] == [f"{api}/v1/identity/webhooks/scaikey"], hooks
    code, _ = curl("-X", "PATCH", f"{scaikey}/api/v1/admin/users/usr_carol", "-H", platform,
                   "-H", "content-type: application/json", "-d", '{"status": "SUSPENDED"}')
    assert code == 200
    deadline = time.time() + 30  # the next sync is an hour away: only the webhook can bring this in time
    while True:
        code, body = curl(f"{api}/v1/identity/tenants/tnt_acme_prod/users?q=carol", "-H", partner)
        users = body.get("users", []) if code == 200 else []
        if users and users[0]["status"] == "SUSPENDED":
            break
        assert time.time() < deadline, body
        time.sleep(0.5)
