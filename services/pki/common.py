"""Shared pieces of the PKI services: not-found errors, timestamps, CA key sealing, the CRL URL, events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg

from auth.tenancy import UNASSIGNED_PARTNER
from core.errors import AppError
from crypto import envelope
from crypto.errors import DecryptError, KmsUnavailable
from repositories.events import outbox

_T = TypeVar("_T")

NAME_MAX = 128


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ca_not_found(ca_id: object) -> AppError:
    return AppError("ca_not_found", f"certificate authority '{ca_id}' not found", {"id": str(ca_id)})


def role_not_found(name: object) -> AppError:
    return AppError("role_not_found", f"PKI role '{name}' not found", {"name": str(name)})


def certificate_not_found(cert_id: object) -> AppError:
    return AppError("certificate_not_found", f"certificate '{cert_id}' not found", {"id": str(cert_id)})


def csr_not_found(csr_id: object) -> AppError:
    return AppError("csr_not_found", f"CSR '{csr_id}' not found", {"id": str(csr_id)})


def trust_anchor_not_found(anchor_id: object) -> AppError:
    return AppError("trust_anchor_not_found", f"trust anchor '{anchor_id}' not found", {"id": str(anchor_id)})


def validation(field: str, message: str, **details: object) -> AppError:
    return AppError("validation_error", message, {"fields": [{"field": field, "message": message}], **details})


def check_name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not value or len(value) > NAME_MAX or not all(
            c.isalnum() or c in "-_." for c in value) or not value[0].isalnum():
        raise validation(field, f"{field} must be 1-{NAME_MAX} characters of letters, digits, '-', '_' or '.'"
                                " starting with a letter or digit")
    return value


def partner_of(partner_id: str | None) -> str:
    return partner_id or UNASSIGNED_PARTNER


def ca_key_aad(tenant_id: str, ca_id: str) -> bytes:
    return envelope.aad_for("pki-ca-key", tenant_id, ca_id)


def cert_key_aad(tenant_id: str, cert_id: str) -> bytes:
    return envelope.aad_for("pki-cert-key", tenant_id, cert_id)


async def seal(keyring: Any, plaintext: bytes, aad: bytes, *, tenant_id: str, partner_id: str | None) -> bytes:
    try:
        return await keyring.seal(plaintext, aad, partner_id=partner_of(partner_id),  # type: ignore[no-any-return]
                                  tenant_id=tenant_id)
    except KmsUnavailable:
        raise AppError("kms_unavailable", "the key management service is unavailable; retry later") from None


async def open_(keyring: Any, blob: bytes, aad: bytes, *, tenant_id: str, partner_id: str | None) -> bytes:
    try:
        return await keyring.open(blob, aad, partner_id=partner_of(partner_id),  # type: ignore[no-any-return]
                                  tenant_id=tenant_id)
    except KmsUnavailable:
        raise AppError("kms_unavailable", "the key management service is unavailable; retry later") from None
    except DecryptError:
        raise AppError("decryption_failed", "a stored PKI key failed authentication") from None


def crl_url(base_url: str, ca_id: str) -> str:
    return f"{base_url.rstrip('/')}/v1/pki/ca/{ca_id}/crl"


async def cpu(fn: Callable[..., _T], *args: Any, **kw: Any) -> _T:
    """Key generation and signing run in a worker thread (RSA key generation takes up to ~1 s)."""
    return await asyncio.to_thread(fn, *args, **kw)


async def emit(conn: asyncpg.Connection, event_type: str, *, tenant_id: str, partner_id: str | None,
               identity_id: str | None, data: dict[str, Any]) -> None:
    await outbox.emit(conn, event_type=event_type, tenant_id=tenant_id, partner_id=partner_id,
                      identity_id=identity_id, data=data)
