"""Typed async client for ScaiKey over httpx (injectable transport for tests).

Exception tree::

    ScaiKeyError
    ├── ScaiKeyTransportError     network failure, timeout, 5xx
    └── ScaiKeyStatusError        a 4xx answer (``status``, ``detail``)
        └── ScaiKeyScopeError     403 "Platform token requires admin:read or admin:write scope"

Discovery is read once and every other URL comes from it (``jwks_uri``, ``token_endpoint``,
``introspection_endpoint``); SCAIKEY_JWKS_URL overrides the JWKS location.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from core.settings import Settings

SCOPE_403 = "Platform token requires admin:read or admin:write scope"


class ScaiKeyError(Exception):
    pass


class ScaiKeyTransportError(ScaiKeyError):
    pass


class ScaiKeyStatusError(ScaiKeyError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"ScaiKey answered {status}: {detail[:200]}")
        self.status = status
        self.detail = detail


class ScaiKeyScopeError(ScaiKeyStatusError):
    pass


class ScaiKeyClient:
    def __init__(self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 5.0) -> None:
        self.settings = settings
        self.base = settings.scaikey_base_url.rstrip("/")
        self.http = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)
        self._discovery: dict[str, Any] | None = None
        self._token: tuple[str, float] | None = None  # (access token, refresh-at monotonic)
        self._token_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            resp = await self.http.request(method, url, **kw)
        except httpx.HTTPError as exc:
            raise ScaiKeyTransportError(f"ScaiKey unreachable: {type(exc).__name__}") from exc
        if resp.status_code >= 500:
            raise ScaiKeyTransportError(f"ScaiKey answered {resp.status_code}")
        if resp.status_code >= 400:
            try:
                body = resp.json()
                detail = body.get("detail") or body.get("error_description") or body.get("error") or resp.text
            except ValueError:
                detail = resp.text
            detail = detail if isinstance(detail, str) else str(detail)
            if resp.status_code == 403 and detail == SCOPE_403:
                raise ScaiKeyScopeError(403, detail)
            raise ScaiKeyStatusError(resp.status_code, detail)
        return resp

    # --- discovery and keys -----------------------------------------------------------------
    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            url = f"{self.base}/api/v1/platform/oauth/.well-known/openid-configuration"
            self._discovery = (await self._request("GET", url)).json()
        return self._discovery

    async def jwks_url(self) -> str:
        if self.settings.scaikey_jwks_url:
            return self.settings.scaikey_jwks_url
        disc = await self.discovery()
        return str(disc.get("jwks_uri") or f"{self.base}/api/v1/platform/.well-known/jwks.json")

    async def fetch_jwks(self) -> dict[str, Any]:
        return (await self._request("GET", await self.jwks_url())).json()  # type: ignore[no-any-return]

    # --- ScaiVault's own client credentials ----------------------------------------------------
    def _client_auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.settings.scaikey_client_id,
                               self.settings.scaikey_client_secret.get_secret_value())

    async def service_token(self, scope: str | None = None) -> str:
        """A client-credentials token for ScaiVault itself, cached until shortly before expiry."""
        async with self._token_lock:
            if self._token and self._token[1] > time.monotonic():
                return self._token[0]
            disc = await self.discovery()
            data = {"grant_type": "client_credentials"}
            if scope:
                data["scope"] = scope
            resp = await self._request("POST", disc["token_endpoint"], data=data, auth=self._client_auth())
            body = resp.json()
            ttl = float(body.get("expires_in", 3600))
            self._token = (body["access_token"], time.monotonic() + max(ttl - 60, ttl / 2))
            return self._token[0]

    def drop_service_token(self) -> None:
        self._token = None

    async def introspect(self, token: str) -> dict[str, Any]:
        disc = await self.discovery()
        url = disc.get("introspection_endpoint") or f"{self.base}/api/v1/platform/oauth/introspect"
        resp = await self._request("POST", url, data={"token": token}, auth=self._client_auth())
        return resp.json()  # type: ignore[no-any-return]

    # --- admin API (paginated) ------------------------------------------------------------------
    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        token = await self.service_token()
        resp = await self._request("GET", f"{self.base}{path}", params=params,
                                   headers={"Authorization": f"Bearer {token}"})
        return resp.json()

    async def paginate(self, path: str, params: dict[str, Any] | None = None, *, per_page: int = 100,
                       max_pages: int = 10_000) -> AsyncIterator[dict[str, Any]]:
        """Yield every item across pages. Accepts items under ``items`` or ``data``; stops on an empty page
        or when ``page * per_page >= total``; caps pages as a safety valve."""
        page = 1
        while page <= max_pages:
            body = await self.get_json(path, {**(params or {}), "page": page, "per_page": per_page})
            items = body.get("items") if isinstance(body, dict) else body
            if items is None and isinstance(body, dict):
                items = body.get("data")
            items = items or []
            for item in items:
                yield item
            total = body.get("total") if isinstance(body, dict) else None
            eff_per_page = int(body.get("per_page", per_page)) if isinstance(body, dict) else per_page
            if not items or (total is not None and page * eff_per_page >= int(total)):
                return
            page += 1
        raise ScaiKeyError(f"pagination of {path} exceeded {max_pages} pages")
