"""Root-key providers (the top of the key hierarchy).

A :class:`KmsProvider` wraps and unwraps *partner keys* (32 random bytes) under the root key, bound to an
encryption context (``dict[str, str]``) that must be presented again on unwrap. Only these calls
ever leave the process; everything below the partner level is unwrapped locally (crypto/keyring.py).

Every provider blob starts with the same self-describing prefix, so a blob from another provider or an
unknown root key fails with a clear message instead of a bare authentication error::

    b"SVK" | format (1 byte, =1) | len(provider) (1) | provider | len(key_id) (2, BE) | key_id | body

* ``LocalKms``: body = ``nonce || AES-256-GCM(ct || tag)`` under a root key held in memory,
  AAD = prefix || canonical JSON of the context. For development, tests and single-box installs.
* ``AwsKms``: body = the AWS KMS ``CiphertextBlob`` from ``Encrypt`` with ``EncryptionContext``;
  ``Decrypt`` passes the key id recorded in the prefix, so blobs made under an older ``KMS_KEY_ID``
  keep working after ``scaivault kms rotate`` switched keys.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from crypto import aead
from crypto.errors import DecryptError, KmsConfigError, KmsUnavailable

if TYPE_CHECKING:
    from core.settings import Settings

_MAGIC = b"SVK"
_FORMAT = 1


@runtime_checkable
class KmsProvider(Protocol):
    """Wraps/unwraps small secrets (partner keys) under a root key that never leaves the KMS."""

    @property
    def name(self) -> str:
        """Provider name as in ``KMS_PROVIDER`` (``local``, ``aws``)."""
        ...

    @property
    def key_id(self) -> str:
        """Identifier of the root key new wraps use (never the key itself)."""
        ...

    async def wrap(self, plaintext: bytes, context: dict[str, str]) -> bytes: ...

    async def unwrap(self, blob: bytes, context: dict[str, str]) -> bytes: ...

    async def health(self) -> None:
        """Return if the root key is usable; raise :class:`KmsUnavailable` otherwise."""
        ...


# ------------------------------------------------------------------------------- blob prefix


@dataclass(frozen=True, slots=True)
class KmsBlobInfo:
    """What a provider blob says about itself (no secrets)."""

    provider: str
    key_id: str
    header_size: int


def _prefix(provider: str, key_id: str) -> bytes:
    p, k = provider.encode(), key_id.encode()
    return _MAGIC + bytes((_FORMAT, len(p))) + p + struct.pack(">H", len(k)) + k


def describe_blob(blob: bytes) -> KmsBlobInfo:
    """Parse the provider prefix of a KMS blob; raises :class:`DecryptError` if it is not one."""
    try:
        if blob[:3] != _MAGIC or blob[3] != _FORMAT:
            raise DecryptError("not a ScaiVault KMS blob")
        plen = blob[4]
        provider = blob[5 : 5 + plen].decode()
        (klen,) = struct.unpack_from(">H", blob, 5 + plen)
        start = 7 + plen
        key_id = blob[start : start + klen].decode()
        if len(key_id.encode()) != klen:
            raise DecryptError("KMS blob is truncated")
        return KmsBlobInfo(provider, key_id, start + klen)
    except (IndexError, struct.error, UnicodeDecodeError):
        raise DecryptError("KMS blob is truncated or malformed") from None


def canonical_context(context: dict[str, str]) -> bytes:
    """Deterministic JSON encoding of an encryption context (sorted keys, no spaces)."""
    return json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _check_provider(info: KmsBlobInfo, name: str) -> None:
    if info.provider != name:
        raise DecryptError(f"blob was wrapped by KMS provider {info.provider!r}, this server uses {name!r}")


# ---------------------------------------------------------------------------------- LocalKms


def _fingerprint(key: bytes) -> str:
    return "local-" + hashlib.sha256(b"scaivault/local-kms/key-id\x00" + key).hexdigest()[:16]


def _decode_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KmsConfigError(f"{source} is not valid base64") from None
    if len(key) != aead.KEY_SIZE:
        raise KmsConfigError(f"{source} must decode to {aead.KEY_SIZE} bytes, got {len(key)}")
    return key


class LocalKms:
    """Root key held in process memory (from ``KMS_LOCAL_KEY`` or ``KMS_LOCAL_KEY_FILE``).

    A key file holds one base64 key per line: the first line is the current key, the following lines
    are older keys kept for unwrapping only (see :meth:`rotate_key_file`).
    """

    name = "local"

    def __init__(self, key: bytes, previous_keys: Sequence[bytes] = ()) -> None:
        for k in (key, *previous_keys):
            if len(k) != aead.KEY_SIZE:
                raise KmsConfigError(f"local KMS keys must be {aead.KEY_SIZE} bytes")
        self._key_id = _fingerprint(key)
        self._keys: dict[str, bytes] = {_fingerprint(k): k for k in previous_keys}
        self._keys[self._key_id] = key

    def __repr__(self) -> str:
        return f"LocalKms(key_id={self._key_id!r}, keys={len(self._keys)}, key=***)"

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def key_ids(self) -> list[str]:
        """All key ids this instance can unwrap (current first)."""
        return [self._key_id, *(k for k in self._keys if k != self._key_id)]

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_base64(cls, text: str) -> LocalKms:
        return cls(_decode_key(text, "KMS_LOCAL_KEY"))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> LocalKms:
        p = Path(path)
        try:
            lines = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
        except OSError as exc:
            raise KmsConfigError(f"cannot read KMS_LOCAL_KEY_FILE {str(p)!r}: {exc.strerror}") from None
        if not lines:
            raise KmsConfigError(f"KMS_LOCAL_KEY_FILE {str(p)!r} is empty")
        keys = [_decode_key(ln, f"KMS_LOCAL_KEY_FILE line {i + 1}") for i, ln in enumerate(lines)]
        return cls(keys[0], keys[1:])

    @staticmethod
    def create_key_file(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write a new random key (base64, one line) with mode 0600. Refuses to clobber unless asked."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        fd = os.open(p, flags, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(aead.new_key()).decode() + "\n")
        os.chmod(p, 0o600)
        return p

    @staticmethod
    def rotate_key_file(path: str | os.PathLike[str]) -> Path:
        """Prepend a new current key to a key file, keeping older keys for unwrapping (mode 0600).

        Run :meth:`crypto.keyring.KeyHierarchy.rotate_root` afterwards (with a LocalKms loaded from
        the new file) to re-wrap every partner key under the new key.
        """
        p = Path(path)
        old = p.read_text()
        tmp = p.with_name(p.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(aead.new_key()).decode() + "\n" + old)
        os.replace(tmp, p)
        return p

    # -- provider ------------------------------------------------------------------------------
    async def wrap(self, plaintext: bytes, context: dict[str, str]) -> bytes:
        prefix = _prefix(self.name, self._key_id)
        return prefix + aead.encrypt(self._keys[self._key_id], plaintext, prefix + canonical_context(context))

    async def unwrap(self, blob: bytes, context: dict[str, str]) -> bytes:
        info = describe_blob(blob)
        _check_provider(info, self.name)
        key = self._keys.get(info.key_id)
        if key is None:
            raise DecryptError(
                f"blob was wrapped by local root key {info.key_id!r}, which is not configured "
                f"(configured: {', '.join(self.key_ids)})"
            )
        prefix = blob[: info.header_size]
        return aead.decrypt(key, blob[info.header_size :], prefix + canonical_context(context))

    async def health(self) -> None:
        probe = os.urandom(16)
        ctx = {"purpose": "health"}
        if await self.unwrap(await self.wrap(probe, ctx), ctx) != probe:  # pragma: no cover - defensive
            raise KmsUnavailable("local KMS round trip mismatch")


# ------------------------------------------------------------------------------------ AwsKms

_DECRYPT_CODES = {"InvalidCiphertextException", "IncorrectKeyException"}


def _map_boto_error(exc: Exception, operation: str) -> Exception:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        if code in _DECRYPT_CODES:
            return DecryptError(f"AWS KMS {operation} rejected the blob ({code}): wrong key or context")
        return KmsUnavailable(f"AWS KMS {operation} failed: {code}")
    if isinstance(exc, BotoCoreError):
        return KmsUnavailable(f"AWS KMS {operation} failed: {type(exc).__name__}")
    return exc


class AwsKms:
    """AWS KMS symmetric key; calls run in a worker thread on one boto3 client made at construction."""

    name = "aws"

    def __init__(
        self,
        key_id: str,
        region: str,
        endpoint_url: str | None = None,
        *,
        client: Any = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        max_attempts: int = 3,
    ) -> None:
        if not key_id:
            raise KmsConfigError("KMS_KEY_ID is required when KMS_PROVIDER=aws")
        self._key_id = key_id
        self.region = region
        self.endpoint_url = endpoint_url or None
        self._client = client or self._make_client(
            access_key_id, secret_access_key, session_token, connect_timeout, read_timeout, max_attempts
        )

    def _make_client(
        self,
        access_key_id: str | None,
        secret_access_key: str | None,
        session_token: str | None,
        connect_timeout: float,
        read_timeout: float,
        max_attempts: int,
    ) -> Any:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=self.region,
        )
        creds: dict[str, str] = {}
        if self.endpoint_url and session.get_credentials() is None:
            # A local emulator (moto) with no credentials configured: it accepts any, boto3 needs some.
            creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
        )
        return session.client("kms", endpoint_url=self.endpoint_url, config=config, **creds)

    def __repr__(self) -> str:
        return f"AwsKms(key_id={self._key_id!r}, region={self.region!r}, endpoint_url={self.endpoint_url!r})"

    @property
    def key_id(self) -> str:
        return self._key_id

    async def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        method = getattr(self._client, operation)
        try:
            result: dict[str, Any] = await asyncio.to_thread(method, **kwargs)
        except Exception as exc:
            mapped = _map_boto_error(exc, operation)
            if mapped is exc:
                raise
            raise mapped from None
        return result

    async def wrap(self, plaintext: bytes, context: dict[str, str]) -> bytes:
        out = await self._call("encrypt", KeyId=self._key_id, Plaintext=plaintext, EncryptionContext=context)
        return _prefix(self.name, self._key_id) + bytes(out["CiphertextBlob"])

    async def unwrap(self, blob: bytes, context: dict[str, str]) -> bytes:
        info = describe_blob(blob)
        _check_provider(info, self.name)
        out = await self._call(
            "decrypt", CiphertextBlob=blob[info.header_size :], EncryptionContext=context, KeyId=info.key_id
        )
        return bytes(out["Plaintext"])

    async def health(self) -> None:
        out = await self._call("describe_key", KeyId=self._key_id)
        state = out.get("KeyMetadata", {}).get("KeyState", "Unknown")
        if state != "Enabled":
            raise KmsUnavailable(f"AWS KMS key is {state}")


# ------------------------------------------------------------------------------------- factory


def build_kms(settings: Settings) -> KmsProvider:
    """The provider selected by ``KMS_PROVIDER``.

    * ``local``: ``KMS_LOCAL_KEY`` (base64, wins) or ``KMS_LOCAL_KEY_FILE``; neither -> :class:`KmsConfigError`.
    * ``aws``: ``KMS_KEY_ID``, ``AWS_REGION``, optional ``AWS_ENDPOINT_URL`` (moto). Credentials come from
      boto3's normal chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` env, profile, IAM role).
    """
    if settings.kms_provider == "local":
        inline = settings.kms_local_key.get_secret_value()
        if inline:
            return LocalKms.from_base64(inline)
        if settings.kms_local_key_file:
            return LocalKms.from_file(settings.kms_local_key_file)
        raise KmsConfigError(
            "KMS_PROVIDER=local needs KMS_LOCAL_KEY (base64 of 32 bytes) or KMS_LOCAL_KEY_FILE "
            "(create one with LocalKms.create_key_file / the dev stack)"
        )
    if settings.kms_provider == "aws":
        return AwsKms(settings.kms_key_id, settings.aws_region, settings.aws_endpoint_url or None)
    raise KmsConfigError(f"unsupported KMS_PROVIDER {settings.kms_provider!r}")
