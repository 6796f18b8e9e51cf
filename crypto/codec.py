"""Temporal payload encryption codec (like the temporalio ``encryption`` sample, key from settings).

Every outgoing payload is serialized, then AES-256-GCM encrypted and wrapped in a new payload::

    metadata = {"encoding": b"binary/encrypted", "encryption-key-id": b"tc-<12 hex>"}
    data     = nonce(12) || ciphertext || tag(16)      AAD = b"scaivault/temporal-payload/v1|" + key id

The AES key is derived from ``TEMPORAL_CODEC_KEY`` with HKDF-SHA256 (``info=scaivault/temporal-codec/v1``);
the key id is a fingerprint of the derived key, so workers and clients with different keys fail loudly
with :class:`DecryptError` naming the key id. Older secrets can be passed as ``previous_secrets`` to keep
decoding histories written before a key change. Payloads without the encrypted encoding pass through
``decode`` unchanged (histories from before the codec was enabled).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import temporalio.converter
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from crypto import aead
from crypto.errors import DecryptError

if TYPE_CHECKING:
    from core.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID_META = "encryption-key-id"
_INFO = b"scaivault/temporal-codec/v1"
_AAD_PREFIX = b"scaivault/temporal-payload/v1|"


def derive_codec_key(secret: bytes | str) -> tuple[str, bytes]:
    """HKDF-SHA256 the configured secret into ``(key_id, 32-byte key)``."""
    raw = secret.encode() if isinstance(secret, str) else secret
    if not raw:
        raise ValueError("TEMPORAL_CODEC_KEY must not be empty")
    key = HKDF(algorithm=hashes.SHA256(), length=aead.KEY_SIZE, salt=None, info=_INFO).derive(raw)
    key_id = "tc-" + hashlib.sha256(b"scaivault/temporal-codec/key-id\x00" + key).hexdigest()[:12]
    return key_id, key


class EncryptionCodec(PayloadCodec):
    """Encrypts every payload; decodes payloads encrypted under the current or a previous key."""

    def __init__(self, secret: bytes | str, *, previous_secrets: Sequence[bytes | str] = ()) -> None:
        super().__init__()
        self._key_id, key = derive_codec_key(secret)
        self._aead = AESGCM(key)
        self._decoders: dict[str, AESGCM] = {}
        for old in previous_secrets:
            kid, k = derive_codec_key(old)
            self._decoders[kid] = AESGCM(k)
        self._decoders[self._key_id] = self._aead

    @classmethod
    def from_settings(cls, settings: Settings) -> EncryptionCodec:
        previous = [k.strip() for k in settings.temporal_codec_previous_keys.get_secret_value().split(",") if k.strip()]
        return cls(settings.temporal_codec_key.get_secret_value(), previous_secrets=previous)

    def __repr__(self) -> str:
        return f"EncryptionCodec(key_id={self._key_id!r}, key=***)"

    @property
    def key_id(self) -> str:
        return self._key_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        meta = {"encoding": ENCODING, KEY_ID_META: self._key_id.encode()}
        aad = _AAD_PREFIX + self._key_id.encode()
        out = []
        for p in payloads:
            nonce = os.urandom(aead.NONCE_SIZE)
            data = nonce + self._aead.encrypt(nonce, p.SerializeToString(), aad)
            out.append(Payload(metadata=meta, data=data))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out: list[Payload] = []
        for p in payloads:
            if p.metadata.get("encoding", b"") != ENCODING:
                out.append(p)
                continue
            key_id = p.metadata.get(KEY_ID_META, b"").decode(errors="replace")
            dec = self._decoders.get(key_id)
            if dec is None:
                raise DecryptError(
                    f"Temporal payload encrypted with unknown codec key {key_id!r} (this process has "
                    f"{sorted(self._decoders)}); check TEMPORAL_CODEC_KEY on all workers and clients"
                )
            plain = aead.decrypt_with(dec, p.data, _AAD_PREFIX + key_id.encode(), "Temporal payload")
            out.append(Payload.FromString(plain))
        return out


def data_converter(codec: PayloadCodec) -> temporalio.converter.DataConverter:
    """The default Temporal data converter with ``codec`` applied (pass to ``Client.connect``)."""
    return dataclasses.replace(temporalio.converter.default(), payload_codec=codec)
