"""AES-256-GCM helpers: ``nonce(12) || ciphertext || tag(16)`` with associated data.

Nonces are random (96 bits). With random nonces a single key should protect well under 2**32
messages; every secret version gets a fresh data key, so data keys encrypt exactly one message and
KEKs only wrap 32-byte keys.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto.errors import DecryptError

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_SIZE)


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        # Only the length is reported, never the key.
        raise ValueError(f"AES-256-GCM needs a {KEY_SIZE}-byte key, got {len(key)} bytes")


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` under ``key`` bound to ``aad``; returns ``nonce || ct || tag``."""
    _check_key(key)
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, blob: bytes | memoryview, aad: bytes) -> bytes:
    """Inverse of :func:`encrypt`. Raises :class:`DecryptError` on any failure."""
    _check_key(key)
    return decrypt_with(AESGCM(key), blob, aad)


def decrypt_with(aead: AESGCM, blob: bytes | memoryview, aad: bytes, what: str = "ciphertext") -> bytes:
    """Decrypt ``nonce || ct || tag`` with an existing ``AESGCM``; ``what`` names the blob in errors."""
    if len(blob) < OVERHEAD:
        raise DecryptError(f"{what} is truncated")
    try:
        return aead.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
    except InvalidTag:
        raise DecryptError(
            f"{what} failed authentication (tampered, wrong key, or bound to another context)"
        ) from None
