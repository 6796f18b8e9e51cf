"""Evaluation semantics (spec core.md §7.4-§7.6, §12.4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policy import (
    Binding,
    EvalContext,
    ListPlan,
    Permission,
    Policy,
    check,
    compile_index,
    listable,
    may_list_under,
    parse_policy,
    plan_list,
)

NOW = datetime(2024, 6, 7, 12, 0, tzinfo=UTC)  # a Friday
ALICE = ("user:alice@acme.example", "group:developers")


def pol(pid: str, *rules: dict[str, Any], active: bool = True, scope: str = "tenant") -> Policy:
    return parse_policy(
        {"name": pid, "rules": list(rules), "scope": scope, "is_active": active}, policy_id=pid
    )


def bind(pid: str, identity: str, expires_at: datetime | None = None) -> Binding:
    kind = "group" if identity.startswith("group:") else "user"
    return Binding(policy_id=pid, identity_type=kind, identity_id=identity, expires_at=expires_at)  # type: ignore[arg-type]


def ctx(**kw: Any) -> EvalContext:
    kw.setdefault("now", NOW)
    return EvalContext(**kw)


def decide(policies: list[Policy], bindings: list[Binding], path: str, perm: str = "read", **kw: Any):
    index = compile_index(policies, bindings, NOW)
    return check(index, ALICE, path, perm, ctx(**kw))


# -- basic allow / default deny -------------------------------------------------------------------


def test_allow_via_group_binding() -> None:
    p = pol("pol_dev", {"path_pattern": "app/**", "permissions": ["read", "list"]})
    d = decide([p], [bind("pol_dev", "group:developers")], "app/db/password")
    assert d.allowed and d.code is None
    assert d.matched_policy == {"id": "pol_dev", "name": "pol_dev"}
    assert d.matched_rule == {"path_pattern": "app/**", "permissions": ["read", "list"], "effect": "allow"}
    assert d.evaluated_policies == ("pol_dev",)


def test_default_deny_and_unbound_policies_are_not_evaluated() -> None:
    mine = pol("pol_mine", {"path_pattern": "app/db", "permissions": ["read"]})
    other = pol("pol_other", {"path_pattern": "**", "permissions": ["admin"]})
    d = decide(
        [mine, other], [bind("pol_mine", "user:alice@acme.example"), bind("pol_other", "user:bob")], "app/x"
    )
    assert not d.allowed
    assert (d.code, d.reason) == ("access_denied", "no_matching_rule")
    assert d.evaluated_policies == ("pol_mine",)
    err = d.to_error()
    assert err.code == "access_denied" and err.status == 403
    assert err.details == {"path": "app/x", "permission": "read", "reason": "no_matching_rule"}


@pytest.mark.parametrize(
    ("granted", "needed", "allowed"),
    [
        (["read"], "read", True),
        (["read"], "write", False),
        (["read", "list"], "list", True),
        (["admin"], "rotate", True),
        (["admin"], "admin", True),
        (["read", "write", "delete", "list"], "admin", False),
        (["read", "write", "delete", "list", "rotate"], "admin", True),
    ],
)
def test_permissions(granted: list[str], needed: str, allowed: bool) -> None:
    p = pol("p", {"path_pattern": "app/**", "permissions": granted})
    assert decide([p], [bind("p", "group:developers")], "app/db", needed).allowed is allowed


def test_star_vs_double_star() -> None:
    p = pol("p", {"path_pattern": "app/*", "permissions": ["read"]})
    b = [bind("p", "group:developers")]
    assert decide([p], b, "app/db").allowed
    assert not decide([p], b, "app/db/password").allowed


def test_inactive_policies_are_ignored() -> None:
    p = pol("p", {"path_pattern": "app/**", "permissions": ["read"]}, active=False)
    d = decide([p], [bind("p", "group:developers")], "app/db")
    assert not d.allowed and d.evaluated_policies == ()


def test_expired_bindings_are_ignored() -> None:
    p = pol("p", {"path_pattern": "app/**", "permissions": ["read"]})
    assert not decide([p], [bind("p", "group:developers", NOW - timedelta(seconds=1))], "app/db").allowed
    assert decide([p], [bind("p", "group:developers", NOW + timedelta(hours=1))], "app/db").allowed


def test_binding_expiring_after_compilation_stops_granting() -> None:
    p = pol("p", {"path_pattern": "app/**", "permissions": ["read"]})
    index = compile_index([p], [bind("p", "user:alice@acme.example", NOW + timedelta(minutes=5))], NOW)
    assert index.valid_until == NOW + timedelta(minutes=5)
    assert check(index, ALICE, "app/db", "read", ctx()).allowed  # view cached here
    later = ctx(now=NOW + timedelta(minutes=6))
    assert not check(index, ALICE, "app/db", "read", later).allowed


def test_longest_lived_binding_counts_when_bound_twice() -> None:
    p = pol("p", {"path_pattern": "app/**", "permissions": ["read"]})
    bindings = [
        bind("p", "user:alice@acme.example", NOW + timedelta(minutes=5)),
        bind("p", "group:developers"),
    ]
    index = compile_index([p], bindings, NOW)
    assert check(index, ALICE, "app/db", "read", ctx(now=NOW + timedelta(days=1))).allowed


def test_partner_scope_policy_participates() -> None:
    p = pol("pol_partner", {"path_pattern": "shared/**", "permissions": ["read"]}, scope="partner")
    d = decide([p], [bind("pol_partner", "group:developers")], "shared/ca")
    assert d.allowed and d.matched_policy == {"id": "pol_partner", "name": "pol_partner"}


def test_an_index_for_a_tenant_keeps_only_that_tenants_bindings() -> None:
    """Issue 11 item 7: ``group:developers`` bound in tnt_a is not tnt_b's same-named group."""
    p = pol("pol_partner", {"path_pattern": "shared/**", "permissions": ["read"]}, scope="partner")
    theirs = Binding("pol_partner", "group", "group:developers", tenant_id="tnt_a")
    unknown = Binding("pol_partner", "group", "group:developers")  # no tenant: never matches in a tenant index
    for bindings in ([theirs], [unknown]):
        index = compile_index([p], bindings, NOW, tenant_id="tnt_b")
        assert not check(index, ALICE, "shared/ca", "read", ctx()).allowed
    index = compile_index([p], [theirs], NOW, tenant_id="tnt_a")
    assert check(index, ALICE, "shared/ca", "read", ctx()).allowed


# -- deny precedence ------------------------------------------------------------------------------


def test_deny_overrides_allow_from_any_policy() -> None:
    allow = pol("pol_allow", {"path_pattern": "app/**", "permissions": ["admin"]})
    deny = pol("pol_deny", {"path_pattern": "app/db/root", "permissions": ["read"], "effect": "deny"})
    b = [bind("pol_allow", "group:developers"), bind("pol_deny", "user:alice@acme.example")]
    d = decide([allow, deny], b, "app/db/root")
    assert not d.allowed
    assert (d.code, d.reason) == ("access_denied", "denied_by_rule")
    assert d.matched_policy == {"id": "pol_deny", "name": "pol_deny"}
    assert d.matched_rule == {"path_pattern": "app/db/root", "permissions": ["read"], "effect": "deny"}
    # deny only covers its permission and path
    assert decide([allow, deny], b, "app/db/root", "write").allowed
    assert decide([allow, deny], b, "app/db/other").allowed


def test_deny_overrides_even_later_order_and_admin_deny_covers_everything() -> None:
    both = pol(
        "p",
        {"path_pattern": "app/**", "permissions": ["read"]},
        {"path_pattern": "app/**", "permissions": ["admin"], "effect": "deny"},
    )
    d = decide([both], [bind("p", "group:developers")], "app/x")
    assert not d.allowed and d.reason == "denied_by_rule"


def test_conditional_deny_applies_only_when_conditions_hold() -> None:
    p = pol(
        "p",
        {"path_pattern": "app/**", "permissions": ["read"]},
        {
            "path_pattern": "app/**",
            "permissions": ["read"],
            "effect": "deny",
            "conditions": {"ip_ranges": ["203.0.113.0/24"]},
        },
    )
    b = [bind("p", "group:developers")]
    assert not decide([p], b, "app/x", source_ip="203.0.113.9").allowed
    assert decide([p], b, "app/x", source_ip="10.1.2.3").allowed


# -- conditions -----------------------------------------------------------------------------------


def one_rule(conditions: dict[str, Any]) -> tuple[list[Policy], list[Binding]]:
    p = pol("p", {"path_pattern": "app/**", "permissions": ["read"], "conditions": conditions})
    return [p], [bind("p", "group:developers")]


@pytest.mark.parametrize(
    ("ranges", "source_ip", "allowed"),
    [
        (["10.0.0.0/8"], "10.20.30.40", True),
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["10.0.0.0/8"], None, False),
        (["10.0.0.0/8"], "not-an-ip", False),
        (["10.0.0.0/8"], "::ffff:10.0.0.1", True),  # IPv4-mapped IPv6 peer
        (["2001:db8::/32"], "2001:db8:1::5", True),
        (["2001:db8::/32"], "2001:db9::5", False),
        (["2001:db8::/32"], "10.0.0.1", False),
        (["192.168.1.7"], "192.168.1.7", True),
        (["192.168.1.0/24", "2001:db8::/32"], "2001:db8::1", True),
    ],
)
def test_ip_ranges(ranges: list[str], source_ip: str | None, allowed: bool) -> None:
    policies, bindings = one_rule({"ip_ranges": ranges})
    d = decide(policies, bindings, "app/db", source_ip=source_ip)
    assert d.allowed is allowed
    if not allowed:
        assert (d.code, d.reason) == ("ip_not_allowed", "ip_not_allowed")
        assert d.failed_condition == {
            "type": "ip_ranges",
            "ip_ranges": ranges if "/" in ranges[0] else ["192.168.1.7/32"],
            "source_ip": source_ip,
        }
        assert d.matched_policy == {"id": "p", "name": "p"}
        err = d.to_error()
        assert err.code == "ip_not_allowed" and err.details["failed_condition"]["type"] == "ip_ranges"


@pytest.mark.parametrize(
    ("conditions", "verified_ago", "allowed"),
    [
        ({"require_mfa": True}, None, False),
        ({"require_mfa": True}, timedelta(minutes=1), True),
        ({"require_mfa": True}, timedelta(seconds=900), True),
        ({"require_mfa": True}, timedelta(seconds=901), False),
        ({"require_mfa": True, "mfa_max_age": "1h"}, timedelta(minutes=59), True),
        ({"require_mfa": True, "mfa_max_age": 60}, timedelta(minutes=2), False),
        ({"require_mfa": True}, timedelta(seconds=-30), True),  # small clock skew tolerated
        ({"require_mfa": True}, timedelta(hours=-1), False),  # far future is bogus
        ({"require_mfa": False}, None, True),
    ],
)
def test_mfa_freshness(conditions: dict[str, Any], verified_ago: timedelta | None, allowed: bool) -> None:
    policies, bindings = one_rule(conditions)
    at = NOW - verified_ago if verified_ago is not None else None
    d = decide(policies, bindings, "app/db", mfa_verified_at=at)
    assert d.allowed is allowed
    if not allowed:
        assert d.code == "mfa_required"
        assert d.failed_condition is not None and d.failed_condition["type"] == "require_mfa"


def test_naive_datetimes_are_utc() -> None:
    policies, bindings = one_rule({"require_mfa": True})
    index = compile_index(policies, bindings, NOW.replace(tzinfo=None))
    c = EvalContext(
        now=NOW.replace(tzinfo=None), mfa_verified_at=(NOW - timedelta(minutes=1)).replace(tzinfo=None)
    )
    assert check(index, ALICE, "app/db", "read", c).allowed


def at(day: int, hh: int, mm: int = 0, tz: str = "UTC") -> datetime:
    """2024-06-03 is a Monday; ``day`` 0..6 = mon..sun, in UTC unless tz given (then converted)."""
    from zoneinfo import ZoneInfo

    local = datetime(2024, 6, 3 + day, hh, mm, tzinfo=ZoneInfo(tz))
    return local.astimezone(UTC)


BUSINESS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00", "timezone": "UTC"}
NIGHT = {"days": ["fri"], "start": "22:00", "end": "02:00", "timezone": "UTC"}
AMS = {"days": ["mon"], "start": "09:00", "end": "17:00", "timezone": "Europe/Amsterdam"}


@pytest.mark.parametrize(
    ("window", "when", "allowed"),
    [
        (BUSINESS, at(0, 8, 0), True),
        (BUSINESS, at(0, 7, 59), False),
        (BUSINESS, at(4, 17, 59), True),
        (BUSINESS, at(4, 18, 0), False),  # end exclusive
        (BUSINESS, at(5, 12, 0), False),  # saturday
        (NIGHT, at(4, 22, 0), True),  # fri 22:00
        (NIGHT, at(4, 23, 59), True),
        (NIGHT, at(5, 1, 30), True),  # sat 01:30 belongs to friday's window
        (NIGHT, at(5, 2, 0), False),
        (NIGHT, at(4, 1, 30), False),  # fri 01:30 belongs to thursday's (absent) window
        (NIGHT, at(5, 22, 30), False),  # saturday night not listed
        ({**NIGHT, "days": ["sun"]}, at(0, 1, 0), True),  # sunday's window wraps into monday
        (AMS, at(0, 9, 0, "Europe/Amsterdam"), True),  # 07:00 UTC in summer
        (AMS, at(0, 8, 30, "Europe/Amsterdam"), False),
        (AMS, datetime(2024, 6, 3, 8, 30, tzinfo=UTC), True),  # 10:30 local
        (AMS, datetime(2024, 6, 3, 15, 30, tzinfo=UTC), False),  # 17:30 local
        ({"start": "00:00", "end": "24:00"}, at(6, 23, 59), True),
        ({"start": "20:00", "end": "24:00"}, at(6, 23, 59), True),
        ({"start": "20:00", "end": "24:00"}, at(6, 0, 1), False),
    ],
)
def test_time_windows(window: dict[str, Any], when: datetime, allowed: bool) -> None:
    policies, bindings = one_rule({"time_window": window})
    d = decide(policies, bindings, "app/db", now=when)
    assert d.allowed is allowed
    if not allowed:
        assert d.code == "time_window_violation"
        assert d.failed_condition is not None
        assert d.failed_condition["type"] == "time_window"
        assert d.failed_condition["time_window"]["start"] == window["start"]


def test_conditions_are_anded_and_first_failure_reported() -> None:
    policies, bindings = one_rule({"ip_ranges": ["10.0.0.0/8"], "require_mfa": True})
    assert decide(policies, bindings, "app/db", source_ip="10.0.0.1").code == "mfa_required"
    assert decide(policies, bindings, "app/db", source_ip="8.8.8.8").code == "ip_not_allowed"
    fresh = NOW - timedelta(seconds=5)
    assert decide(policies, bindings, "app/db", source_ip="10.0.0.1", mfa_verified_at=fresh).allowed


def test_unconditional_allow_beats_failed_condition_elsewhere() -> None:
    strict = pol(
        "strict", {"path_pattern": "app/**", "permissions": ["read"], "conditions": {"require_mfa": True}}
    )
    loose = pol("loose", {"path_pattern": "app/db", "permissions": ["read"]})
    b = [bind("strict", "group:developers"), bind("loose", "group:developers")]
    d = decide([strict, loose], b, "app/db")
    assert d.allowed and d.matched_policy == {"id": "loose", "name": "loose"}
    d2 = decide([strict, loose], b, "app/other")
    assert d2.code == "mfa_required" and d2.matched_policy == {"id": "strict", "name": "strict"}


# -- explanation (dry run) ------------------------------------------------------------------------


def _explain_setup() -> tuple[list[Policy], list[Binding]]:
    a = pol(
        "pol_a",
        {"path_pattern": "app/**", "permissions": ["read"], "conditions": {"ip_ranges": ["10.0.0.0/8"]}},
        {"path_pattern": "other/*", "permissions": ["read"]},
        {"path_pattern": "app/db", "permissions": ["write"]},
    )
    b = pol(
        "pol_b",
        {
            "path_pattern": "app/db",
            "permissions": ["read"],
            "effect": "deny",
            "conditions": {"require_mfa": True},
        },
    )
    return [a, b], [bind("pol_a", "group:developers"), bind("pol_b", "user:alice@acme.example")]


def test_explanation_for_denial() -> None:
    policies, bindings = _explain_setup()
    index = compile_index(policies, bindings, NOW)
    d = check(index, ALICE, "app/db", "read", ctx(source_ip="8.8.8.8"), explain=True)
    assert d.code == "ip_not_allowed"
    out = d.to_dict()
    assert out["allowed"] is False and out["reason"] == "ip_not_allowed"
    assert out["evaluated_policies"] == ["pol_a", "pol_b"]
    ex = out["explanation"]
    assert [p["policy_id"] for p in ex] == ["pol_a", "pol_b"]
    rules_a = ex[0]["rules"]
    assert [r["result"] for r in rules_a] == ["condition_failed", "path_mismatch", "permission_mismatch"]
    assert rules_a[0]["code"] == "ip_not_allowed"
    assert rules_a[0]["failed_condition"]["source_ip"] == "8.8.8.8"
    assert all(r["matched"] is False for r in rules_a)
    assert ex[1]["rules"][0]["result"] == "condition_failed"  # the deny's MFA condition did not hold
    assert ex[1]["rules"][0]["effect"] == "deny"


def test_explanation_for_allow_and_deny_rule() -> None:
    policies, bindings = _explain_setup()
    index = compile_index(policies, bindings, NOW)
    ok = check(index, ALICE, "app/x", "read", ctx(source_ip="10.0.0.1"), explain=True)
    assert ok.allowed
    assert ok.explanation is not None and ok.explanation[0]["rules"][0] | {"failed_condition": None} == {
        "index": 0,
        "path_pattern": "app/**",
        "permissions": ["read"],
        "effect": "allow",
        "matched": True,
        "result": "allowed",
        "failed_condition": None,
    }
    out = ok.to_dict()
    assert set(out) == {"allowed", "matched_policy", "matched_rule", "evaluated_policies", "explanation"}
    fresh = NOW - timedelta(seconds=1)
    denied = check(
        index, ALICE, "app/db", "read", ctx(source_ip="10.0.0.1", mfa_verified_at=fresh), explain=True
    )
    assert denied.reason == "denied_by_rule"
    assert denied.explanation is not None
    assert denied.explanation[0]["rules"][0]["result"] == "allowed"
    assert denied.explanation[1]["rules"][0]["result"] == "denied"


def test_explain_does_not_change_the_decision() -> None:
    policies, bindings = _explain_setup()
    index = compile_index(policies, bindings, NOW)
    for path in ["app/db", "app/x", "other/y", "nothing"]:
        for perm in ["read", "write", "list"]:
            for ip in ["10.0.0.1", "8.8.8.8"]:
                a = check(index, ALICE, path, perm, ctx(source_ip=ip))
                b = check(index, ALICE, path, perm, ctx(source_ip=ip), explain=True)
                assert (a.allowed, a.code, a.reason, a.matched_policy) == (
                    b.allowed,
                    b.code,
                    b.reason,
                    b.matched_policy,
                )


# -- listing --------------------------------------------------------------------------------------


def test_listable_filters_by_list_permission() -> None:
    p = pol(
        "p",
        {"path_pattern": "app/**", "permissions": ["list"]},
        {"path_pattern": "app/secret/*", "permissions": ["list"], "effect": "deny"},
        {"path_pattern": "ops/**", "permissions": ["read"]},
    )
    index = compile_index([p], [bind("p", "group:developers")], NOW)
    paths = ["app/a", "app/secret/x", "ops/b", "app/b/c"]
    assert listable(index, ALICE, paths, ctx()) == ["app/a", "app/b/c"]


@pytest.mark.parametrize(
    ("rules", "prefix", "plan"),
    [
        ([{"path_pattern": "app/**", "permissions": ["list"]}], "app/", ListPlan.ALL),
        ([{"path_pattern": "app/**", "permissions": ["list"]}], "app/db/", ListPlan.ALL),
        ([{"path_pattern": "app/**", "permissions": ["list"]}], "app", ListPlan.FILTER),  # 'apple/x' too
        ([{"path_pattern": "app/**", "permissions": ["list"]}], "", ListPlan.FILTER),
        ([{"path_pattern": "app/**", "permissions": ["list"]}], "ops/", ListPlan.NONE),
        ([{"path_pattern": "app/**", "permissions": ["read"]}], "app/", ListPlan.NONE),
        ([{"path_pattern": "**", "permissions": ["admin"]}], "", ListPlan.ALL),
        ([{"path_pattern": "**/ssl/*", "permissions": ["list"]}], "ops/", ListPlan.FILTER),
        ([{"path_pattern": "app/db", "permissions": ["list"]}], "app/", ListPlan.FILTER),
        ([{"path_pattern": "app/db", "permissions": ["list"]}], "app/x", ListPlan.NONE),
        (
            [
                {"path_pattern": "app/**", "permissions": ["list"]},
                {"path_pattern": "app/db/*", "permissions": ["list"], "effect": "deny"},
            ],
            "app/",
            ListPlan.FILTER,
        ),
        (
            [
                {"path_pattern": "app/**", "permissions": ["list"]},
                {"path_pattern": "ops/*", "permissions": ["list"], "effect": "deny"},
            ],
            "app/",
            ListPlan.ALL,
        ),
        (
            [{"path_pattern": "app/**", "permissions": ["list"], "conditions": {"require_mfa": True}}],
            "app/",
            ListPlan.NONE,
        ),
    ],
)
def test_plan_list(rules: list[dict[str, Any]], prefix: str, plan: ListPlan) -> None:
    index = compile_index([pol("p", *rules)], [bind("p", "group:developers")], NOW)
    assert plan_list(index, ALICE, prefix, ctx()) is plan
    assert may_list_under(index, ALICE, prefix, ctx()) is (plan is not ListPlan.NONE)


def test_view_cache_is_bounded() -> None:
    p = pol("p", {"path_pattern": "app/**", "permissions": ["read"]})
    index = compile_index([p], [bind("p", "group:developers")], NOW, cache_size=4)
    for i in range(10):
        check(index, (f"user:u{i}", "group:developers"), "app/db", "read", ctx())
    assert index.cache_info() == {"size": 4, "max_size": 4}


def test_permission_enum_roundtrip() -> None:
    assert Permission.parse_many(["read", "list"]).to_names() == ["read", "list"]
    assert Permission.parse_many(["read", "write", "delete", "list", "rotate"]).to_names() == ["admin"]
    with pytest.raises(ValueError):
        Permission.parse("execute")
