"""Webhooks (``/v1/webhooks``, scope ``admin``): lifecycle.md §5.3-5.5. Verify deliveries with
``scaivault_sdk.verify_webhook``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from scaivault_sdk.models import Record
from scaivault_sdk.resources.base import Resource, segment


class WebhooksResource(Resource):
    """``client.webhooks``."""

    async def create(self, name: str, url: str, secret: str, events: list[str], *,
                     filters: dict[str, Any] | None = None, enabled: bool = True) -> Record:
        """Register an endpoint; ``secret`` signs deliveries and is never returned again."""
        body: dict[str, Any] = {"name": name, "url": url, "secret": secret, "events": events, "enabled": enabled}
        if filters is not None:
            body["filters"] = filters
        return Record.from_json(await self._json("POST", "/v1/webhooks", json=body, idempotent=False))

    def list(self, *, limit: int | None = None) -> AsyncIterator[Record]:
        return self._paginate("/v1/webhooks", "webhooks", Record.from_json, {}, limit=limit)

    async def get(self, webhook_id: str) -> Record:
        return Record.from_json(await self._json("GET", f"/v1/webhooks/{segment(webhook_id)}"))

    async def update(self, webhook_id: str, **fields: Any) -> Record:
        """Change fields; ``secret=...`` with ``previous_secret_ttl=...`` rotates the signing secret."""
        return Record.from_json(await self._json("PATCH", f"/v1/webhooks/{segment(webhook_id)}", json=fields,
                                                 idempotent=True))

    async def delete(self, webhook_id: str) -> None:
        await self._json("DELETE", f"/v1/webhooks/{segment(webhook_id)}", idempotent=False)

    async def deliveries(self, webhook_id: str, *, limit: int | None = None) -> AsyncIterator[Record]:
        async for d in self._paginate(f"/v1/webhooks/{segment(webhook_id)}/deliveries", "deliveries",
                                      Record.from_json, {}, limit=limit):
            yield d

    async def test(self, webhook_id: str) -> Record:
        """Send a synthetic ``webhook.test`` event now and report the outcome."""
        return Record.from_json(await self._json("POST", f"/v1/webhooks/{segment(webhook_id)}/test",
                                                 idempotent=False))

    async def redeliver(self, webhook_id: str, delivery_id: str) -> Record:
        return Record.from_json(await self._json(
            "POST", f"/v1/webhooks/{segment(webhook_id)}/deliveries/{segment(delivery_id)}/redeliver",
            idempotent=False))
