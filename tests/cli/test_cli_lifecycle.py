"""The lifecycle and events commands against the real API, each with its documented exit code (core.md §8.3):
0 ok, 2 missing/bad token, 3 denied, 4 not found, 5 bad input. ``pki`` (issue, sign, list, get, revoke, cas,
roles), ``dynamic creds`` and ``leases`` (list, get, renew, revoke, revoke --prefix) against a real PostgreSQL
target, ``rotation`` (create, attach, due, rotate, history, detach, delete), ``webhooks`` (delivered to a real
receiver that checks the signature), ``subscriptions`` and ``identity``."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from scaivault_sdk import SyncScaiVaultClient

from tests.cli.conftest import Runner
from tests.integration.dynamic.conftest import CREATE, target  # noqa: F401 (fixture: a real PostgreSQL target)
from tests.integration.pki.helpers import make_csr
from tests.webhook_receiver import Receiver


@pytest.fixture
def settings(settings_factory: Any) -> Any:
    """The API of this module may deliver webhooks to the loopback receiver."""
    return settings_factory(webhook_allow_private=True)


def _exit_codes(run: Runner, commands: list[tuple[str, ...]], *, denied: int = 3) -> list[Any]:
    """Every command: no token -> 2, an unknown token -> 2, the CI token (secrets scopes only) -> ``denied``."""
    problems = []
    for cmd in commands:
        for token, want in ((None, 2), ("skt_bogus_token", 2), ("ci", denied)):
            rc, _, err = run(*cmd, token=token)
            if rc != want:
                problems.append((cmd, token, rc, err))
    return problems


def test_pki_commands(run: Runner, tmp_path: Path) -> None:
    with SyncScaiVaultClient(run.vault.url, token=run.vault.admin) as c:
        root = c.pki.cas.create("root-cli", "Root CLI", key_type="ec", key_size=256)
        c.pki.roles.create("web-cli", root.id, allowed_domains=["example.com"], allow_subdomains=True,
                           max_ttl="720h", key_type="ec", key_bits=256)

    rc, out, err = run("pki", "issue", "web-cli", "--common-name", "api.example.com", "--alt-names",
                       "www.example.com", "--ttl", "24h", "--json")
    assert rc == 0, err
    issued = json.loads(out)
    assert "PRIVATE KEY" in issued["private_key"] and issued["certificate"].startswith("-----BEGIN CERTIFICATE")
    cert, key, chain = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "chain.pem"
    rc, out, err = run("pki", "issue", "web-cli", "--cn", "files.example.com", "--cert-file", str(cert),
                       "--key-file", str(key), "--chain-file", str(chain))
    assert rc == 0, err
    assert "PRIVATE KEY" not in out and "BEGIN CERTIFICATE" not in out and "files.example.com" in out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and "PRIVATE KEY" in key.read_text()
    assert cert.read_text().startswith("-----BEGIN CERTIFICATE") and "BEGIN CERTIFICATE" in chain.read_text()
    rc, out, _ = run("pki", "issue", "web-cli", "--cn", "plain.example.com")
    assert rc == 0 and "BEGIN CERTIFICATE" in out and "PRIVATE KEY" in out  # like `vault write pki/issue`

    csr = tmp_path / "req.pem"
    csr.write_text(make_csr("signed.example.com"))
    rc, out, err = run("pki", "sign", "web-cli", "--csr-file", str(csr), "--json")
    assert rc == 0, err
    signed = json.loads(out)
    assert signed["common_name"] == "signed.example.com" and "private_key" not in signed
    rc, out, _ = run("pki", "sign", "web-cli", "--csr-file", "-", stdin=make_csr("stdin.example.com"))
    assert rc == 0 and "stdin.example.com" in out

    rc, out, _ = run("pki", "list", "--json")
    assert rc == 0 and issued["id"] in [x["id"] for x in json.loads(out)["certificates"]]
    rc, out, _ = run("pki", "list", "--limit", "2")
    assert rc == 0 and "COMMON_NAME" in out and len(out.strip().splitlines()) == 3
    rc, out, _ = run("pki", "get", issued["id"], "--pem")
    assert rc == 0 and out.strip() == issued["certificate"].strip()
    rc, out, _ = run("pki", "get", issued["id"])
    assert rc == 0 and "www.example.com" in out
    rc, out, _ = run("pki", "revoke", issued["id"], "--reason", "superseded")
    assert rc == 0 and "revoked" in out and "superseded" in out
    rc, out, _ = run("pki", "list", "--include-revoked", "--json")
    assert rc == 0 and [x["revoked"] for x in json.loads(out)["certificates"] if x["id"] == issued["id"]] == [True]
    rc, out, _ = run("pki", "cas", "--json")
    assert rc == 0 and [x["id"] for x in json.loads(out)["cas"]] == [root.id]
    rc, out, _ = run("pki", "roles")
    assert rc == 0 and "web-cli" in out

    # not found (4), bad input (5)
    assert run("pki", "issue", "no-such-role", "--cn", "a.example.com")[0] == 4
    assert run("pki", "get", "cert_01HXXXXXXXXXXXXXXXXXXXXXXX")[0] == 4
    assert run("pki", "revoke", "cert_01HXXXXXXXXXXXXXXXXXXXXXXX")[0] == 4
    rc, _, err = run("pki", "issue", "web-cli", "--cn", "evil.example.org")
    assert rc == 5 and "not allowed" in err
    assert run("pki", "issue", "web-cli", "--cn", "a.example.com", "--ttl", "forever")[0] == 5
    assert run("pki", "revoke", signed["id"], "--reason", "because")[0] == 5
    assert run("pki", "issue", "web-cli")[0] == 5  # --common-name is required
    assert run("pki", "sign", "web-cli", "--csr-file", str(tmp_path / "missing.pem"))[0] == 5
    assert run("pki", "sign", "web-cli", "--csr-file", "-", stdin="not a csr")[0] == 5
    assert _exit_codes(run, [("pki", "issue", "web-cli", "--cn", "a.example.com"), ("pki", "list"),
                             ("pki", "get", signed["id"]), ("pki", "revoke", signed["id"]), ("pki", "cas"),
                             ("pki", "roles"), ("pki", "sign", "web-cli", "--csr-file", str(csr))]) == []


def test_dynamic_leases_and_rotation_commands(run: Runner, target: Any) -> None:  # noqa: F811
    with SyncScaiVaultClient(run.vault.url, token=run.vault.admin) as c:
        c.secrets.write("cli/dyn/root", {"username": target.root_user, "password": target.root_password})
        c.dynamic.engines.create("pg", "database", {"plugin": "postgresql", "connection_url": target.url_template(),
                                                    "root_credentials_path": "cli/dyn/root"}, max_ttl="2h")
        c.dynamic.roles.create("pg", "ro", creation_statements=[s.replace("{db}", f'"{target.database}"')
                                                                for s in CREATE])

    rc, out, err = run("dynamic", "creds", "pg", "ro", "--ttl", "30m", "--json")
    assert rc == 0, err
    cred = json.loads(out)
    assert cred["data"]["username"] == cred["username"] and cred["data"]["password"]
    rc, out, _ = run("dynamic", "creds", "pg", "ro")
    assert rc == 0 and "PASSWORD" not in out and "password" in out and "LEASE_ID" not in out
    rc, out, _ = run("dynamic", "engines")
    assert rc == 0 and "pg" in out and "CONNECTION_STATUS" in out
    rc, out, _ = run("dynamic", "roles", "pg", "--json")
    assert rc == 0 and [r["name"] for r in json.loads(out)["roles"]] == ["ro"]

    rc, out, _ = run("leases", "list", "--engine", "pg", "--json")
    leases = json.loads(out)["leases"]
    assert rc == 0 and len(leases) == 2 and cred["data"]["password"] not in out
    rc, out, _ = run("leases", "list", "--status", "active", "--limit", "1")
    assert rc == 0 and "LEASE_ID" in out and len(out.strip().splitlines()) == 2
    rc, out, _ = run("leases", "get", cred["lease_id"], "--json")
    assert rc == 0 and json.loads(out)["status"] == "active"
    rc, out, _ = run("leases", "renew", cred["lease_id"], "--increment", "90m", "--json")
    assert rc == 0 and json.loads(out)["expires_at"] > cred["expires_at"]
    rc, _, err = run("leases", "renew", cred["lease_id"], "--increment", "5h")
    assert rc == 5 and "max_ttl" in err  # past max_expires_at: refused, not capped
    rc, out, _ = run("leases", "revoke", cred["lease_id"])
    assert rc == 0 and f"revoked {cred['lease_id']}" in out
    assert run("leases", "revoke", cred["lease_id"])[0] == 0  # safe to repeat
    other = next(x["lease_id"] for x in leases if x["lease_id"] != cred["lease_id"])
    with SyncScaiVaultClient(run.vault.url, token=run.vault.admin) as c:
        c.dynamic.engines.pause_revocation("pg")
    rc, out, _ = run("leases", "revoke", other)  # 202: not confirmed at the target yet, still exit 0
    assert rc == 0 and f"revocation of {other} queued (status revoking" in out
    rc, out, _ = run("leases", "revoke", "--prefix", "pg/ro", "--json")
    assert rc == 0 and json.loads(out)["lease_ids"] == [other]
    rc, out, _ = run("leases", "revoke", "--prefix", "pg")
    assert rc == 0 and "queued 1 lease(s) under pg" in out

    assert run("leases", "get", "lease_01HXXXXXXXXXXXXXXXXXXXXXXX")[0] == 4
    assert run("leases", "revoke", "lease_01HXXXXXXXXXXXXXXXXXXXXXXX")[0] == 4
    assert run("leases", "renew", "lease_01HXXXXXXXXXXXXXXXXXXXXXXX")[0] == 4
    assert run("leases", "revoke", "--prefix", "nope")[0] == 4
    assert run("dynamic", "creds", "pg", "no-such-role")[0] == 4
    assert run("leases", "revoke")[0] == 5  # neither an id nor --prefix
    assert run("leases", "revoke", cred["lease_id"], "--prefix", "pg")[0] == 5
    assert run("leases", "revoke", "--prefix", "a/b/c")[0] == 5
    assert run("dynamic", "creds", "pg", "ro", "--ttl", "10h")[0] == 5
    assert _exit_codes(run, [("dynamic", "creds", "pg", "ro"), ("leases", "list"), ("leases", "get", cred["lease_id"]),
                             ("leases", "renew", cred["lease_id"]), ("leases", "revoke", cred["lease_id"]),
                             ("leases", "revoke", "--prefix", "pg"), ("dynamic", "engines")]) == []

    # rotation
    assert run("secrets", "write", "cli/rot/db", "password=v1")[0] == 0
    rc, out, err = run("rotation", "create", "cli-rot", "--interval", "90d", "--warn-before", "7d,1d", "--json")
    assert rc == 0, err
    pol = json.loads(out)
    rc, out, _ = run("rotation", "attach", pol["id"], "cli/rot/db")
    assert rc == 0 and "attached cli/rot/db" in out
    rc, out, _ = run("rotation", "list")
    assert rc == 0 and "cli-rot" in out and "INTERVAL" in out
    rc, out, _ = run("rotation", "get", pol["id"], "--json")
    assert rc == 0 and json.loads(out)["secrets_count"] == 1
    rc, out, _ = run("rotation", "due", "--within-hours", str(24 * 91), "--json")
    assert rc == 0 and [d["secret_path"] for d in json.loads(out)["due"]] == ["cli/rot/db"]
    rc, out, _ = run("rotation", "due")
    assert rc == 0 and "cli/rot/db" not in out
    rc, out, _ = run("rotation", "rotate", pol["id"], "cli/rot/db", "--json")
    assert rc == 0 and [(r["secret_path"], r["status"]) for r in json.loads(out)["rotations"]] == [
        ("cli/rot/db", "pending")]
    rc, out, _ = run("rotation", "history", pol["id"])
    assert rc == 0 and "cli/rot/db" in out and "manual" in out
    rc, out, _ = run("rotation", "detach", pol["id"], "cli/rot/db")
    assert rc == 0 and "detached" in out
    assert run("rotation", "rotate", pol["id"], "cli/nope/x")[0] == 4  # not attached (or missing)
    assert run("rotation", "create", "cli-bad", "--interval", "soon")[0] == 5
    assert run("rotation", "create", "cli-rot", "--interval", "30d")[0] == 1  # duplicate name: 409 conflict
    assert run("rotation", "due", "--within-hours", "-1")[0] == 5
    assert run("rotation", "attach", pol["id"], "cli/rot/missing")[0] == 4
    assert _exit_codes(run, [("rotation", "list"), ("rotation", "get", pol["id"]), ("rotation", "due"),
                             ("rotation", "rotate", pol["id"]), ("rotation", "history", pol["id"]),
                             ("rotation", "attach", pol["id"], "cli/rot/db"),
                             ("rotation", "create", "x", "--interval", "9d")]) == []
    assert run("rotation", "delete", pol["id"])[0] == 0
    assert run("rotation", "get", pol["id"])[0] == 4
    assert run("rotation", "delete", pol["id"])[0] == 4


def test_webhooks_subscriptions_identity_commands(run: Runner) -> None:
    receiver = Receiver(["whsec-cli-test-secret-0123456789abcdef"]).start()
    try:
        rc, out, err = run("webhooks", "create", "cli-hook", "--url", receiver.url, "--events", "secret.*",
                           "--secret", "-", "--json", stdin="whsec-cli-test-secret-0123456789abcdef\n")
        assert rc == 0, err
        hook = json.loads(out)
        assert "secret" not in hook and "whsec-cli" not in out
        rc, out, _ = run("webhooks", "test", hook["id"], "--json")
        assert rc == 0 and [r.verified for r in receiver.snapshot()] == [True]
        rc, out, _ = run("webhooks", "create", "gen-hook", "--url", receiver.url, "--events", "secret.*")
        assert rc == 0 and "signing secret (shown once" in out
    finally:
        receiver.stop()
    rc, out, _ = run("webhooks", "list")
    assert rc == 0 and "cli-hook" in out and "gen-hook" in out
    rc, out, _ = run("webhooks", "get", hook["id"], "--json")
    assert rc == 0 and json.loads(out)["name"] == "cli-hook"
    rc, out, _ = run("webhooks", "deliveries", hook["id"], "--json")
    assert rc == 0 and isinstance(json.loads(out)["deliveries"], list)
    assert run("webhooks", "delete", hook["id"])[0] == 0
    assert run("webhooks", "get", hook["id"])[0] == 4
    assert run("webhooks", "create", "x", "--url", "ftp://x.example", "--events", "secret.*")[0] == 5
    assert run("webhooks", "create", "x", "--url", receiver.url, "--events", " , ")[0] == 5
    assert run("webhooks", "create", "x", "--url", receiver.url, "--events", "no.such.event")[0] == 5

    rc, out, err = run("subscriptions", "create", "cli-feed", "--paths", "cli/**", "--events", "secret.updated",
                       "--json")
    assert rc == 0, err
    sub = json.loads(out)
    assert sub["delivery"]["type"] == "polling"
    rc, out, _ = run("subscriptions", "list", "--json")
    assert rc == 0 and [s["id"] for s in json.loads(out)["subscriptions"]] == [sub["id"]]
    rc, out, _ = run("subscriptions", "get", sub["id"])
    assert rc == 0 and "cli-feed" in out
    rc, out, _ = run("subscriptions", "poll", sub["id"], "--wait", "0", "--ack", "--json")
    assert (rc, out) == (0, "")  # nothing happened under cli/** yet
    assert run("subscriptions", "ack", sub["id"], "evt_unknown")[0] == 0
    assert run("subscriptions", "poll", sub["id"], "--wait", "61")[0] == 5
    assert run("subscriptions", "create", "x", "--paths", "/abs", "--events", "secret.updated")[0] == 5
    assert run("subscriptions", "delete", sub["id"])[0] == 0
    assert run("subscriptions", "get", sub["id"])[0] == 4
    assert run("subscriptions", "poll", sub["id"])[0] == 4

    rc, out, _ = run("identity", "roles", "--json")
    assert rc == 0 and json.loads(out)
    rc, out, err = run("identity", "tenants", "--json")
    assert rc == 0, err
    rc, out, _ = run("identity", "users", "tnt_acme_prod", "--json")
    assert rc == 0 and "users" in json.loads(out)
    assert run("identity", "resolve", "user", "usr_doesnotexist")[0] == 4
    assert run("identity", "resolve", "robot", "x")[0] == 5
    assert run("identity", "sync-status", "sync_doesnotexist")[0] == 4

    assert _exit_codes(run, [("webhooks", "list"), ("webhooks", "get", "wh_x"),
                             ("webhooks", "create", "x", "--url", "https://x.example", "--events", "secret.*"),
                             ("subscriptions", "list"), ("identity", "users", "tnt_acme_prod"),
                             ("identity", "sync")]) == []
