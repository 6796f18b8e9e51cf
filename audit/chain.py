"""The per-tenant hash chain: ``hash = SHA-256(prev_hash || "\\n" || canonical_entry)``.

``canonical_entry`` is the entry's stored fields (everything except the chain's own hash columns and the
sealing time) as JSON with sorted keys, timestamps in ISO-8601 UTC with microseconds. The chain order is
``chain_seq`` (1, 2, 3... per tenant), assigned by the sealer in the order it sees committed rows. The first
entry links to GENESIS, or to the checkpoint hash left by retention pruning.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from audit.entry import iso

GENESIS = "0" * 64
CANONICAL_FIELDS = (
    "id", "seq", "chain_seq", "tenant_id", "partner_id", "ts", "request_id", "correlation_id", "identity_id",
    "identity_type", "action", "resource_type", "resource_id", "secret_path", "permission", "version",
    "success", "error_code", "source_ip", "user_agent", "duration_ms", "extra_data",
)


def canonical(row: Any, chain_seq: int) -> bytes:
    doc: dict[str, Any] = {}
    for name in CANONICAL_FIELDS:
        if name == "chain_seq":
            doc[name] = chain_seq
        elif name == "ts":
            doc[name] = iso(row["ts"])
        elif name == "extra_data":
            raw = row["extra_data"]
            doc[name] = orjson.loads(raw) if isinstance(raw, str | bytes) else (raw or {})
        else:
            doc[name] = row[name]
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def link(prev_hash: str, row: Any, chain_seq: int) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical(row, chain_seq)).hexdigest()


@dataclass
class VerifyResult:
    tenant_id: str
    ok: bool
    checked: int
    head_chain_seq: int
    head_hash: str
    unsealed: int = 0
    first_broken: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "ok": self.ok, "checked": self.checked,
                "head": {"chain_seq": self.head_chain_seq, "hash": self.head_hash},
                "unsealed": self.unsealed, "first_broken": self.first_broken}


class ChainWalker:
    """Feed rows in chain order; remembers the first break (edited, reordered, missing or re-linked row)."""

    def __init__(self, start_seq: int, start_hash: str) -> None:
        self.expected_seq = start_seq + 1
        self.prev_hash = start_hash
        self.checked = 0
        self.broken: dict[str, Any] | None = None

    def feed(self, row: Any) -> bool:
        if self.broken is not None:
            return False
        self.checked += 1
        where = {"id": row["id"], "chain_seq": row["chain_seq"], "timestamp": iso(row["ts"])}
        if row["chain_seq"] != self.expected_seq:
            self.broken = {**where, "reason": f"missing entry: expected chain_seq {self.expected_seq}"}
        elif row["prev_hash"] != self.prev_hash:
            self.broken = {**where, "reason": "prev_hash does not match the previous entry's hash"}
        elif link(self.prev_hash, row, row["chain_seq"]) != row["hash"]:
            self.broken = {**where, "reason": "entry content does not match its hash (edited)"}
        if self.broken is not None:
            return False
        self.prev_hash = row["hash"]
        self.expected_seq += 1
        return True
