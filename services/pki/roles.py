"""PKI roles: what an issuing request may ask for (names, IPs, TTL, key shape, usages), Vault-style knobs.

Name rules (docs/pki.md "Roles"), checked per requested name, the CN included:

* ``localhost`` / ``localhost.localdomain``: allowed when ``allow_localhost`` (default true);
* ``*.rest``: needs ``allow_wildcard_certificates``; ``x.rest`` must then be allowed by the rules below;
* an ``allowed_domains`` entry without ``*`` allows itself only with ``allow_bare_domains`` and names below it
  only with ``allow_subdomains``;
* an entry with ``*`` is a glob in which ``*`` stands for one or more characters of a single DNS label;
  names below a match need ``allow_subdomains``;
* ``allow_any_name`` skips the domain rules; ``enforce_hostnames`` (default true) requires RFC 1123 names;
* IP addresses (SAN or CN) need ``allow_ip_sans``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from api.context import RequestContext
from core.durations import parse_duration
from core.errors import AppError
from core.ids import new_id
from repositories.pki import cas as ca_repo
from repositories.pki import roles as repo
from services.pki import common

MAX_TTL_CEILING = timedelta(days=36500)
BOOLS: dict[str, bool] = {
    "allow_subdomains": False, "allow_bare_domains": False, "allow_localhost": True,
    "allow_wildcard_certificates": False, "allow_ip_sans": False, "allow_any_name": False,
    "enforce_hostnames": True, "require_cn": True, "store_private_keys": False, "server_flag": True,
    "client_flag": True,
}
FIELDS = frozenset({"name", "ca_id", "allowed_domains", "max_ttl", "ttl", "key_type", "key_bits", "ou",
                    "organization", *BOOLS})
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PATTERN = re.compile(r"^[a-z0-9*._-]{1,253}$")


@dataclass(frozen=True)
class Role:
    name: str
    ca_id: str
    config: dict[str, Any]

    def flag(self, key: str) -> bool:
        return bool(self.config.get(key, BOOLS[key]))

    @property
    def max_ttl(self) -> timedelta:
        return parse_duration(self.config["max_ttl"], field="max_ttl")

    @property
    def default_ttl(self) -> timedelta:
        ttl = self.config.get("ttl")
        return parse_duration(ttl, field="ttl") if ttl is not None else self.max_ttl


def _str_list(body: Mapping[str, Any], key: str, *, max_items: int = 100, max_len: int = 253) -> list[str]:
    v = body.get(key, [])
    if v is None:
        return []
    if not isinstance(v, list) or len(v) > max_items or not all(
            isinstance(x, str) and 0 < len(x) <= max_len and x.isprintable() for x in v):
        raise common.validation(key, f"{key} must be a list of at most {max_items} non-empty strings")
    return list(dict.fromkeys(v))


def validate_config(body: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(name, ca_id, config) of a role body; every bad field is a 422 naming it."""
    unknown = sorted(str(k) for k in body if k not in FIELDS)
    if unknown:
        raise common.validation(unknown[0], f"unknown field(s) {unknown}")
    name = common.check_name(body.get("name"))
    ca_id = body.get("ca_id")
    if not isinstance(ca_id, str) or not ca_id or len(ca_id) > 64:
        raise common.validation("ca_id", "ca_id is required")
    cfg: dict[str, Any] = {}
    for key, default in BOOLS.items():
        v = body.get(key, default)
        if not isinstance(v, bool):
            raise common.validation(key, f"{key} must be true or false")
        cfg[key] = v
    domains = [d.lower() for d in _str_list(body, "allowed_domains")]
    for d in domains:
        if not _PATTERN.match(d) or ".." in d or d.startswith(".") or d.endswith("."):
            raise common.validation("allowed_domains", f"allowed_domains entry {d!r} is not a domain or glob",
                                    value=d)
    cfg["allowed_domains"] = domains
    if "max_ttl" not in body or body["max_ttl"] in (None, ""):
        raise common.validation("max_ttl", "max_ttl is required (a duration like 720h)")
    max_ttl = parse_duration(body["max_ttl"], field="max_ttl")
    if not timedelta(seconds=60) <= max_ttl <= MAX_TTL_CEILING:
        raise common.validation("max_ttl", "max_ttl must be between 1m and 36500d")
    cfg["max_ttl"] = body["max_ttl"]
    if body.get("ttl") is not None:
        ttl = parse_duration(body["ttl"], field="ttl")
        if not timedelta(seconds=60) <= ttl <= max_ttl:
            raise common.validation("ttl", "ttl (the default) must be between 1m and max_ttl")
        cfg["ttl"] = body["ttl"]
    key_type = body.get("key_type", "rsa")
    if key_type not in ("rsa", "ec", "any"):
        raise common.validation("key_type", f"unsupported key type {key_type!r}: use 'rsa', 'ec' or 'any'")
    cfg["key_type"] = key_type
    default_bits = {"rsa": 2048, "ec": 256, "any": 0}[key_type]
    bits = body.get("key_bits", default_bits)
    if key_type == "rsa" and bits not in (2048, 3072, 4096):
        raise common.validation("key_bits", "key_bits for RSA must be 2048, 3072 or 4096")
    if key_type == "ec" and bits not in (256, 384):
        raise common.validation("key_bits", "key_bits for EC must be 256 or 384")
    if key_type == "any" and bits not in (0, None):
        raise common.validation("key_bits", "key_bits must be omitted (or 0) when key_type is 'any'")
    cfg["key_bits"] = bits or 0
    cfg["ou"] = _str_list(body, "ou", max_items=10, max_len=64)
    cfg["organization"] = _str_list(body, "organization", max_items=10, max_len=64)
    return name, ca_id, cfg


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "ca_id": row["ca_id"], **repo.config_of(row),  # type: ignore[arg-type]
            "created_at": common.iso(row["created_at"]), "updated_at": common.iso(row["updated_at"]),
            "created_by": row["created_by"]}


def of_row(row: Mapping[str, Any]) -> Role:
    return Role(row["name"], row["ca_id"], repo.config_of(row))  # type: ignore[arg-type]


async def fetch(conn: asyncpg.Connection, tenant_id: str, name: str, *, for_update: bool = False) -> asyncpg.Record:
    row = await repo.get(conn, tenant_id, name, for_update=for_update)
    if row is None:
        raise common.role_not_found(name)
    return row


async def _check_ca(conn: asyncpg.Connection, tenant_id: str, ca_id: str) -> None:
    if await ca_repo.get(conn, tenant_id, ca_id) is None:
        raise common.ca_not_found(ca_id)


async def _audit(audit: Any, ctx: RequestContext, conn: asyncpg.Connection, action: str, name: str,
                 extra: dict[str, Any]) -> None:
    await audit.record(ctx, action=action, resource_type="pki_role", resource_id=name, extra=extra, conn=conn)


async def create(conn: asyncpg.Connection, ctx: RequestContext, body: Mapping[str, Any], audit: Any) -> dict[str, Any]:
    name, ca_id, cfg = validate_config(body)
    await _check_ca(conn, ctx.tenant_id, ca_id)
    try:
        async with conn.transaction():
            row = await repo.insert(conn, id=new_id("pkr"), tenant_id=ctx.tenant_id, name=name, ca_id=ca_id,
                                    config=cfg, created_by=ctx.principal.identity_id)
    except asyncpg.UniqueViolationError:
        raise AppError("conflict", f"a PKI role named '{name}' already exists", {"field": "name", "name": name}) from None
    await _audit(audit, ctx, conn, "pki_role_create", name, {"ca_id": ca_id})
    return public(row)


async def list_roles(conn: asyncpg.Connection, ctx: RequestContext, *, after: str | None,
                     limit: int) -> tuple[list[dict[str, Any]], str | None]:
    rows = await repo.list_page(conn, ctx.tenant_id, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [public(r) for r in rows], (rows[-1]["id"] if more else None)


async def patch(conn: asyncpg.Connection, ctx: RequestContext, name: str, body: Mapping[str, Any],
                audit: Any) -> dict[str, Any]:
    row = await fetch(conn, ctx.tenant_id, name, for_update=True)
    if "name" in body and body["name"] != name:
        raise common.validation("name", "a role cannot be renamed")
    doc = {"name": name, "ca_id": row["ca_id"], **repo.config_of(row), **body}
    _, ca_id, cfg = validate_config(doc)
    await _check_ca(conn, ctx.tenant_id, ca_id)
    new = await repo.update(conn, ctx.tenant_id, name, ca_id=ca_id, config=cfg)
    await _audit(audit, ctx, conn, "pki_role_update", name, {"fields": sorted(str(k) for k in body)})
    return public(new)


async def delete(conn: asyncpg.Connection, ctx: RequestContext, name: str, audit: Any) -> None:
    await fetch(conn, ctx.tenant_id, name, for_update=True)
    await repo.delete(conn, ctx.tenant_id, name)
    await _audit(audit, ctx, conn, "pki_role_delete", name, {})


# -------------------------------------------------------------------------------------------- names


def _name_error(role: Role, name: str, why: str, field: str) -> AppError:
    return AppError("validation_error", f"name '{name}' is not allowed by role '{role.name}': {why}",
                    {"fields": [{"field": field, "message": why}], "name": name, "role": role.name})


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".".join("[a-z0-9-]+".join(re.escape(p) for p in label.split("*"))
                                     for label in pattern.split(".")) + "$")


def _domain_allowed(role: Role, name: str) -> bool:
    subs = role.flag("allow_subdomains")
    for pattern in role.config.get("allowed_domains", []):
        if "*" in pattern:
            rx = _glob(pattern)
            if rx.match(name):
                return True
            if subs and any(rx.match(name.split(".", i)[-1]) for i in range(1, name.count(".") + 1)):
                return True
        else:
            if name == pattern and role.flag("allow_bare_domains"):
                return True
            if subs and name.endswith("." + pattern):
                return True
    return False


def _is_hostname(name: str) -> bool:
    return len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


def check_dns_name(role: Role, name: str, field: str) -> str:
    name = name.strip().lower().rstrip(".") if isinstance(name, str) else name
    if not isinstance(name, str) or not name or len(name) > 253 or not name.isascii() or not name.isprintable():
        raise _name_error(role, str(name), "not a DNS name", field)
    if name in ("localhost", "localhost.localdomain"):
        if role.flag("allow_localhost"):
            return name
        raise _name_error(role, name, "localhost is not allowed (allow_localhost)", field)
    check = name
    if name.startswith("*."):
        if not role.flag("allow_wildcard_certificates"):
            raise _name_error(role, name, "wildcard names are not allowed (allow_wildcard_certificates)", field)
        check = "x" + name[1:]
    if "*" in check:
        raise _name_error(role, name, "a wildcard may only be the whole left-most label", field)
    if role.flag("enforce_hostnames") and not _is_hostname(check):
        raise _name_error(role, name, "not a valid hostname", field)
    if not role.flag("allow_any_name") and not _domain_allowed(role, check):
        raise _name_error(role, name, "outside the role's allowed_domains", field)
    return name


def check_ip(role: Role, value: str, field: str) -> str:
    try:
        ip = ipaddress.ip_address(value.strip())
    except (ValueError, AttributeError):
        raise _name_error(role, str(value), "not an IP address", field) from None
    if not role.flag("allow_ip_sans"):
        raise _name_error(role, str(value), "IP SANs are not allowed (allow_ip_sans)", field)
    return str(ip)


@dataclass(frozen=True)
class Names:
    common_name: str
    dns: list[str]
    ips: list[str]


def check_names(role: Role, common_name: str | None, alt_names: list[str], ip_sans: list[str]) -> Names:
    """The certificate's names after the role's rules: CN first in the SAN; anything outside is a 422."""
    if len(alt_names) + len(ip_sans) > 100:
        raise common.validation("alt_names", "at most 100 names per certificate")
    dns: list[str] = []
    ips: list[str] = []
    cn = common_name.strip() if isinstance(common_name, str) else None
    if not cn:
        if role.flag("require_cn"):
            raise common.validation("common_name", f"role '{role.name}' requires a common name", role=role.name)
        cn = None
    if cn is not None and len(cn) > 64:
        raise common.validation("common_name", "common_name is at most 64 characters")
    if cn is not None:
        try:
            ipaddress.ip_address(cn)
            ips.append(check_ip(role, cn, "common_name"))
        except ValueError:
            cn = check_dns_name(role, cn, "common_name")
            dns.append(cn)
    for n in alt_names:
        if not isinstance(n, str):
            raise common.validation("alt_names", "alt_names must be strings")
        d = check_dns_name(role, n, "alt_names")
        if d not in dns:
            dns.append(d)
    for i in ip_sans:
        if not isinstance(i, str):
            raise common.validation("ip_sans", "ip_sans must be strings")
        v = check_ip(role, i, "ip_sans")
        if v not in ips:
            ips.append(v)
    if cn is None:
        if not dns and not ips:
            raise common.validation("alt_names", "at least one name is required")
        cn = dns[0] if dns else ips[0]
        if len(cn) > 64:  # X.509 caps the CN at 64 characters (RFC 5280 ub-common-name)
            raise common.validation("common_name", f"the first name '{cn}' is longer than 64 characters and cannot be"
                                    " the common name: give a shorter common_name", name=cn)
    return Names(cn, dns, ips)
