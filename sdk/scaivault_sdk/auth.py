"""Credentials: a fixed bearer token, or a ScaiKey client-credentials grant refreshed before it expires.

A credential answers ``await token()``; ``invalidate()`` forces the next call to fetch a new one (used once
after a ``401 token_expired``). The client secret and tokens never appear in reprs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import httpx

from scaivault_sdk.errors import AuthenticationError, ConfigurationError, TransportError


class Credential(Protocol):
    async def token(self) -> str: ...

    def invalidate(self) -> None: ...

    @property
    def refreshable(self) -> bool: ...


class StaticToken:
    """A personal access token (``skt_...``) or any bearer token obtained elsewhere."""

    refreshable = False

    def __init__(self, token: str) -> None:
        if not token or not token.strip():
            raise ConfigurationError("token is empty")
        self._token = token.strip()

    async def token(self) -> str:
        return self._token

    def invalidate(self) -> None:  # nothing to refresh; the 401 reaches the caller
        return None

    def __repr__(self) -> str:
        return "StaticToken(***)"


class ClientCredentials:
    """OAuth2 client-credentials grant against ScaiKey's token endpoint (core.md §5.1).

    ``token_url`` is the tenant's endpoint, e.g. ``https://scaikey.example/api/v1/auth/tenants/acme/oauth/token``.
    The token is refreshed ``refresh_margin`` seconds (default 60, at most half the lifetime) before it expires,
    so a request never carries a token about to lapse; concurrent callers share one refresh.
    """

    refreshable = True

    def __init__(self, token_url: str, client_id: str, client_secret: str, *, scope: str | None = None,
                 refresh_margin: float = 60.0, http: httpx.AsyncClient | None = None) -> None:
        if not token_url or not client_id or not client_secret:
            raise ConfigurationError("client credentials need token_url, client_id and client_secret")
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.refresh_margin = refresh_margin
        self._http = http
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r}, secret=***)"

    def bind(self, http: httpx.AsyncClient) -> None:
        """Use the client's connection pool (and transport) for token requests."""
        self._http = self._http or http

    def invalidate(self) -> None:
        self._token = None
        self._expires_at = 0.0

    async def token(self) -> str:
        if self._token and time.monotonic() < self._expires_at:
            return self._token
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._token and time.monotonic() < self._expires_at:
                return self._token
            await self._fetch()
            assert self._token is not None
            return self._token

    async def _fetch(self) -> None:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        http = self._http or httpx.AsyncClient()
        try:
            r = await http.post(self.token_url, data=data, auth=(self.client_id, self._secret))
        except httpx.HTTPError as exc:
            raise TransportError(f"token endpoint unreachable: {type(exc).__name__}",
                                 may_have_been_applied=False) from None
        finally:
            if self._http is None:
                await http.aclose()
        if r.status_code != 200:
            raise AuthenticationError(r.status_code, "client_credentials_failed",
                                      f"token endpoint answered {r.status_code}")
        body = r.json()
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthenticationError(r.status_code, "client_credentials_failed", "no access_token in the answer")
        lifetime = float(body.get("expires_in") or 3600)
        margin = min(self.refresh_margin, lifetime / 2)
        self._token = token
        self._expires_at = time.monotonic() + lifetime - margin
