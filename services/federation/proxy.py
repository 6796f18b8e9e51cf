"""Proxy mode (lifecycle.md §6.2): reads of paths a proxy-mode backend maps go to the remote, with
FEDERATION_REMOTE_TIMEOUT_SECONDS per call and at most FEDERATION_PROXY_CONCURRENCY reads in flight per backend;
each read is audited like a local one (action ``read``, ``extra.federated``). Writes and deletes of proxied paths
are refused (``409 federated_path_read_only``): the backend is the source of truth. An optional read-through cache
(FEDERATION_PROXY_CACHE_SECONDS, off by default) answers repeated reads of a key from process memory for that long;
every such read is still policy-checked and audited (``extra.cached``).

``SecretsService`` asks this component (``state.components["federation"]``) on every tenant read and write, after
the policy check (so policies see the local path exactly as for local secrets). The per-tenant mapping index is
cached in the process: a tenant without proxy mappings costs one dict lookup and a clock read. Invalidated like
the policy index: a backend change drops the tenant's entry in this process and publishes the tenant id on
``scaivault:federation-invalidate``, on which every API process drops it too; FEDERATION_INDEX_TTL_SECONDS bounds
staleness when a broadcast is lost (Redis down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from core.errors import AppError
from repositories import federation as repo
from services.federation import backends as bk
from services.federation.mapping import Mapping
from services.federation.remote import Remote, RemoteError

_REMOTE_TTL = 60.0
_MAX_CACHED = 10_000
CHANNEL = "scaivault:federation-invalidate"
log = logging.getLogger("scaivault.federation")


@dataclass(frozen=True, slots=True)
class _Entry:
    mapping: Mapping
    backend_id: str


class FederationProxy:
    def __init__(self, state: Any, *, pubsub_redis: Any = None) -> None:
        self.state = state
        self.redis = state.components.get("redis_guarded", state.redis)
        self.pubsub_redis = pubsub_redis
        self._sub_task: asyncio.Task[None] | None = None
        self.ttl = float(state.settings.federation_index_ttl_seconds)
        self._index: dict[str, tuple[float, tuple[_Entry, ...]]] = {}
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._remotes: dict[str, tuple[float, Any, Remote]] = {}
        # Optional read-through cache (FEDERATION_PROXY_CACHE_SECONDS, 0 = off): (backend, key) -> (expiry, data, rv)
        self.cache_seconds = float(state.settings.federation_proxy_cache_seconds)
        self._values: dict[tuple[str, str], tuple[float, dict[str, Any], str]] = {}

    def drop_local(self, tenant_id: str) -> None:
        self._index.pop(tenant_id, None)
        if self._values:  # a changed backend (mapping, endpoint, credentials) must not answer from old reads
            self._values.clear()

    async def invalidate(self, tenant_id: str) -> None:
        """A backend of the tenant changed (after commit): every process rebuilds the tenant's index."""
        self.drop_local(tenant_id)
        if self.redis is None:
            return
        try:
            await self.redis.publish(CHANNEL, tenant_id)
        except Exception:
            log.warning("federation index broadcast failed; other processes rebuild within the index TTL")

    def start(self) -> None:
        """Listen for invalidation broadcasts (``pubsub_redis``: a connection without read timeout)."""
        if self.pubsub_redis is None or self._sub_task is not None:
            return

        async def listen() -> None:
            while True:
                pubsub = self.pubsub_redis.pubsub(ignore_subscribe_messages=True)
                try:
                    await pubsub.subscribe(CHANNEL)
                    async for msg in pubsub.listen():
                        if msg and msg.get("type") == "message":
                            data = msg["data"]
                            self.drop_local(data.decode() if isinstance(data, bytes) else str(data))
                    await asyncio.sleep(1.0)  # the stream ended without an error: reconnect, never spin
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self._index.clear()  # messages may have been missed
                    await asyncio.sleep(1.0)
                finally:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()

        self._sub_task = asyncio.get_running_loop().create_task(listen())

    async def _entries(self, tenant_id: str) -> tuple[_Entry, ...]:
        hit = self._index.get(tenant_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        async with self.state.db.raw() as conn:
            rows = await repo.mapped_proxies(conn, tenant_id)
        entries = tuple(_Entry(m, r["id"]) for r in rows if r["mode"] == "proxy" for m in bk.compiled(r))
        self._index[tenant_id] = (now + self.ttl, entries)
        return entries

    async def match(self, tenant_id: str, path: str) -> _Entry | None:
        hit = self._index.get(tenant_id)
        if hit is not None and not hit[1] and hit[0] > time.monotonic():
            return None  # the common case: this tenant proxies nothing
        for e in await self._entries(tenant_id):
            if e.mapping.matches(path):
                return e
        return None

    async def check_write(self, owner: Any, path: str) -> None:
        if owner.scope != "tenant":
            return
        e = await self.match(owner.owner_id, path)
        if e is not None:
            raise AppError("federated_path_read_only", f"'{path}' is served by a proxy-mode federated backend; "
                           "write it in the backend (the source of truth)", {"path": path, "backend_id": e.backend_id})

    async def _remote(self, row: Any) -> Remote:
        key = row["id"]
        hit = self._remotes.get(key)
        if hit is not None and hit[0] > time.monotonic() and hit[1] == row["updated_at"]:
            return hit[2]
        remote = await bk.remote_for(self.state, row)
        if hit is not None:
            asyncio.get_running_loop().create_task(hit[2].aclose())
        self._remotes[key] = (time.monotonic() + _REMOTE_TTL, row["updated_at"], remote)
        return remote

    async def read(self, ctx: Any, owner: Any, path: str, version: int | None) -> bytes | None:
        """The proxied value document, or None when the path is not proxied (then the local read proceeds)."""
        if owner.scope != "tenant":
            return None
        e = await self.match(owner.owner_id, path)
        if e is None:
            return None
        if version is not None:
            raise AppError("invalid_request", "older versions of a proxied path are not addressable here",
                           {"path": path, "backend_id": e.backend_id})
        async with self.state.db.raw() as conn:
            row = await repo.get(conn, owner.owner_id, e.backend_id)
        if row is None or row["mode"] != "proxy":  # changed in another process since the index was built
            self.drop_local(owner.owner_id)
            return None
        key = e.mapping.to_remote(path)
        cached = self._values.get((row["id"], key)) if self.cache_seconds > 0 else None
        if cached is not None and cached[0] > time.monotonic():
            return await self._answer(ctx, row, path, cached[1], cached[2], cached=True)
        data, rv = await self._fetch(row, path, key)
        if self.cache_seconds > 0:
            if len(self._values) >= _MAX_CACHED:
                self._values.clear()
            self._values[(row["id"], key)] = (time.monotonic() + self.cache_seconds, data, rv)
        return await self._answer(ctx, row, path, data, rv, cached=False)

    async def _fetch(self, row: Any, path: str, key: str) -> tuple[dict[str, Any], str]:
        settings = self.state.settings
        sem = self._sems.setdefault(row["id"], asyncio.Semaphore(settings.federation_proxy_concurrency))
        timeout = float(settings.federation_remote_timeout_seconds)
        try:
            await asyncio.wait_for(sem.acquire(), timeout)
        except TimeoutError:
            raise AppError("service_unavailable", f"federated backend '{row['name']}' is saturated (too many reads "
                           "in flight)", {"backend_id": row["id"], "backend": row["name"],
                                          "reason": "concurrency"}) from None
        try:
            remote = await self._remote(row)
            data, rv = await asyncio.wait_for(remote.read(key), timeout * 2)
        except TimeoutError:
            raise bk.unavailable(row, RemoteError("unavailable", "timed out")) from None
        except RemoteError as exc:
            if exc.kind == "not_found":
                raise AppError("secret_not_found", f"Secret '{path}' not found",
                               {"path": path, "backend_id": row["id"]}) from None
            if exc.kind == "auth":
                self._remotes.pop(row["id"], None)
            raise bk.unavailable(row, exc) from None
        finally:
            sem.release()
        return data, rv

    async def _answer(self, ctx: Any, row: Any, path: str, data: dict[str, Any], rv: str, *, cached: bool) -> bytes:
        extra: dict[str, Any] = {"federated": row["id"]}
        if cached:
            extra["cached"] = True
        await self.state.components["audit"].record(ctx, action="read", path=path, permission="read", extra=extra)
        doc = {"path": path, "secret_type": "kv", "version": int(rv) if rv.isdigit() else None, "data": data,
               "metadata": {}, "federation": {"backend_id": row["id"], "backend": row["name"], "mode": "proxy",
                                              "remote_version": rv}}
        return orjson.dumps(doc)

    async def aclose(self) -> None:
        if self._sub_task is not None:
            self._sub_task.cancel()
            with contextlib.suppress(BaseException):
                await self._sub_task
            self._sub_task = None
        if self.pubsub_redis is not None:
            with contextlib.suppress(Exception):
                await self.pubsub_redis.aclose()
        for _, _, remote in self._remotes.values():
            await remote.aclose()
        self._remotes.clear()


async def setup_federation(state: Any) -> Any:
    """COMPONENTS hook: the proxy component the secrets service consults."""
    import redis.asyncio as aioredis

    pubsub_redis = aioredis.Redis.from_url(state.settings.redis_url, socket_connect_timeout=1, socket_timeout=None)
    proxy = FederationProxy(state, pubsub_redis=pubsub_redis)
    state.components["federation"] = proxy
    proxy.start()
    return proxy.aclose
