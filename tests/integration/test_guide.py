"""docs/guide/integrate.md runs as written (issue 21 item 2): every ```sh block, in order, in one bash session,
against a real API and worker subprocess and the ScaiKey emulator, set up as `make dev` sets them up (the dev
admin's full-access policy; stack.json and secrets.json with the same keys)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from devstack import services as svc
from devstack.admin_token import ensure_dev_admin_policy
from tests.helpers import ADMIN, client_token, reset_emulator

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs/guide/integrate.md"


def guide_script() -> str:
    blocks = re.findall(r"^```sh\n(.*?)^```", GUIDE.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 10, "the guide's shell blocks were not found"
    return "set -eo pipefail\n" + "\n".join(blocks)


def test_readme_links_the_guide() -> None:
    assert "docs/guide/integrate.md" in (REPO / "README.md").read_text()


async def test_the_integration_guide_runs_top_to_bottom(tmp_path, scaikey, scaikey_client_secret, settings_factory,
                                                         api_server_factory, worker_process):
    await reset_emulator(scaikey)
    settings = settings_factory(webhook_allow_private=True)
    api = api_server_factory(settings)
    worker_process(settings)
    admin = await client_token(scaikey, ADMIN)
    assert ensure_dev_admin_policy(api.url, admin)  # what make dev does after start-up
    stack, secrets = tmp_path / "stack.json", tmp_path / "secrets.json"
    stack.write_text(json.dumps({"api_url": api.url, "scaikey_url": scaikey, "admin_token": admin}))
    secrets.write_text(json.dumps({"SCAIKEY_CLIENT_SECRET": scaikey_client_secret}))
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "STACK": str(stack),
           "SECRETS": str(secrets), "RECEIVER_PORT": str(svc.free_port()), "TMPDIR": str(tmp_path)}
    out = subprocess.run(["bash", "-c", guide_script()], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=240)
    log = f"--- stdout ---\n{out.stdout}\n--- stderr ---\n{out.stderr}"
    assert out.returncode == 0, log
    for expected in (
        "sa:dev-admin",                                   # 0: the admin token works
        '"identity_id":"sa:billing-api"',                 # 3: the registered client is sa:<client_id>
        '"allowed":true',                                 # 4: the dry run
        "first-password",                                 # 5: the app reads its secret
        "invalidated secret.updated apps/billing/db",     # 6: the webhook dropped the cached copy
        "second-password",
        "token_expired", "access_denied", "insufficient_scope",   # 7: the errors an app handles
        '{"username":"billing","password":"second-password"}',    # 7: read_secret
        "429",                                            # 7: rate limited
        '"identity_id":"user:bob@acme.example"',          # 8: a user token minted through the emulator
    ):
        assert expected in out.stdout, f"{expected!r} missing\n{log}"
    assert re.search(r"(?im)^retry-after: \d+", out.stdout), log
