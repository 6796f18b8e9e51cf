"""ScaiKey JWT verification.

Only the configured asymmetric algorithms are accepted (RS256 and ES256 by default): ``none`` and every HS*
are refused before any key is touched, which also defeats "HS256 signed with the public key" confusion.
``iss`` must be ``{SCAIKEY issuer prefix}/tenants/{tenant_id claim}``, or ``{prefix}/platform`` for a token with no
``tenant_id`` claim (a platform token never binds a tenant); ``aud`` must
contain SCAIKEY_AUDIENCE (default: the client id); exp/nbf/iat are checked with JWT_LEEWAY_SECONDS.
"""

from __future__ import annotations

from typing import Any

import jwt

from auth.jwks import JwksCache
from core.errors import AppError
from core.settings import Settings


class JwtVerifier:
    def __init__(self, settings: Settings, jwks: JwksCache) -> None:
        self.jwks = jwks
        self.algorithms = set(settings.allowed_jwt_algorithms)
        self.audience = settings.audience
        self.leeway = settings.jwt_leeway_seconds
        self.issuer_prefix = settings.issuer_prefix

    async def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AppError("token_invalid", "token is not a well-formed JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise AppError("token_invalid", f"token algorithm {alg!r} is not accepted",
                           {"accepted_algorithms": sorted(self.algorithms)})
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AppError("token_invalid", "token header has no key id (kid)")
        found = await self.jwks.get(kid)
        if found is None:
            raise AppError("token_invalid", "token was signed by an unknown key", {"kid": kid})
        key, key_alg = found
        if key_alg and key_alg != alg:
            raise AppError("token_invalid", "token algorithm does not match its signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[alg], audience=self.audience, leeway=self.leeway,
                options={"require": ["exp", "iat", "sub", "iss"], "verify_iss": False},
            )
        except jwt.ExpiredSignatureError:
            raise AppError("token_expired", "token has expired; obtain a new one") from None
        except jwt.ImmatureSignatureError:
            raise AppError("token_invalid", "token is not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise AppError("token_invalid", "token audience does not match this ScaiVault",
                           {"expected_audience": self.audience}) from None
        except jwt.InvalidSignatureError:
            raise AppError("token_invalid", "token signature is invalid") from None
        except jwt.PyJWTError as exc:
            raise AppError("token_invalid", f"token rejected: {type(exc).__name__}") from None
        iss = claims.get("iss")
        tenant = claims.get("tenant_id")
        if tenant is not None:
            # A tenant claim binds only when the tenant's own issuer signed it: iss = …/tenants/{tenant_id}.
            # The platform issuer binds no tenant, so a platform token naming one (which would otherwise make
            # its bearer a member of any tenant it names, and create that tenant) is refused, as is a tenant
            # issuer naming another tenant.
            if not isinstance(tenant, str) or iss != f"{self.issuer_prefix}/tenants/{tenant}":
                raise AppError("token_invalid", "token tenant_id is not bound to its issuer")
        elif iss != f"{self.issuer_prefix}/platform":
            raise AppError("token_invalid", "token issuer is not this ScaiKey environment")
        return claims
