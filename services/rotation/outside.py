"""Rotation through an outside system (issue 14 item 4): a saga of create, store as pending, test, promote.

A policy with ``rotation_webhook_id`` (and ``auto_generate: true``) rotates through that webhook's endpoint:
ScaiVault drives the schedule, the outside system mints the credential at its provider. Each step is a signed
POST (the webhook's URL and signing secret, the same headers and SSRF guard as event delivery;
``X-ScaiVault-Event-Type: rotation_saga.<step>``, ``X-ScaiVault-Event-Id`` = the rotation id
``rot_<secret_id>_<cycle>``, stable across retries so the receiver can de-duplicate):

1. **create** ``{"step": "create", "rotation_id", "path", "cycle", "current_version"}``: the receiver creates the
   new credential and answers ``{"data": {...}}`` (a JSON object, within WEBHOOK_RESPONSE_BODY_LIMIT);
2. **store as pending**: the value is sealed under the tenant's key (AAD bound to ``<path>:pending`` and the
   cycle) in ``rotation_staged``; a retried rotation reuses it instead of creating another credential;
3. **test** ``{"step": "test", ...}``: the receiver checks the new credential at the provider; 2xx passes;
4. **promote**: the pending value is written as the next version through the secrets write path (a rotation
   write with the cycle's idempotency key: events, audit ``rotate``, grace for the old version), the pending
   row is dropped, and ``{"step": "promote", ..., "new_version"}`` tells the receiver (best effort).

A failed test **rolls back**: ``{"step": "rollback", ...}`` (the receiver revokes the new credential), the pending
row is dropped, the current version stays in place, and the rotation fails with ``validation_error`` (recorded
as ``rotation.failed``; retried after the backoff). A create that cannot reach the receiver is
``service_unavailable`` (retried); an answer that is not ``{"data": {...}}`` is ``validation_error``.
The credential never appears in logs, errors, events or Temporal payloads.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from core.errors import AppError
from crypto import envelope
from repositories import rotation as repo
from repositories.events import webhooks as wh_repo
from repositories.secrets import Owner

log = logging.getLogger("scaivault.rotation")
_STEP_TYPE = "rotation_saga.{}"


class OutsideSystem:
    """Per worker process: one sender (connection pool) and the webhook secret box."""

    def __init__(self, settings: Any) -> None:
        from services.events.webhook_secrets import SecretBox
        from services.events.webhook_sender import WebhookSender

        self.settings = settings
        self.sender = WebhookSender(settings, max_connections=20)
        self.box = SecretBox(settings)

    async def _post(self, target: tuple[str, str], rotation_id: str, step: str, doc: dict[str, Any]) -> Any:
        url, secret = target
        body = orjson.dumps({"step": step, "rotation_id": rotation_id, **doc})
        return await self.sender.send(url, secret, body, event_id=rotation_id, event_type=_STEP_TYPE.format(step))

    def _aad(self, owner: Owner, path: str, cycle: int) -> bytes:
        return envelope.aad_for_secret(owner.owner_id, f"{path}:pending", cycle, scope=owner.scope)

    async def pending_value(self, state: Any, *, webhook_id: str, owner: Owner, path: str, secret_id: int,
                            cycle: int, current_version: int) -> tuple[dict[str, Any], tuple[str, str], str]:
        """Steps 1-3: the tested pending value (created or reused), the target, the rotation id."""
        rotation_id = f"rot_{secret_id}_{cycle}"
        async with state.db.raw() as conn:
            hook = await wh_repo.get(conn, owner.owner_id, webhook_id)
            sealed = await wh_repo.secrets_of(conn, owner.owner_id, webhook_id)
            staged = await repo.get_staged(conn, secret_id, cycle)
        if hook is None or sealed is None:
            raise AppError("webhook_not_found", f"rotation webhook '{webhook_id}' not found", {"id": webhook_id})
        target = (hook["url"], self.box.open(owner.owner_id, webhook_id, sealed["secret_enc"]))
        doc = {"path": path, "cycle": cycle, "current_version": current_version}
        keyring = state.components["keyring"]
        if staged is not None:  # a retried rotation: the credential was created and stored already
            value = orjson.loads(await keyring.open(staged, self._aad(owner, path, cycle),
                                                    partner_id=owner.partner_id, tenant_id=owner.tenant_id))
        else:
            res = await self._post(target, rotation_id, "create", doc)
            if not res.ok:
                raise AppError("service_unavailable", f"the outside system did not create the credential "
                               f"({res.error})", {"step": "create", "response_code": res.response_code})
            try:
                value = orjson.loads(res.response_body or "")["data"]
                if not isinstance(value, dict) or not value:
                    raise ValueError
            except Exception:
                raise AppError("validation_error", "the outside system's create answer is not {\"data\": {...}}",
                               {"step": "create", "fields": [{"field": "data", "message": "must be a JSON object"}]}
                               ) from None
            kek = await keyring.kek(owner.partner_id, owner.tenant_id)
            blob = envelope.seal(orjson.dumps(value), kek.key, kek.version, self._aad(owner, path, cycle))
            async with state.db.raw() as conn:
                await repo.put_staged(conn, secret_id, cycle, blob)
        res = await self._post(target, rotation_id, "test", doc)
        if not res.ok:
            await self._post(target, rotation_id, "rollback", doc)
            async with state.db.raw() as conn:
                await repo.delete_staged(conn, secret_id)
            raise AppError("validation_error", f"the outside system's test of the new credential failed ({res.error});"
                           " rolled back, the current version stays", {"step": "test",
                                                                        "response_code": res.response_code})
        return value, target, rotation_id

    async def promoted(self, state: Any, target: tuple[str, str], rotation_id: str, *, secret_id: int, path: str,
                       cycle: int, new_version: int | None) -> None:
        async with state.db.raw() as conn:
            await repo.delete_staged(conn, secret_id)
        res = await self._post(target, rotation_id, "promote", {"path": path, "cycle": cycle,
                                                                 "new_version": new_version})
        if not res.ok:
            log.warning("outside system did not acknowledge the promotion", extra={"secret_id": secret_id,
                                                                                  "error": res.error})
