"""The identity cache mirrored from ScaiKey (``/v1/identity``): core.md §10.6. Page-numbered lists."""

from __future__ import annotations

from typing import Any

from scaivault_sdk.models import Record
from scaivault_sdk.resources.base import Resource, segment


class IdentityResource(Resource):
    """``client.identity``. List calls return ``(records, total)`` for one page (``page``, ``page_size``)."""

    async def _list(self, url: str, key: str, params: dict[str, Any]) -> tuple[list[Record], int]:
        body = await self._json("GET", url, params=params)
        return [Record.from_json(d) for d in body.get(key) or []], int(body.get("total") or 0)

    async def partners(self, *, status: str | None = None, page: int = 1,
                       page_size: int = 50) -> tuple[list[Record], int]:
        return await self._list("/v1/identity/partners", "partners",
                                {"status": status, "page": page, "page_size": page_size})

    async def tenants(self, *, partner_id: str | None = None, status: str | None = None, page: int = 1,
                      page_size: int = 50) -> tuple[list[Record], int]:
        return await self._list("/v1/identity/tenants", "tenants",
                                {"partner_id": partner_id, "status": status, "page": page, "page_size": page_size})

    async def users(self, tenant_id: str, *, q: str | None = None, status: str | None = None, page: int = 1,
                    page_size: int = 50) -> tuple[list[Record], int]:
        return await self._list(f"/v1/identity/tenants/{segment(tenant_id)}/users", "users",
                                {"q": q, "status": status, "page": page, "page_size": page_size})

    async def groups(self, tenant_id: str, *, page: int = 1, page_size: int = 50) -> tuple[list[Record], int]:
        return await self._list(f"/v1/identity/tenants/{segment(tenant_id)}/groups", "groups",
                                {"page": page, "page_size": page_size})

    async def members(self, group_id: str, *, page: int = 1, page_size: int = 50) -> tuple[list[Record], int]:
        return await self._list(f"/v1/identity/groups/{segment(group_id)}/members", "members",
                                {"page": page, "page_size": page_size})

    async def resolve(self, identity_type: str, identity_id: str) -> Record:
        """An identity with its group memberships (``NotFoundError(identity_not_found)`` if not cached)."""
        return Record.from_json(await self._json(
            "GET", f"/v1/identity/resolve/{segment(identity_type)}/{segment(identity_id)}"))

    async def roles(self) -> Any:
        """The assignable admin roles."""
        return await self._json("GET", "/v1/identity/roles")

    async def user_roles(self, user_id: str) -> Any:
        return await self._json("GET", f"/v1/identity/users/{segment(user_id)}/roles")

    async def set_user_roles(self, user_id: str, roles: list[str]) -> Any:
        return await self._json("PUT", f"/v1/identity/users/{segment(user_id)}/roles", json={"roles": roles},
                                idempotent=True)

    async def sync(self, *, partner_id: str | None = None, tenant_id: str | None = None) -> Record:
        """Start a sync from ScaiKey now (``identity:admin``); returns ``{sync_id, status, started_at}``."""
        return Record.from_json(await self._json("POST", "/v1/identity/sync", idempotent=False,
                                                 params={"partner_id": partner_id, "tenant_id": tenant_id}))

    async def sync_status(self, sync_id: str) -> Record:
        return Record.from_json(await self._json("GET", f"/v1/identity/sync/{segment(sync_id)}"))

    async def sync_history(self) -> Any:
        return await self._json("GET", "/v1/identity/sync/history")
