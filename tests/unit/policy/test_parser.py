"""Policy document validation (spec core.md §7.1, §7.4, §10.4)."""

from __future__ import annotations

import copy
from ipaddress import ip_network
from typing import Any

import pytest

from core.errors import AppError
from policy.model import Permission, TimeWindow
from policy.parser import parse_policy

DOC: dict[str, Any] = {
    "name": "production-read-only",
    "description": "Read access to production secrets for developers",
    "rules": [
        {
            "path_pattern": "environments/production/**",
            "permissions": ["read", "list"],
            "conditions": {"ip_ranges": ["10.0.0.0/8", "2001:db8::/32"], "require_mfa": True},
        },
        {"path_pattern": "shared/certificates/*", "permissions": ["read"]},
        {"path_pattern": "shared/certificates/root", "permissions": ["admin"], "effect": "deny"},
    ],
}


def test_parses_spec_example() -> None:
    p = parse_policy(DOC, policy_id="pol_abc")
    assert (p.id, p.name, p.scope, p.is_active) == ("pol_abc", "production-read-only", "tenant", True)
    r0, r1, r2 = p.rules
    assert r0.permissions == Permission.READ | Permission.LIST
    assert r0.conditions.ip_ranges == (ip_network("10.0.0.0/8"), ip_network("2001:db8::/32"))
    assert r0.conditions.require_mfa is True
    assert r0.conditions.mfa_max_age_seconds == 900
    assert r1.effect == "allow" and r1.conditions.empty
    assert r2.effect == "deny" and r2.permissions == Permission.ADMIN
    assert r2.to_dict() == {
        "path_pattern": "shared/certificates/root",
        "permissions": ["admin"],
        "effect": "deny",
    }


def test_read_only_keys_are_ignored_and_partner_scope() -> None:
    doc = {**DOC, "id": "pol_x", "created_at": "2024-01-01T00:00:00Z", "bindings": [], "scope": "partner"}
    assert parse_policy(doc).scope == "partner"


def test_time_window_and_mfa_age() -> None:
    doc = copy.deepcopy(DOC)
    doc["rules"][1]["conditions"] = {
        "require_mfa": True,
        "mfa_max_age": "5m",
        "time_window": {
            "days": ["mon", "FRI"],
            "start": "22:00",
            "end": "06:00",
            "timezone": "Europe/Amsterdam",
        },
    }
    c = parse_policy(doc).rules[1].conditions
    assert c.mfa_max_age_seconds == 300
    assert c.time_window == TimeWindow(frozenset({0, 4}), 22 * 60, 6 * 60, "Europe/Amsterdam")
    assert c.time_window.crosses_midnight
    assert c.to_dict()["time_window"] == {
        "days": ["mon", "fri"],
        "start": "22:00",
        "end": "06:00",
        "timezone": "Europe/Amsterdam",
    }


def test_time_window_defaults() -> None:
    doc = copy.deepcopy(DOC)
    doc["rules"][1]["conditions"] = {"time_window": {"start": "08:00", "end": "24:00"}}
    w = parse_policy(doc).rules[1].conditions.time_window
    assert w is not None and w.days == frozenset(range(7)) and w.timezone == "UTC"


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()

# (mutation path, new value, error code, details.field)
BAD = [
    (["name"], "", "invalid_policy", "name"),
    (["name"], "has space", "invalid_policy", "name"),
    (["name"], "x" * 129, "invalid_policy", "name"),
    (["name"], _DELETE, "invalid_policy", "name"),
    (["scope"], "global", "invalid_policy", "scope"),
    (["rules"], [], "invalid_policy", "rules"),
    (["rules"], "nope", "invalid_policy", "rules"),
    (["rules"], [{"path_pattern": "a", "permissions": ["read"]}] * 101, "invalid_policy", "rules"),
    (["surprise"], 1, "invalid_policy", "surprise"),
    (["rules", 2, "permissions"], [], "invalid_policy", "rules[2].permissions"),
    (["rules", 2, "permissions"], "read", "invalid_policy", "rules[2].permissions"),
    (["rules", 2, "permissions"], ["read", "execute"], "invalid_policy", "rules[2].permissions[1]"),
    (["rules", 1, "path_pattern"], "/abs/path", "invalid_glob", "rules[1].path_pattern"),
    (["rules", 1, "path_pattern"], _DELETE, "invalid_policy", "rules[1].path_pattern"),
    (["rules", 1, "effect"], "maybe", "invalid_policy", "rules[1].effect"),
    (["rules", 1, "colour"], "red", "invalid_policy", "rules[1].colour"),
    (
        ["rules", 0, "conditions", "ip_ranges", 1],
        "10.0.0.300/8",
        "invalid_policy",
        "rules[0].conditions.ip_ranges[1]",
    ),
    (
        ["rules", 0, "conditions", "ip_ranges", 0],
        "10.0.0.1/8",
        "invalid_policy",
        "rules[0].conditions.ip_ranges[0]",
    ),
    (["rules", 0, "conditions", "ip_ranges"], [], "invalid_policy", "rules[0].conditions.ip_ranges"),
    (["rules", 0, "conditions", "require_mfa"], "yes", "invalid_policy", "rules[0].conditions.require_mfa"),
    (["rules", 0, "conditions", "mfa_max_age"], "soon", "invalid_policy", "rules[0].conditions.mfa_max_age"),
    (["rules", 0, "conditions", "mfa_max_age"], 0, "invalid_policy", "rules[0].conditions.mfa_max_age"),
    (["rules", 0, "conditions", "geo"], "nl", "invalid_policy", "rules[0].conditions.geo"),
    (["rules", 0, "conditions"], [], "invalid_policy", "rules[0].conditions"),
]


@pytest.mark.parametrize(("path", "value", "code", "field"), BAD)
def test_rejects(path: list[Any], value: Any, code: str, field: str) -> None:
    with pytest.raises(AppError) as exc:
        parse_policy(_with(path, value))
    assert exc.value.code == code
    assert exc.value.details["field"] == field
    assert field in exc.value.message


def test_host_bits_hint() -> None:
    with pytest.raises(AppError) as exc:
        parse_policy(_with(["rules", 0, "conditions", "ip_ranges", 0], "10.0.0.1/8"))
    assert "did you mean 10.0.0.0/8" in exc.value.message


W = {"days": ["mon"], "start": "08:00", "end": "18:00", "timezone": "UTC"}

BAD_WINDOWS = [
    ({**W, "days": ["monday"]}, "time_window.days[0]"),
    ({**W, "days": []}, "time_window.days"),
    ({**W, "start": "8:00"}, "time_window.start"),
    ({**W, "start": "24:00"}, "time_window.start"),
    ({**W, "end": "18:60"}, "time_window.end"),
    ({**W, "end": "08:00"}, "time_window.end"),
    ({**W, "timezone": "Mars/Olympus"}, "time_window.timezone"),
    ({**W, "timezone": "../../etc/passwd"}, "time_window.timezone"),
    ({**W, "tz": "UTC"}, "time_window.tz"),
    ("08-18", "time_window"),
]


@pytest.mark.parametrize(("window", "field"), BAD_WINDOWS)
def test_rejects_bad_time_windows(window: Any, field: str) -> None:
    with pytest.raises(AppError) as exc:
        parse_policy(_with(["rules", 1, "conditions"], {"time_window": window}))
    assert exc.value.code == "invalid_policy"
    assert exc.value.details["field"] == f"rules[1].conditions.{field}"
