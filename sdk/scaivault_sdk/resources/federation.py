"""Federation (``/v1/federation/backends``): lifecycle.md §6, docs/federation.md. Scopes ``federation:read`` /
``federation:write``. A backend's credentials live in a ScaiVault secret its ``config`` names; the caller must be
allowed to read that secret and to write under every local prefix it maps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from scaivault_sdk.models import FederationBackend, Record
from scaivault_sdk.resources.base import Resource, body, segment


class FederationResource(Resource):
    """``client.federation``."""

    @staticmethod
    def _url(backend_id: str, tail: str = "") -> str:
        return f"/v1/federation/backends/{segment(backend_id)}{tail}"

    async def create(self, name: str, type: str, config: dict[str, Any], path_mapping: dict[str, str], *,
                     mode: str, sync_interval: str | None = None, verify: bool = True) -> FederationBackend:
        """``type`` ``hashicorp-vault`` or ``aws-secrets-manager``; ``mode`` ``proxy`` or ``sync`` (with
        ``sync_interval``). ``verify=False`` skips connecting with the credentials before saving."""
        doc = body(name=name, type=type, config=config, path_mapping=path_mapping, mode=mode,
                   sync_interval=sync_interval)
        return FederationBackend.from_json(await self._json(
            "POST", "/v1/federation/backends", params={"verify": "true" if verify else "false"}, json=doc,
            idempotent=False))

    async def list(self, *, limit: int | None = None) -> AsyncIterator[FederationBackend]:
        async for b in self._paginate("/v1/federation/backends", "backends", FederationBackend.from_json, {},
                                      limit=limit):
            yield b

    async def get(self, backend_id: str) -> FederationBackend:
        return FederationBackend.from_json(await self._json("GET", self._url(backend_id)))

    async def update(self, backend_id: str, *, verify: bool = True, **fields: Any) -> FederationBackend:
        """Change ``name``, ``config``, ``path_mapping``, ``mode``, ``sync_interval``."""
        return FederationBackend.from_json(await self._json(
            "PATCH", self._url(backend_id), params={"verify": "true" if verify else "false"}, json=fields,
            idempotent=True))

    async def delete(self, backend_id: str) -> None:
        """Delete the backend; synced local copies stay as ordinary secrets."""
        await self._json("DELETE", self._url(backend_id), idempotent=False)

    async def status(self, backend_id: str) -> Record:
        """Health, last sync and its counts, lag, open conflicts and a live connection probe."""
        return Record.from_json(await self._json("GET", self._url(backend_id, "/status")))

    async def sync(self, backend_id: str) -> Record:
        """Force a sync now (sync mode only; concurrent requests coalesce, so it is safe to repeat)."""
        return Record.from_json(await self._json("POST", self._url(backend_id, "/sync"), idempotent=True) or {})

    async def conflicts(self, backend_id: str, *, include_resolved: bool = False,
                        limit: int | None = None) -> AsyncIterator[Record]:
        async for c in self._paginate(self._url(backend_id, "/conflicts"), "conflicts", Record.from_json,
                                      {"include_resolved": "true" if include_resolved else None}, limit=limit):
            yield c

    async def resolve_conflict(self, backend_id: str, conflict_id: str, keep: str) -> Record:
        """``keep`` ``"local"`` or ``"remote"`` (needs ``write`` on the path)."""
        return Record.from_json(await self._json(
            "POST", self._url(backend_id, f"/conflicts/{segment(conflict_id)}/resolve"), json={"keep": keep},
            idempotent=False))
