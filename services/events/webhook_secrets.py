"""Webhook signing secrets at rest: AES-256-GCM (crypto.aead), bound to tenant + webhook by the AAD.

Decision: the key comes from settings, not from the tenant keyring. The worker must open these secrets for
every delivery attempt and has no keyring component; a settings-derived key is available to both the API and
the worker with no KMS round trip. ``WEBHOOK_SECRET_KEY`` (base64, 32 bytes) sets it; when empty it is derived
with HKDF-SHA256 from ``TOKEN_HMAC_KEY`` (info ``scaivault/webhook-secrets/v1``). Blobs carry a ``v1`` tag so
a later move to the keyring can re-seal lazily. Signing secrets are not customer secret values (they are
shared with the receiver), so this is an acceptable protection level; they are never returned by the API.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.settings import Settings
from crypto import aead

_TAG = b"v1"
_INFO = b"scaivault/webhook-secrets/v1"


def _key(settings: Settings) -> bytes:
    explicit = settings.webhook_secret_key.get_secret_value().strip()
    if explicit:
        try:
            key = base64.b64decode(explicit, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("WEBHOOK_SECRET_KEY must be base64 of 32 bytes") from None
        if len(key) != aead.KEY_SIZE:
            raise ValueError("WEBHOOK_SECRET_KEY must be base64 of 32 bytes")
        return key
    ikm = settings.token_hmac_key.get_secret_value().encode("utf-8")
    return HKDF(algorithm=hashes.SHA256(), length=aead.KEY_SIZE, salt=None, info=_INFO).derive(ikm)


class SecretBox:
    """Seal/open webhook signing secrets. Never logs or reprs a secret."""

    __slots__ = ("_key",)

    def __init__(self, settings: Settings) -> None:
        self._key = _key(settings)

    def __repr__(self) -> str:
        return "SecretBox(<key>)"

    @staticmethod
    def _aad(tenant_id: str, webhook_id: str) -> bytes:
        return f"webhook-secret|{tenant_id}|{webhook_id}".encode()

    def seal(self, tenant_id: str, webhook_id: str, secret: str) -> bytes:
        return _TAG + aead.encrypt(self._key, secret.encode("utf-8"), self._aad(tenant_id, webhook_id))

    def open(self, tenant_id: str, webhook_id: str, blob: bytes) -> str:
        blob = bytes(blob)
        if not blob.startswith(_TAG):
            raise ValueError("unknown webhook secret format")
        return aead.decrypt(self._key, blob[len(_TAG):], self._aad(tenant_id, webhook_id)).decode("utf-8")
