"""User commands for the lifecycle areas, on the SDK: ``pki`` (issue, sign, list, get, revoke, cas, roles),
``leases`` (list, get, renew, revoke), ``dynamic`` (creds, engines, roles) and ``rotation`` (policies, attach,
detach, rotate, history, due). Exit codes as for every user command (cli/user/output.py)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from cli.groups import command_group
from cli.user.output import OK, UsageError, print_fields, print_json, print_table


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _write_private(path: str, text: str) -> None:
    """Create ``path`` with mode 0600 (a private key or credential is never world-readable, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def _read_text(path: str, what: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"{what}: {exc}") from None


# ------------------------------------------------------------------------------------------------ pki


def _print_issued(args: argparse.Namespace, cert: Any) -> int:
    """Files first (key 0600), then stdout: --json (with the key unless it went to a file), or fields + PEMs."""
    if args.cert_file:
        Path(args.cert_file).write_text(cert.certificate)
    if getattr(args, "key_file", None) and cert.private_key:
        _write_private(args.key_file, cert.private_key)
    if args.chain_file:
        Path(args.chain_file).write_text("".join(cert.ca_chain))
    key_on_stdout = cert.private_key is not None and not getattr(args, "key_file", None)
    if args.json:
        doc = dict(cert.raw)
        if key_on_stdout:
            doc["private_key"] = cert.private_key
        print_json(doc)
        return OK
    print_fields([("id", cert.id), ("serial_number", cert.serial_number), ("common_name", cert.common_name),
                  ("alt_names", cert.raw.get("alt_names")), ("not_after", cert.not_after),
                  ("private_key_type", cert.private_key_type)]
                 + [(name, f) for name, f in (("certificate file", args.cert_file),
                                              ("private key file", getattr(args, "key_file", None)),
                                              ("chain file", args.chain_file)) if f])
    if not args.cert_file:
        print()
        print(cert.certificate.rstrip())
    if key_on_stdout:
        print()
        print(cert.private_key.rstrip())
    return OK


def _pki_issue(args: argparse.Namespace, client: Any) -> int:
    cert = client.pki.issue(args.role, args.common_name, alt_names=_csv(args.alt_names), ip_sans=_csv(args.ip_sans),
                            ttl=args.ttl)
    return _print_issued(args, cert)


def _pki_sign(args: argparse.Namespace, client: Any) -> int:
    csr = _read_text(args.csr_file, "--csr-file")
    cert = client.pki.sign(args.role, csr, common_name=args.common_name, alt_names=_csv(args.alt_names),
                           ip_sans=_csv(args.ip_sans), ttl=args.ttl)
    return _print_issued(args, cert)


def _pki_list(args: argparse.Namespace, client: Any) -> int:
    rows = list(client.pki.certificates.list(ca_id=args.ca_id, expiring_within=args.expiring_within,
                                             include_revoked=args.include_revoked, limit=args.limit))
    if args.json:
        print_json({"certificates": [c.raw for c in rows]})
    else:
        print_table(["id", "common_name", "serial_number", "not_after", "revoked"],
                    [(c.id, c.common_name, c.serial_number, c.not_after, c.revoked) for c in rows])
    return OK


def _pki_get(args: argparse.Namespace, client: Any) -> int:
    c = client.pki.certificates.get(args.cert_id)
    if args.pem:
        print(c.certificate.rstrip())
    elif args.json:
        print_json(c.raw)
    else:
        print_fields([("id", c.id), ("serial_number", c.serial_number), ("common_name", c.common_name),
                      ("alt_names", c.alt_names), ("ip_sans", c.ip_sans), ("role", c.role), ("ca_id", c.ca_id),
                      ("not_before", c.not_before), ("not_after", c.not_after), ("revoked_at", c.revoked_at),
                      ("revocation_reason", c.revocation_reason)])
    return OK


def _pki_revoke(args: argparse.Namespace, client: Any) -> int:
    c = client.pki.certificates.revoke(args.cert_id, reason=args.reason)
    if args.json:
        print_json(c.raw)
    else:
        print(f"revoked {c.id} (serial {c.serial_number}, reason {c.revocation_reason}, at {c.raw.get('revoked_at')})")
    return OK


def _pki_cas(args: argparse.Namespace, client: Any) -> int:
    rows = list(client.pki.cas.list(limit=args.limit))
    if args.json:
        print_json({"cas": [c.raw for c in rows]})
    else:
        print_table(["id", "name", "type", "common_name", "valid_until", "active"],
                    [(c.id, c.name, c.ca_type, c.common_name, c.valid_until, c.is_active) for c in rows])
    return OK


def _pki_roles(args: argparse.Namespace, client: Any) -> int:
    rows = list(client.pki.roles.list(limit=args.limit))
    if args.json:
        print_json({"roles": [r.raw for r in rows]})
    else:
        print_table(["name", "ca_id", "allowed_domains", "max_ttl", "key_type"],
                    [(r.get("name"), r.get("ca_id"), r.get("allowed_domains"), r.get("max_ttl"), r.get("key_type"))
                     for r in rows])
    return OK


# ------------------------------------------------------------------------------------------------ leases


def _lease_fields(lease: Any) -> list[tuple[str, Any]]:
    return [("lease_id", lease.lease_id), ("engine", lease.engine), ("role", lease.role),
            ("username", lease.username), ("status", lease.status), ("expires_at", lease.expires_at),
            ("max_expires_at", lease.max_expires_at), ("renewable", lease.renewable),
            ("last_error", lease.last_error)]


def _print_lease(args: argparse.Namespace, lease: Any) -> int:
    if args.json:
        print_json(lease.raw)
    else:
        print_fields(_lease_fields(lease))
    return OK


def _leases_list(args: argparse.Namespace, client: Any) -> int:
    rows = list(client.leases.list(engine=args.engine, role=args.role, status=args.status, limit=args.limit))
    if args.json:
        print_json({"leases": [x.raw for x in rows]})
    else:
        print_table(["lease_id", "engine", "role", "username", "status", "expires_at"],
                    [(x.lease_id, x.engine, x.role, x.username, x.status, x.expires_at) for x in rows])
    return OK


def _leases_get(args: argparse.Namespace, client: Any) -> int:
    return _print_lease(args, client.leases.get(args.lease_id))


def _leases_renew(args: argparse.Namespace, client: Any) -> int:
    return _print_lease(args, client.leases.renew(args.lease_id, increment=args.increment))


def _leases_revoke(args: argparse.Namespace, client: Any) -> int:
    if bool(args.lease_id) == bool(args.prefix):
        raise UsageError("give a LEASE_ID or --prefix ENGINE[/ROLE], not both")
    if args.prefix:
        out = client.leases.revoke_prefix(args.prefix)
        if args.json:
            print_json(out.raw)
        else:
            print(f"queued {out.get('queued')} lease(s) under {out.get('prefix')} for revocation")
        return OK
    lease = client.leases.revoke(args.lease_id)
    if args.json:
        print_json(lease.raw)
    elif lease.status == "revoked":
        print(f"revoked {lease.lease_id} ({lease.username})")
    else:  # 202: the target did not confirm yet; the server keeps retrying
        print(f"revocation of {lease.lease_id} queued (status {lease.status}; last error: {lease.last_error})")
    return OK


# ------------------------------------------------------------------------------------------------ dynamic


def _dynamic_creds(args: argparse.Namespace, client: Any) -> int:
    cred = client.dynamic.generate(args.engine, args.role, ttl=args.ttl)
    if args.json:
        print_json({**cred.raw, "data": cred.data})
    else:
        print_fields(_lease_fields(cred.lease))
        print()
        print_table(["key", "value"], list(cred.data.items()))
    return OK


def _dynamic_engines(args: argparse.Namespace, client: Any) -> int:
    rows = list(client.dynamic.engines.list(limit=args.limit))
    if args.json:
        print_json({"engines": [e.raw for e in rows]})
    else:
        print_table(["name", "type", "default_ttl", "max_ttl", "connection_status"],
                    [(e.get("name"), e.get("type"), e.get("default_ttl"), e.get("max_ttl"),
                      e.get("connection_status")) for e in rows])
    return OK


def _dynamic_roles(args: argparse.Namespace, client: Any) -> int:
    rows = list(client.dynamic.roles.list(args.engine, limit=args.limit))
    if args.json:
        print_json({"roles": [r.raw for r in rows]})
    else:
        print_table(["name", "engine", "default_ttl", "max_ttl"],
                    [(r.get("name"), r.get("engine") or args.engine, r.get("default_ttl"), r.get("max_ttl"))
                     for r in rows])
    return OK


# ------------------------------------------------------------------------------------------------ rotation


def _print_policy(args: argparse.Namespace, p: Any) -> int:
    if args.json:
        print_json(p.raw)
    else:
        print_fields([("id", p.id), ("name", p.name), ("interval", p.interval), ("grace_period", p.grace_period),
                      ("warn_before", p.warn_before), ("auto_generate", p.auto_generate),
                      ("secret_policy_id", p.secret_policy_id), ("active", p.is_active),
                      ("secrets", p.secrets_count)])
    return OK


def _rotation_list(args: argparse.Namespace, client: Any) -> int:
    rows = list(client.rotation.policies.list(active_only=args.active_only, limit=args.limit))
    if args.json:
        print_json({"policies": [p.raw for p in rows]})
    else:
        print_table(["id", "name", "interval", "auto_generate", "secrets", "active"],
                    [(p.id, p.name, p.interval, p.auto_generate, p.secrets_count, p.is_active) for p in rows])
    return OK


def _rotation_get(args: argparse.Namespace, client: Any) -> int:
    return _print_policy(args, client.rotation.policies.get(args.policy_id))


def _rotation_create(args: argparse.Namespace, client: Any) -> int:
    p = client.rotation.policies.create(args.name, args.interval, description=args.description,
                                        grace_period=args.grace_period, warn_before=args.warn_before,
                                        auto_generate=True if args.auto_generate else None,
                                        secret_policy_id=args.secret_policy_id)
    return _print_policy(args, p)


def _rotation_delete(args: argparse.Namespace, client: Any) -> int:
    client.rotation.policies.delete(args.policy_id)
    print(f"deleted {args.policy_id} (its secrets are detached)")
    return OK


def _rotation_attach(args: argparse.Namespace, client: Any) -> int:
    a = client.rotation.policies.attach(args.policy_id, args.path)
    if args.json:
        print_json(a.raw)
    else:
        print(f"attached {a.get('secret_path')} to {a.get('policy_id')}; next rotation {a.get('next_rotation_at')}")
    return OK


def _rotation_detach(args: argparse.Namespace, client: Any) -> int:
    client.rotation.policies.detach(args.policy_id, args.path)
    print(f"detached {args.path} from {args.policy_id}")
    return OK


def _history_table(args: argparse.Namespace, key: str, rows: list[Any]) -> int:
    if args.json:
        print_json({key: [h.raw for h in rows]})
    else:
        print_table(["id", "secret_path", "status", "trigger", "old_version", "new_version", "started_at"],
                    [(h.id, h.secret_path, h.status, h.trigger, h.old_version, h.new_version, h.started_at)
                     for h in rows])
    return OK


def _rotation_rotate(args: argparse.Namespace, client: Any) -> int:
    items = client.rotation.rotate(args.policy_id, args.paths or None)
    return _history_table(args, "rotations", items)


def _rotation_history(args: argparse.Namespace, client: Any) -> int:
    return _history_table(args, "history",
                          list(client.rotation.history(args.policy_id, status=args.status, limit=args.limit)))


def _rotation_due(args: argparse.Namespace, client: Any) -> int:
    if args.within_hours < 0:
        raise UsageError("--within-hours must be 0 or more")
    rows = client.rotation.due(within_hours=args.within_hours, include_overdue=not args.no_overdue,
                               policy_id=args.policy_id)
    if args.json:
        print_json({"due": [r.raw for r in rows]})
    else:
        print_table(["secret_path", "policy", "due_at", "overdue", "status"],
                    [(r.get("secret_path"), r.get("policy_name"), r.get("due_at"), r.get("overdue"), r.get("status"))
                     for r in rows])
    return OK


# ------------------------------------------------------------------------------------------------ register


def register(sub: argparse._SubParsersAction, run: Any, j: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """``run`` wraps a handler (config, client, exit codes); ``j`` is the shared ``--json`` parent."""

    def limit(p: argparse.ArgumentParser) -> None:
        p.add_argument("--limit", type=int, help="at most N (default: all, fetched page by page)")

    def outputs(p: argparse.ArgumentParser, key: bool = True) -> None:
        p.add_argument("--cert-file", help="write the certificate PEM here (else it is printed)")
        if key:
            p.add_argument("--key-file", help="write the private key here with mode 0600 (else it is printed)")
        p.add_argument("--chain-file", help="write the CA chain PEM here")

    pki = command_group(sub, "pki", "certificates from the internal PKI (user CLI)")
    p = pki.add_parser("issue", parents=[j], help="issue a certificate with a server-generated key (pki:issue)")
    p.add_argument("role")
    p.add_argument("--common-name", "--cn", dest="common_name", required=True)
    p.add_argument("--alt-names", help="comma-separated DNS names")
    p.add_argument("--ip-sans", help="comma-separated IP addresses")
    p.add_argument("--ttl", help="e.g. 72h (at most the role's max_ttl)")
    outputs(p)
    p.set_defaults(func=run(_pki_issue))
    p = pki.add_parser("sign", parents=[j], help="sign a CSR against a role (pki:issue)")
    p.add_argument("role")
    p.add_argument("--csr-file", required=True, help="the CSR PEM ('-' for stdin)")
    p.add_argument("--common-name", "--cn", dest="common_name")
    p.add_argument("--alt-names")
    p.add_argument("--ip-sans")
    p.add_argument("--ttl")
    outputs(p, key=False)
    p.set_defaults(func=run(_pki_sign))
    p = pki.add_parser("list", parents=[j], help="issued certificates")
    p.add_argument("--ca-id")
    p.add_argument("--expiring-within", help="e.g. 30d")
    p.add_argument("--include-revoked", action="store_true")
    limit(p)
    p.set_defaults(func=run(_pki_list))
    p = pki.add_parser("get", parents=[j], help="one certificate (--pem: only the PEM)")
    p.add_argument("cert_id")
    p.add_argument("--pem", action="store_true")
    p.set_defaults(func=run(_pki_get))
    p = pki.add_parser("revoke", parents=[j], help="revoke a certificate (pki:admin); the CRL is rebuilt at once")
    p.add_argument("cert_id")
    p.add_argument("--reason", help="RFC 5280 reason, e.g. key_compromise, superseded (default unspecified)")
    p.set_defaults(func=run(_pki_revoke))
    p = pki.add_parser("cas", parents=[j], help="list CAs (pki:admin)")
    limit(p)
    p.set_defaults(func=run(_pki_cas))
    p = pki.add_parser("roles", parents=[j], help="list PKI roles (pki:admin)")
    limit(p)
    p.set_defaults(func=run(_pki_roles))

    leases = command_group(sub, "leases", "dynamic-credential leases: list, renew, revoke (user CLI)")
    p = leases.add_parser("list", parents=[j], help="leases (never their credentials)")
    p.add_argument("--engine")
    p.add_argument("--role")
    p.add_argument("--status", help="e.g. active, revoking, revoked, expired")
    limit(p)
    p.set_defaults(func=run(_leases_list))
    p = leases.add_parser("get", parents=[j], help="one lease")
    p.add_argument("lease_id")
    p.set_defaults(func=run(_leases_get))
    p = leases.add_parser("renew", parents=[j], help="extend a lease (bounded by its max_expires_at)")
    p.add_argument("lease_id")
    p.add_argument("--increment", help="e.g. 1h (default: the role's TTL)")
    p.set_defaults(func=run(_leases_renew))
    p = leases.add_parser("revoke", parents=[j], help="revoke a lease now, or every lease under --prefix")
    p.add_argument("lease_id", nargs="?")
    p.add_argument("--prefix", help="ENGINE or ENGINE/ROLE: queue every live lease below it (dynamic:manage)")
    p.set_defaults(func=run(_leases_revoke))

    dyn = command_group(sub, "dynamic", "dynamic credentials: generate, engines, roles (user CLI)")
    p = dyn.add_parser("creds", parents=[j], help="generate a credential (a new lease); shown once")
    p.add_argument("engine")
    p.add_argument("role")
    p.add_argument("--ttl", help="e.g. 30m (at most the role's max_ttl)")
    p.set_defaults(func=run(_dynamic_creds))
    p = dyn.add_parser("engines", parents=[j], help="list engines")
    limit(p)
    p.set_defaults(func=run(_dynamic_engines))
    p = dyn.add_parser("roles", parents=[j], help="list an engine's roles")
    p.add_argument("engine")
    limit(p)
    p.set_defaults(func=run(_dynamic_roles))

    rot = command_group(sub, "rotation", "rotation policies, manual rotation, history, due list (user CLI)")
    p = rot.add_parser("list", parents=[j], help="rotation policies (admin)")
    p.add_argument("--active-only", action="store_true")
    limit(p)
    p.set_defaults(func=run(_rotation_list))
    p = rot.add_parser("get", parents=[j], help="one rotation policy")
    p.add_argument("policy_id")
    p.set_defaults(func=run(_rotation_get))
    p = rot.add_parser("create", parents=[j], help="create a rotation policy")
    p.add_argument("name")
    p.add_argument("--interval", required=True, help="e.g. 90d")
    p.add_argument("--grace-period", help="e.g. 24h")
    p.add_argument("--warn-before", help="e.g. 7d,1d")
    p.add_argument("--auto-generate", action="store_true", help="generate the new value (with --secret-policy-id)")
    p.add_argument("--secret-policy-id")
    p.add_argument("--description")
    p.set_defaults(func=run(_rotation_create))
    p = rot.add_parser("delete", help="delete a rotation policy (its secrets are detached)")
    p.add_argument("policy_id")
    p.set_defaults(func=run(_rotation_delete))
    p = rot.add_parser("attach", parents=[j], help="attach a secret to a policy")
    p.add_argument("policy_id")
    p.add_argument("path")
    p.set_defaults(func=run(_rotation_attach))
    p = rot.add_parser("detach", help="detach a secret from a policy")
    p.add_argument("policy_id")
    p.add_argument("path")
    p.set_defaults(func=run(_rotation_detach))
    p = rot.add_parser("rotate", parents=[j], help="rotate now: every attached secret, or the PATHs given")
    p.add_argument("policy_id")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.set_defaults(func=run(_rotation_rotate))
    p = rot.add_parser("history", parents=[j], help="a policy's rotation log (audit:read)")
    p.add_argument("policy_id")
    p.add_argument("--status", help="pending, completed, failed, ...")
    limit(p)
    p.set_defaults(func=run(_rotation_history))
    p = rot.add_parser("due", parents=[j], help="secrets due for rotation soon, and overdue ones")
    p.add_argument("--within-hours", type=int, default=24)
    p.add_argument("--no-overdue", action="store_true", help="leave overdue secrets out")
    p.add_argument("--policy-id")
    p.set_defaults(func=run(_rotation_due))
