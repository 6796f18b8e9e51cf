"""Every user command against the real API, with its documented exit code for success, missing token, denied,
not found and bad input (0 / 2 / 3 / 4 / 5; core.md §8.3), plus config, stdin values, --json, progress,
completion and the operator/user split of ``scaivault``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import Runner

REPO = Path(__file__).resolve().parents[2]


def test_secrets_commands_and_their_exit_codes(run: Runner) -> None:
    # success
    rc, out, err = run("secrets", "write", "cli/app/db", "user=app", "password=-", stdin="from-stdin\n")
    assert rc == 0, err
    rc, out, _ = run("secrets", "read", "cli/app/db", "--json")
    assert rc == 0 and json.loads(out)["data"] == {"user": "app", "password": "from-stdin"}
    rc, out, _ = run("secrets", "read", "cli/app/db", "--field", "password")
    assert (rc, out) == (0, "from-stdin\n")
    rc, out, _ = run("secrets", "read", "cli/app/db")
    assert rc == 0 and "password" in out and "VERSION" not in out and "KEY" in out
    doc = run.config.parent / "doc.json"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text('{"nested": {"a": 1}}')
    assert run("secrets", "write", "cli/app/db", "--type", "json", "--json-file", str(doc),
               "--expires-in", "30d")[0] == 0
    rc, out, _ = run("secrets", "read", "cli/app/db", "--version", "1", "--json")
    assert rc == 0 and json.loads(out)["version"] == 1
    rc, out, _ = run("secrets", "list", "--prefix", "cli/", "--json")
    assert rc == 0 and [s["path"] for s in json.loads(out)["secrets"]] == ["cli/app/db"]
    rc, out, _ = run("secrets", "list", "--prefix", "cli/", "--limit", "1")
    assert rc == 0 and "PATH" in out and "cli/app/db" in out
    rc, out, _ = run("secrets", "versions", "cli/app/db", "--json")
    assert rc == 0 and [v["version"] for v in json.loads(out)["versions"]] == [1, 2]
    rc, out, _ = run("secrets", "metadata", "cli/app/db", "--json")
    assert rc == 0 and json.loads(out)["version_count"] == 2
    rc, out, _ = run("secrets", "expiring", "--days", "31", "--prefix", "cli/", "--json")
    assert rc == 0 and [s["path"] for s in json.loads(out)["secrets"]] == ["cli/app/db"]
    rc, out, err = run("secrets", "batch-read", "cli/app/db", "cli/app/none", "--json", "--progress")
    body = json.loads(out)
    assert rc == 0 and list(body["secrets"]) == ["cli/app/db"] and body["errors"]["cli/app/none"]["code"]
    assert "[" in err and "2/2" in err  # the progress bar went to stderr
    assert run("secrets", "write", "cli/tmp/x", "k=v")[0] == 0
    assert run("secrets", "delete", "cli/tmp/x")[0] == 0
    assert run("secrets", "write", "cli/tmp/y", "k=v")[0] == 0
    assert run("secrets", "delete", "cli/tmp/y", "--hard")[0] == 0

    commands = [
        ("secrets", "read", "{p}"), ("secrets", "write", "{p}", "k=v"), ("secrets", "list", "--prefix", "cli/"),
        ("secrets", "delete", "{p}"), ("secrets", "versions", "{p}"), ("secrets", "metadata", "{p}"),
        ("secrets", "expiring", "--days", "7"), ("secrets", "batch-read", "{p}"), ("secrets", "rotate", "{p}"),
    ]
    problems = []
    for cmd in commands:
        def argv(path: str, cmd: tuple[str, ...] = cmd) -> list[str]:
            return [a.format(p=path) for a in cmd]

        rc, _, err = run(*argv("cli/app/db"), token=None)
        if rc != 2 or "authentication_required" not in err:
            problems.append((cmd, "missing token", rc, err))
        rc, _, err = run(*argv("cli/app/db"), token="skt_bogus_token")
        if rc != 2:
            problems.append((cmd, "bad token", rc, err))
        rc, _, err = run(*argv("cli/app/db"), token="ci")  # scopes, but no policy (rotate: no scope)
        expected_denied = 0 if cmd[1] in ("list", "expiring", "batch-read") else 3  # filtered / per-path errors
        if rc != expected_denied:
            problems.append((cmd, "denied", rc, err))
        if "{p}" in cmd and cmd[1] not in ("write", "batch-read"):
            rc, _, err = run(*argv("cli/app/missing"))
            if rc != 4 or "not_found" not in err:
                problems.append((cmd, "not found", rc, err))
        if "{p}" in cmd and cmd[1] != "batch-read":  # batch: partial success, per-path errors, exit 0
            rc, _, err = run(*argv("bad//path"))
            if rc != 5:
                problems.append((cmd, "bad path", rc, err))
    assert problems == []

    # bad input caught before any request
    assert run("secrets", "write", "cli/app/db", "novalue")[0] == 5
    assert run("secrets", "write", "cli/app/db")[0] == 5
    assert run("secrets", "write", "cli/app/db", "a=-", "b=-", stdin="x")[0] == 5
    assert run("secrets", "read", "cli/app/db", "--field", "nope")[0] == 5
    assert run("secrets", "read", "cli/app/db", "--version", "abc")[0] == 5  # argparse: 5, not its usual 2
    assert run("secrets", "expiring", "--days", "-1")[0] == 5
    assert run("secrets", "read", "cli/app/db", "--version", "99")[0] == 4  # version_not_found
    assert run("secrets", "nosuchcommand")[0] == 5


def test_auth_policies_audit_commands_and_their_exit_codes(run: Runner) -> None:
    # auth login stores url+token with mode 0600; later commands use it without env
    rc, out, err = run("auth", "login", "--token", "-", stdin=run.vault.admin + "\n", token=None)
    assert rc == 0, err
    assert stat.S_IMODE(run.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(run.config.parent.stat().st_mode) == 0o700
    assert json.loads(run.config.read_text())["token"] == run.vault.admin
    rc, out, _ = run("auth", "whoami", "--json", token=None)  # from the config file
    assert rc == 0 and json.loads(out)["identity_id"] == "sa:dev-admin"
    assert run("auth", "login", "--token", "skt_wrong", token=None)[0] == 2  # refused, not stored
    assert json.loads(run.config.read_text())["token"] == run.vault.admin
    assert run("auth", "logout", token=None)[0] == 0
    assert run("auth", "whoami", token=None)[0] == 2
    assert run("auth", "login", token=None)[0] == 5  # --token is required

    rc, out, _ = run("auth", "tokens", "create", "cli-pat", "--scopes", "secrets:read", "--json")
    pat = json.loads(out)
    assert rc == 0 and pat["token"].startswith("skt_")
    rc, out, _ = run("auth", "tokens", "list", "--json")
    assert rc == 0 and pat["id"] in [t["id"] for t in json.loads(out)["tokens"]]
    assert run("auth", "tokens", "revoke", pat["id"])[0] == 0
    assert run("auth", "whoami", token=pat["token"])[0] == 2  # revoked
    assert run("auth", "tokens", "revoke", "pat_doesnotexist")[0] == 4

    # policies
    rc, out, _ = run("policies", "list", "--json")
    pols = json.loads(out)["policies"]
    assert rc == 0 and pols
    rc, out, _ = run("policies", "get", pols[0]["id"], "--json")
    assert rc == 0 and json.loads(out)["rules"]
    rc, out, _ = run("policies", "test", "--identity", "sa:dev-admin", "--path", "x/y", "--permission", "read",
                     "--json")
    assert rc == 0 and json.loads(out)["allowed"] is True
    rc, out, _ = run("policies", "test", "--identity", "sa:nobody", "--path", "x/y", "--permission", "read")
    assert rc == 0 and "allowed" in out and "no" in out
    assert run("policies", "get", "pol_doesnotexist")[0] == 4
    assert run("policies", "test", "--identity", "sa:x", "--path", "x", "--permission", "fly")[0] == 5
    assert run("policies", "test", "--identity", "sa:x", "--path", "bad//p", "--permission", "read")[0] == 5

    # audit tail / export
    assert run("secrets", "write", "cli/audit/x", "k=v")[0] == 0
    rc, out, _ = run("audit", "tail", "-n", "5", "--path-prefix", "cli/audit/", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and lines[-1]["action"] == "write"
    rc, out, _ = run("audit", "tail", "-n", "3")
    assert rc == 0 and out.strip()
    export = run.config.parent / "audit.ndjson"
    rc, _, err = run("audit", "export", "-o", str(export), "--path-prefix", "cli/audit/", "--progress")
    assert rc == 0 and [json.loads(x)["action"] for x in export.read_text().splitlines()] == ["write"]
    assert "exporting" in err
    assert run("audit", "tail", "-n", "0")[0] == 5
    assert run("audit", "tail", "--since", "yesterday")[0] == 5

    problems = []
    for cmd in [("auth", "whoami"), ("auth", "tokens", "list"), ("policies", "list"), ("policies", "get", "pol_x"),
                ("policies", "test", "--identity", "sa:x", "--path", "a", "--permission", "read"),
                ("audit", "tail"), ("audit", "export")]:
        rc, _, err = run(*cmd, token=None)
        if rc != 2:
            problems.append((cmd, "missing token", rc, err))
        if cmd[0] != "auth":  # any valid token may use auth
            rc, _, err = run(*cmd, token="ci")
            if rc != 3:
                problems.append((cmd, "denied", rc, err))
    assert problems == []


def test_env_tenant_debug_and_json_errors(run: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAIVAULT_TENANT_ID", "tnt_doesnotexist")
    rc, _, err = run("secrets", "read", "cli/x")
    assert rc in (3, 4), err  # a foreign tenant answers like a missing one or is refused, never 0
    monkeypatch.delenv("SCAIVAULT_TENANT_ID")
    monkeypatch.setenv("SCAIVAULT_DEBUG", "1")
    rc, _, err = run("secrets", "read", "cli/missing")
    assert rc == 4 and "Traceback" in err
    monkeypatch.setenv("SCAIVAULT_PARTNER_ID", "prt_someone_else")
    monkeypatch.delenv("SCAIVAULT_DEBUG")
    rc, _, err = run("secrets", "list")
    assert rc == 5 and "partner" in err


def test_completion_and_operator_commands_share_the_name(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'sdk'}", "SCAIVAULT_CONFIG": str(tmp_path / "c.json"),
           "SCAIVAULT_URL": "http://127.0.0.1:9"}
    env.pop("SCAIVAULT_TOKEN", None)
    out = subprocess.run([sys.executable, "-m", "cli", "completion", "bash"], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=60)
    assert out.returncode == 0 and "complete -o default -F _scaivault scaivault" in out.stdout
    for word in ("secrets", "migrate", '"audit") words=', "verify", "tail", '"secrets read") words=',
                 '"pki issue") words=', "--key-file", '"leases revoke") words=', "--prefix", '"rotation") words=',
                 '"webhooks create") words=', '"subscriptions poll") words=', '"identity") words='):
        assert word in out.stdout
    probe = ("import sys; from cli.main import main; rc = main(['secrets', 'read', 'a/b']); "
             "bad = sorted({m.split('.')[0] for m in sys.modules} & {'core', 'api', 'services', 'db', 'repositories',"
             " 'sqlalchemy', 'fastapi', 'pydantic', 'temporalio', 'asyncpg'}); print(rc, bad)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=60)
    assert out.stdout.strip() == "2 []", out.stderr  # no token: exit 2, and no server module was imported
    for argv in (["audit", "verify", "--help"], ["migrate", "--help"], ["audit", "--help"]):
        out = subprocess.run([sys.executable, "-m", "cli", *argv], capture_output=True, text=True, env=env,
                             cwd=REPO, timeout=60)
        assert out.returncode == 0, out.stderr
    out = subprocess.run([sys.executable, "-m", "cli", "audit", "--help"], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=60)
    assert all(w in out.stdout for w in ("tail", "export", "verify", "seal", "prune"))
