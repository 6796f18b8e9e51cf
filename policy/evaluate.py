"""Policy evaluation (spec core.md §7.4-§7.6, §12.4). Pure: the caller supplies the clock in ``ctx``.

Semantics (see docs/policies.md):

1. Only rules of active policies bound (non-expired) to one of the caller's identity ids count.
2. A rule *applies* when its pattern matches the path, its permissions cover the needed permission
   (``admin`` covers everything; checking ``admin`` needs a rule granting ``admin``) and all of its
   conditions hold (AND).
3. An applying ``deny`` rule wins over every allow -> ``access_denied`` / ``denied_by_rule``.
   A deny rule whose conditions do not hold does not apply.
4. Otherwise an applying ``allow`` rule -> allowed.
5. Otherwise, if an allow rule matched path and permission but failed a condition, the first such
   failure (policy order, rule order; within a rule ip_ranges, then require_mfa, then time_window)
   decides the code (``ip_not_allowed`` / ``mfa_required`` / ``time_window_violation``) and
   ``failed_condition``.
6. Otherwise default deny: ``access_denied`` / ``no_matching_rule``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import AppError
from policy.glob import Glob
from policy.index import PolicyIndex, RuleRef, as_utc
from policy.model import PERMISSION_BITS, Conditions, Permission, Policy, Rule, permission_names

ACCESS_DENIED = "access_denied"
IP_NOT_ALLOWED = "ip_not_allowed"
MFA_REQUIRED = "mfa_required"
TIME_WINDOW_VIOLATION = "time_window_violation"
NO_MATCHING_RULE = "no_matching_rule"
DENIED_BY_RULE = "denied_by_rule"

_LIST = int(Permission.LIST)
#: Tolerated clock skew for an ``mfa_verified_at`` slightly in the future.
MFA_FUTURE_SKEW = timedelta(seconds=60)

_CONDITION_CODE = {
    "ip_ranges": IP_NOT_ALLOWED,
    "require_mfa": MFA_REQUIRED,
    "time_window": TIME_WINDOW_VIOLATION,
}
_MESSAGES = {
    NO_MATCHING_RULE: "No matching policy rule",
    DENIED_BY_RULE: "Denied by a policy rule",
    IP_NOT_ALLOWED: "Source IP is not in an allowed range for this path",
    MFA_REQUIRED: "Recent multi-factor authentication is required for this path",
    TIME_WINDOW_VIOLATION: "Access to this path is not allowed at this time",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalContext:
    """Request facts conditions look at. Naive datetimes are UTC."""

    source_ip: str | None = None
    mfa_verified_at: datetime | None = None
    now: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    code: str | None
    reason: str | None
    path: str
    permission: str
    matched_policy: dict[str, str] | None = None
    matched_rule: dict[str, Any] | None = None
    failed_condition: dict[str, Any] | None = None
    evaluated_policies: tuple[str, ...] = ()
    explanation: tuple[dict[str, Any], ...] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Dry-run (``POST /v1/policies/test``) response body."""
        out: dict[str, Any] = {"allowed": self.allowed}
        if self.allowed:
            out["matched_policy"] = self.matched_policy
            out["matched_rule"] = self.matched_rule
        else:
            out["code"] = self.code
            out["reason"] = self.reason
            out["matched_policy"] = self.matched_policy
            out["matched_rule"] = self.matched_rule
            out["failed_condition"] = self.failed_condition
        out["evaluated_policies"] = list(self.evaluated_policies)
        if self.explanation is not None:
            out["explanation"] = list(self.explanation)
        return out

    def to_error(self) -> AppError:
        """The 403 to raise for a denied request (details never name the caller's policies)."""
        if self.allowed or self.code is None or self.reason is None:
            raise ValueError("to_error() on an allowing decision")
        details: dict[str, Any] = {"path": self.path, "permission": self.permission, "reason": self.reason}
        if self.failed_condition is not None:
            details["failed_condition"] = self.failed_condition
        return AppError(self.code, _MESSAGES[self.reason], details)

    def raise_for_denied(self) -> None:
        if not self.allowed:
            raise self.to_error()


def _need(permission: Permission | str) -> int:
    if isinstance(permission, str):
        bits = PERMISSION_BITS.get(permission)
        if bits is None:
            raise ValueError(f"unknown permission {permission!r}")
        return bits
    bits = int(permission)
    if not bits:
        raise ValueError("empty permission")
    return bits


def _perm_name(need: int) -> str:
    return ",".join(permission_names(need))


# -- conditions -----------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _parse_ip(raw: str) -> IPv4Address | IPv6Address | None:
    try:
        addr = ip_address(raw.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def failed_condition(conditions: Conditions, ctx: EvalContext) -> dict[str, Any] | None:
    """``None`` if every condition holds, else a description of the first failing one."""
    if conditions.ip_ranges is not None:
        addr = _parse_ip(ctx.source_ip) if ctx.source_ip else None
        if addr is None or not any(addr in net for net in conditions.ip_ranges):
            return {
                "type": "ip_ranges",
                "ip_ranges": [str(n) for n in conditions.ip_ranges],
                "source_ip": ctx.source_ip,
            }
    if conditions.require_mfa:
        now = as_utc(ctx.now)
        at = as_utc(ctx.mfa_verified_at) if ctx.mfa_verified_at is not None else None
        age = (now - at).total_seconds() if at is not None else None
        if (
            at is None
            or at - now > MFA_FUTURE_SKEW
            or (age is not None and age > conditions.mfa_max_age_seconds)
        ):
            return {
                "type": "require_mfa",
                "mfa_max_age_seconds": conditions.mfa_max_age_seconds,
                "mfa_verified_at": at.isoformat() if at is not None else None,
            }
    window = conditions.time_window
    if window is not None:
        local = as_utc(ctx.now).astimezone(_zone(window.timezone))
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if window.crosses_midnight:
            inside = (day in window.days and minute >= window.start) or (
                (day - 1) % 7 in window.days and minute < window.end
            )
        else:
            inside = day in window.days and window.start <= minute < window.end
        if not inside:
            return {
                "type": "time_window",
                "time_window": window.to_dict(),
                "evaluated_at": local.isoformat(),
            }
    return None


def _conditions_fail(rule: Rule, ctx: EvalContext) -> dict[str, Any] | None:
    return None if rule.conditions.empty else failed_condition(rule.conditions, ctx)


# -- check ----------------------------------------------------------------------------------------


def _policy_ref(policy: Policy) -> dict[str, str]:
    return {"id": policy.id, "name": policy.name}


def check(
    index: PolicyIndex,
    identity_ids: Iterable[str],
    path: str,
    permission: Permission | str,
    ctx: EvalContext,
    *,
    explain: bool = False,
) -> Decision:
    """Decide whether a caller may exercise ``permission`` on ``path``.

    ``identity_ids``: the caller's own id (``user:…``/``sa:…``) plus its ``group:…`` ids.
    ``path``: a validated secret path. ``explain=True`` adds the per-policy explanation (dry run).
    """
    need = _need(permission)
    view = index.view(identity_ids, ctx.now)
    segs = path.split("/")
    deny: RuleRef | None = None
    allow: RuleRef | None = None
    failed: tuple[RuleRef, dict[str, Any]] | None = None
    for ref in view.candidates(segs):
        rule = ref.rule
        if ref.bits & need != need or not rule.glob.matches(path, segs):
            continue
        why = _conditions_fail(rule, ctx)
        if rule.effect == "deny":
            if why is None and (deny is None or ref.order < deny.order):
                deny = ref
        elif why is None:
            if allow is None or ref.order < allow.order:
                allow = ref
        elif failed is None or ref.order < failed[0].order:
            failed = (ref, why)
    explanation = _explain(view.all_rules(), view.policies, path, need, ctx) if explain else None
    pname = _perm_name(need)
    ids = view.policy_ids
    if deny is not None:
        return _decision(False, ACCESS_DENIED, DENIED_BY_RULE, path, pname, ids, explanation, deny)
    if allow is not None:
        return _decision(True, None, None, path, pname, ids, explanation, allow)
    if failed is not None:
        code = _CONDITION_CODE[failed[1]["type"]]
        return _decision(False, code, code, path, pname, ids, explanation, failed[0], failed[1])
    return _decision(False, ACCESS_DENIED, NO_MATCHING_RULE, path, pname, ids, explanation)


def _decision(
    allowed: bool,
    code: str | None,
    reason: str | None,
    path: str,
    permission: str,
    evaluated: tuple[str, ...],
    explanation: tuple[dict[str, Any], ...] | None,
    ref: RuleRef | None = None,
    why: dict[str, Any] | None = None,
) -> Decision:
    return Decision(
        allowed=allowed,
        code=code,
        reason=reason,
        path=path,
        permission=permission,
        matched_policy=_policy_ref(ref.policy) if ref is not None else None,
        matched_rule=_summary(ref) if ref is not None else None,
        failed_condition=why,
        evaluated_policies=evaluated,
        explanation=explanation,
    )


def _summary(ref: RuleRef) -> dict[str, Any]:
    return {
        "path_pattern": ref.rule.path_pattern,
        "permissions": list(permission_names(ref.bits)),
        "effect": ref.rule.effect,
    }


def _explain(
    refs: Sequence[RuleRef], policies: Sequence[Policy], path: str, need: int, ctx: EvalContext
) -> tuple[dict[str, Any], ...]:
    segs = path.split("/")
    by_policy: dict[str, list[dict[str, Any]]] = {p.id: [] for p in policies}
    for ref in refs:
        rule = ref.rule
        entry: dict[str, Any] = {"index": ref.rule_pos, **_summary(ref)}
        if not rule.glob.matches(path, segs):
            entry.update(matched=False, result="path_mismatch")
        elif ref.bits & need != need:
            entry.update(matched=False, result="permission_mismatch")
        else:
            why = _conditions_fail(rule, ctx)
            if why is not None:
                entry.update(matched=False, result="condition_failed", code=_CONDITION_CODE[why["type"]])
                entry["failed_condition"] = why
            else:
                entry.update(matched=True, result="denied" if rule.effect == "deny" else "allowed")
        by_policy[ref.policy.id].append(entry)
    return tuple(
        {"policy_id": p.id, "name": p.name, "scope": p.scope, "rules": by_policy[p.id]} for p in policies
    )


# -- listing --------------------------------------------------------------------------------------


class ListPlan(enum.Enum):
    """How a listing under a prefix must be filtered."""

    NONE = "none"  # nothing under the prefix can be listed: skip the query
    ALL = "all"  # everything under the prefix is listable: no per-row filtering needed
    FILTER = "filter"  # filter rows with ``listable``/``check``


def listable(
    index: PolicyIndex, identity_ids: Iterable[str], paths: Iterable[str], ctx: EvalContext
) -> list[str]:
    """The subset of ``paths`` (order kept) on which the caller holds ``list``."""
    ids = identity_ids if isinstance(identity_ids, frozenset) else frozenset(identity_ids)
    return [p for p in paths if check(index, ids, p, Permission.LIST, ctx).allowed]


def _may_intersect(glob: Glob, prefix: str) -> bool:
    """Could some path starting with the string ``prefix`` match ``glob``? (conservative)"""
    if glob.is_literal:
        return glob.pattern.startswith(prefix)
    head = glob.literal_head
    return prefix.startswith(head) or head.startswith(prefix)


def _covers(glob: Glob, prefix: str) -> bool:
    """Does ``glob`` match every path starting with the string ``prefix``? (conservative)"""
    root = glob.subtree_of
    if root is None:
        return False
    return root == "" or prefix.startswith(root + "/")


def plan_list(index: PolicyIndex, identity_ids: Iterable[str], prefix: str, ctx: EvalContext) -> ListPlan:
    """Decide up front how to list paths that start with the string ``prefix`` ("" = everything).

    Conditions do not depend on the path, so they are evaluated once here.
    """
    view = index.view(identity_ids, ctx.now)
    allow_possible = covered = deny_possible = False
    for ref in view.all_rules():
        rule = ref.rule
        if not ref.bits & _LIST or _conditions_fail(rule, ctx) is not None:
            continue
        if not _may_intersect(rule.glob, prefix):
            continue
        if rule.effect == "deny":
            deny_possible = True
        else:
            allow_possible = True
            covered = covered or _covers(rule.glob, prefix)
    if not allow_possible:
        return ListPlan.NONE
    return ListPlan.ALL if covered and not deny_possible else ListPlan.FILTER


def may_list_under(index: PolicyIndex, identity_ids: Iterable[str], prefix: str, ctx: EvalContext) -> bool:
    """False when no path starting with ``prefix`` can be listed (so the SQL query can be skipped)."""
    return plan_list(index, identity_ids, prefix, ctx) is not ListPlan.NONE
