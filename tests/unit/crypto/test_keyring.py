import asyncio
import os
from dataclasses import replace

import pytest

from crypto import envelope
from crypto.errors import DecryptError, KeyNotFound
from crypto.keyring import InMemoryKeyStore, Kek, KeyHierarchy, WrappedKey
from crypto.kms import LocalKms, describe_blob

from .conftest import CountingKms

AAD = envelope.aad_for_secret("tnt_a", "app/db", 1)


async def test_first_use_creates_partner_and_tenant_keys(hierarchy: KeyHierarchy, store, kms) -> None:
    kek = await hierarchy.tenant_key("tnt_a", "ptn_x")
    assert kek.version == 1 and len(kek.key) == 32
    assert set(store.partner) == {("ptn_x", 1)} and set(store.tenant) == {("tnt_a", 1)}
    assert store.tenant[("tnt_a", 1)].kms_key_id == "partner:ptn_x"
    assert store.partner[("ptn_x", 1)].kms_key_id == kms.key_id
    assert kek.key not in store.tenant[("tnt_a", 1)].wrapped
    assert kms.wraps == 1 and kms.unwraps == 0


async def test_warm_read_makes_zero_kms_calls(hierarchy: KeyHierarchy, kms: CountingKms) -> None:
    blob = await hierarchy.seal(b"value", AAD, partner_id="ptn_x", tenant_id="tnt_a")
    before = kms.calls
    for _ in range(5):
        assert await hierarchy.open(blob, AAD, partner_id="ptn_x", tenant_id="tnt_a") == b"value"
    assert kms.calls == before


async def test_cold_read_makes_exactly_one_kms_call(kms: CountingKms, store: InMemoryKeyStore) -> None:
    writer = KeyHierarchy(kms, store)
    blob = await writer.seal(b"value", AAD, partner_id="ptn_x", tenant_id="tnt_a")
    reader = KeyHierarchy(kms, store)  # another process: empty cache
    before = kms.calls
    assert await reader.open(blob, AAD, partner_id="ptn_x", tenant_id="tnt_a") == b"value"
    assert kms.calls - before == 1
    assert await reader.open(blob, AAD, partner_id="ptn_x", tenant_id="tnt_a") == b"value"
    assert kms.calls - before == 1


async def test_ttl_expiry_reloads(kms: CountingKms, store: InMemoryKeyStore) -> None:
    now = [1000.0]
    h = KeyHierarchy(kms, store, cache_ttl_seconds=60, clock=lambda: now[0])
    blob = await h.seal(b"v", AAD, partner_id="ptn_x", tenant_id="tnt_a")
    before = kms.calls
    now[0] += 59
    await h.open(blob, AAD, partner_id="ptn_x", tenant_id="tnt_a")
    assert kms.calls == before
    now[0] += 2
    await h.open(blob, AAD, partner_id="ptn_x", tenant_id="tnt_a")
    assert kms.calls == before + 1


async def test_concurrent_misses_share_one_unwrap(store: InMemoryKeyStore, root_key: bytes) -> None:
    seed = KeyHierarchy(LocalKms(root_key), store)
    blob = await seed.seal(b"v", AAD, partner_id="ptn_x", tenant_id="tnt_a")
    slow = CountingKms(LocalKms(root_key), delay=0.01)
    cold = KeyHierarchy(slow, store)
    results = await asyncio.gather(
        *(cold.open(blob, AAD, partner_id="ptn_x", tenant_id="tnt_a") for _ in range(20))
    )
    assert results == [b"v"] * 20
    assert slow.unwraps == 1
    assert not cold._inflight  # nothing left in flight


async def test_concurrent_creation_is_race_safe(kms: CountingKms, store: InMemoryKeyStore) -> None:
    # Two processes (separate caches) create the same tenant's keys at the same time.
    a, b = KeyHierarchy(kms, store), KeyHierarchy(kms, store)
    ka, kb = await asyncio.gather(a.tenant_key("tnt_a", "ptn_x"), b.tenant_key("tnt_a", "ptn_x"))
    assert ka == kb
    assert len(store.tenant) == 1 and len(store.partner) == 1
    sealed = envelope.seal(b"v", ka.key, ka.version, AAD)
    assert await b.open(sealed, AAD, partner_id="ptn_x", tenant_id="tnt_a") == b"v"


async def test_loser_of_insert_race_uses_winner_key(kms: CountingKms) -> None:
    class RacingStore(InMemoryKeyStore):
        """Another writer slips its row in between our read and our insert."""

        def __init__(self, rival: KeyHierarchy | None = None) -> None:
            super().__init__()
            self.rival = rival

        async def insert_tenant_key(self, key: WrappedKey) -> WrappedKey:
            if self.rival is not None:
                rival, self.rival = self.rival, None
                await rival.tenant_key("tnt_a", "ptn_x")
            return await super().insert_tenant_key(key)

    store = RacingStore()
    rival = KeyHierarchy(kms, store)
    store.rival = rival
    mine = await KeyHierarchy(kms, store).tenant_key("tnt_a", "ptn_x")
    theirs = await rival.tenant_key("tnt_a", "ptn_x")
    assert mine == theirs


async def test_failed_load_is_not_cached_and_propagates(hierarchy: KeyHierarchy) -> None:
    with pytest.raises(KeyNotFound):
        await hierarchy.tenant_key("tnt_missing", "ptn_x", version=3)
    with pytest.raises(KeyNotFound):
        await hierarchy.tenant_key("tnt_missing", "ptn_x", create=False)
    assert not hierarchy._inflight
    assert (await hierarchy.tenant_key("tnt_missing", "ptn_x")).version == 1


async def test_tenant_key_rotation_keeps_old_versions_readable(hierarchy: KeyHierarchy) -> None:
    old_blob = await hierarchy.seal(b"old", AAD, partner_id="ptn_x", tenant_id="tnt_a")
    new = await hierarchy.rotate_tenant_key("tnt_a", "ptn_x")
    assert new.version == 2
    new_blob = await hierarchy.seal(b"new", AAD, partner_id="ptn_x", tenant_id="tnt_a")
    assert envelope.peek_kek_version(old_blob) == 1 and envelope.peek_kek_version(new_blob) == 2
    assert await hierarchy.open(old_blob, AAD, partner_id="ptn_x", tenant_id="tnt_a") == b"old"
    assert await hierarchy.open(new_blob, AAD, partner_id="ptn_x", tenant_id="tnt_a") == b"new"


async def test_partner_key_rotation_and_partner_scoped_secrets(hierarchy: KeyHierarchy, store) -> None:
    aad = envelope.aad_for_secret("ptn_x", "shared/webhook", 1, scope="partner")
    p_blob = await hierarchy.seal(b"shared", aad, partner_id="ptn_x", tenant_id=None)
    t1 = await hierarchy.tenant_key("tnt_a", "ptn_x")
    await hierarchy.rotate_partner_key("ptn_x")
    t2 = await hierarchy.tenant_key("tnt_b", "ptn_x")  # new tenants wrap under partner v2
    assert envelope.peek_kek_version(store.tenant[("tnt_b", 1)].wrapped) == 2
    assert envelope.peek_kek_version(store.tenant[("tnt_a", 1)].wrapped) == 1
    fresh = KeyHierarchy(hierarchy.kms, store)
    assert await fresh.tenant_key("tnt_a", "ptn_x") == t1
    assert await fresh.tenant_key("tnt_b", "ptn_x") == t2
    assert await fresh.open(p_blob, aad, partner_id="ptn_x", tenant_id=None) == b"shared"


async def test_tenant_key_bound_to_its_partner(hierarchy: KeyHierarchy, store) -> None:
    """Unwrapping uses the partner recorded on the row (issue 11 item 9), and that record is bound by the AAD:
    a row relabelled to another partner does not open."""
    t1 = await hierarchy.tenant_key("tnt_a", "ptn_x")
    await hierarchy.partner_key("ptn_y")
    fresh = KeyHierarchy(hierarchy.kms, store)
    assert await fresh.tenant_key("tnt_a", "ptn_y") == t1  # caller's partner is stale: the row's wins
    row = store.tenant[("tnt_a", 1)]
    store.tenant[("tnt_a", 1)] = replace(row, kms_key_id="partner:ptn_y")
    with pytest.raises(DecryptError):
        await KeyHierarchy(hierarchy.kms, store).tenant_key("tnt_a", "ptn_y")


async def test_rewrap_tenant_key_moves_it_under_the_new_partner(hierarchy: KeyHierarchy, store) -> None:
    t1 = await hierarchy.tenant_key("tnt_a", "ptn_x")
    row = store.tenant[("tnt_a", 1)]
    moved = await hierarchy.rewrap_tenant_key(row, "ptn_y")
    assert moved.wrapping_partner == "ptn_y" and moved.wrapped != row.wrapped and moved.version == 1
    store.tenant[("tnt_a", 1)] = moved
    assert await KeyHierarchy(hierarchy.kms, store).tenant_key("tnt_a", "ptn_y") == t1  # same key
    assert ("ptn_y", 1) in store.partner  # the new partner's key was created on first use


async def test_rotate_root_rewraps_partner_keys_and_keeps_data_readable(
    store: InMemoryKeyStore, root_key: bytes
) -> None:
    old_kms = LocalKms(root_key)
    h = KeyHierarchy(old_kms, store)
    blobs = {}
    for tenant, partner in [("tnt_a", "ptn_x"), ("tnt_b", "ptn_x"), ("tnt_c", "ptn_y")]:
        aad = envelope.aad_for_secret(tenant, "p", 1)
        blobs[tenant] = (
            partner,
            aad,
            await h.seal(tenant.encode(), aad, partner_id=partner, tenant_id=tenant),
        )
    tenant_rows = dict(store.tenant)
    partner_plain = {k: (await h.partner_key(k[0], k[1])).key for k in store.partner}

    new_kms = LocalKms(os.urandom(32), previous_keys=[root_key])
    report = await KeyHierarchy(new_kms, store).rotate_root()
    assert (report.rewrapped, report.skipped, report.kms_key_id) == (2, 0, new_kms.key_id)
    for row in store.partner.values():
        assert row.kms_key_id == new_kms.key_id and describe_blob(row.wrapped).key_id == new_kms.key_id
    assert store.tenant == tenant_rows  # tenant keys untouched

    # Only the new root key is needed from now on; partner keys and payloads are unchanged.
    only_new = KeyHierarchy(LocalKms(new_kms._keys[new_kms.key_id]), store)
    for k, plain in partner_plain.items():
        assert (await only_new.partner_key(k[0], k[1])).key == plain
    for tenant, (partner, aad, blob) in blobs.items():
        assert await only_new.open(blob, aad, partner_id=partner, tenant_id=tenant) == tenant.encode()

    again = await KeyHierarchy(new_kms, store).rotate_root(only_stale=True)
    assert (again.rewrapped, again.skipped) == (0, 2)


async def test_invalidate_drops_cached_keys(hierarchy: KeyHierarchy, kms: CountingKms) -> None:
    await hierarchy.tenant_key("tnt_a", "ptn_x")
    await hierarchy.tenant_key("tnt_a", "ptn_x")
    before = kms.calls
    hierarchy.invalidate("ptn_x")
    await hierarchy.tenant_key("tnt_a", "ptn_x")  # tenant still cached
    assert kms.calls == before
    hierarchy.invalidate()
    await hierarchy.tenant_key("tnt_a", "ptn_x")
    assert kms.calls == before + 1


async def test_reprs_redact_key_bytes(hierarchy: KeyHierarchy, store) -> None:
    kek = await hierarchy.tenant_key("tnt_a", "ptn_x")
    assert repr(kek) == "Kek(version=1, key=***)"
    assert kek.key.hex() not in repr(hierarchy) and repr(kek.key) not in repr(hierarchy)
    row = store.tenant[("tnt_a", 1)]
    assert repr(row.wrapped) not in repr(row) and "bytes>" in repr(row)
    assert isinstance(Kek(1, b"x" * 32), Kek)


async def test_stats_count_hits_and_kms_calls(hierarchy: KeyHierarchy) -> None:
    await hierarchy.tenant_key("tnt_a", "ptn_x")
    hits = hierarchy.stats.hits
    await hierarchy.tenant_key("tnt_a", "ptn_x")
    assert hierarchy.stats.hits == hits + 1
    assert hierarchy.stats.kms_calls == 1
