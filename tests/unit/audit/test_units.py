"""Pure parts of audit and rate limiting: HMAC hashing, chain links, override parsing, local buckets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from audit.chain import CHAIN_V1, GENESIS, ChainVerifier, chain_key, seal_block
from audit.hashing import hash_leaves, hash_value, sanitize_extra
from ratelimit.categories import DEFAULT_LIMITS, parse_overrides
from ratelimit.limiter import LocalBuckets

KEY = b"k" * 32
CHAIN_KEY = chain_key(KEY)


def test_hash_leaves_keeps_keys_and_hashes_every_leaf():
    out = hash_leaves(KEY, {"a": "x", "b": {"c": 1, "d": [True, None]}})
    assert set(out) == {"a", "b"} and set(out["b"]) == {"c", "d"}
    assert out["a"] == hash_value(KEY, "x") and out["a"].startswith("hmac-sha256:") and len(out["a"]) == 76
    assert out["b"]["d"] == [hash_value(KEY, True), None]
    assert hash_value(KEY, "x") != hash_value(b"other" * 8, "x")


def test_sanitize_hashes_sensitive_names_anywhere():
    out = sanitize_extra(KEY, {"reason": "r", "nested": {"password": "p", "ok": 1}, "hashed": {"ip": "1.1.1.1"}})
    assert out["reason"] == "r" and out["nested"]["ok"] == 1
    assert out["nested"]["password"] == hash_value(KEY, "p")
    assert out["hashed"]["ip"] == hash_value(KEY, "1.1.1.1")


def _row(n: int, **over):
    row = {"id": f"log_{n}", "seq": n, "tenant_id": "t", "partner_id": None,
           "ts": datetime(2025, 1, 1, tzinfo=UTC), "request_id": "r", "correlation_id": "r", "identity_id": "u",
           "identity_type": "user", "action": "read", "resource_type": None, "resource_id": None,
           "secret_path": "a/b", "permission": "read", "version": None, "success": True, "error_code": None,
           "source_ip": None, "user_agent": None, "duration_ms": 1.0, "extra_data": '{"b": 1, "a": 2}'}
    row.update(over)
    return row


def _sealed(rows_per_block=(2, 3, 2), key=CHAIN_KEY):
    """Blocks sealing consecutive seqs 1..n in the given block sizes, and the rows (v1 when key is None)."""
    rows, blocks, prev, seq = [], [], GENESIS, 1
    for i, size in enumerate(rows_per_block):
        chunk = [_row(seq + k) for k in range(size)]
        b = seal_block("t", i + 1, seq, prev, chunk, key)
        blocks.append(b)
        rows += chunk
        prev, seq = b.hash, seq + size
    return blocks, rows


def _verify(blocks, rows, *, sealed_through=None, head=None, key=CHAIN_KEY, v1_through=0):
    v = ChainVerifier("t", start_block=0, start_chain_seq=0, start_hash=GENESIS,
                      sealed_through=sealed_through if sealed_through is not None else rows[-1]["seq"],
                      key=key, v1_through=v1_through)
    it = iter(blocks)

    def more():
        while v.wants_block():
            b = next(it, None)
            if b is None:
                return
            v.add_block(b)

    for r in rows:
        more()
        if v.broken is not None or not v.add_row(r):
            break
    more()
    last = blocks[-1] if head is None else head
    v.finish(last.block_no, last.hash)
    return v


def test_a_good_chain_verifies_and_counts_entries():
    blocks, rows = _sealed()
    v = _verify(blocks, rows)
    assert v.broken is None and v.checked == 7


def test_verifier_names_an_edited_entry_and_its_block():
    blocks, rows = _sealed()
    rows[3]["secret_path"] = "other"
    v = _verify(blocks, rows)
    assert v.broken["id"] == "log_4" and v.broken["block_no"] == 2 and v.broken["chain_seq"] == 4
    assert "edited" in v.broken["reason"]


def test_verifier_names_a_deleted_entry():
    blocks, rows = _sealed()
    del rows[2]
    v = _verify(blocks, rows)
    assert v.broken["id"] == "log_3" and v.broken["seq"] == 3 and "deleted" in v.broken["reason"]
    blocks, rows = _sealed()
    v = _verify(blocks, rows[:-1])  # the newest sealed entry removed
    assert v.broken["id"] == "log_7" and "deleted" in v.broken["reason"]


def test_verifier_names_an_inserted_entry_but_not_an_unsealed_one():
    blocks, rows = _sealed()
    forged = _row(4, id="log_forged")
    forged["seq"] = 3.5  # an explicit seq between two sealed ones
    v = _verify(blocks, [*rows[:3], forged, *rows[3:]])
    assert v.broken["id"] == "log_forged" and "inserted" in v.broken["reason"]
    v = _verify(blocks, [*rows, _row(8)], sealed_through=7)  # above the watermark: pending, not forged
    assert v.broken is None and v.unsealed == 1


def test_verifier_names_an_edited_or_relinked_block():
    blocks, rows = _sealed()
    blocks[1].digests[0] = bytes(32)  # digest rewritten to hide an edit, block hash left alone
    v = _verify(blocks, rows)
    assert v.broken["block_no"] == 2 and "edited block" in v.broken["reason"]
    blocks, rows = _sealed()
    b = blocks[1]
    b.digests[0] = bytes(32)
    b.hash = b.recompute(CHAIN_KEY)  # ... and the block re-hashed: the next block no longer links to it
    v = _verify(blocks, rows)
    assert v.broken["block_no"] == 2 and v.broken["id"] == "log_3"  # the entry no longer matches first
    blocks, rows = _sealed()
    v = _verify([blocks[0], blocks[2]], rows)
    assert v.broken["block_no"] == 3 and "missing block" in v.broken["reason"]


def test_verifier_names_a_truncated_chain():
    blocks, rows = _sealed()
    v = _verify(blocks[:2], rows[:5], head=blocks[2])
    assert "removed from the end" in v.broken["reason"]


def test_swapping_two_entries_is_an_edit():
    blocks, rows = _sealed()
    rows[0]["seq"], rows[1]["seq"] = 2, 1
    rows[0], rows[1] = rows[1], rows[0]
    v = _verify(blocks, rows)
    assert v.broken["seq"] == 1 and "edited" in v.broken["reason"]


def test_a_keyed_block_re_hashed_without_the_key_is_named():
    """An attacker without the key re-seals an edited entry the unkeyed (v1) way: as v2 it fails its MAC, and
    relabelled v1 it lies after the v1 boundary."""
    blocks, rows = _sealed()
    rows[3]["secret_path"] = "other"
    forged = seal_block("t", 2, 3, blocks[0].hash, rows[2:5])  # v1: SHA-256, no key
    forged_v2 = seal_block("t", 2, 3, blocks[0].hash, rows[2:5])
    forged_v2.chain_version = 2
    for b in (forged, forged_v2):
        v = _verify([blocks[0], b, blocks[2]], rows)
        assert v.broken["block_no"] == 2, v.broken
    v = _verify([blocks[0], forged_v2, blocks[2]], rows)
    assert "edited block" in v.broken["reason"]
    v = _verify([blocks[0], forged, blocks[2]], rows)
    assert "unkeyed (v1) block after the keyed-chain upgrade" in v.broken["reason"]
    v = _verify(*_sealed(), key=chain_key(b"another key"))  # a wrong key fails at the first block
    assert v.broken["block_no"] == 1 and "edited block" in v.broken["reason"]


def test_legacy_v1_blocks_verify_up_to_the_boundary_and_keyed_blocks_after():
    legacy, rows = _sealed((2, 3), key=None)
    assert {b.chain_version for b in legacy} == {CHAIN_V1}
    assert _verify(legacy, rows, v1_through=2).broken is None
    new_rows = [_row(6), _row(7)]
    keyed = seal_block("t", 3, 6, legacy[-1].hash, new_rows, CHAIN_KEY)
    v = _verify([*legacy, keyed], [*rows, *new_rows], v1_through=2)
    assert v.broken is None and v.checked == 7
    # a legacy edit is still caught once a keyed block links to it
    rows[0]["action"] = "forged"
    assert _verify([*legacy, keyed], [*rows, *new_rows], v1_through=2).broken["id"] == "log_1"


def test_parse_overrides():
    assert parse_overrides("read_secrets=2000, list=7") == {"read_secrets": 2000, "list_operations": 7}
    for bad in ("read_secrets", "read_secrets=0", "nope=5", "read_secrets=x"):
        with pytest.raises(ValueError):
            parse_overrides(bad)


def test_spec_defaults():
    assert DEFAULT_LIMITS["read_secrets"] == 1000 and DEFAULT_LIMITS["audit_export"] == 5
    assert DEFAULT_LIMITS["subscription_poll"] == 240 and DEFAULT_LIMITS["auth"] == 300


def test_local_buckets_refuse_when_empty():
    b = LocalBuckets()
    assert all(b.take("k", 3, 0.0001, 1)[0] for _ in range(3))
    assert b.take("k", 3, 0.0001, 1)[0] is False
    assert b.take("other", 3, 0.0001, 1)[0] is True
