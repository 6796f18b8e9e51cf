"""Value generators (spec core.md §10.7). CSPRNG only (``secrets`` / ``os.urandom`` / OpenSSL).

Key generation is CPU-bound (RSA 4096 takes ~1 s): async callers should run ``generate`` in a worker
thread (``asyncio.to_thread``). Generated values are returned to the caller and never logged here.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from core.errors import AppError
from secretgen.charsets import ALNUM, CHARSETS
from secretgen.model import (
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
)

#: Rejection sampling bound. Validation guarantees >= 1% acceptance, so (0.99)^10000 ~ e^-100.
MAX_ATTEMPTS = 10_000


def random_string(length: int, alphabet: str) -> str:
    """Uniform random string: every position an independent ``secrets.choice`` (no modulo bias)."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def random_with_classes(config: RandomConfig) -> str:
    """Uniform over all strings of the alphabet that contain every required class.

    Rejection sampling: draw uniformly, retry until each class is present. Unlike "place one char per
    class then shuffle", this keeps every valid string equally likely.
    """
    alphabet = config.alphabet or CHARSETS[config.charset]
    for _ in range(MAX_ATTEMPTS):
        value = random_string(config.length, alphabet)
        if all(not cls.isdisjoint(value) for cls in config.required):
            return value
    raise AppError("internal_error", "random generator could not satisfy required character classes")


def hex_string(length: int) -> str:
    return secrets.token_hex((length + 1) // 2)[:length]


def uuid7(now: datetime | None = None) -> uuid.UUID:
    """RFC 9562 UUIDv7: 48-bit Unix milliseconds, version 7, 74 random bits, variant 10."""
    ms = int((now or datetime.now(UTC)).timestamp() * 1000) & ((1 << 48) - 1)
    rand = secrets.randbits(74)
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return uuid.UUID(int=value)


def _uuid(config: UuidConfig, now: datetime) -> str:
    return str(uuid.uuid4() if config.version == 4 else uuid7(now))


def _template(config: TemplateConfig, now: datetime) -> str:
    out: list[str] = []
    for part in config.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        kind, n = part
        if kind == "random":
            out.append(random_string(n, ALNUM))
        elif kind == "hex":
            out.append(hex_string(n))
        elif kind == "uuid":
            out.append(str(uuid.uuid4()))
        else:  # timestamp
            out.append(str(int(now.timestamp())))
    return "".join(out)


def _pem_pair(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    priv = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return priv.decode(), pub.decode()


def rsa_keypair(bits: int) -> tuple[str, str]:
    """(PKCS#8 private PEM, SubjectPublicKeyInfo public PEM)."""
    return _pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=bits))


_CURVES: dict[str, Callable[[], ec.EllipticCurve]] = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1}


def ec_keypair(curve: str) -> tuple[str, str]:
    return _pem_pair(ec.generate_private_key(_CURVES[curve]()))


def ssh_keypair(key_type: str, comment: str = "", bits: int = 3072) -> tuple[str, str]:
    """(OpenSSH private key, ``authorized_keys`` public line with the comment appended)."""
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    if key_type == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    pub = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return priv, f"{pub} {comment}" if comment else pub


def bcrypt_pair(config: BcryptConfig) -> tuple[str, str]:
    """(random password, its ``$2b$`` bcrypt hash)."""
    try:
        import bcrypt
    except ImportError:
        raise AppError(
            "invalid_config", "bcrypt_hash unsupported: the 'bcrypt' package is not installed"
        ) from None
    password = random_string(config.length, CHARSETS[config.charset])
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=config.rounds)).decode()
    return password, hashed


def generate_field(spec: FieldSpec, now: datetime | None = None) -> dict[str, str]:
    """Values for one field: ``{name: value}`` plus the companion key for keypair/bcrypt generators."""
    now = now or datetime.now(UTC)
    c = spec.config
    if isinstance(c, RandomConfig):
        return {spec.name: random_with_classes(c)}
    if isinstance(c, HexConfig):
        return {spec.name: hex_string(c.length)}
    if isinstance(c, UuidConfig):
        return {spec.name: _uuid(c, now)}
    if isinstance(c, TemplateConfig):
        return {spec.name: _template(c, now)}
    if isinstance(c, StaticConfig):
        return {spec.name: c.value}
    if isinstance(c, RsaKeypairConfig):
        pair = rsa_keypair(c.bits)
    elif isinstance(c, EcKeypairConfig):
        pair = ec_keypair(c.curve)
    elif isinstance(c, SshKeypairConfig):
        pair = ssh_keypair(c.key_type, c.comment, c.bits)
    else:
        pair = bcrypt_pair(c)
    assert spec.companion is not None
    return {spec.name: pair[0], spec.companion: pair[1]}


def generate(policy: SecretPolicySpec, now: datetime | None = None) -> dict[str, str]:
    """Run every field of a validated policy. Keys: field names plus companion keys."""
    now = now or datetime.now(UTC)
    out: dict[str, str] = {}
    for spec in policy.fields:
        out.update(generate_field(spec, now))
    return out
