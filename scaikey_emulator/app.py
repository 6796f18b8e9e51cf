"""``create_app``: assemble the emulator FastAPI app (OIDC, admin API, webhooks, control plane)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import jwt
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from scaikey_emulator import admin, control, oidc
from scaikey_emulator.runtime import Emulator, EmulatorOptions
from scaikey_emulator.state import load_seed_source
from scaikey_emulator.webhooks import WebhookEmitter


def _client_hint(request: Request) -> str | None:
    """Best-effort caller id for the request log (unverified: logging only)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        try:
            claims = jwt.decode(header[7:].strip(), options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return None
        return claims.get("client_id") or claims.get("sub")
    if header.lower().startswith("basic "):
        try:
            return base64.b64decode(header[6:].strip()).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def _install_middleware(app: FastAPI) -> None:
    @app.middleware("http")
    async def log_and_faults(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path.startswith("/_emulator"):
            return await call_next(request)
        emu: Emulator = request.app.state.emulator
        entry: dict[str, Any] = {
            "method": request.method,
            "path": path,
            "query": request.url.query,
            "time": time.time(),
            "client_id": _client_hint(request),
            "status": None,
            "fault": None,
        }
        emu.log_request(entry)
        for fault in emu.match_faults(request.method, path):
            if fault.latency:
                await asyncio.sleep(fault.latency)
            if fault.lying_total is not None:
                request.state.lying_total = fault.lying_total
            if fault.status:
                entry.update(status=fault.status, fault=fault.id)
                body = (
                    fault.body if fault.body is not None else {"detail": f"Injected fault ({fault.status})"}
                )
                return JSONResponse(body, status_code=fault.status)
        response = await call_next(request)
        entry["status"] = response.status_code
        return response


def create_app(
    seed: dict[str, Any] | str | None = "dev",
    base_url: str = "http://127.0.0.1:8080",
    *,
    scaivault_client_secret: str | None = None,
    admin_token_lifetime: int | None = None,
    settings: dict[str, Any] | None = None,
) -> FastAPI:
    """Build an emulator app.

    ``seed``: a seed dict, a bundled seed name ("dev", "empty") or a path to a JSON seed; ``None`` = empty.
    ``base_url``: the externally visible URL (issuers and discovery URLs derive from it).
    ``settings``: overrides applied on top of the seed's ``settings`` block (e.g. ``{"default_page_size": 2}``);
    they are re-applied by ``POST /_emulator/reset``.
    """
    source = load_seed_source(seed)
    if settings:
        source = {**source, "settings": {**source.get("settings", {}), **settings}}
    options = EmulatorOptions(
        base_url=base_url,
        scaivault_client_secret=scaivault_client_secret,
        admin_token_lifetime=admin_token_lifetime,
    )
    emulator = Emulator(seed_source=source, options=options)
    emitter = WebhookEmitter(emulator)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await emitter.start()
        try:
            yield
        finally:
            await emitter.stop()

    app = FastAPI(title="ScaiKey emulator", version="1.0", lifespan=lifespan)
    app.state.emulator = emulator
    app.state.webhooks = emitter
    _install_middleware(app)
    app.include_router(control.router)
    app.include_router(oidc.router)
    app.include_router(admin.router)
    return app
