"""The key hierarchy below the KMS: partner keys and tenant keys, with an in-process TTL cache.

::

    root key (KMS, never seen)  --wraps-->  partner key  (KmsProvider.wrap, context binds partner+version)
    partner key                 --wraps-->  tenant key   (envelope.wrap_key, AAD binds tenant+partner+version)
    tenant key (the KEK)        --wraps-->  data key per secret version (envelope.seal)
    partner key                 --wraps-->  data keys of partner-scoped secrets (tenant_id=None)

Reads: a warm cache costs zero KMS calls; a cold read costs at most one (unwrapping the partner key),
the tenant unwrap is local. Concurrent misses for the same key share one load (single flight).

Persistence is injected through :class:`KeyStore`. **Store contract** (the SQL implementation must honour
it, the :class:`InMemoryKeyStore` does):

* ``get_*_key(owner, None)`` returns the highest version, ``get_*_key(owner, v)`` that exact version,
  ``None`` when absent.
* ``insert_*_key(row)`` is race-safe: ``INSERT ... ON CONFLICT (owner_id, version) DO NOTHING`` and then
  re-read, returning **the stored row** (ours, or the one a concurrent writer inserted first). The keyring
  compares ``returned.wrapped`` with what it wrote and, if it lost, unwraps the winner's key instead.
* Inserts must be durable when they return (their own short transaction, committed), because the
  unwrapped key is cached at once and used to seal data. Never insert keys inside a request
  transaction that could roll back. The store object is process-wide (holds a sessionmaker, not a session).
* ``update_partner_key_wrapping`` replaces only ``wrapped`` and ``kms_key_id`` of one row (root rotation);
  partner and tenant keys themselves never change.
* ``insert_tenant_key`` may raise :class:`PartnerChanged` when the tenant has meanwhile moved to another partner
  (the SQL store checks the tenants row under a share lock); the keyring then wraps under that partner.

**Which partner wraps a tenant key** is recorded on the row (``kms_key_id = "partner:<partner_id>"``) and
unwrapping always uses that recorded partner, never the tenant's partner of the moment: a tenant whose partner
changes keeps reading its secrets even while caches still hold the old partner. Moving a tenant re-wraps its
rows under the new partner (:meth:`KeyHierarchy.rewrap_tenant_key`, called by repositories/tenants.py
``move_tenant`` inside the transaction that moves the tenant). The tenant key itself does not change, so no
payload is re-encrypted and no cached tenant key becomes wrong. See docs/crypto.md "Tenants changing partner".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from core.metrics import KMS_LATENCY
from crypto import aead, envelope
from crypto.errors import DecryptError, KeyNotFound, PartnerChanged
from crypto.kms import KmsProvider

_KMS_ENCRYPT = KMS_LATENCY.labels("encrypt")
_KMS_DECRYPT = KMS_LATENCY.labels("decrypt")

# ------------------------------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A stored, wrapped partner or tenant key (a row of the key tables)."""

    owner_id: str  # partner id or tenant id
    version: int  # 1, 2, ... per owner
    wrapped: bytes = field(repr=False)  # KMS blob (partner) or envelope.wrap_key blob (tenant)
    kms_key_id: str  # partner rows: root key id that wrapped it; tenant rows: "partner:<partner_id>"
    created_at: datetime

    @property
    def wrapping_partner(self) -> str | None:
        """Tenant rows: the partner whose key wrapped this one (recorded as ``partner:<id>``)."""
        prefix = "partner:"
        return self.kms_key_id[len(prefix):] if self.kms_key_id.startswith(prefix) else None

    def __repr__(self) -> str:
        return (
            f"WrappedKey(owner_id={self.owner_id!r}, version={self.version}, wrapped=<{len(self.wrapped)} bytes>, "
            f"kms_key_id={self.kms_key_id!r}, created_at={self.created_at.isoformat()})"
        )


@dataclass(frozen=True, slots=True)
class Kek:
    """An unwrapped key-encryption key and its version. Prints as ``***``."""

    version: int
    key: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"Kek(version={self.version}, key=***)"


@dataclass(frozen=True, slots=True)
class RootRotationReport:
    kms_key_id: str
    rewrapped: int
    skipped: int


@dataclass(slots=True)
class CacheStats:
    """Counters for metrics (cache hit rate, KMS calls)."""

    hits: int = 0
    misses: int = 0
    kms_calls: int = 0


class KeyStore(Protocol):
    """Persistence of wrapped keys. See the module docstring for the contract."""

    async def get_partner_key(self, partner_id: str, version: int | None = None) -> WrappedKey | None: ...

    async def insert_partner_key(self, key: WrappedKey) -> WrappedKey: ...

    async def list_partner_keys(self) -> Sequence[WrappedKey]: ...

    async def update_partner_key_wrapping(
        self, partner_id: str, version: int, wrapped: bytes, kms_key_id: str
    ) -> None: ...

    async def get_tenant_key(self, tenant_id: str, version: int | None = None) -> WrappedKey | None: ...

    async def insert_tenant_key(self, key: WrappedKey) -> WrappedKey: ...


def partner_key_context(partner_id: str, version: int) -> dict[str, str]:
    """KMS encryption context of a partner key (must be identical on wrap and unwrap)."""
    return {"scaivault:purpose": "partner-key", "partner_id": partner_id, "version": str(version)}


def _now() -> datetime:
    return datetime.now(UTC)


# -------------------------------------------------------------------------------- hierarchy

_CacheKey = tuple[str, str, int]  # ("p" | "t", owner_id, version)


class KeyHierarchy:
    """Partner/tenant KEKs with a TTL cache. One instance per process, shared by all requests."""

    def __init__(
        self,
        kms: KmsProvider,
        store: KeyStore,
        *,
        cache_ttl_seconds: float = 300.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kms = kms
        self.store = store
        self.ttl = cache_ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._keys: dict[_CacheKey, tuple[float, bytes]] = {}
        self._current: dict[tuple[str, str], tuple[float, int]] = {}
        self._inflight: dict[tuple[str, str, int | None], asyncio.Future[Kek]] = {}
        self.stats = CacheStats()

    def __repr__(self) -> str:
        return f"KeyHierarchy(kms={self.kms!r}, cached_keys={len(self._keys)}, ttl={self.ttl})"

    # -- public: KEKs --------------------------------------------------------------------------
    async def tenant_key(
        self, tenant_id: str, partner_id: str, version: int | None = None, *, create: bool = True
    ) -> Kek:
        """Tenant KEK ``version`` (``None`` = current; created with its partner key if missing and
        ``create``). A missing explicit version raises :class:`KeyNotFound`."""
        cached = self._cached("t", tenant_id, version)
        if cached is not None:
            return cached
        return await self._single_flight(
            ("t", tenant_id, version), lambda: self._load_tenant(tenant_id, partner_id, version, create)
        )

    async def partner_key(self, partner_id: str, version: int | None = None, *, create: bool = True) -> Kek:
        """Partner key ``version`` (``None`` = current; created if missing and ``create``)."""
        cached = self._cached("p", partner_id, version)
        if cached is not None:
            return cached
        return await self._single_flight(
            ("p", partner_id, version), lambda: self._load_partner(partner_id, version, create)
        )

    async def kek(self, partner_id: str, tenant_id: str | None, version: int | None = None) -> Kek:
        """The KEK for secrets owned by ``tenant_id``, or by the partner itself when ``tenant_id`` is None."""
        if tenant_id is None:
            return await self.partner_key(partner_id, version, create=version is None)
        return await self.tenant_key(tenant_id, partner_id, version, create=version is None)

    # -- public: payloads ----------------------------------------------------------------------
    async def seal(self, plaintext: bytes, aad: bytes, *, partner_id: str, tenant_id: str | None) -> bytes:
        """Seal under the owner's current KEK (see :func:`crypto.envelope.aad_for_secret` for ``aad``)."""
        k = await self.kek(partner_id, tenant_id)
        return envelope.seal(plaintext, k.key, k.version, aad)

    async def open(self, blob: bytes, aad: bytes, *, partner_id: str, tenant_id: str | None) -> bytes:
        """Open a blob sealed by :meth:`seal`, whatever KEK version it names."""
        k = await self.kek(partner_id, tenant_id, envelope.peek_kek_version(blob))
        return envelope.open_(blob, k.key, aad)

    # -- public: rotation & invalidation -------------------------------------------------------
    async def rotate_tenant_key(self, tenant_id: str, partner_id: str) -> Kek:
        """Create the next tenant key version; new seals use it, old versions stay readable."""
        current = await self.store.get_tenant_key(tenant_id, None)
        self.invalidate(tenant_id)
        return await self._create_tenant(tenant_id, partner_id, (current.version if current else 0) + 1)

    async def rotate_partner_key(self, partner_id: str) -> Kek:
        """Create the next partner key version; new tenant keys wrap under it, old ones keep theirs."""
        current = await self.store.get_partner_key(partner_id, None)
        self.invalidate(partner_id)
        return await self._create_partner(partner_id, (current.version if current else 0) + 1)

    async def rotate_root(self, *, only_stale: bool = False) -> RootRotationReport:
        """Re-wrap every partner key under the KMS's current root key (``scaivault kms rotate``).

        The partner keys themselves do not change, so tenant keys and payloads stay readable and no
        cache entry becomes wrong. Each new wrapping is verified by unwrapping it before it is stored.
        Idempotent: re-run after a failure (``only_stale=True`` skips rows already on the current key).
        """
        rewrapped = skipped = 0
        for row in await self.store.list_partner_keys():
            if only_stale and row.kms_key_id == self.kms.key_id:
                skipped += 1
                continue
            ctx = partner_key_context(row.owner_id, row.version)
            key = await self._kms_unwrap(row.wrapped, ctx)
            new_blob = await self._kms_wrap(key, ctx)
            if await self._kms_unwrap(new_blob, ctx) != key:  # pragma: no cover - defensive
                raise DecryptError(f"re-wrapped partner key {row.owner_id} v{row.version} did not verify")
            await self.store.update_partner_key_wrapping(row.owner_id, row.version, new_blob, self.kms.key_id)
            rewrapped += 1
        return RootRotationReport(self.kms.key_id, rewrapped, skipped)

    async def rewrap_tenant_key(self, row: WrappedKey, new_partner_id: str) -> WrappedKey:
        """``row`` re-wrapped under ``new_partner_id``'s current key (the tenant key is unchanged).

        Unwraps with the partner recorded on the row, wraps under the new partner (its key is created if
        missing, durably, like any first use), and checks the new wrapping opens to the same key before
        returning it. The caller stores it in the transaction that moves the tenant.
        """
        key = await self._unwrap_tenant(row, new_partner_id)
        parent = await self.partner_key(new_partner_id)
        aad = envelope.aad_for_tenant_key(row.owner_id, new_partner_id, row.version)
        blob = envelope.wrap_key(key, parent.key, parent.version, aad)
        if envelope.unwrap_key(blob, parent.key, aad) != key:  # pragma: no cover - defensive
            raise DecryptError(f"re-wrapped tenant key {row.owner_id} v{row.version} did not verify")
        return replace(row, wrapped=blob, kms_key_id=f"partner:{new_partner_id}")

    def invalidate(self, owner_id: str | None = None) -> None:
        """Drop cached keys of one partner or tenant (all of them when ``owner_id`` is None)."""
        if owner_id is None:
            self._keys.clear()
            self._current.clear()
            return
        for ck in [k for k in self._keys if k[1] == owner_id]:
            del self._keys[ck]
        for cur in [k for k in self._current if k[1] == owner_id]:
            del self._current[cur]

    # -- cache ---------------------------------------------------------------------------------
    def _cached(self, kind: str, owner: str, version: int | None) -> Kek | None:
        now = self._clock()
        if version is None:
            cur = self._current.get((kind, owner))
            if cur is None or cur[0] <= now:
                self.stats.misses += 1
                return None
            version = cur[1]
        hit = self._keys.get((kind, owner, version))
        if hit is None or hit[0] <= now:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return Kek(version, hit[1])

    def _remember(self, kind: str, owner: str, kek: Kek, *, current: bool) -> Kek:
        if len(self._keys) >= self.max_entries:
            self._evict()
        expires = self._clock() + self.ttl
        self._keys[(kind, owner, kek.version)] = (expires, kek.key)
        if current:
            self._current[(kind, owner)] = (expires, kek.version)
        return kek

    def _evict(self) -> None:
        now = self._clock()
        for ck in [k for k, (exp, _) in self._keys.items() if exp <= now]:
            del self._keys[ck]
        while len(self._keys) >= self.max_entries:  # still full: drop the oldest insertions
            del self._keys[next(iter(self._keys))]

    async def _single_flight(
        self, key: tuple[str, str, int | None], load: Callable[[], Awaitable[Kek]]
    ) -> Kek:
        fut = self._inflight.get(key)
        if fut is None:
            fut = asyncio.ensure_future(load())
            self._inflight[key] = fut
            fut.add_done_callback(lambda f: self._done(key, f))
        return await asyncio.shield(fut)

    def _done(self, key: tuple[str, str, int | None], fut: asyncio.Future[Kek]) -> None:
        if self._inflight.get(key) is fut:
            del self._inflight[key]
        if not fut.cancelled():
            fut.exception()  # mark retrieved even if every waiter was cancelled

    # -- KMS -----------------------------------------------------------------------------------
    async def _kms_wrap(self, key: bytes, ctx: dict[str, str]) -> bytes:
        self.stats.kms_calls += 1
        t0 = time.perf_counter()
        try:
            return await self.kms.wrap(key, ctx)
        finally:
            _KMS_ENCRYPT.observe(time.perf_counter() - t0)  # scaivault_kms_latency_seconds{operation}

    async def _kms_unwrap(self, blob: bytes, ctx: dict[str, str]) -> bytes:
        self.stats.kms_calls += 1
        t0 = time.perf_counter()
        try:
            return await self.kms.unwrap(blob, ctx)
        finally:
            _KMS_DECRYPT.observe(time.perf_counter() - t0)

    # -- loaders -------------------------------------------------------------------------------
    async def _load_partner(self, partner_id: str, version: int | None, create: bool) -> Kek:
        row = await self.store.get_partner_key(partner_id, version)
        if row is None:
            if version is not None or not create:
                raise KeyNotFound(f"partner key {partner_id} v{version or 'current'} not found")
            return await self._create_partner(partner_id, 1)
        key = await self._kms_unwrap(row.wrapped, partner_key_context(partner_id, row.version))
        return self._remember("p", partner_id, Kek(row.version, key), current=version is None)

    async def _create_partner(self, partner_id: str, version: int) -> Kek:
        key = aead.new_key()
        ctx = partner_key_context(partner_id, version)
        blob = await self._kms_wrap(key, ctx)
        stored = await self.store.insert_partner_key(
            WrappedKey(partner_id, version, blob, self.kms.key_id, _now())
        )
        if stored.wrapped != blob:  # lost the race: use the winner's key
            key = await self._kms_unwrap(stored.wrapped, partner_key_context(partner_id, stored.version))
        return self._remember("p", partner_id, Kek(stored.version, key), current=True)

    async def _load_tenant(self, tenant_id: str, partner_id: str, version: int | None, create: bool) -> Kek:
        row = await self.store.get_tenant_key(tenant_id, version)
        if row is None:
            if version is not None or not create:
                raise KeyNotFound(f"tenant key {tenant_id} v{version or 'current'} not found")
            return await self._create_tenant(tenant_id, partner_id, 1)
        key = await self._unwrap_tenant(row, partner_id)
        return self._remember("t", tenant_id, Kek(row.version, key), current=version is None)

    async def _unwrap_tenant(self, row: WrappedKey, partner_id: str) -> bytes:
        """Unwrap with the partner recorded on the row; ``partner_id`` only for rows that record none."""
        partner_id = row.wrapping_partner or partner_id
        parent = await self.partner_key(partner_id, envelope.peek_kek_version(row.wrapped), create=False)
        aad = envelope.aad_for_tenant_key(row.owner_id, partner_id, row.version)
        return envelope.unwrap_key(row.wrapped, parent.key, aad)

    async def _create_tenant(self, tenant_id: str, partner_id: str, version: int) -> Kek:
        key = aead.new_key()
        for _attempt in range(3):
            parent = await self.partner_key(partner_id)
            blob = envelope.wrap_key(
                key, parent.key, parent.version, envelope.aad_for_tenant_key(tenant_id, partner_id, version)
            )
            row = WrappedKey(tenant_id, version, blob, f"partner:{partner_id}", _now())
            try:
                stored = await self.store.insert_tenant_key(row)
                break
            except PartnerChanged as moved:  # the tenant moved meanwhile: wrap under its partner now
                partner_id = moved.partner_id
        else:
            raise DecryptError(f"tenant {tenant_id} keeps changing partner; tenant key not created")
        if stored.wrapped != blob:  # lost the race: use the winner's key
            key = await self._unwrap_tenant(stored, partner_id)
        return self._remember("t", tenant_id, Kek(stored.version, key), current=True)


# ------------------------------------------------------------------------------ memory store


class InMemoryKeyStore:
    """Dict-backed :class:`KeyStore` honouring the insert-returns-existing contract (tests, tools)."""

    def __init__(self) -> None:
        self.partner: dict[tuple[str, int], WrappedKey] = {}
        self.tenant: dict[tuple[str, int], WrappedKey] = {}

    @staticmethod
    def _get(table: dict[tuple[str, int], WrappedKey], owner: str, version: int | None) -> WrappedKey | None:
        if version is not None:
            return table.get((owner, version))
        rows = [r for (o, _), r in table.items() if o == owner]
        return max(rows, key=lambda r: r.version, default=None)

    @staticmethod
    def _insert(table: dict[tuple[str, int], WrappedKey], row: WrappedKey) -> WrappedKey:
        return table.setdefault((row.owner_id, row.version), row)

    async def get_partner_key(self, partner_id: str, version: int | None = None) -> WrappedKey | None:
        return self._get(self.partner, partner_id, version)

    async def insert_partner_key(self, key: WrappedKey) -> WrappedKey:
        return self._insert(self.partner, key)

    async def list_partner_keys(self) -> Sequence[WrappedKey]:
        return sorted(self.partner.values(), key=lambda r: (r.owner_id, r.version))

    async def update_partner_key_wrapping(
        self, partner_id: str, version: int, wrapped: bytes, kms_key_id: str
    ) -> None:
        row = self.partner.get((partner_id, version))
        if row is None:
            raise KeyNotFound(f"partner key {partner_id} v{version} not found")
        self.partner[(partner_id, version)] = replace(row, wrapped=wrapped, kms_key_id=kms_key_id)

    async def get_tenant_key(self, tenant_id: str, version: int | None = None) -> WrappedKey | None:
        return self._get(self.tenant, tenant_id, version)

    async def insert_tenant_key(self, key: WrappedKey) -> WrappedKey:
        return self._insert(self.tenant, key)
