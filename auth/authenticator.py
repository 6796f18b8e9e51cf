"""Bearer-token authentication: ScaiKey JWTs and ScaiVault personal access tokens (``skt_``).

Hot path: a verified token maps to its ``Principal`` through an in-process cache, so a warm request costs one
dict lookup (no signature check, no JWKS, no DB). Revocation:

- JWTs are checked against ScaiKey's introspection endpoint when first seen and again every
  TOKEN_REVOCATION_CHECK_SECONDS; a token ScaiKey reports inactive is refused with ``token_revoked``. If ScaiKey
  cannot be reached the locally verified token is accepted and re-checked on the next interval (documented in
  docs/auth.md).
- PATs are looked up by keyed hash; revocation deletes the cache entry in the revoking process and is broadcast
  over Redis pub/sub so every API process drops it at once; the cache TTL (30 s) bounds staleness if Redis is down.
- A PAT carries the identity (id, type, subject, tenant) and its scopes only. Its roles, groups and the user's
  status are resolved live on every request by the enrichers (auth/identity_enrichment.py: the same cached,
  invalidated lookup the JWT path uses), so offboarding, suspension, demotion and group removal apply to PATs at
  once. The ``roles``/``groups`` columns of old rows are ignored.
- Introspection answering 4xx means ScaiVault's own client credentials are wrong, not that the token is bad:
  TOKEN_INTROSPECTION_FAILURE_MODE decides (closed: 503 ``service_unavailable``; open: accept), readiness
  reports it (``token_introspection``) and the log says so once per TOKEN_REVOCATION_CHECK_SECONDS.
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
from clients.scaikey import ScaiKeyClient, ScaiKeyError, ScaiKeyStatusError
from core.background import cancel_and_wait, subscribe_forever
from core.errors import AppError
from core.settings import Settings
from crypto.tokens import checksum_ok, hash_token, looks_like_pat
from db.engine import Database
from repositories import pats as pat_repo

log = logging.getLogger("scaivault.auth")
REVOCATION_CHANNEL = "scaivault:revocations"
PAT_CACHE_TTL = 30.0
PROBE_INTERVAL = 10.0  # readiness re-checks refused introspection credentials at most this often
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
        self.fail_closed = settings.introspection_fail_closed
        self.introspection_error: str | None = None  # set while ScaiKey answers 4xx to introspection
        self._introspection_logged_at = -1e9
        self._last_probe = time.monotonic()

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
        """True/False from ScaiKey; None when it could not say and the locally verified token is accepted.

        ScaiKey unreachable, 5xx or 429: accept and re-check next interval (availability over a bounded delay).
        Any other 4xx means ScaiVault's own introspection credentials or URL are wrong, which would silently
        switch revocation off for every token: that is loud (readiness, a log line per interval) and, when
        fail-closed (the default outside ENV=dev), refuses the token with 503 ``service_unavailable``."""
        try:
            body = await self.scaikey.introspect(token)
        except ScaiKeyStatusError as exc:
            if 400 <= exc.status < 500 and exc.status not in (408, 429):
                self._introspection_rejected(exc.status)  # raises when fail-closed
                return None
            log.warning("token introspection unavailable; accepting locally verified token",
                        extra={"error": str(exc)})
            return None
        except ScaiKeyError as exc:
            log.warning("token introspection unavailable; accepting locally verified token",
                        extra={"error": str(exc)})
            return None
        if self.introspection_error is not None:
            log.info("token introspection works again; revocation checks are back on")
        self.introspection_error = None
        return bool(body.get("active"))

    def _introspection_rejected(self, status: int) -> None:
        self.introspection_error = (f"ScaiKey answered {status} to token introspection: check SCAIKEY_CLIENT_ID/"
                                    f"SCAIKEY_CLIENT_SECRET (revocation cannot be checked)")
        now = time.monotonic()
        if now - self._introspection_logged_at >= (self.recheck or 60.0):
            self._introspection_logged_at = now
            log.error("token introspection rejected ScaiVault's credentials; revocation checks are not running",
                      extra={"status": status, "fail_closed": self.fail_closed})
        if self.fail_closed:
            raise AppError("service_unavailable", "token revocation cannot be checked right now (ScaiKey refuses "
                           "ScaiVault's introspection credentials)", {"reason": "introspection_rejected"})

    async def probe_introspection(self) -> None:
        """Start-up check of the introspection credentials (a junk token: 200 {active: false} when they work),
        so readiness reports a misconfiguration before the first real token arrives."""
        if self.recheck <= 0:
            return
        try:
            await self._introspect_active("probe.invalid.token")
        except AppError:
            pass  # fail-closed: recorded in introspection_error; readiness reports it

    async def introspection_health(self) -> dict[str, Any] | None:
        """``state.components["health_extras"]["token_introspection"]``: error (readiness 503) when fail-closed,
        ``degraded`` (still ready) when fail-open."""
        if self.introspection_error is None:
            return None
        now = time.monotonic()
        if now - self._last_probe >= PROBE_INTERVAL:
            # Re-probe while in error (at most every PROBE_INTERVAL): a fail-closed process is out of the load
            # balancer, so no real token would ever arrive to find out the credentials work again.
            self._last_probe = now
            await self.probe_introspection()
            if self.introspection_error is None:
                return None
        if self.fail_closed:
            raise RuntimeError(self.introspection_error)
        return {"status": "degraded", "error": self.introspection_error, "failure_mode": "open"}

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
                raise AppError("token_revoked", "personal access token has been revoked",
                               {"reason": "user_deleted"} if row["revoked_by"] == pat_repo.REVOKED_BY_USER_DELETED
                               else None)
            # roles and groups are never taken from the row: the enrichers resolve them live (see module doc)
            principal = Principal(
                identity_id=row["identity_id"], identity_type=row["identity_type"], subject=row["subject"],
                tenant_id=row["tenant_id"], partner_id=row["partner_id"], scopes=frozenset(row["scopes"]),
                groups=(), roles=(), display_name=row["name"],
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
