"""Secret value generators (spec core.md §10.7). Pure apart from the CSPRNG; no I/O.

spec = validate_secret_policy(doc)     # AppError validation_error / invalid_config
data = generate(spec)                  # {"password": "...", ...}; run in a thread for RSA keys
"""

from secretgen.charsets import CHARSETS
from secretgen.generate import (
    bcrypt_pair,
    ec_keypair,
    generate,
    generate_field,
    hex_string,
    random_string,
    random_with_classes,
    rsa_keypair,
    ssh_keypair,
    uuid7,
)
from secretgen.model import (
    GENERATORS,
    POLICY_TYPES,
    BcryptConfig,
    EcKeypairConfig,
    FieldSpec,
    HexConfig,
    RandomConfig,
    RsaKeypairConfig,
    SecretPolicySpec,
    SshKeypairConfig,
    StaticConfig,
    TemplateConfig,
    UuidConfig,
    parse_field,
    parse_fields,
    validate_secret_policy,
)

__all__ = [
    "CHARSETS",
    "GENERATORS",
    "POLICY_TYPES",
    "BcryptConfig",
    "EcKeypairConfig",
    "FieldSpec",
    "HexConfig",
    "RandomConfig",
    "RsaKeypairConfig",
    "SecretPolicySpec",
    "SshKeypairConfig",
    "StaticConfig",
    "TemplateConfig",
    "UuidConfig",
    "bcrypt_pair",
    "ec_keypair",
    "generate",
    "generate_field",
    "hex_string",
    "parse_field",
    "parse_fields",
    "random_string",
    "random_with_classes",
    "rsa_keypair",
    "ssh_keypair",
    "uuid7",
    "validate_secret_policy",
]
