"""Subscriptions (``/v1/subscriptions``): lifecycle.md §5.6. Long-poll, acknowledge, and feed the read cache."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import Any

from scaivault_sdk.models import Record
from scaivault_sdk.resources.base import Resource, segment


class SubscriptionsResource(Resource):
    """``client.subscriptions``. Polling is limited to the subscription's owner."""

    async def create(self, name: str, paths: list[str], events: list[str], *,
                     delivery: dict[str, Any] | None = None, **extra: Any) -> Record:
        body: dict[str, Any] = {"name": name, "paths": paths, "events": events, **extra}
        if delivery is not None:
            body["delivery"] = delivery
        return Record.from_json(await self._json("POST", "/v1/subscriptions", json=body, idempotent=False))

    def list(self, *, limit: int | None = None) -> AsyncIterator[Record]:
        return self._paginate("/v1/subscriptions", "subscriptions", Record.from_json, {}, limit=limit)

    async def get(self, subscription_id: str) -> Record:
        return Record.from_json(await self._json("GET", f"/v1/subscriptions/{segment(subscription_id)}"))

    async def update(self, subscription_id: str, **fields: Any) -> Record:
        return Record.from_json(await self._json("PATCH", f"/v1/subscriptions/{segment(subscription_id)}",
                                                 json=fields, idempotent=True))

    async def delete(self, subscription_id: str) -> None:
        await self._json("DELETE", f"/v1/subscriptions/{segment(subscription_id)}", idempotent=False)

    async def poll(self, subscription_id: str, *, wait: float = 30, max_events: int = 100,
                   since_event_id: str | None = None) -> builtins.list[dict[str, Any]]:
        """Un-acknowledged events (the server waits up to ``wait`` seconds, at most 60, for the first);
        acknowledge them with ``ack``, or they are delivered again."""
        body = await self._json("GET", f"/v1/subscriptions/{segment(subscription_id)}/poll",
                                params={"timeout": wait, "max_events": max_events,
                                        "since_event_id": since_event_id})
        return list(body.get("events") or [])

    async def ack(self, subscription_id: str, event_ids: builtins.list[str]) -> Any:
        return await self._json("POST", f"/v1/subscriptions/{segment(subscription_id)}/ack",
                                json={"event_ids": event_ids}, idempotent=True)
