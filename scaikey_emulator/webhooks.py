"""Webhook emitter: envelopes (scaikey/scaiflow), HMAC signing, background delivery with retries, breakage."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from scaikey_emulator.state import Group, Tenant, User, Webhook, now_iso

if TYPE_CHECKING:
    from scaikey_emulator.runtime import Emulator

EVENT_TYPES = [
    "partner.created", "partner.updated", "partner.deleted",
    "tenant.created", "tenant.updated", "tenant.deleted",
    "user.created", "user.updated", "user.deleted", "user.suspended", "user.activated",
    "user.password_changed", "user.mfa_enabled", "user.mfa_disabled",
    "group.created", "group.updated", "group.deleted", "group.member_added", "group.member_removed",
    "application.created", "application.updated", "application.deleted",
    "application.user_assigned", "application.user_unassigned",
    "application.group_assigned", "application.group_unassigned",
]  # fmt: skip
SCAIFLOW_TYPE_NAMES = {
    "group.member_added": "group_membership.added",
    "group.member_removed": "group_membership.removed",
}
BREAKAGES = {
    "wrong_secret", "stale_timestamp", "future_timestamp", "tampered_body", "missing_signature",
    "missing_timestamp", "duplicate", "malformed_signature",
}  # fmt: skip
USER_AGENT = "ScaiKey-Webhook/1.0"


def serialize(payload: dict[str, Any]) -> bytes:
    """ScaiKey's canonical body: sorted keys, compact separators."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


@dataclass
class Event:
    """A canonical event; rendered into either envelope style at delivery time."""

    event_id: str
    event_type: str
    timestamp: str
    resource_type: str
    resource_id: str
    data: dict[str, Any]
    tenant_id: str | None = None
    partner_id: str | None = None
    actor_id: str | None = None
    actor_type: str = "api"

    def envelope(self, style: str = "scaikey") -> dict[str, Any]:
        if style == "scaiflow":
            body: dict[str, Any] = {
                "id": self.event_id,
                "type": SCAIFLOW_TYPE_NAMES.get(self.event_type, self.event_type),
                "created_at": self.timestamp,
                "data": scaiflow_data(self),
            }
        else:
            body = {
                "event_id": self.event_id,
                "event_type": self.event_type,
                "timestamp": self.timestamp,
                "resource": {"type": self.resource_type, "id": self.resource_id},
                "actor": {"id": self.actor_id, "type": self.actor_type},
                "data": self.data,
            }
        if self.tenant_id:
            body["tenant_id"] = self.tenant_id
        if self.partner_id:
            body["partner_id"] = self.partner_id
        return body


def scaiflow_data(event: Event) -> dict[str, Any]:
    """ScaiFlow-style data keys (``user_id``, ``group_id``, ``tenant_id``) on top of the ScaiKey ones."""
    data = dict(event.data)
    if event.resource_type == "user":
        data.setdefault("user_id", event.resource_id)
    elif event.resource_type == "group" and "user_id" not in data and "member_group_id" not in data:
        data.setdefault("group_id", event.resource_id)
    if event.tenant_id:
        data.setdefault("tenant_id", event.tenant_id)
    return data


def new_event_id() -> str:
    return "evt_" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y")


def user_data(user: User, tenant: Tenant | None) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "display_name": user.display_name,
        "status": user.status,
        "mfa_enabled": user.mfa_enabled,
        "tenant_id": user.tenant_id,
        "tenant": {"id": tenant.id, "name": tenant.name, "slug": tenant.slug} if tenant else None,
    }


def group_data(group: Group) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "group_type": group.group_type,
        "description": group.description,
        "tenant_id": group.tenant_id,
    }


class WebhookEmitter:
    """Queues subscription deliveries and sends them from one background task (keeps emission order)."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        self.deliveries: list[dict[str, Any]] = []
        self._ids = itertools.count(4000)
        self._queue: asyncio.Queue[tuple[Webhook, Event]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.pending = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._client = httpx.AsyncClient()
        self._task = asyncio.create_task(self._run(), name="scaikey-emulator-webhooks")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client:
            await self._client.aclose()

    async def drain(self, wait_seconds: float = 10.0) -> bool:
        """Wait until every queued delivery finished (all retries done); False on timeout."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_seconds):
                await self._idle.wait()
        return self.pending == 0

    def _track(self, delta: int) -> None:
        self.pending += delta
        if self.pending:
            self._idle.clear()
        else:
            self._idle.set()

    # ------------------------------------------------------------- emission
    def emit(
        self,
        event_type: str,
        resource_type: str,
        resource_id: str,
        data: dict[str, Any],
        *,
        tenant_id: str | None = None,
        partner_id: str | None = None,
        actor_id: str | None = None,
    ) -> Event:
        if tenant_id and not partner_id:
            partner_id = self.emu.store.partner_of_tenant(tenant_id)
        event = Event(
            event_id=new_event_id(),
            event_type=event_type,
            timestamp=now_iso(),
            resource_type=resource_type,
            resource_id=resource_id,
            data=data,
            tenant_id=tenant_id,
            partner_id=partner_id,
            actor_id=actor_id,
        )
        for hook in self.emu.store.webhooks.values():
            if hook.wants(event_type, tenant_id, partner_id) and self._queue is not None:
                self._track(1)
                self._queue.put_nowait((hook, event))
        return event

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            hook, event = await self._queue.get()
            try:
                settings = self.emu.store.settings
                await self.deliver(
                    url=hook.url,
                    secret=hook.secret,
                    body=event.envelope(hook.envelope_style),
                    event=event,
                    webhook_id=hook.id,
                    breakage=list(settings.webhook_breakage),
                    retries=settings.webhook_retries,
                )
            except Exception:  # noqa: S112 - the emitter must survive any single delivery failure
                continue
            finally:
                self._track(-1)

    # ------------------------------------------------------------- delivery
    def build_request(
        self, *, secret: str, body: dict[str, Any], event: Event, delivery_id: int, breakage: list[str]
    ) -> tuple[bytes, dict[str, str]]:
        raw = serialize(body)
        ts = int(time.time())
        if "stale_timestamp" in breakage:
            ts -= 600
        if "future_timestamp" in breakage:
            ts += 600
        sign_secret = secret + "-wrong" if "wrong_secret" in breakage else secret
        sig = signature(sign_secret, ts, raw)
        if "tampered_body" in breakage:
            raw = serialize({**body, "tampered": True})
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-ScaiKey-Webhook-ID": str(delivery_id),
            "X-ScaiKey-Event-ID": event.event_id,
            "X-ScaiKey-Event-Type": event.event_type,
            "X-ScaiKey-Timestamp": str(ts),
            "X-ScaiKey-Signature": f"t={ts},v1={sig}",
        }
        if "malformed_signature" in breakage:
            headers["X-ScaiKey-Signature"] = "garbage"
        if "missing_signature" in breakage:
            del headers["X-ScaiKey-Signature"]
        if "missing_timestamp" in breakage:
            del headers["X-ScaiKey-Timestamp"]
            if "X-ScaiKey-Signature" in headers:
                headers["X-ScaiKey-Signature"] = f"v1={sig}"
        return raw, headers

    async def deliver(
        self,
        *,
        url: str,
        secret: str,
        body: dict[str, Any],
        event: Event,
        webhook_id: str | None,
        breakage: list[str],
        retries: int,
    ) -> list[dict[str, Any]]:
        """Send one delivery (with retries on non-2xx/transport errors). Returns the attempt records."""
        unknown = set(breakage) - BREAKAGES
        if unknown:
            raise ValueError(f"unknown breakage {sorted(unknown)}")
        delivery_id = next(self._ids)
        copies = 2 if "duplicate" in breakage else 1
        records: list[dict[str, Any]] = []
        for copy_no in range(copies):
            records.extend(
                await self._attempts(
                    url, secret, body, event, webhook_id, breakage, retries, delivery_id, copy_no
                )
            )
        return records

    async def _attempts(
        self,
        url: str,
        secret: str,
        body: dict[str, Any],
        event: Event,
        webhook_id: str | None,
        breakage: list[str],
        retries: int,
        delivery_id: int,
        copy_no: int,
    ) -> list[dict[str, Any]]:
        settings = self.emu.store.settings
        client = self._client or httpx.AsyncClient()
        records = []
        for attempt in range(1, retries + 2):
            raw, headers = self.build_request(
                secret=secret, body=body, event=event, delivery_id=delivery_id, breakage=breakage
            )
            record: dict[str, Any] = {
                "delivery_id": delivery_id,
                "webhook_id": webhook_id,
                "event_id": event.event_id,
                "event_type": event.event_type,
                "url": url,
                "attempt": attempt,
                "copy": copy_no,
                "breakage": breakage,
                "sent_at": now_iso(),
                "status_code": None,
                "response_body": None,
                "error": None,
                "ok": False,
            }
            try:
                resp = await client.post(
                    url, content=raw, headers=headers, timeout=settings.webhook_timeout_seconds
                )
                record.update(
                    status_code=resp.status_code, response_body=resp.text[:2000], ok=resp.is_success
                )
            except httpx.HTTPError as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
            records.append(record)
            self.deliveries.append(record)
            if record["ok"] or attempt > retries:
                break
            await asyncio.sleep(settings.webhook_backoff_seconds * (2 ** (attempt - 1)))
        if self._client is None:
            await client.aclose()
        return records
