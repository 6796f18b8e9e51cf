"""Signing keyring: RS256/ES256 keys with rotation, retirement, JWKS export and raw JWS helpers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

SUPPORTED_ALGS = ("RS256", "ES256")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def b64url_decode(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass
class SigningKey:
    """One key pair. ``status``: active (signs, published), published (verifies), retired (gone from JWKS)."""

    kid: str
    alg: str
    private_key: Any = field(repr=False)
    status: str = "active"
    created_at: float = field(default_factory=time.time)

    @property
    def public_key(self) -> Any:
        return self.private_key.public_key()

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, Any]:
        algo = RSAAlgorithm if self.alg == "RS256" else ECAlgorithm
        data: dict[str, Any] = algo.to_jwk(self.public_key, as_dict=True)
        data.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return data

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        hdr = {"kid": self.kid, "typ": "JWT"}
        hdr.update(headers or {})
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers=hdr)


def generate_key(alg: str, status: str = "active", kid: str | None = None) -> SigningKey:
    if alg not in SUPPORTED_ALGS:
        raise ValueError(f"unsupported alg {alg!r}")
    if alg == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    kid = kid or f"{alg.lower()}-{time.strftime('%Y%m%d')}-{secrets.token_hex(4)}"
    return SigningKey(kid=kid, alg=alg, private_key=private, status=status)


class Keyring:
    """Active key + published (old) keys + retired keys. Only active/published keys appear in JWKS."""

    def __init__(self, alg: str = "RS256") -> None:
        self.keys: list[SigningKey] = [generate_key(alg)]
        self._foreign: dict[str, SigningKey] = {}

    @property
    def active(self) -> SigningKey:
        return next(k for k in reversed(self.keys) if k.status == "active")

    @property
    def alg(self) -> str:
        return self.active.alg

    def published(self) -> list[SigningKey]:
        return [k for k in self.keys if k.status in ("active", "published")]

    def get(self, kid: str) -> SigningKey | None:
        return next((k for k in self.keys if k.kid == kid), None)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.published()]}

    def rotate(self, alg: str | None = None) -> SigningKey:
        """New active key (same alg unless given); the previous active key stays published."""
        new = generate_key(alg or self.alg)
        for k in self.keys:
            if k.status == "active":
                k.status = "published"
        self.keys.append(new)
        return new

    def retire(self, kid: str) -> SigningKey:
        key = self.get(kid)
        if key is None:
            raise KeyError(kid)
        if key.status == "active":
            raise ValueError("cannot retire the active key; rotate first")
        key.status = "retired"
        return key

    def retired_key(self, kid: str | None = None) -> SigningKey:
        """A retired key (given kid, else the newest retired one, else a fresh never-published one)."""
        if kid:
            key = self.get(kid)
            if key is None or key.status != "retired":
                raise KeyError(kid)
            return key
        retired = [k for k in self.keys if k.status == "retired"]
        if retired:
            return retired[-1]
        key = generate_key(self.alg, status="retired")
        self.keys.append(key)
        return key

    def foreign_key(self, alg: str) -> SigningKey:
        """A key never published by this emulator (stable per alg, so tests can reuse it)."""
        if alg not in self._foreign:
            self._foreign[alg] = generate_key(alg, status="foreign", kid=f"foreign-{secrets.token_hex(4)}")
        return self._foreign[alg]

    def verify(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """Verify a token against the *published* keys (exp/nbf checked; aud only if given)."""
        header = jwt.get_unverified_header(token)
        key = self.get(header.get("kid", ""))
        if key is None or key.status not in ("active", "published"):
            raise jwt.InvalidTokenError("unknown or retired kid")
        if header.get("alg") != key.alg:
            raise jwt.InvalidTokenError("alg mismatch")
        options = {"verify_aud": audience is not None, "require": ["exp", "iat"]}
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=[key.alg],
            audience=audience,
            options=options,  # type: ignore[arg-type]
        )
        return claims


def sign_unsecured(claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
    """``alg: none`` JWS with an empty signature."""
    hdr = {"alg": "none", "typ": "JWT", **(headers or {})}
    return f"{b64url_json(hdr)}.{b64url_json(claims)}."


def sign_hs256(claims: dict[str, Any], secret: bytes, headers: dict[str, Any] | None = None) -> str:
    """HS256 with an arbitrary secret (e.g. a public key PEM: the classic alg-confusion attack)."""
    hdr = {"alg": "HS256", "typ": "JWT", **(headers or {})}
    signing_input = f"{b64url_json(hdr)}.{b64url_json(claims)}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def tamper_payload(token: str, changes: dict[str, Any]) -> str:
    """Replace the payload of a signed token, keeping header and (now invalid) signature."""
    header, payload, sig = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims.update(changes)
    return f"{header}.{b64url_json(claims)}.{sig}"
