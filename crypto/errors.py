"""Exception tree of the crypto layer.

::

    CryptoError                 anything raised on purpose by crypto/
    ├── DecryptError            ciphertext is corrupt, tampered, bound to another context, or the key is wrong
    │   └── KeyNotFound         the key version a blob names does not exist (in the store or the keyring)
    ├── PartnerChanged          a new tenant key was wrapped under a partner the tenant no longer belongs to
    ├── KmsUnavailable          the KMS could not be reached / refused (maps to 503 ``kms_unavailable``)
    └── KmsConfigError          the KMS settings are missing or invalid (refuse to start)

Messages never contain key material, plaintext or ciphertext; only identifiers (key ids, versions,
provider names) and short reasons. Each class carries the error-registry ``code`` the API should use.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class for every error raised on purpose by the crypto layer."""

    code = "internal_error"


class DecryptError(CryptoError):
    """Authentication failed or the blob is malformed; never says which byte or why beyond a short reason."""

    code = "internal_error"


class KeyNotFound(DecryptError):
    """A blob refers to a key (owner, version) that does not exist."""


class PartnerChanged(CryptoError):
    """A tenant key insert raced a move of the tenant to another partner; ``partner_id`` is the tenant's partner
    now. The keyring re-wraps under it and retries (never reaches a client)."""

    def __init__(self, tenant_id: str, partner_id: str) -> None:
        super().__init__(f"tenant {tenant_id} now belongs to partner {partner_id}")
        self.tenant_id = tenant_id
        self.partner_id = partner_id


class KmsUnavailable(CryptoError):
    """The KMS is unreachable, throttling, disabled or denied the call. Retryable by the caller."""

    code = "kms_unavailable"


class KmsConfigError(CryptoError):
    """The KMS configuration is incomplete or invalid (raised at startup, not per request)."""

    code = "internal_error"
