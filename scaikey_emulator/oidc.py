"""OIDC/OAuth surface, platform (``/api/v1/platform``) and tenant (``/api/v1/auth/tenants/{slug}``) flavours."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import jwt
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from scaikey_emulator.common import emu_of, oauth_error
from scaikey_emulator.keys import b64url
from scaikey_emulator.runtime import Emulator
from scaikey_emulator.state import Application, AuthCode, RefreshToken, Tenant, User, hash_secret

router = APIRouter()
SESSION_COOKIE = "scaikey_emulator_session"
GRANTS = ["authorization_code", "client_credentials", "refresh_token"]
OIDC_SCOPES = ["openid", "profile", "email", "offline_access", "groups"]
ADMIN_SCOPES_LIST = ["admin:read", "admin:write", "users:read", "groups:read"]


@dataclass
class Surface:
    """Which OIDC flavour a request hit: the platform one (tenant None) or a tenant's one."""

    tenant: Tenant | None
    root: str  # e.g. {base}/api/v1/platform or {base}/api/v1/auth/tenants/{slug}

    @property
    def oauth(self) -> str:
        return f"{self.root}/oauth"


def _surface(emu: Emulator, slug: str | None) -> Surface:
    if slug is None:
        return Surface(None, f"{emu.base_url}/api/v1/platform")
    tenant = emu.store.tenant_by_slug(slug)
    if tenant is None:
        raise HTTPException(404, "Tenant not found")
    return Surface(tenant, f"{emu.base_url}/api/v1/auth/tenants/{slug}")


# ----------------------------------------------------------------- discovery + JWKS
def _discovery(emu: Emulator, surface: Surface) -> dict[str, Any]:
    tenant_id = surface.tenant.id if surface.tenant else None
    app_scopes = sorted({s for a in emu.store.applications.values() for s in a.allowed_scopes})
    return {
        "issuer": emu.issuer(tenant_id),
        "authorization_endpoint": f"{surface.oauth}/authorize",
        "token_endpoint": f"{surface.oauth}/token",
        "jwks_uri": f"{surface.root}/.well-known/jwks.json",
        "userinfo_endpoint": f"{surface.oauth}/userinfo",
        "revocation_endpoint": f"{surface.oauth}/revoke",
        "introspection_endpoint": f"{surface.oauth}/introspect",
        "response_types_supported": ["code"],
        "grant_types_supported": GRANTS,
        "subject_types_supported": ["public"],
        "scopes_supported": sorted(set(OIDC_SCOPES + ADMIN_SCOPES_LIST + app_scopes)),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": [emu.keyring.alg],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "email", "name", "groups", "tenant_id",
                             "partner_id", "role", "amr", "auth_time", "nonce"],
    }  # fmt: skip


def _jwks(emu: Emulator) -> JSONResponse:
    max_age = emu.store.settings.jwks_max_age
    return JSONResponse(emu.keyring.jwks(), headers={"Cache-Control": f"public, max-age={max_age}"})


@router.get("/api/v1/platform/oauth/.well-known/openid-configuration")
async def platform_discovery(request: Request) -> dict[str, Any]:
    emu = emu_of(request)
    return _discovery(emu, _surface(emu, None))


@router.get("/api/v1/auth/tenants/{slug}/.well-known/openid-configuration")
async def tenant_discovery(request: Request, slug: str) -> dict[str, Any]:
    emu = emu_of(request)
    return _discovery(emu, _surface(emu, slug))


@router.get("/api/v1/platform/.well-known/jwks.json")
async def platform_jwks(request: Request) -> JSONResponse:
    return _jwks(emu_of(request))


@router.get("/api/v1/auth/tenants/{slug}/.well-known/jwks.json")
async def tenant_jwks(request: Request, slug: str) -> JSONResponse:
    emu = emu_of(request)
    _surface(emu, slug)
    return _jwks(emu)


# ----------------------------------------------------------------- authorize
def _redirect(redirect_uri: str, params: dict[str, str | None]) -> RedirectResponse:
    parts = urlsplit(redirect_uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302)


def _app_allowed_on(app: Application, surface: Surface) -> bool:
    if surface.tenant is None:
        return app.scope == "GLOBAL"
    if app.scope == "TENANT":
        return app.tenant_id == surface.tenant.id
    if app.scope == "PARTNER":
        return app.partner_id == surface.tenant.partner_id
    return True


def _resolve_user(emu: Emulator, request: Request, login_hint: str | None, prompt: str | None) -> User | None:
    session_user = emu.store.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
    if prompt == "none":
        return emu.store.users.get(session_user) if session_user else None
    hint = login_hint or request.headers.get("x-emulator-user")
    if hint:
        return emu.store.user_by_email(hint) or emu.store.users.get(hint)
    return emu.store.users.get(session_user) if session_user else None


async def _authorize(request: Request, slug: str | None) -> Response:
    emu = emu_of(request)
    surface = _surface(emu, slug)
    q = request.query_params
    app = emu.store.app_by_client_id(q.get("client_id", ""))
    if app is None:
        return oauth_error("invalid_client", "Unknown client_id", 400)
    redirect_uri = q.get("redirect_uri", "")
    if redirect_uri not in app.redirect_uris:
        return oauth_error("invalid_request", "redirect_uri does not exactly match a registered URI", 400)
    state = q.get("state")

    def fail(error: str, description: str) -> RedirectResponse:
        return _redirect(redirect_uri, {"error": error, "error_description": description, "state": state})

    if not _app_allowed_on(app, surface):
        return fail("unauthorized_client", "Application is not valid for this authorization endpoint")
    if q.get("response_type") != "code":
        return fail("unsupported_response_type", "Only response_type=code is supported")
    scopes = q.get("scope", "").split()
    if not scopes:
        return fail("invalid_request", "scope is required")
    if not set(scopes) <= set(app.allowed_scopes):
        return fail("invalid_scope", "Requested scope exceeds the application's allowed_scopes")
    challenge = q.get("code_challenge")
    if challenge and q.get("code_challenge_method", "plain") != "S256":
        return fail("invalid_request", "Only code_challenge_method=S256 is supported")
    if not challenge and not app.confidential:
        return fail("invalid_request", "PKCE (code_challenge, S256) is required for public clients")
    prompt = q.get("prompt")
    user = _resolve_user(emu, request, q.get("login_hint"), prompt)
    if user is None:
        return fail("login_required", "No authenticated session (the emulator needs login_hint)")
    tenant = emu.store.tenants.get(user.tenant_id)
    if user.status != "ACTIVE" or tenant is None or tenant.status != "ACTIVE":
        return fail("access_denied", "User or tenant is not active")
    if surface.tenant is not None and user.tenant_id != surface.tenant.id:
        return fail("access_denied", "User does not belong to this tenant")
    if app.scope == "TENANT" and user.tenant_id != app.tenant_id:
        return fail("access_denied", "User does not belong to the application's tenant")
    mfa_param = q.get("mfa")
    mfa = user.mfa_enabled if mfa_param is None else mfa_param.lower() in ("1", "true", "yes")
    code = secrets.token_urlsafe(32)
    emu.store.auth_codes[code] = AuthCode(
        code=code,
        client_id=app.client_id,
        redirect_uri=redirect_uri,
        user_id=user.id,
        tenant_id=user.tenant_id,
        scope=scopes,
        nonce=q.get("nonce"),
        code_challenge=challenge,
        auth_time=int(time.time()),
        amr=["pwd", "mfa"] if mfa else ["pwd"],
        expires_at=time.time() + emu.store.settings.auth_code_lifetime,
    )
    response = _redirect(redirect_uri, {"code": code, "state": state})
    session_id = secrets.token_urlsafe(16)
    emu.store.sessions[session_id] = user.id
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax")
    return response


@router.get("/api/v1/platform/oauth/authorize")
async def platform_authorize(request: Request) -> Response:
    return await _authorize(request, None)


@router.get("/api/v1/auth/tenants/{slug}/oauth/authorize")
async def tenant_authorize(request: Request, slug: str) -> Response:
    return await _authorize(request, slug)


# ----------------------------------------------------------------- client authentication
def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    client_id, _, secret = decoded.partition(":")
    return unquote(client_id), unquote(secret)


def authenticate_client(
    emu: Emulator, request: Request, form: dict[str, str], *, require_secret: bool
) -> Application | JSONResponse:
    """Basic (preferred) or form ``client_id``/``client_secret``. Public clients send only ``client_id``."""
    basic = _basic_credentials(request)
    client_id, secret = basic if basic else (form.get("client_id", ""), form.get("client_secret"))
    challenge = {"WWW-Authenticate": 'Basic realm="scaikey"'} if basic else None
    app = emu.store.app_by_client_id(client_id) if client_id else None
    if app is None or app.status != "ACTIVE":
        return oauth_error("invalid_client", "Client authentication failed", 401, challenge)
    if app.confidential or require_secret:
        if not app.check_secret(secret):
            return oauth_error("invalid_client", "Client authentication failed", 401, challenge)
    return app


async def _form(request: Request) -> dict[str, str]:
    """Parse an ``application/x-www-form-urlencoded`` body (no python-multipart dependency needed)."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(raw, keep_blank_values=True))


# ----------------------------------------------------------------- token endpoint
def _token_response(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _client_credentials(
    emu: Emulator, app: Application, surface: Surface, form: dict[str, str]
) -> JSONResponse:
    if not app.confidential:
        return oauth_error("unauthorized_client", "client_credentials is not allowed for public clients")
    requested = form.get("scope", "").split()
    scopes = requested or list(app.allowed_scopes)
    if not set(scopes) <= set(app.allowed_scopes):
        return oauth_error(
            "invalid_scope", "Requested scope is not a subset of the application's allowed_scopes"
        )
    tenant_id = surface.tenant.id if surface.tenant else app.tenant_id
    tenant = emu.store.tenants.get(tenant_id or "")
    if app.scope != "GLOBAL" and (tenant is None or tenant.status != "ACTIVE"):
        return oauth_error("unauthorized_client", "The application's tenant is not active")
    claims = emu.service_claims(app, scopes, tenant_id)
    token = emu.sign(claims)
    return _token_response(
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": app.token_lifetime,
            "scope": " ".join(scopes),
        }
    )


def _issue_user_tokens(
    emu: Emulator,
    app: Application,
    user: User,
    scopes: list[str],
    *,
    auth_time: int,
    amr: list[str],
    nonce: str | None,
    family_id: str | None,
    want_refresh: bool,
) -> tuple[dict[str, Any], str | None]:
    access = emu.user_claims(app, user, scopes, auth_time=auth_time, amr=amr)
    body: dict[str, Any] = {
        "access_token": emu.sign(access),
        "token_type": "Bearer",
        "expires_in": app.token_lifetime,
        "scope": " ".join(scopes),
    }
    if "openid" in scopes:
        body["id_token"] = emu.sign(emu.id_token_claims(access, app, nonce), register=False)
    if want_refresh:
        refresh = "skrt_" + secrets.token_urlsafe(32)
        family_id = family_id or secrets.token_hex(8)
        emu.store.refresh_tokens[hash_secret(refresh)] = RefreshToken(
            token_hash=hash_secret(refresh),
            family_id=family_id,
            client_id=app.client_id,
            user_id=user.id,
            tenant_id=user.tenant_id,
            scope=scopes,
            auth_time=auth_time,
            amr=amr,
            expires_at=time.time() + emu.store.settings.refresh_token_lifetime,
        )
        body["refresh_token"] = refresh
    return body, family_id


def _revoke_family(emu: Emulator, family_id: str | None) -> None:
    if not family_id:
        return
    for rt in emu.store.refresh_tokens.values():
        if rt.family_id == family_id:
            rt.revoked = True


def _active_user(emu: Emulator, user_id: str) -> User | None:
    user = emu.store.users.get(user_id)
    if user is None or user.deleted or user.status != "ACTIVE":
        return None
    return user


def _authorization_code(emu: Emulator, app: Application, form: dict[str, str]) -> JSONResponse:
    code = emu.store.auth_codes.get(form.get("code", ""))
    if code is None or code.client_id != app.client_id:
        return oauth_error("invalid_grant", "Invalid authorization code")
    if code.used:
        if emu.store.settings.revoke_family_on_reuse:
            _revoke_family(emu, code.family_id)
        return oauth_error("invalid_grant", "Authorization code has already been used")
    code.used = True
    if code.expires_at < time.time():
        return oauth_error("invalid_grant", "Authorization code expired")
    if form.get("redirect_uri") != code.redirect_uri:
        return oauth_error("invalid_grant", "redirect_uri does not match the authorization request")
    if code.code_challenge:
        verifier = form.get("code_verifier")
        if not verifier:
            return oauth_error("invalid_grant", "code_verifier is required")
        computed = b64url(hashlib.sha256(verifier.encode()).digest())
        if not secrets.compare_digest(computed, code.code_challenge):
            return oauth_error("invalid_grant", "PKCE verification failed")
    user = _active_user(emu, code.user_id)
    if user is None:
        return oauth_error("invalid_grant", "User is not active")
    want_refresh = app.application_type in ("WEB", "NATIVE") or "offline_access" in code.scope
    body, family = _issue_user_tokens(
        emu, app, user, code.scope, auth_time=code.auth_time, amr=code.amr, nonce=code.nonce,
        family_id=None, want_refresh=want_refresh,
    )  # fmt: skip
    code.family_id = family
    return _token_response(body)


def _refresh(emu: Emulator, app: Application, form: dict[str, str]) -> JSONResponse:
    rt = emu.store.refresh_tokens.get(hash_secret(form.get("refresh_token", "")))
    if rt is None or rt.client_id != app.client_id:
        return oauth_error("invalid_grant", "Invalid refresh token")
    if rt.used:
        if emu.store.settings.revoke_family_on_reuse:
            _revoke_family(emu, rt.family_id)
        return oauth_error("invalid_grant", "Refresh token has already been used")
    if rt.revoked:
        return oauth_error("invalid_grant", "Refresh token has been revoked")
    if rt.expires_at < time.time():
        return oauth_error("invalid_grant", "Refresh token expired")
    scopes = form.get("scope", "").split() or rt.scope
    if not set(scopes) <= set(rt.scope):
        return oauth_error("invalid_scope", "Requested scope exceeds the original grant")
    user = _active_user(emu, rt.user_id)
    if user is None:
        return oauth_error("invalid_grant", "User is not active")
    rt.used = True
    body, _ = _issue_user_tokens(
        emu, app, user, scopes, auth_time=rt.auth_time, amr=rt.amr, nonce=None,
        family_id=rt.family_id, want_refresh=True,
    )  # fmt: skip
    return _token_response(body)


async def _token(request: Request, slug: str | None) -> Response:
    emu = emu_of(request)
    surface = _surface(emu, slug)
    form = await _form(request)
    grant = form.get("grant_type", "")
    if grant not in GRANTS:
        return oauth_error("unsupported_grant_type", f"Unsupported grant_type {grant!r}")
    app = authenticate_client(emu, request, form, require_secret=False)
    if isinstance(app, JSONResponse):
        return app
    if not _app_allowed_on(app, surface):
        return oauth_error("unauthorized_client", "Application is not valid for this token endpoint")
    if grant == "client_credentials":
        return _client_credentials(emu, app, surface, form)
    if grant == "authorization_code":
        return _authorization_code(emu, app, form)
    return _refresh(emu, app, form)


@router.post("/api/v1/platform/oauth/token")
async def platform_token(request: Request) -> Response:
    return await _token(request, None)


@router.post("/api/v1/auth/tenants/{slug}/oauth/token")
async def tenant_token(request: Request, slug: str) -> Response:
    return await _token(request, slug)


# ----------------------------------------------------------------- userinfo
def _unauthorized(description: str) -> JSONResponse:
    return JSONResponse(
        {"error": "invalid_token", "error_description": description},
        status_code=401,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'},
    )


async def _userinfo(request: Request, slug: str | None) -> Response:
    emu = emu_of(request)
    _surface(emu, slug)
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return _unauthorized("Missing bearer token")
    try:
        claims = emu.verify(header[7:].strip())
    except jwt.InvalidTokenError as exc:
        return _unauthorized(str(exc))
    user = emu.store.users.get(str(claims.get("sub")))
    if claims.get("token_type") == "client_credentials" or user is None or user.deleted:
        return _unauthorized("Not a user access token")
    tenant = emu.store.tenants.get(user.tenant_id)
    body = {
        "sub": user.id,
        "email": user.email,
        "email_verified": True,
        "name": user.display_name,
        "given_name": user.first_name,
        "family_name": user.last_name,
        "preferred_username": user.email,
        "groups": emu.store.user_group_names(user.id),
        "tenant_id": user.tenant_id,
        "partner_id": tenant.partner_id if tenant else None,
    }
    if user.role:
        body["role"] = user.role
    return JSONResponse(body)


@router.api_route("/api/v1/platform/oauth/userinfo", methods=["GET", "POST"])
async def platform_userinfo(request: Request) -> Response:
    return await _userinfo(request, None)


@router.api_route("/api/v1/auth/tenants/{slug}/oauth/userinfo", methods=["GET", "POST"])
async def tenant_userinfo(request: Request, slug: str) -> Response:
    return await _userinfo(request, slug)


# ----------------------------------------------------------------- revoke (RFC 7009)
def _may_touch(app: Application, owner_client_id: str | None) -> bool:
    return (app.scope == "GLOBAL" and app.confidential) or owner_client_id == app.client_id


async def _revoke(request: Request, slug: str | None) -> Response:
    emu = emu_of(request)
    _surface(emu, slug)
    form = await _form(request)
    app = authenticate_client(emu, request, form, require_secret=False)
    if isinstance(app, JSONResponse):
        return app
    token = form.get("token", "")
    rt = emu.store.refresh_tokens.get(hash_secret(token))
    if rt is not None:
        if _may_touch(app, rt.client_id):
            rt.revoked = True
        return Response(status_code=200)
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return Response(status_code=200)
    if claims.get("jti") and _may_touch(app, claims.get("client_id")):
        emu.store.revoked_jtis.add(str(claims["jti"]))
    return Response(status_code=200)


@router.post("/api/v1/platform/oauth/revoke")
async def platform_revoke(request: Request) -> Response:
    return await _revoke(request, None)


@router.post("/api/v1/auth/tenants/{slug}/oauth/revoke")
async def tenant_revoke(request: Request, slug: str) -> Response:
    return await _revoke(request, slug)


# ----------------------------------------------------------------- introspect (RFC 7662)
def introspect_token(emu: Emulator, token: str) -> dict[str, Any]:
    rt = emu.store.refresh_tokens.get(hash_secret(token))
    if rt is not None:
        if rt.used or rt.revoked or rt.expires_at < time.time():
            return {"active": False}
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": rt.client_id,
            "sub": rt.user_id,
            "scope": " ".join(rt.scope),
            "tenant_id": rt.tenant_id,
            "iat": int(rt.issued_at),
            "exp": int(rt.expires_at),
        }
    try:
        claims = emu.verify(token)
    except jwt.InvalidTokenError:
        return {"active": False}
    return {"active": True, **claims}


async def _introspect(request: Request, slug: str | None) -> Response:
    emu = emu_of(request)
    _surface(emu, slug)
    form = await _form(request)
    app = authenticate_client(emu, request, form, require_secret=True)
    if isinstance(app, JSONResponse):
        return app
    return JSONResponse(introspect_token(emu, form.get("token", "")), headers={"Cache-Control": "no-store"})


@router.post("/api/v1/platform/oauth/introspect")
async def platform_introspect(request: Request) -> Response:
    return await _introspect(request, None)


@router.post("/api/v1/auth/tenants/{slug}/oauth/introspect")
async def tenant_introspect(request: Request, slug: str) -> Response:
    return await _introspect(request, slug)
