"""The per-tenant hash chain, kept in the insert-only table ``audit_seals`` (audit_log rows are never updated).

* Entry digest: ``SHA-256(canonical_entry)``, where ``canonical_entry`` is the row's stored fields (including
  ``seq``, ``id`` and ``tenant_id``) as JSON with sorted keys, timestamps ISO-8601 UTC with microseconds.
* Block: one per tenant per sealing pass. It lists the pass's entries of that tenant in ``seq`` order (their
  ``seq``, ``id`` and digest) and ``hash = SHA-256(prev_hash || "\\n" || tenant || block_no || first_chain_seq
  || (seq, id, digest)...)``; ``prev_hash`` is the previous block's hash, the first block links to GENESIS or
  to the checkpoint left by retention pruning. Entry ``chain_seq`` = the block's ``first_chain_seq`` + index.

``ChainVerifier`` is fed a tenant's blocks (by ``block_no``) and its audit_log rows (by ``seq``) and names the
first break: an edited entry (digest mismatch), a deleted entry (listed, absent), an inserted entry (present
below the sealed watermark, listed nowhere), or a broken block (edited, missing, re-linked).
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from audit.entry import iso

GENESIS = "0" * 64
CANONICAL_FIELDS = (
    "id", "seq", "tenant_id", "partner_id", "ts", "request_id", "correlation_id", "identity_id",
    "identity_type", "action", "resource_type", "resource_id", "secret_path", "permission", "version",
    "success", "error_code", "source_ip", "user_agent", "duration_ms", "extra_data",
)


def canonical(row: Any) -> bytes:
    doc: dict[str, Any] = {}
    for name in CANONICAL_FIELDS:
        if name == "ts":
            doc[name] = iso(row["ts"])
        elif name == "extra_data":
            raw = row["extra_data"]
            doc[name] = orjson.loads(raw) if isinstance(raw, str | bytes) else (raw or {})
        else:
            doc[name] = row[name]
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def entry_digest(row: Any) -> bytes:
    """SHA-256 of the entry's canonical form (32 raw bytes)."""
    return hashlib.sha256(canonical(row)).digest()


def block_hash(prev_hash: str, tenant_id: str, block_no: int, first_chain_seq: int, log_seqs: list[int],
               log_ids: list[str], digests: list[bytes]) -> str:
    h = hashlib.sha256()
    h.update(f"{prev_hash}\n{tenant_id}\n{block_no}\n{first_chain_seq}\n{len(log_seqs)}\n".encode())
    for seq, log_id, digest in zip(log_seqs, log_ids, digests, strict=True):
        h.update(seq.to_bytes(8, "big"))
        h.update(log_id.encode() + b"\n")
        h.update(bytes(digest))
    return h.hexdigest()


@dataclass
class Block:
    """One ``audit_seals`` row."""

    tenant_id: str
    block_no: int
    first_chain_seq: int
    log_seqs: list[int]
    log_ids: list[str]
    digests: list[bytes]
    prev_hash: str
    hash: str

    @property
    def last_chain_seq(self) -> int:
        return self.first_chain_seq + len(self.log_seqs) - 1

    @classmethod
    def of(cls, rec: Any) -> Block:
        return cls(tenant_id=rec["tenant_id"], block_no=rec["block_no"], first_chain_seq=rec["first_chain_seq"],
                   log_seqs=list(rec["log_seqs"]), log_ids=list(rec["log_ids"]),
                   digests=[bytes(d) for d in rec["digests"]], prev_hash=rec["prev_hash"], hash=rec["hash"])

    def recompute(self) -> str:
        return block_hash(self.prev_hash, self.tenant_id, self.block_no, self.first_chain_seq, self.log_seqs,
                          self.log_ids, self.digests)


def seal_block(tenant_id: str, block_no: int, first_chain_seq: int, prev_hash: str, rows: list[Any]) -> Block:
    """The block linking ``rows`` (one tenant's, ascending ``seq``) after ``prev_hash``."""
    seqs = [r["seq"] for r in rows]
    ids = [r["id"] for r in rows]
    digests = [entry_digest(r) for r in rows]
    return Block(tenant_id, block_no, first_chain_seq, seqs, ids, digests, prev_hash,
                 block_hash(prev_hash, tenant_id, block_no, first_chain_seq, seqs, ids, digests))


@dataclass
class VerifyResult:
    tenant_id: str
    ok: bool
    checked: int
    head_chain_seq: int
    head_hash: str
    head_block_no: int = 0
    unsealed: int = 0
    first_broken: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "ok": self.ok, "checked": self.checked,
                "head": {"chain_seq": self.head_chain_seq, "block_no": self.head_block_no,
                         "hash": self.head_hash},
                "unsealed": self.unsealed, "first_broken": self.first_broken}


@dataclass
class _Expected:
    seq: int
    id: str
    digest: bytes
    chain_seq: int
    block_no: int


@dataclass
class ChainVerifier:
    """Merge-walks a tenant's blocks and rows (both in seq order) from a checkpoint; keeps the first break.

    Drive it with ``wants_block(seq)`` / ``add_block`` / ``add_row`` and call ``finish`` at the end (see
    ``audit.sealer.verify_tenant``). ``sealed_through`` is the global sealed watermark: a row at or below it
    that no block lists was inserted behind the sealer's back; rows above it are merely not sealed yet.
    """

    tenant_id: str
    start_block: int
    start_chain_seq: int
    start_hash: str
    sealed_through: int
    checked: int = 0
    unsealed: int = 0
    broken: dict[str, Any] | None = None
    last_block: int = field(init=False)
    last_chain_seq: int = field(init=False)
    prev_hash: str = field(init=False)
    last_listed_seq: int = 0
    _pending: deque[_Expected] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.last_block, self.last_chain_seq, self.prev_hash = (self.start_block, self.start_chain_seq,
                                                                self.start_hash)

    def _break(self, reason: str, *, block_no: int | None, id: str | None = None, seq: int | None = None,
               chain_seq: int | None = None, ts: Any = None) -> bool:
        if self.broken is None:
            self.broken = {"id": id, "seq": seq, "chain_seq": chain_seq, "block_no": block_no,
                           "timestamp": iso(ts) if ts is not None else None, "reason": reason}
        return False

    def wants_block(self) -> bool:
        """Load the next block before judging the next row (or before finishing): nothing is pending.

        Blocks list ascending seqs, so with an entry pending a row either matches it, lies past it (the
        entry was deleted) or lies before it (listed nowhere): no later block can change the verdict.
        """
        return self.broken is None and not self._pending

    def add_block(self, block: Block) -> bool:
        if self.broken is not None:
            return False
        n = len(block.log_seqs)
        if block.block_no != self.last_block + 1:
            return self._break(f"missing block: expected block {self.last_block + 1}, found {block.block_no}",
                               block_no=block.block_no, chain_seq=self.last_chain_seq + 1)
        if block.prev_hash != self.prev_hash:
            return self._break("block prev_hash does not match the previous block's hash",
                               block_no=block.block_no, chain_seq=block.first_chain_seq)
        if (n == 0 or block.first_chain_seq != self.last_chain_seq + 1 or not (n == len(block.log_ids)
                == len(block.digests)) or block.recompute() != block.hash):
            return self._break("block content does not match its hash (edited block)",
                               block_no=block.block_no, chain_seq=block.first_chain_seq)
        for i, (seq, log_id, digest) in enumerate(zip(block.log_seqs, block.log_ids, block.digests,
                                                      strict=True)):
            if seq <= self.last_listed_seq:
                return self._break("block lists entries out of order", block_no=block.block_no, id=log_id,
                                   seq=seq, chain_seq=block.first_chain_seq + i)
            self.last_listed_seq = seq
            self._pending.append(_Expected(seq, log_id, digest, block.first_chain_seq + i, block.block_no))
        self.last_block, self.last_chain_seq, self.prev_hash = block.block_no, block.last_chain_seq, block.hash
        return True

    def add_row(self, row: Any) -> bool:
        """One audit_log row of the tenant, in ascending seq (call ``wants_block`` first)."""
        if self.broken is not None:
            return False
        seq = row["seq"]
        if self._pending and self._pending[0].seq < seq:
            return self._missing(self._pending[0])
        if self._pending and self._pending[0].seq == seq:
            exp = self._pending.popleft()
            self.checked += 1
            if row["id"] != exp.id or entry_digest(row) != exp.digest:
                return self._break("entry content does not match its sealed digest (edited)", id=row["id"],
                                   seq=seq, chain_seq=exp.chain_seq, block_no=exp.block_no, ts=row["ts"])
            return True
        if seq <= self.sealed_through:
            return self._break("entry is not in the chain but lies in the sealed range (inserted/forged)",
                               id=row["id"], seq=seq, block_no=None, ts=row["ts"])
        self.unsealed += 1
        return True

    def _missing(self, exp: _Expected) -> bool:
        return self._break(f"missing entry: {exp.id} (seq {exp.seq}) is sealed but absent (deleted)",
                           id=exp.id, seq=exp.seq, chain_seq=exp.chain_seq, block_no=exp.block_no)

    def finish(self, head_block_no: int, head_hash: str) -> bool:
        if self.broken is not None:
            return False
        if self._pending:
            return self._missing(self._pending[0])
        if (self.last_block, self.prev_hash) != (head_block_no, head_hash):
            return self._break(f"chain ends at block {self.last_block} but the head records block "
                               f"{head_block_no} (blocks removed from the end or head rewritten)",
                               block_no=self.last_block + 1, chain_seq=self.last_chain_seq + 1)
        return True
