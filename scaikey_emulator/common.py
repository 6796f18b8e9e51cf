"""Shared helpers for the emulator routers: emulator access, OAuth errors, pagination."""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from scaikey_emulator.runtime import Emulator


def emu_of(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


def oauth_error(
    error: str, description: str, status: int = 400, headers: dict[str, str] | None = None
) -> JSONResponse:
    """RFC 6749 error body ``{"error", "error_description"}`` with no-store caching."""
    hdrs = {"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})}
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=hdrs)


def paginate(request: Request, items: list[Any], page: int, per_page: int | None) -> dict[str, Any]:
    """``{"items", "total", "page", "per_page", "pages"}``; out-of-range pages are empty.

    A fault with ``lying_total`` (set by the fault middleware on ``request.state``) replaces ``total``.
    """
    settings = emu_of(request).store.settings
    size = per_page or settings.default_page_size
    size = max(1, min(size, settings.max_page_size))
    page = max(1, page)
    total = len(items)
    start = (page - 1) * size
    window = items[start : start + size]
    lying = getattr(request.state, "lying_total", None)
    if lying is not None:
        total = lying
    return {
        "items": window,
        "total": total,
        "page": page,
        "per_page": size,
        "pages": math.ceil(total / size) if total else 0,
    }
