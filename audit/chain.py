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

Chain versions (``audit_seals.chain_version``, migration 0009; threat model in docs/audit.md "Keyed chain"):

* v1 (blocks sealed before 0009): ``hash = SHA-256(message)``. Anyone with write access to the database can
  recompute it, so v1 only proves the chain is internally consistent.
* v2 (every block sealed since): ``hash = HMAC-SHA256(chain_key, "scaivault/audit-chain/v2\n" || message)``
  where ``chain_key`` is derived from AUDIT_HMAC_KEY, which is never stored in the database. A database
  superuser without the key can no longer re-seal an edited entry or block.
* The chain head (``audit_chain_heads``) carries ``head_mac``: an HMAC over the head position, the pruning
  checkpoint, the sealed watermark and ``v1_through_block`` (the last block that may still be v1: the head at
  migration time). Blocks after ``v1_through_block`` must be v2, so an attacker cannot downgrade a keyed
  block to v1, nor raise ``v1_through_block``, nor rewind the checkpoint, without the key.
* A head with no MAC (a tenant not sealed since the upgrade) verifies as before and reports ``keyed: false``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from audit.entry import iso

GENESIS = "0" * 64
CHAIN_V1 = 1  # SHA-256, unkeyed (blocks sealed before migration 0009)
CHAIN_V2 = 2  # HMAC-SHA256 under chain_key(AUDIT_HMAC_KEY)
CURRENT_VERSION = CHAIN_V2
_KEY_INFO = b"scaivault/audit-chain/v2"
_V2_DOMAIN = b"scaivault/audit-chain/v2\n"
_HEAD_DOMAIN = b"scaivault/audit-chain-head/v2\n"
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


def chain_key(audit_hmac_key: bytes | str) -> bytes:
    """The v2 chain MAC key: HMAC-SHA256(AUDIT_HMAC_KEY, "scaivault/audit-chain/v2") (distinct from the key
    that hashes request fields, so one use cannot be turned into the other)."""
    raw = audit_hmac_key.encode() if isinstance(audit_hmac_key, str) else audit_hmac_key
    if not raw:
        raise ValueError("AUDIT_HMAC_KEY must not be empty: the audit chain is keyed with it")
    return hmac.new(raw, _KEY_INFO, hashlib.sha256).digest()


class _Hasher:
    """SHA-256 (v1) or HMAC-SHA256 (v2) over the same message."""

    def __init__(self, version: int, key: bytes | None) -> None:
        if version == CHAIN_V1:
            self._h: Any = hashlib.sha256()
        elif version == CHAIN_V2:
            if not key:
                raise ValueError("a v2 (keyed) audit block needs the chain key")
            self._h = hmac.new(key, _V2_DOMAIN, hashlib.sha256)
        else:
            raise ValueError(f"unknown audit chain version {version}")

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return str(self._h.hexdigest())


def block_hash(prev_hash: str, tenant_id: str, block_no: int, first_chain_seq: int, log_seqs: list[int],
               log_ids: list[str], digests: list[bytes], *, version: int = CHAIN_V1,
               key: bytes | None = None) -> str:
    """The block's hash: v1 unkeyed SHA-256, v2 HMAC under ``key`` (see the module docstring)."""
    h = _Hasher(version, key)
    h.update(f"{prev_hash}\n{tenant_id}\n{block_no}\n{first_chain_seq}\n{len(log_seqs)}\n".encode())
    for seq, log_id, digest in zip(log_seqs, log_ids, digests, strict=True):
        h.update(seq.to_bytes(8, "big"))
        h.update(log_id.encode() + b"\n")
        h.update(bytes(digest))
    return h.hexdigest()


@dataclass(frozen=True)
class HeadState:
    """The MAC'd fields of an ``audit_chain_heads`` row."""

    tenant_id: str
    head_block_no: int
    head_chain_seq: int
    head_hash: str
    last_log_seq: int
    pruned_through_block: int
    pruned_through_chain_seq: int
    pruned_hash: str
    v1_through_block: int

    @classmethod
    def of(cls, rec: Any) -> HeadState:
        return cls(*(rec[f] for f in cls.__dataclass_fields__))

    def mac(self, key: bytes) -> str:
        msg = "\n".join(str(getattr(self, f)) for f in self.__dataclass_fields__).encode()
        return hmac.new(key, _HEAD_DOMAIN + msg, hashlib.sha256).hexdigest()


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
    chain_version: int = CHAIN_V1

    @property
    def last_chain_seq(self) -> int:
        return self.first_chain_seq + len(self.log_seqs) - 1

    @classmethod
    def of(cls, rec: Any) -> Block:
        return cls(tenant_id=rec["tenant_id"], block_no=rec["block_no"], first_chain_seq=rec["first_chain_seq"],
                   log_seqs=list(rec["log_seqs"]), log_ids=list(rec["log_ids"]),
                   digests=[bytes(d) for d in rec["digests"]], prev_hash=rec["prev_hash"], hash=rec["hash"],
                   chain_version=rec["chain_version"])

    def recompute(self, key: bytes | None = None) -> str:
        return block_hash(self.prev_hash, self.tenant_id, self.block_no, self.first_chain_seq, self.log_seqs,
                          self.log_ids, self.digests, version=self.chain_version, key=key)


def seal_block(tenant_id: str, block_no: int, first_chain_seq: int, prev_hash: str, rows: list[Any],
               key: bytes | None = None) -> Block:
    """The block linking ``rows`` (one tenant's, ascending ``seq``) after ``prev_hash``: v2 (keyed) when
    ``key`` is given (the sealer always gives it), v1 otherwise (legacy form, tests and tools only)."""
    seqs = [r["seq"] for r in rows]
    ids = [r["id"] for r in rows]
    digests = [entry_digest(r) for r in rows]
    version = CHAIN_V1 if key is None else CHAIN_V2
    return Block(tenant_id, block_no, first_chain_seq, seqs, ids, digests, prev_hash,
                 block_hash(prev_hash, tenant_id, block_no, first_chain_seq, seqs, ids, digests,
                            version=version, key=key), version)


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
    keyed: bool = True  # False: a legacy (pre-0009) head with no MAC; its v1 blocks prove consistency only

    def as_dict(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "ok": self.ok, "checked": self.checked,
                "head": {"chain_seq": self.head_chain_seq, "block_no": self.head_block_no,
                         "hash": self.head_hash},
                "keyed": self.keyed, "unsealed": self.unsealed, "first_broken": self.first_broken}


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
    ``key`` is the chain key (v2 blocks cannot verify without it); blocks after ``v1_through`` must be v2.
    """

    tenant_id: str
    start_block: int
    start_chain_seq: int
    start_hash: str
    sealed_through: int
    key: bytes | None = None
    v1_through: int = 0
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
        if block.chain_version not in (CHAIN_V1, CHAIN_V2):
            return self._break(f"block has unknown chain version {block.chain_version}",
                               block_no=block.block_no, chain_seq=block.first_chain_seq)
        if block.chain_version == CHAIN_V1 and block.block_no > self.v1_through:
            return self._break("unkeyed (v1) block after the keyed-chain upgrade (downgraded or forged block)",
                               block_no=block.block_no, chain_seq=block.first_chain_seq)
        if block.chain_version == CHAIN_V2 and not self.key:
            return self._break("keyed (v2) block but no chain key to verify it (set AUDIT_HMAC_KEY)",
                               block_no=block.block_no, chain_seq=block.first_chain_seq)
        if (n == 0 or block.first_chain_seq != self.last_chain_seq + 1 or not (n == len(block.log_ids)
                == len(block.digests)) or not hmac.compare_digest(block.recompute(self.key).encode(), str(block.hash).encode())):
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
