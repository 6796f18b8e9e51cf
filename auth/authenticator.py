"""Bearer-token authentication: ScaiKey JWTs and ScaiVault personal access tokens (``skt_``).

Hot path: a verified token maps to its ``Principal`` through an in-process cache, so a warm request costs one
dict lookup (no signature check, no JWKS, no DB). Revocation:

- JWTs are checked against ScaiKey's introspection endpoint when first seen and again every
  TOKEN_REVOCATION_CHECK_SECONDS; a token ScaiKey reports inactive is refused with ``token_revoked``. If ScaiKey
  cannot be reached the locally verified token is accepted and re-checked on the next interval (documented in
  docs/auth.md).
- PATs are looked up by keyed hash; revocation deletes the cache entry in the revoking process and is broadcast
  over Redis pub/sub so every API process drops it at once; the cache TTL (30 s) bounds staleness if Redis is down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from auth.jwt_verify import JwtVerifier
from auth.principal import ROLES, Principal
from clients.scaikey import ScaiKeyClient, ScaiKeyError
from core.background import cancel_and_wait, subscribe_forever
from core.errors import AppError
from core.settings import Settings
from crypto.tokens import checksum_ok, hash_token, looks_like_pat
from db.engine import Database
from repositories import pats as pat_repo

log = logging.getLogger("scaivault.auth")
REVOCATION_CHANNEL = "scaivault:revocations"
PAT_CACHE_TTL = 30.0
_MAX_CACHE = 50_000

StatusCheck = Callable[[Principal], Awaitable[None]]
Enricher = Callable[[Principal], Awaitable[Principal]]


def _ts(value: Any) -> datetime | None:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return None


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Map ScaiKey claims onto a ScaiVault identity (docs/auth.md "Identity mapping")."""
    client_id = claims.get("client_id")
    sub = str(claims["sub"])
    if claims.get("token_type") == "client_credentials":
        identity_id, identity_type = f"sa:{client_id or sub}", "service_account"
    else:
        email = claims.get("email")
        identity_id, identity_type = f"user:{email or sub}", "user"
    raw_scope = claims.get("scope") or ""
    scopes = set(raw_scope.split()) if isinstance(raw_scope, str) else set(raw_scope)
    if isinstance(claims.get("scp"), list):
        scopes.update(claims["scp"])
    groups = []
    for g in claims.get("groups") or []:
        gid = g if str(g).startswith("group:") else f"group:{g}"
        if gid not in groups:
            groups.append(gid)
    roles: list[str] = []
    role = claims.get("role")
    for r in ([role] if isinstance(role, str) else []) + list(claims.get("roles") or []):
        if r in ROLES and r not in roles:
            roles.append(r)
    amr = claims.get("amr") or []
    mfa_at = _ts(claims.get("auth_time") or claims.get("iat")) if "mfa" in amr else None
    return Principal(
        identity_id=identity_id, identity_type=identity_type, subject=sub,  # type: ignore[arg-type]
        tenant_id=claims.get("tenant_id"), partner_id=claims.get("partner_id"), scopes=frozenset(scopes),
        groups=tuple(groups), roles=tuple(roles), display_name=claims.get("name") or claims.get("email"),
        mfa_verified_at=mfa_at, expires_at=_ts(claims.get("exp")), issued_at=_ts(claims.get("iat")),
        token_kind="jwt", token_id=claims.get("jti"), client_id=client_id,
        platform_token=bool(claims.get("platform_token")),
    )


class Authenticator:
    def __init__(self, settings: Settings, db: Database, verifier: JwtVerifier, scaikey: ScaiKeyClient,
                 redis: Any = None) -> None:
        self.settings = settings
        self.db = db
        self.verifier = verifier
        self.scaikey = scaikey
        self.redis = redis
        self.hmac_key = settings.token_hmac_key.get_secret_value().encode()
        self.recheck = float(settings.token_revocation_check_seconds)
        self._jwt: OrderedDict[str, tuple[Principal, float, float]] = OrderedDict()  # token -> (p, recheck, exp)
        self._revoked: dict[str, float] = {}
        self._pat: dict[str, tuple[Principal, float, str]] = {}  # hash -> (p, fetched, id)
        self._pat_touched: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Future[Principal]] = {}
        self._sub_task: asyncio.Task[None] | None = None
        self.status_checks: list[StatusCheck] = []  # e.g. suspended-user check from the identity cache
        # Run before status_checks; may return a richer principal (e.g. cached roles/groups) or raise.
        self.enrichers: list[Enricher] = []

    # --- public ------------------------------------------------------------------------------
    async def authenticate(self, token: str) -> Principal:
        if token.startswith("skt_"):
            principal = await self._pat_principal(token)
        elif token.count(".") == 2:
            principal = await self._jwt_principal(token)
        else:
            raise AppError("token_invalid", "token is neither a ScaiKey JWT nor a personal access token")
        for enrich in self.enrichers:
            principal = await enrich(principal)
        for check in self.status_checks:
            await check(principal)
        return principal

    def hash(self, token: str) -> str:
        return hash_token(token, self.hmac_key)

    # --- JWT ----------------------------------------------------------------------------------
    async def _jwt_principal(self, token: str) -> Principal:
        now_wall = time.time()
        hit = self._jwt.get(token)
        if hit is not None:
            principal, recheck_at, exp = hit
            if now_wall >= exp + self.settings.jwt_leeway_seconds:
                self._jwt.pop(token, None)
                raise AppError("token_expired", "token has expired; obtain a new one")
            if recheck_at > time.monotonic():
                return principal
        if token in self._revoked:
            raise AppError("token_revoked", "token has been revoked")
        fut = self._inflight.get(token)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[token] = fut
        try:
            principal = await self._verify_jwt(token)
            fut.set_result(principal)
            return principal
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved
            raise
        finally:
            self._inflight.pop(token, None)

    async def _verify_jwt(self, token: str) -> Principal:
        claims = await self.verifier.verify(token)
        principal = principal_from_claims(claims)
        recheck_in = self.recheck or 3600.0
        not_before = max(float(claims.get("nbf") or 0), float(claims.get("iat") or 0))
        early = not_before - time.time()
        if early > 0:
            # Inside the clock-skew leeway: ScaiKey would call it inactive until nbf, so ask after that.
            recheck_in = min(recheck_in, early + 1.0)
        elif self.recheck > 0:
            active = await self._introspect_active(token)
            if active is False:
                self._revoked[token] = float(claims["exp"])
                self._jwt.pop(token, None)
                raise AppError("token_revoked", "token has been revoked")
        self._jwt[token] = (principal, time.monotonic() + recheck_in, float(claims["exp"]))
        self._jwt.move_to_end(token)
        while len(self._jwt) > _MAX_CACHE:
            self._jwt.popitem(last=False)
        if len(self._revoked) > 1000:
            now = time.time()
            self._revoked = {k: v for k, v in self._revoked.items() if v > now}
        return principal

    async def _introspect_active(self, token: str) -> bool | None:
        try:
            body = await self.scaikey.introspect(token)
        except ScaiKeyError as exc:
            log.warning("token introspection unavailable; accepting locally verified token",
                        extra={"error": str(exc)})
            return None
        return bool(body.get("active"))

    # --- PAT ----------------------------------------------------------------------------------
    async def _pat_principal(self, token: str) -> Principal:
        if not looks_like_pat(token) or not checksum_ok(token):
            raise AppError("token_invalid", "personal access token is malformed")
        h = self.hash(token)
        now = time.monotonic()
        hit = self._pat.get(h)
        if hit is None or now - hit[1] > PAT_CACHE_TTL:
            async with self.db.raw() as conn:
                row = await pat_repo.by_hash(conn, h)
            if row is None:
                raise AppError("token_invalid", "personal access token is not recognised")
            if row["revoked_at"] is not None:
                raise AppError("token_revoked", "personal access token has been revoked")
            principal = Principal(
                identity_id=row["identity_id"], identity_type=row["identity_type"], subject=row["subject"],
                tenant_id=row["tenant_id"], partner_id=row["partner_id"], scopes=frozenset(row["scopes"]),
                groups=tuple(row["groups"]), roles=tuple(row["roles"]), display_name=row["name"],
                mfa_verified_at=None, expires_at=row["expires_at"], issued_at=row["created_at"],
                token_kind="pat", token_id=row["id"],
            )
            hit = (principal, now, row["id"])
            self._pat[h] = hit
        principal = hit[0]
        if principal.expires_at is not None and principal.expires_at <= datetime.now(UTC):
            raise AppError("token_expired", "personal access token has expired")
        last = self._pat_touched.get(hit[2], 0.0)
        if now - last > 60:
            self._pat_touched[hit[2]] = now
            asyncio.get_running_loop().create_task(self._touch(hit[2]))
        return principal

    async def _touch(self, token_id: str) -> None:
        try:
            async with self.db.raw() as conn:
                await pat_repo.touch(conn, token_id)
        except Exception:  # last_used_at is best effort, never on the request path
            log.debug("could not record PAT use", exc_info=True)

    def forget_pat(self, token_hash: str) -> None:
        self._pat.pop(token_hash, None)

    async def broadcast_revocation(self, token_hash: str) -> None:
        self.forget_pat(token_hash)
        if self.redis is not None:
            try:
                await self.redis.publish(REVOCATION_CHANNEL, token_hash)
            except Exception:
                log.warning("revocation broadcast failed; other processes drop it within the cache TTL")

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self.redis is None:
            return

        # after a disconnect, revocations may have been missed: drop the PAT cache and re-read
        self._sub_task = subscribe_forever(self.redis, REVOCATION_CHANNEL, self.forget_pat, self._pat.clear)

    async def stop(self) -> None:
        await cancel_and_wait(self._sub_task)
