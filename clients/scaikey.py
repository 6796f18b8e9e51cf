"""Typed async client for ScaiKey over httpx (injectable transport for tests).

Exception tree::

    ScaiKeyError
    ├── ScaiKeyTransportError     network failure, timeout, 5xx
    ├── ScaiKeyPaginationError    a listing whose pages do not add up to its ``total`` (broken pagination)
    └── ScaiKeyStatusError        a 4xx answer (``status``, ``detail``)
        └── ScaiKeyScopeError     403 "Platform token requires admin:read or admin:write scope"

Discovery is read once and every other URL comes from it (``jwks_uri``, ``token_endpoint``,
``introspection_endpoint``); SCAIKEY_JWKS_URL overrides the JWKS location.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from pydantic import SecretStr

from core.settings import Settings

SCOPE_403 = "Platform token requires admin:read or admin:write scope"


class ScaiKeyError(Exception):
    pass


class ScaiKeyTransportError(ScaiKeyError):
    pass


class ScaiKeyPaginationError(ScaiKeyError):
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
                 timeout: float = 5.0, client_id: str | None = None, client_secret: SecretStr | None = None,
                 tenant_slug: str | None = None) -> None:
        """``client_id``/``client_secret`` override ScaiVault's own credentials (e.g. tenant-tier sync
        credentials); ``tenant_slug`` makes ``service_token`` use that tenant's token endpoint."""
        self.settings = settings
        self.base = settings.scaikey_base_url.rstrip("/")
        self.client_id = client_id or settings.scaikey_client_id
        self._secret = client_secret if client_secret is not None else settings.scaikey_client_secret
        self.tenant_slug = tenant_slug or None
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
        return httpx.BasicAuth(self.client_id, self._secret.get_secret_value())

    @property
    def has_credentials(self) -> bool:
        return bool(self.client_id and self._secret.get_secret_value())

    async def _token_endpoint(self) -> str:
        if self.tenant_slug:
            return f"{self.base}/api/v1/auth/tenants/{self.tenant_slug}/oauth/token"
        return str((await self.discovery())["token_endpoint"])

    async def service_token(self, scope: str | None = None) -> str:
        """A client-credentials token for ScaiVault itself, cached until shortly before expiry."""
        async with self._token_lock:
            if self._token and self._token[1] > time.monotonic():
                return self._token[0]
            data = {"grant_type": "client_credentials"}
            if scope:
                data["scope"] = scope
            resp = await self._request("POST", await self._token_endpoint(), data=data, auth=self._client_auth())
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

    async def paginate(self, path: str, params: dict[str, Any] | None = None, *, per_page: int | None = 100,
                       max_pages: int = 10_000,
                       on_page: Callable[[int], None] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Yield every item across pages. Accepts items under ``items`` or ``data``; stops on an empty page
        or when ``page * per_page >= total``; caps pages as a safety valve. ``per_page=None`` (or 0) sends no
        ``per_page`` and follows the page size the server reports. When the server reports ``total``, the
        items seen must add up to it, else ``ScaiKeyPaginationError`` (a lying or truncated listing must
        never look like "these users are gone"). ``on_page(page)`` runs after each page (heartbeats)."""
        page, seen = 1, 0
        while page <= max_pages:
            query = {**(params or {}), "page": page}
            if per_page:
                query["per_page"] = per_page
            body = await self.get_json(path, query)
            items = body.get("items") if isinstance(body, dict) else body
            if items is None and isinstance(body, dict):
                items = body.get("data")
            items = items or []
            for item in items:
                yield item
            seen += len(items)
            if on_page is not None:
                on_page(page)
            total = body.get("total") if isinstance(body, dict) else None
            eff_per_page = int(body.get("per_page") or per_page or len(items) or 1) if isinstance(body, dict) \
                else (per_page or len(items) or 1)
            if not items or (total is not None and page * eff_per_page >= int(total)):
                if total is not None and seen != int(total):
                    raise ScaiKeyPaginationError(
                        f"pagination of {path} is inconsistent: saw {seen} items, total says {total}")
                if items and len(items) >= eff_per_page:
                    # A full last page: make sure the listing really ends here (a total that lies low would
                    # otherwise hide users, and a sync would soft-delete them).
                    probe = await self.get_json(path, {**query, "page": page + 1})
                    extra = probe.get("items") or probe.get("data") if isinstance(probe, dict) else probe
                    if extra:
                        raise ScaiKeyPaginationError(
                            f"pagination of {path} is inconsistent: items continue past total {total}")
                return
            page += 1
        raise ScaiKeyPaginationError(f"pagination of {path} exceeded {max_pages} pages")

    # --- directory and groups (sync) -------------------------------------------------------------
    async def token_claims(self) -> dict[str, Any]:
        """Claims of our own service token (unverified: only used to pick API paths, never to trust)."""
        token = await self.service_token()
        try:
            payload = token.split(".")[1]
            return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
        except (IndexError, ValueError):
            return {}

    async def is_platform_admin(self) -> bool:
        claims = await self.token_claims()
        scopes = set(str(claims.get("scope") or "").split())
        return bool(claims.get("platform_token")) and bool(scopes & {"admin:read", "admin:write"})

    def partners(self, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        return self.paginate("/api/v1/admin/partners", **kw)

    def tenants(self, partner_id: str | None = None, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        return self.paginate("/api/v1/admin/tenants", {"partner_id": partner_id} if partner_id else None, **kw)

    async def tenant(self, tenant_id: str) -> dict[str, Any]:
        return dict(await self.get_json(f"/api/v1/admin/tenants/{tenant_id}"))

    def effective_users(self, tenant_id: str, application_id: str = "me",
                        **kw: Any) -> AsyncIterator[dict[str, Any]]:
        """``applications.get_effective_users``: needs admin scope (else ``ScaiKeyScopeError``)."""
        return self.paginate(f"/api/v1/tenants/{tenant_id}/applications/{application_id}/effective-users", **kw)

    def list_groups(self, tenant_id: str, *, admin_path: bool, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        """``groups.list``: the admin path for admin-scoped tokens, the tenant-scoped twin otherwise."""
        if admin_path:
            return self.paginate("/api/v1/admin/groups", {"tenant_id": tenant_id}, **kw)
        return self.paginate(f"/api/v1/tenants/{tenant_id}/groups", **kw)

    def list_members(self, tenant_id: str, group_id: str, *, admin_path: bool,
                     **kw: Any) -> AsyncIterator[dict[str, Any]]:
        """``groups.list_members``: direct and nested members (``membership_type`` DIRECT|NESTED)."""
        if admin_path:
            return self.paginate(f"/api/v1/admin/groups/{group_id}/members", **kw)
        return self.paginate(f"/api/v1/tenants/{tenant_id}/groups/{group_id}/members", **kw)
