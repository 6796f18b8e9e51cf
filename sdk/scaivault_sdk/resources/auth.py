"""Who am I, token introspection and personal access tokens (``/v1/auth``): core.md §5, §10.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from scaivault_sdk.models import AccessToken, Whoami
from scaivault_sdk.resources.base import Resource, segment


class AuthResource(Resource):
    """``client.auth``."""

    async def whoami(self) -> Whoami:
        """How the server sees the caller: identity, tenant, scopes, groups, roles, token expiry."""
        return Whoami.from_json(await self._json("GET", "/v1/auth/whoami"))

    async def introspect(self, token: str) -> dict[str, Any]:
        """Validate any token (``admin``); an invalid or expired one gives ``{"active": false}``."""
        return await self._json("POST", "/v1/auth/introspect", json={"token": token},  # type: ignore[no-any-return]
                                idempotent=True)

    async def create_token(self, name: str, scopes: list[str], *, expires_in: str | None = None) -> AccessToken:
        """A personal access token; its value is in ``.token`` of this answer only."""
        body: dict[str, Any] = {"name": name, "scopes": scopes}
        if expires_in is not None:
            body["expires_in"] = expires_in
        return AccessToken.from_json(await self._json("POST", "/v1/auth/tokens", json=body, idempotent=False))

    def list_tokens(self, *, all_identities: bool = False, limit: int | None = None) -> AsyncIterator[AccessToken]:
        return self._paginate("/v1/auth/tokens", "tokens", AccessToken.from_json,
                              {"all": "true" if all_identities else None}, limit=limit)

    async def get_token(self, token_id: str) -> AccessToken:
        return AccessToken.from_json(await self._json("GET", f"/v1/auth/tokens/{segment(token_id)}"))

    async def revoke_token(self, token_id: str) -> None:
        await self._json("DELETE", f"/v1/auth/tokens/{segment(token_id)}", idempotent=False)
