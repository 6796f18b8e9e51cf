"""Audit queries, export and a follow-mode tail (``/v1/audit``): core.md §10.5, §11."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from scaivault_sdk.models import AuditEntry
from scaivault_sdk.resources.base import Resource, secret_path, segment


def _filters(f: dict[str, Any]) -> dict[str, Any]:
    out = {("from" if k == "from_" else k): v for k, v in f.items() if v is not None}
    if isinstance(out.get("success"), bool):
        out["success"] = "true" if out["success"] else "false"
    return out


class AuditResource(Resource):
    """``client.audit``. Filters: ``from_``, ``to``, ``action``, ``identity_id``, ``identity_type``,
    ``path_prefix``, ``success``, ``source_ip``, ``request_id``."""

    def logs(self, *, limit: int | None = None, **filters: Any) -> AsyncIterator[AuditEntry]:
        """Matching entries, newest first, across pages."""
        return self._paginate("/v1/audit/logs", "logs", AuditEntry.from_json, _filters(filters), limit=limit)

    async def secret_trail(self, path: str, **filters: Any) -> dict[str, Any]:
        """One secret's trail with its 30-day summary (raw answer)."""
        return await self._json("GET", f"/v1/audit/secrets/{secret_path(path)}",  # type: ignore[no-any-return]
                                params=_filters(filters))

    async def identity_trail(self, identity_id: str, **filters: Any) -> dict[str, Any]:
        return await self._json("GET", f"/v1/audit/identities/{segment(identity_id)}",  # type: ignore[no-any-return]
                                params=_filters(filters))

    async def summary(self, *, from_: str | None = None, to: str | None = None) -> dict[str, Any]:
        return await self._json("GET", "/v1/audit/summary",  # type: ignore[no-any-return]
                                params=_filters({"from_": from_, "to": to}))

    async def verify(self) -> dict[str, Any]:
        """Verify the tenant's hash chain through the API (needs ``admin``)."""
        return await self._json("GET", "/v1/audit/verify")  # type: ignore[no-any-return]

    async def export(self, *, limit: int | None = None, progress: Callable[[int], None] | None = None,
                     **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Stream matching entries, oldest first (NDJSON, ``audit:export``); ``progress(n)`` after each entry."""
        params = {**_filters(filters), "limit": limit}
        response = await self._t.request("GET", "/v1/audit/logs/export", params=params, stream=True)
        try:
            n = 0
            async for line in response.aiter_lines():
                if line.strip():
                    n += 1
                    yield json.loads(line)
                    if progress is not None:
                        progress(n)
        finally:
            await response.aclose()

    async def tail(self, *, poll_interval: float = 2.0, initial: int = 20,
                   **filters: Any) -> AsyncIterator[AuditEntry]:
        """Follow the log: the last ``initial`` entries, then new ones as they are written (oldest first)."""
        seen: set[Any] = set()
        backlog = [e async for e in self.logs(limit=max(1, initial), **filters)]
        since = None
        for entry in reversed(backlog):
            seen.add(entry.id)
            since = entry.raw.get("timestamp") or since
            yield entry
        while True:
            await asyncio.sleep(poll_interval)
            fresh = [e async for e in self.logs(limit=1000, **{**filters, "from_": since or filters.get("from_")})]
            if len(seen) > 10_000:  # entries older than ``since`` can no longer come back
                seen = {e.id for e in fresh}
            for entry in reversed(fresh):
                if entry.id in seen:
                    continue
                seen.add(entry.id)
                since = entry.raw.get("timestamp") or since
                yield entry
