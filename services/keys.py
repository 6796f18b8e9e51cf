"""The process-wide key hierarchy and its cross-process cache invalidation.

``setup_keyring`` (an api/app.py COMPONENTS hook) builds ``KeyHierarchy(kms, SqlKeyStore(db))`` as
``state.components["keyring"]`` and listens on the Redis channel :data:`CHANNEL`. Whoever rotates a key
(the ``scaivault kms`` CLI, an admin endpoint, a workflow) calls :func:`broadcast_rotation`; every API
process then drops that owner's cached keys. Without Redis the cache TTL bounds staleness, which is safe:
old key versions stay readable and new seals simply keep using the previous version until the TTL ends.

:func:`keyring_for` gives code outside a request (identity sync in the worker, the ScaiKey webhook receiver) the
process's keyring for a database: the API's component when there is one, otherwise one built once from settings.
Moving a tenant to another partner needs it (the move re-wraps the tenant's keys, repositories/tenants.py).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from core.background import cancel_and_wait
from core.settings import Settings
from crypto.keyring import Kek, KeyHierarchy, RootRotationReport
from crypto.kms import KmsProvider, build_kms
from db.engine import Database
from repositories.keys import SqlKeyStore

log = logging.getLogger("scaivault.keys")

CHANNEL = "scaivault:keyring:invalidate"
ALL = "*"


_SHARED: weakref.WeakKeyDictionary[Database, KeyHierarchy] = weakref.WeakKeyDictionary()


def build_keyring(settings: Settings, db: Database, kms: KmsProvider | None = None) -> KeyHierarchy:
    return KeyHierarchy(kms or build_kms(settings), SqlKeyStore(db),
                        cache_ttl_seconds=float(settings.key_cache_ttl_seconds))


def keyring_for(settings: Settings, db: Database) -> KeyHierarchy:
    """This process's keyring over ``db`` (registered by :func:`setup_keyring`, else built once and kept)."""
    keyring = _SHARED.get(db)
    if keyring is None:
        keyring = _SHARED[db] = build_keyring(settings, db)
    return keyring


async def broadcast_rotation(redis: aioredis.Redis, owner_id: str = ALL) -> bool:
    """Tell every process to drop cached keys of ``owner_id`` (``"*"``: all). False if Redis is down."""
    try:
        await redis.publish(CHANNEL, owner_id)
        return True
    except Exception:
        log.warning("key invalidation broadcast failed; other processes pick the change up within the TTL")
        return False


class KeyringListener:
    """Background task applying invalidation broadcasts to one KeyHierarchy."""

    def __init__(self, keyring: KeyHierarchy, redis_url: str) -> None:
        self.keyring = keyring
        self.redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=None)
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def apply(self, message: Any) -> None:
        owner = message.decode() if isinstance(message, bytes) else str(message)
        self.keyring.invalidate(None if owner == ALL else owner)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(CHANNEL)
                self.subscribed.set()
                async for msg in pubsub.listen():
                    if msg and msg.get("type") == "message":
                        self.apply(msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                self.subscribed.clear()
                self.keyring.invalidate()  # messages may have been missed while disconnected
                await asyncio.sleep(1.0)

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="keyring-invalidation")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self.redis.aclose()


async def setup_keyring(state: Any) -> Callable[[], Awaitable[None]]:
    """COMPONENTS hook: ``state.components["keyring"]`` (+ its invalidation listener)."""
    kms = state.components.get("kms")
    keyring = build_keyring(state.settings, state.db, kms)
    listener = KeyringListener(keyring, state.settings.redis_url)
    state.components["keyring"] = keyring
    _SHARED[state.db] = keyring
    state.components["keyring_listener"] = listener
    listener.start()
    return listener.stop


# ------------------------------------------------------------------------------ rotation (CLI)


async def rotate_root(keyring: KeyHierarchy, redis: aioredis.Redis | None, *, only_stale: bool) -> RootRotationReport:
    """Re-wrap every partner key under the KMS's current root key; payloads are not touched."""
    report = await keyring.rotate_root(only_stale=only_stale)
    if redis is not None:
        await broadcast_rotation(redis, ALL)
    return report


async def rotate_partner(keyring: KeyHierarchy, redis: aioredis.Redis | None, partner_id: str) -> Kek:
    kek = await keyring.rotate_partner_key(partner_id)
    if redis is not None:
        await broadcast_rotation(redis, partner_id)
    return kek


async def rotate_tenant(keyring: KeyHierarchy, redis: aioredis.Redis | None, tenant_id: str,
                        partner_id: str) -> Kek:
    kek = await keyring.rotate_tenant_key(tenant_id, partner_id)
    if redis is not None:
        await broadcast_rotation(redis, tenant_id)
    return kek
