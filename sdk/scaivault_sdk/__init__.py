"""ScaiVault Python SDK: ``ScaiVaultClient`` (async), ``SyncScaiVaultClient``, the error tree and
``verify_webhook``. Depends on httpx only; imports nothing from the ScaiVault server.

::

    from scaivault_sdk import SyncScaiVaultClient
    with SyncScaiVaultClient("https://vault.example", token="skt_...") as vault:
        print(vault.secrets.read("app/db").data["password"])
"""

__version__ = "0.1.0"

from scaivault_sdk.auth import ClientCredentials, StaticToken
from scaivault_sdk.cache import ReadCache
from scaivault_sdk.client import ScaiVaultClient
from scaivault_sdk.errors import (
    AccessDeniedError,
    APIError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InternalError,
    NotFoundError,
    RateLimitError,
    ScaiVaultError,
    ServerError,
    ServiceUnavailableError,
    TransportError,
    ValidationError,
)
from scaivault_sdk.models import (
    AccessToken,
    AuditEntry,
    BatchReadResult,
    Certificate,
    CertificateAuthority,
    DynamicCredential,
    FederationBackend,
    IssuedCertificate,
    ItemError,
    Lease,
    Page,
    Policy,
    PolicyBinding,
    PolicyTestResult,
    Record,
    RotationHistoryItem,
    RotationPolicy,
    Secret,
    SecretMetadata,
    SecretVersion,
    Whoami,
)
from scaivault_sdk.signature import WebhookVerificationError, verify_webhook
from scaivault_sdk.sync import SyncScaiVaultClient
from scaivault_sdk.transport import RetryPolicy

__all__ = [
    "APIError", "AccessDeniedError", "AccessToken", "AuditEntry", "AuthenticationError", "BatchReadResult",
    "Certificate", "CertificateAuthority", "ClientCredentials", "ConfigurationError", "ConflictError",
    "DynamicCredential", "FederationBackend", "InternalError", "IssuedCertificate", "ItemError", "Lease",
    "NotFoundError", "Page", "Policy", "PolicyBinding", "PolicyTestResult", "RateLimitError", "ReadCache", "Record",
    "RetryPolicy", "RotationHistoryItem", "RotationPolicy", "ScaiVaultClient", "ScaiVaultError", "Secret", "SecretMetadata", "SecretVersion", "ServerError",
    "ServiceUnavailableError", "StaticToken", "SyncScaiVaultClient", "TransportError", "ValidationError",
    "WebhookVerificationError", "Whoami", "__version__", "verify_webhook",
]
