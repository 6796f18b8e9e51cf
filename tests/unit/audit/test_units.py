"""Pure parts of audit and rate limiting: HMAC hashing, chain links, override parsing, local buckets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from audit.chain import GENESIS, ChainWalker, link
from audit.hashing import hash_leaves, hash_value, sanitize_extra
from ratelimit.categories import DEFAULT_LIMITS, parse_overrides
from ratelimit.limiter import LocalBuckets

KEY = b"k" * 32


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
    row = {"id": f"log_{n}", "seq": n, "chain_seq": n, "tenant_id": "t", "partner_id": None,
           "ts": datetime(2025, 1, 1, tzinfo=UTC), "request_id": "r", "correlation_id": "r", "identity_id": "u",
           "identity_type": "user", "action": "read", "resource_type": None, "resource_id": None,
           "secret_path": "a/b", "permission": "read", "version": None, "success": True, "error_code": None,
           "source_ip": None, "user_agent": None, "duration_ms": 1.0, "extra_data": '{"b": 1, "a": 2}'}
    row.update(over)
    return row


def _chain(n: int):
    rows, prev = [], GENESIS
    for i in range(1, n + 1):
        r = _row(i)
        r["prev_hash"], r["hash"] = prev, link(prev, r, i)
        prev = r["hash"]
        rows.append(r)
    return rows


def test_walker_accepts_a_good_chain_and_names_an_edit():
    rows = _chain(4)
    w = ChainWalker(0, GENESIS)
    assert all(w.feed(r) for r in rows)
    rows[2]["secret_path"] = "other"
    w = ChainWalker(0, GENESIS)
    assert not all(w.feed(r) for r in rows)
    assert w.broken["id"] == "log_3" and "edited" in w.broken["reason"]


def test_walker_names_a_gap():
    rows = _chain(4)
    del rows[1]
    w = ChainWalker(0, GENESIS)
    assert not all(w.feed(r) for r in rows)
    assert w.broken["id"] == "log_3" and "missing" in w.broken["reason"]


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
