"""Test-control plane under ``/_emulator/`` (emulator only; no auth: bind it to loopback)."""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import JSONResponse

from scaikey_emulator.common import emu_of
from scaikey_emulator.keys import SUPPORTED_ALGS, sign_hs256, sign_unsecured, tamper_payload
from scaikey_emulator.oidc import introspect_token
from scaikey_emulator.runtime import Emulator, Fault
from scaikey_emulator.state import hash_secret
from scaikey_emulator.webhooks import BREAKAGES, Event, WebhookEmitter, new_event_id, now_iso

router = APIRouter(prefix="/_emulator")
JsonBody = Annotated[dict[str, Any], Body()]
OptionalBody = Annotated[dict[str, Any] | None, Body()]
SIGNING_MODES = ("active", "retired", "foreign", "none", "hs256_public_key")


def _emitter(request: Request) -> WebhookEmitter:
    emitter: WebhookEmitter = request.app.state.webhooks
    return emitter


@router.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


# ----------------------------------------------------------------- state
@router.post("/reset")
async def reset(request: Request, body: OptionalBody = None) -> dict[str, Any]:
    """Reload the startup seed (also clears log, faults, tokens, codes); ``{"new_keys": true}`` regenerates keys."""
    emu = emu_of(request)
    emu.reset(new_keys=bool((body or {}).get("new_keys")))
    _emitter(request).deliveries.clear()
    return {"ok": True, "kid": emu.keyring.active.kid}


@router.post("/seed")
async def seed(request: Request, body: JsonBody) -> dict[str, Any]:
    """Body: a full seed document, or ``{"name": "dev"|"empty"}`` (+ ``settings`` overrides).

    Lasts until the next ``/_emulator/reset``, which always goes back to the startup seed."""
    emu = emu_of(request)
    source: dict[str, Any] | str = (
        body["name"] if set(body) <= {"name", "settings"} and "name" in body else body
    )
    emu.reset(source)
    if "name" in body and "settings" in body:
        emu.store.settings.update(body["settings"])
    return {"ok": True, "counts": _counts(emu)}


def _counts(emu: Emulator) -> dict[str, int]:
    s = emu.store
    return {"partners": len(s.partners), "tenants": len(s.tenants), "users": len(s.users),
            "groups": len(s.groups), "applications": len(s.applications), "webhooks": len(s.webhooks)}  # fmt: skip


@router.get("/state")
async def state(request: Request) -> dict[str, Any]:
    emu = emu_of(request)
    return {"counts": _counts(emu), "base_url": emu.base_url, "alg": emu.keyring.alg,
            "settings": emu.store.settings.__dict__}  # fmt: skip


@router.get("/settings")
async def get_settings(request: Request) -> dict[str, Any]:
    return dict(emu_of(request).store.settings.__dict__)


@router.post("/settings")
async def set_settings(request: Request, body: JsonBody) -> dict[str, Any]:
    """e.g. ``{"default_page_size": 2, "jwks_max_age": 1, "webhook_breakage": ["stale_timestamp"]}``."""
    settings = emu_of(request).store.settings
    try:
        settings.update(body)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return dict(settings.__dict__)


# ----------------------------------------------------------------- keys
def _keys(emu: Emulator) -> dict[str, Any]:
    return {"active": emu.keyring.active.kid, "alg": emu.keyring.alg,
            "keys": [{"kid": k.kid, "alg": k.alg, "status": k.status} for k in emu.keyring.keys]}  # fmt: skip


@router.get("/keys")
async def keys(request: Request) -> dict[str, Any]:
    return _keys(emu_of(request))


@router.post("/keys/rotate")
async def rotate(request: Request, body: OptionalBody = None) -> dict[str, Any]:
    """New active key (optionally ``{"alg": "ES256"}``); the old one stays in JWKS until retired."""
    emu = emu_of(request)
    alg = (body or {}).get("alg")
    if alg and alg not in SUPPORTED_ALGS:
        raise HTTPException(422, f"alg must be one of {SUPPORTED_ALGS}")
    emu.keyring.rotate(alg)
    return _keys(emu)


@router.post("/keys/retire/{kid}")
async def retire(request: Request, kid: str) -> dict[str, Any]:
    emu = emu_of(request)
    try:
        emu.keyring.retire(kid)
    except KeyError as exc:
        raise HTTPException(404, "Unknown kid") from exc
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from exc
    return _keys(emu)


@router.post("/keys/alg")
async def switch_alg(request: Request, body: JsonBody) -> dict[str, Any]:
    """``{"alg": "ES256"}``: rotates to a new key of that alg (no-op if already active)."""
    emu = emu_of(request)
    alg = body.get("alg")
    if alg not in SUPPORTED_ALGS:
        raise HTTPException(422, f"alg must be one of {SUPPORTED_ALGS}")
    if emu.keyring.alg != alg:
        emu.keyring.rotate(alg)
    emu.store.settings.alg = alg
    return _keys(emu)


# ----------------------------------------------------------------- tokens
def _template_claims(emu: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    """Start from what the real token endpoint would issue for ``client_id`` (+ ``user``), or a bare base."""
    client_id = body.get("client_id")
    user_ref = body.get("user")
    scopes = body.get("scope")
    scope_list = scopes.split() if isinstance(scopes, str) else scopes
    if client_id:
        app = emu.store.app_by_client_id(client_id)
        if app is None:
            raise HTTPException(404, f"Unknown client_id {client_id}")
        if user_ref:
            user = emu.store.user_by_email(user_ref) or emu.store.users.get(user_ref)
            if user is None:
                raise HTTPException(404, f"Unknown user {user_ref}")
            mfa = body.get("mfa", user.mfa_enabled)
            now = int(time.time())
            claims = emu.user_claims(
                app, user, scope_list or ["openid", "profile", "email"],
                auth_time=int(body.get("auth_time", now)), amr=["pwd", "mfa"] if mfa else ["pwd"],
            )  # fmt: skip
        else:
            claims = emu.service_claims(
                app, scope_list or list(app.allowed_scopes), body.get("tenant_id") or app.tenant_id
            )
        return claims
    now = int(time.time())
    return {"iss": emu.issuer(body.get("tenant_id")), "sub": "test-subject", "aud": "scaivault", "iat": now,
            "nbf": now, "exp": now + 3600, "jti": secrets.token_urlsafe(16)}  # fmt: skip


def _apply_helpers(emu: Emulator, claims: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    shift = int(body.get("time_offset", 0))
    if shift:
        for key in ("iat", "nbf", "exp", "auth_time"):
            if key in claims:
                claims[key] += shift
    if "lifetime" in body:
        claims["exp"] = claims["iat"] + int(body["lifetime"])
    now = int(time.time())
    if body.get("expired"):
        claims.update(iat=now - 7200, nbf=now - 7200, exp=now - int(body.get("expired_by", 3600)))
    if body.get("not_yet_valid"):
        ahead = int(body.get("not_yet_valid_by", 3600))
        claims.update(iat=now + ahead, nbf=now + ahead, exp=now + ahead + 3600)
    if body.get("wrong_aud"):
        claims["aud"] = "some-other-audience"
    if body.get("wrong_iss"):
        claims["iss"] = "https://evil.example/tenants/" + str(claims.get("tenant_id", "x"))
    claims.update(body.get("claims", {}))
    for key in body.get("omit", []):
        claims.pop(key, None)
    return claims


def _sign(emu: Emulator, claims: dict[str, Any], body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    mode = body.get("signing", "active")
    kid_override = body.get("kid")
    if body.get("unknown_kid"):
        kid_override = "unknown-" + secrets.token_hex(4)
    headers: dict[str, Any] = {"kid": kid_override} if kid_override else {}
    if mode == "active":
        key = emu.keyring.active
    elif mode == "retired":
        try:
            key = emu.keyring.retired_key(body.get("retired_kid"))
        except KeyError as exc:
            raise HTTPException(404, "No such retired kid") from exc
    elif mode == "foreign":
        key = emu.keyring.foreign_key(body.get("alg", emu.keyring.alg))
    elif mode == "none":
        return sign_unsecured(claims, {"kid": kid_override or emu.keyring.active.kid}), {"alg": "none"}
    elif mode == "hs256_public_key":
        key = emu.keyring.active
        token = sign_hs256(claims, key.public_pem(), {"kid": kid_override or key.kid})
        return token, {"alg": "HS256", "kid": kid_override or key.kid}
    else:
        raise HTTPException(422, f"signing must be one of {SIGNING_MODES}")
    token = key.sign(claims, headers)
    return token, {"alg": key.alg, "kid": kid_override or key.kid}


@router.post("/tokens/mint")
async def mint(request: Request, body: JsonBody) -> dict[str, Any]:
    """Sign arbitrary claims. Body fields (all optional):

    - ``client_id`` [+ ``user`` email/id] [+ ``scope``]: start from real token-endpoint claims;
      ``claims``: extra/overriding claims; ``omit``: claim names to drop;
    - ``signing``: active | retired | foreign | none | hs256_public_key (``alg`` for foreign; ``retired_kid``);
    - helpers: ``expired``, ``not_yet_valid``, ``wrong_aud``, ``wrong_iss``, ``unknown_kid``, ``tampered``,
      ``kid`` (header override), ``lifetime``, ``time_offset`` (shift iat/nbf/exp by N seconds, for skew tests);
    - ``register`` (default true): remember the jti so introspection/revocation know the token.
    """
    emu = emu_of(request)
    claims = _apply_helpers(emu, _template_claims(emu, body), body)
    token, header = _sign(emu, claims, body)
    if body.get("tampered"):
        token = tamper_payload(
            token, body.get("tamper_claims", {"scope": "admin:read admin:write", "tampered": True})
        )
    if body.get("register", True) and "jti" in claims:
        emu.store.issued[claims["jti"]] = claims
    return {"token": token, "access_token": token, "claims": claims, "header": header}


@router.post("/tokens/revoke")
async def revoke(request: Request, body: JsonBody) -> dict[str, Any]:
    """``{"jti": ...}`` | ``{"token": <access JWT>}`` | ``{"refresh_token": ...}`` (+ ``"family": true``)."""
    emu = emu_of(request)
    revoked: list[str] = []
    jti = body.get("jti")
    if body.get("token"):
        jti = jwt.decode(body["token"], options={"verify_signature": False}).get("jti")
    if jti:
        emu.store.revoked_jtis.add(jti)
        revoked.append(f"jti:{jti}")
    if body.get("refresh_token"):
        rt = emu.store.refresh_tokens.get(hash_secret(body["refresh_token"]))
        if rt is None:
            raise HTTPException(404, "Unknown refresh token")
        targets = (
            [t for t in emu.store.refresh_tokens.values() if t.family_id == rt.family_id]
            if body.get("family")
            else [rt]
        )
        for t in targets:
            t.revoked = True
        revoked.append(f"refresh_family:{rt.family_id}" if body.get("family") else "refresh_token")
    if not revoked:
        raise HTTPException(422, "jti, token or refresh_token required")
    return {"revoked": revoked}


@router.post("/tokens/introspect")
async def introspect(request: Request, body: JsonBody) -> dict[str, Any]:
    """Introspection without client auth (test convenience)."""
    return introspect_token(emu_of(request), body.get("token", ""))


# ----------------------------------------------------------------- webhooks
@router.post("/webhooks/fire")
async def fire(request: Request, body: JsonBody) -> dict[str, Any]:
    """Deliver one event (or ``events``: list) to ``url`` with ``secret`` right now and report the attempts.

    Body: ``url``, ``secret``, ``event_type``, ``data``, ``tenant_id``, ``partner_id``, ``resource`` {type,id},
    ``event_id`` (reuse to test dedupe), ``envelope_style`` (scaikey|scaiflow), ``breakage`` (list of
    wrong_secret, stale_timestamp, future_timestamp, tampered_body, missing_signature, missing_timestamp,
    malformed_signature, duplicate), ``retries`` (default 0), ``reverse`` (deliver ``events`` in reverse order).
    """
    emu = emu_of(request)
    emitter = _emitter(request)
    specs = body.get("events") or [body]
    if body.get("reverse"):
        specs = list(reversed(specs))
    breakage = list(body.get("breakage", []))
    if set(breakage) - BREAKAGES:
        raise HTTPException(422, f"unknown breakage; choose from {sorted(BREAKAGES)}")
    results = []
    for spec in specs:
        event_type = spec.get("event_type") or body.get("event_type")
        if not event_type:
            raise HTTPException(422, "event_type required")
        resource = spec.get("resource") or {}
        tenant_id = spec.get("tenant_id", body.get("tenant_id"))
        event = Event(
            event_id=spec.get("event_id") or new_event_id(), event_type=event_type,
            timestamp=spec.get("timestamp") or now_iso(),
            resource_type=resource.get("type") or event_type.split(".")[0],
            resource_id=resource.get("id") or str(spec.get("data", {}).get("id", "")),
            data=spec.get("data", {}), tenant_id=tenant_id,
            partner_id=spec.get("partner_id", body.get("partner_id")) or emu.store.partner_of_tenant(tenant_id),
        )  # fmt: skip
        envelope = event.envelope(body.get("envelope_style", "scaikey"))
        attempts = await emitter.deliver(
            url=body["url"], secret=body["secret"], body=envelope, event=event, webhook_id=None,
            breakage=breakage, retries=int(body.get("retries", 0)),
        )  # fmt: skip
        results.append({"event_id": event.event_id, "body": envelope, "attempts": attempts})
    return {"results": results}


@router.get("/webhooks/deliveries")
async def deliveries(
    request: Request, event_type: str | None = None, webhook_id: str | None = None
) -> dict[str, Any]:
    items = [
        d for d in _emitter(request).deliveries
        if (not event_type or d["event_type"] == event_type) and (not webhook_id or d["webhook_id"] == webhook_id)
    ]  # fmt: skip
    return {"items": items, "total": len(items)}


@router.delete("/webhooks/deliveries")
async def clear_deliveries(request: Request) -> dict[str, bool]:
    _emitter(request).deliveries.clear()
    return {"ok": True}


@router.post("/webhooks/drain")
async def drain(request: Request, wait_seconds: float = 10.0) -> dict[str, Any]:
    """Wait until every queued subscription delivery (including retries) has finished."""
    done = await _emitter(request).drain(wait_seconds)
    return {"drained": done, "pending": _emitter(request).pending}


# ----------------------------------------------------------------- faults + log
@router.post("/faults")
async def add_fault(request: Request, body: JsonBody) -> dict[str, Any]:
    """``{"path": fnmatch pattern, "method"?, "status"?, "body"?, "latency"?, "lying_total"?, "times"?}``,
    or ``{"jwks_down": true}`` (503 on both JWKS routes)."""
    emu = emu_of(request)
    if body.get("jwks_down"):
        body = {"path": "*/.well-known/jwks.json", "status": 503, "times": body.get("times")}
    if not body.get("path"):
        raise HTTPException(422, "path is required")
    fault = Fault(
        id=secrets.token_hex(4), path=body["path"], method=body.get("method"), status=body.get("status"),
        body=body.get("body"), latency=float(body.get("latency", 0)), lying_total=body.get("lying_total"),
        times=body.get("times"),
    )  # fmt: skip
    emu.faults.append(fault)
    return fault.public()


@router.get("/faults")
async def list_faults(request: Request) -> dict[str, Any]:
    return {"items": [f.public() for f in emu_of(request).faults]}


@router.delete("/faults")
async def clear_faults(request: Request) -> dict[str, bool]:
    emu_of(request).faults.clear()
    return {"ok": True}


@router.delete("/faults/{fault_id}")
async def delete_fault(request: Request, fault_id: str) -> dict[str, bool]:
    emu = emu_of(request)
    emu.faults[:] = [f for f in emu.faults if f.id != fault_id]
    return {"ok": True}


@router.get("/log")
async def log(
    request: Request, path: str | None = None, method: str | None = None, since: float | None = None
) -> JSONResponse:
    """Requests received outside ``/_emulator`` (method, path, query, time, status, client_id)."""
    from fnmatch import fnmatchcase

    items = [
        e for e in emu_of(request).request_log
        if (not path or fnmatchcase(e["path"], path)) and (not method or e["method"] == method.upper())
        and (since is None or e["time"] >= since)
    ]  # fmt: skip
    return JSONResponse({"items": items, "total": len(items)})


@router.delete("/log")
async def clear_log(request: Request) -> dict[str, bool]:
    emu_of(request).request_log.clear()
    return {"ok": True}
