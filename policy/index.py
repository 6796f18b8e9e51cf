"""Compiled policy index for ONE tenant (spec core.md §7.5 step 2; design-notes "compiled policy index").

``compile_index(policies, bindings, now)`` keeps the active policies and the bindings that have not
expired, grouped by bound identity id. Evaluation for a caller never looks at policies that are not
bound to one of its identity ids: the per-caller :class:`PolicyView` is built from the identity map,
and inside it rules sit in a trie keyed by the literal leading segments of their pattern, so a lookup
only touches rules whose literal prefix is a prefix of the path. Views are cached per identity set in a
small LRU inside the index; the hot path is one dict lookup, a trie walk and a few candidate rules.

The index is immutable apart from that cache (guarded by a lock), so one instance can be shared by
all requests of a process and swapped atomically when the tenant's policy version changes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from policy.model import Binding, Policy, Rule

DEFAULT_VIEW_CACHE_SIZE = 1024


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC throughout the policy engine."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A rule together with the policy it belongs to and a stable evaluation order."""

    order: int
    policy: Policy
    rule_pos: int
    rule: Rule
    bits: int  # int(rule.permissions), precomputed: IntFlag arithmetic is slow on the hot path


@dataclass(slots=True)
class _TrieNode:
    children: dict[str, _TrieNode] = field(default_factory=dict)
    entries: list[RuleRef] = field(default_factory=list)


@dataclass(slots=True)
class PolicyView:
    """Rules of the policies bound to one identity set, indexed by literal path prefix."""

    policies: tuple[Policy, ...]
    policy_ids: tuple[str, ...]
    valid_until: datetime | None
    has_deny: bool
    rule_count: int
    _root: _TrieNode

    def candidates(self, segments: Sequence[str]) -> list[RuleRef]:
        """Rules whose literal prefix is a prefix of ``segments`` (unordered; use ``RuleRef.order``)."""
        node = self._root
        out = list(node.entries)
        for seg in segments:
            nxt = node.children.get(seg)
            if nxt is None:
                break
            node = nxt
            if node.entries:
                out.extend(node.entries)
        return out

    def all_rules(self) -> list[RuleRef]:
        """Every rule of every bound policy in evaluation order (for explanations and list planning)."""
        out: list[RuleRef] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            out.extend(node.entries)
            stack.extend(node.children.values())
        out.sort(key=lambda r: r.order)
        return out


def _build_view(bound: Sequence[tuple[int, Policy, datetime | None]]) -> PolicyView:
    root = _TrieNode()
    has_deny = False
    count = 0
    expiries = [exp for _, _, exp in bound if exp is not None]
    for pos, (_, policy, _) in enumerate(bound):
        for rule_pos, rule in enumerate(policy.rules):
            node = root
            for seg in rule.glob.literal_prefix:
                node = node.children.setdefault(seg, _TrieNode())
            node.entries.append(
                RuleRef((pos << 16) | rule_pos, policy, rule_pos, rule, int(rule.permissions))
            )
            has_deny = has_deny or rule.effect == "deny"
            count += 1
    policies = tuple(p for _, p, _ in bound)
    return PolicyView(
        policies=policies,
        policy_ids=tuple(p.id for p in policies),
        valid_until=min(expiries) if expiries else None,
        has_deny=has_deny,
        rule_count=count,
        _root=root,
    )


class PolicyIndex:
    """All active policies of one tenant (tenant + partner scope) with their live bindings."""

    def __init__(
        self,
        by_identity: dict[str, list[tuple[int, Policy, datetime | None]]],
        *,
        compiled_at: datetime,
        version: object = None,
        cache_size: int = DEFAULT_VIEW_CACHE_SIZE,
    ) -> None:
        self._by_identity = by_identity
        self.compiled_at = compiled_at
        self.version = version
        self._cache: OrderedDict[frozenset[str], PolicyView] = OrderedDict()
        self._cache_size = max(1, cache_size)
        self._lock = threading.Lock()
        expiries = [exp for entries in by_identity.values() for _, _, exp in entries if exp is not None]
        #: Earliest binding expiry inside the index; rebuild (or rely on per-view refresh) after it.
        self.valid_until: datetime | None = min(expiries) if expiries else None

    @property
    def identity_count(self) -> int:
        return len(self._by_identity)

    def view(self, identity_ids: Iterable[str], now: datetime) -> PolicyView:
        """The compiled view for a caller (its own id plus its group ids), cached per identity set.

        A cached view is rebuilt when one of its bindings has expired by ``now``.
        """
        key = identity_ids if isinstance(identity_ids, frozenset) else frozenset(identity_ids)
        now = as_utc(now)
        with self._lock:
            view = self._cache.get(key)
            if view is not None:
                if view.valid_until is None or now < view.valid_until:
                    self._cache.move_to_end(key)
                    return view
        view = self._make_view(key, now)
        with self._lock:
            self._cache[key] = view
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return view

    def _make_view(self, identity_ids: frozenset[str], now: datetime) -> PolicyView:
        best: dict[str, tuple[int, Policy, datetime | None]] = {}
        for identity in identity_ids:
            for order, policy, exp in self._by_identity.get(identity, ()):
                if exp is not None and exp <= now:
                    continue
                prev = best.get(policy.id)
                if prev is None:
                    best[policy.id] = (order, policy, exp)
                elif prev[2] is not None and (exp is None or exp > prev[2]):
                    best[policy.id] = (order, policy, exp)  # the longest-lived binding counts
        return _build_view(sorted(best.values(), key=lambda t: t[0]))

    def cache_info(self) -> dict[str, int]:
        return {"size": len(self._cache), "max_size": self._cache_size}


def compile_index(
    policies: Iterable[Policy],
    bindings: Iterable[Binding],
    now: datetime,
    *,
    version: object = None,
    cache_size: int = DEFAULT_VIEW_CACHE_SIZE,
    tenant_id: str | None = None,
) -> PolicyIndex:
    """Build the index for one tenant.

    ``policies``: the tenant's policies plus the partner-scope policies of its partner (inactive ones
    are dropped here). ``bindings``: their bindings; expired ones (``expires_at <= now``) and bindings of
    unknown/inactive policies are dropped. Policy order (input order) decides which matching policy a
    decision reports first, so pass them sorted (e.g. by ``created_at, id``).

    ``tenant_id`` given: only bindings of that tenant (``Binding.tenant_id == tenant_id``) are kept. A binding
    names an identity *of its tenant*; ``group:ops`` of another tenant of the same partner is another group,
    whatever its name (docs/policies.md "Bindings belong to a tenant").
    """
    now = as_utc(now)
    active: dict[str, tuple[int, Policy]] = {}
    for order, policy in enumerate(policies):
        if policy.is_active and policy.id not in active:
            active[policy.id] = (order, policy)
    by_identity: dict[str, list[tuple[int, Policy, datetime | None]]] = {}
    for binding in bindings:
        hit = active.get(binding.policy_id)
        if hit is None or (tenant_id is not None and binding.tenant_id != tenant_id):
            continue
        exp = as_utc(binding.expires_at) if binding.expires_at is not None else None
        if exp is not None and exp <= now:
            continue
        by_identity.setdefault(binding.identity_id, []).append((hit[0], hit[1], exp))
    return PolicyIndex(by_identity, compiled_at=now, version=version, cache_size=cache_size)


#: The name used in the design brief; same function.
compile = compile_index
