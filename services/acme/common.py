"""Shared pieces of the ACME services: errors, sealing of account keys and DNS credentials, name checks."""

from __future__ import annotations

import re
from typing import Any

from core.errors import AppError
from crypto import envelope
from services.pki import common as pki

iso = pki.iso
validation = pki.validation
check_name = pki.check_name
SYSTEM_JOB = "acme-renewer"

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def account_not_found(account_id: object) -> AppError:
    return AppError("acme_account_not_found", f"ACME account '{account_id}' not found", {"id": str(account_id)})


def order_not_found(order_id: object) -> AppError:
    return AppError("acme_order_not_found", f"ACME order '{order_id}' not found", {"id": str(order_id)})


def provider_not_found(provider_id: object) -> AppError:
    return AppError("dns_provider_not_found", f"DNS provider '{provider_id}' not found", {"id": str(provider_id)})


def account_key_aad(tenant_id: str, account_id: str) -> bytes:
    return envelope.aad_for("acme-account-key", tenant_id, account_id)


def dns_credentials_aad(tenant_id: str, provider_id: str) -> bytes:
    return envelope.aad_for("dns-provider-credentials", tenant_id, provider_id)


async def seal(keyring: Any, plaintext: bytes, aad: bytes, *, tenant_id: str, partner_id: str | None) -> bytes:
    return await pki.seal(keyring, plaintext, aad, tenant_id=tenant_id, partner_id=partner_id)


async def open_(keyring: Any, blob: bytes, aad: bytes, *, tenant_id: str, partner_id: str | None) -> bytes:
    return await pki.open_(keyring, blob, aad, tenant_id=tenant_id, partner_id=partner_id)


def check_domain(value: object, field: str = "domains") -> str:
    """A DNS name (lower-cased), optionally a leading ``*.`` wildcard label; no IPs, no trailing dot."""
    if not isinstance(value, str) or not 1 <= len(value) <= 253:
        raise validation(field, f"{field} entries must be DNS names of 1-253 characters")
    name = value.strip().lower()
    body = name[2:] if name.startswith("*.") else name
    labels = body.split(".")
    if len(labels) < 2 or not all(_LABEL.match(lbl) for lbl in labels) or labels[-1].isdigit():
        raise validation(field, f"'{value}' is not a DNS name", name=value)
    return name


def in_zone(domain: str, zone: str) -> bool:
    host = domain[2:] if domain.startswith("*.") else domain
    z = zone[2:] if zone.startswith("*.") else zone
    return host == z or host.endswith("." + z)
