"""Rotation (``/v1/rotation``): lifecycle.md §1.4, docs/rotation.md.

``client.rotation.policies`` manages policies and their attached secrets; ``client.rotation.rotate`` rotates
now, ``history`` reads a policy's log and ``due`` lists what rotates soon. A single secret also rotates through
``client.secrets.rotate(path)``. Manual rotations write a new version, so they are never retried once sent.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from scaivault_sdk.models import Record, RotationHistoryItem, RotationPolicy
from scaivault_sdk.resources.base import Resource, body, segment


class RotationPolicies(Resource):
    """``client.rotation.policies`` (scope ``admin``; attaching also needs ``rotate`` on the path)."""

    async def create(self, name: str, interval: str, *, description: str | None = None,
                     grace_period: str | None = None, warn_before: str | builtins.list[str] | None = None,
                     auto_generate: bool | None = None, secret_policy_id: str | None = None,
                     webhook_ids: builtins.list[str] | None = None, **fields: Any) -> RotationPolicy:
        """``interval`` and the other durations like ``90d``, ``12h``; ``warn_before`` as ``"30d,7d"`` or a list."""
        doc = body(name=name, interval=interval, description=description, grace_period=grace_period,
                   warn_before=warn_before, auto_generate=auto_generate, secret_policy_id=secret_policy_id,
                   webhook_ids=webhook_ids, **fields)
        return RotationPolicy.from_json(await self._json("POST", "/v1/rotation/policies", json=doc,
                                                         idempotent=False))

    async def list(self, *, active_only: bool = False, limit: int | None = None) -> AsyncIterator[RotationPolicy]:
        async for p in self._paginate("/v1/rotation/policies", "data", RotationPolicy.from_json,
                                      {"active_only": "true" if active_only else None}, limit=limit):
            yield p

    async def get(self, policy_id: str) -> RotationPolicy:
        return RotationPolicy.from_json(await self._json("GET", f"/v1/rotation/policies/{segment(policy_id)}"))

    async def update(self, policy_id: str, **fields: Any) -> RotationPolicy:
        """Change any subset of fields; every attached secret's timers move at once."""
        return RotationPolicy.from_json(await self._json("PATCH", f"/v1/rotation/policies/{segment(policy_id)}",
                                                         json=fields, idempotent=True))

    async def delete(self, policy_id: str) -> None:
        """Delete the policy; its secrets are detached (they keep their values)."""
        await self._json("DELETE", f"/v1/rotation/policies/{segment(policy_id)}", idempotent=False)

    async def enable(self, policy_id: str) -> RotationPolicy:
        return RotationPolicy.from_json(await self._json(
            "POST", f"/v1/rotation/policies/{segment(policy_id)}/enable", idempotent=True))

    async def disable(self, policy_id: str) -> RotationPolicy:
        """Pause: timers stop, attachments and anchors are kept."""
        return RotationPolicy.from_json(await self._json(
            "POST", f"/v1/rotation/policies/{segment(policy_id)}/disable", idempotent=True))

    async def attach(self, policy_id: str, secret_path: str) -> Record:
        """Attach a secret: the SecretAssignment (``next_rotation_at``, ``status``, ...)."""
        return Record.from_json(await self._json("POST", f"/v1/rotation/policies/{segment(policy_id)}/secrets",
                                                 json={"secret_path": secret_path.strip("/")}, idempotent=False))

    async def detach(self, policy_id: str, secret_path: str) -> None:
        await self._json("DELETE", f"/v1/rotation/policies/{segment(policy_id)}/secrets/"
                         f"{quote(secret_path.strip('/'), safe='')}", idempotent=False)


class RotationResource(Resource):
    """``client.rotation``: ``policies``, ``rotate``, ``history``, ``due``."""

    def __init__(self, transport: Any) -> None:
        super().__init__(transport)
        self.policies = RotationPolicies(transport)

    async def rotate(self, policy_id: str,
                     secret_paths: builtins.list[str] | None = None) -> builtins.list[RotationHistoryItem]:
        """Rotate now: every attached secret the caller may rotate, or only ``secret_paths``. Answers the pending
        history items (the workflow completes them). Never retried once sent."""
        doc = {"secret_paths": [p.strip("/") for p in secret_paths]} if secret_paths is not None else None
        items = await self._json("POST", f"/v1/rotation/policies/{segment(policy_id)}/rotate", json=doc,
                                 idempotent=False)
        return [RotationHistoryItem.from_json(i) for i in items or []]

    async def history(self, policy_id: str, *, status: str | None = None,
                      limit: int | None = None) -> AsyncIterator[RotationHistoryItem]:
        """The policy's rotation log, newest first (scope ``audit:read``)."""
        async for item in self._paginate(f"/v1/rotation/policies/{segment(policy_id)}/history", "data",
                                         RotationHistoryItem.from_json, {"status": status}, limit=limit):
            yield item

    async def due(self, *, within_hours: int = 24, include_overdue: bool = True,
                  policy_id: str | None = None) -> builtins.list[Record]:
        """Secrets due within ``within_hours`` (and overdue ones), limited to paths the caller may list."""
        doc = await self._json("GET", "/v1/rotation/due", params={
            "within_hours": within_hours, "include_overdue": "true" if include_overdue else "false",
            "policy_id": policy_id})
        return [Record.from_json(d) for d in doc.get("data") or []]
