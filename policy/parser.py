"""Parse and validate access-policy documents (spec core.md §7.1, §7.4, §10.4) into the model.

Every error is an ``AppError`` whose ``details["field"]`` points at the offending element, e.g.
``rules[2].permissions`` or ``rules[0].conditions.time_window.start``. Pattern problems use
``invalid_glob``; everything else ``invalid_policy``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from ipaddress import ip_network
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.durations import parse_duration
from core.errors import AppError
from policy.glob import Glob
from policy.model import (
    DAY_NAMES,
    DEFAULT_MFA_MAX_AGE_SECONDS,
    NO_CONDITIONS,
    PERMISSION_NAMES,
    Conditions,
    Effect,
    IPNetwork,
    Permission,
    Policy,
    Rule,
    Scope,
    TimeWindow,
)

MAX_RULES: Final = 100
MAX_IP_RANGES: Final = 100
MAX_DESCRIPTION: Final = 1024
MAX_MFA_AGE_SECONDS: Final = 7 * 86400
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_HHMM_RE: Final = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")
_POLICY_KEYS: Final = frozenset({"name", "description", "rules", "scope", "is_active"})
# Read-only keys the API may echo back in a PUT body; accepted and ignored.
_IGNORED_KEYS: Final = frozenset(
    {"id", "bindings", "created_at", "updated_at", "rule_count", "binding_count", "tenant_id", "partner_id"}
)
_RULE_KEYS: Final = frozenset({"path_pattern", "permissions", "conditions", "effect"})
_CONDITION_KEYS: Final = frozenset({"ip_ranges", "require_mfa", "mfa_max_age", "time_window"})
_WINDOW_KEYS: Final = frozenset({"days", "start", "end", "timezone"})


def _err(field: str, message: str, **extra: Any) -> AppError:
    return AppError("invalid_policy", f"{field}: {message}", {"field": field, **extra})


def _unknown_keys(obj: Mapping[str, Any], allowed: frozenset[str], field: str) -> None:
    extra = sorted(str(k) for k in obj if k not in allowed)
    if extra:
        raise _err(
            f"{field}.{extra[0]}" if field else extra[0],
            f"unknown key(s) {extra}; allowed: {sorted(allowed)}",
        )


def parse_policy(
    doc: Mapping[str, Any],
    *,
    policy_id: str = "",
    is_active: bool | None = None,
) -> Policy:
    """Validate a full policy document (POST/PUT body) and return a :class:`Policy`.

    ``policy_id`` is the stored id (empty for a not-yet-created policy); ``is_active`` overrides the
    document's value when given (default ``True``).
    """
    if not isinstance(doc, Mapping):
        raise _err("body", "policy document must be a JSON object")
    _unknown_keys(doc, _POLICY_KEYS | _IGNORED_KEYS, "")
    name = parse_name(doc.get("name"))
    description = parse_description(doc.get("description"))
    scope = parse_scope(doc.get("scope", "tenant"))
    rules = parse_rules(doc.get("rules"))
    active = doc.get("is_active", True) if is_active is None else is_active
    if not isinstance(active, bool):
        raise _err("is_active", "must be a boolean")
    return Policy(
        id=policy_id, name=name, rules=rules, scope=scope, is_active=active, description=description
    )


def parse_name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise _err(field, "name is required: 1-128 characters of A-Z a-z 0-9 _ . -")
    return value


def parse_description(value: object, field: str = "description") -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise _err(field, f"must be a string of at most {MAX_DESCRIPTION} characters")
    return value


def parse_scope(value: object, field: str = "scope") -> Scope:
    if value == "tenant":
        return "tenant"
    if value == "partner":
        return "partner"
    raise _err(field, "must be 'tenant' or 'partner'")


def parse_rules(value: object, field: str = "rules") -> tuple[Rule, ...]:
    """Validate a ``rules`` array (1..100 rules)."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise _err(field, "rules must be a non-empty array")
    if not value:
        raise _err(field, "a policy needs at least one rule")
    if len(value) > MAX_RULES:
        raise _err(field, f"at most {MAX_RULES} rules per policy")
    return tuple(parse_rule(r, f"{field}[{i}]") for i, r in enumerate(value))


def parse_rule(value: object, field: str = "rule") -> Rule:
    if not isinstance(value, Mapping):
        raise _err(field, "rule must be an object with path_pattern and permissions")
    _unknown_keys(value, _RULE_KEYS, field)
    if "path_pattern" not in value:
        raise _err(f"{field}.path_pattern", "path_pattern is required")
    pattern = value["path_pattern"]
    glob = Glob.compile(pattern, f"{field}.path_pattern")
    permissions = parse_permissions(value.get("permissions"), f"{field}.permissions")
    conditions = parse_conditions(value.get("conditions"), f"{field}.conditions")
    effect = _parse_effect(value.get("effect", "allow"), f"{field}.effect")
    return Rule(
        path_pattern=glob.pattern, permissions=permissions, conditions=conditions, effect=effect, glob=glob
    )


def parse_permissions(value: object, field: str = "permissions") -> Permission:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or not value:
        raise _err(field, f"permissions must be a non-empty array of {list(PERMISSION_NAMES)}")
    out = Permission(0)
    for i, item in enumerate(value):
        try:
            out |= Permission.parse(item)
        except ValueError:
            raise _err(
                f"{field}[{i}]", f"unknown permission {item!r}; allowed: {list(PERMISSION_NAMES)}"
            ) from None
    return out


def _parse_effect(value: object, field: str) -> Effect:
    if value == "allow":
        return "allow"
    if value == "deny":
        return "deny"
    raise _err(field, "effect must be 'allow' or 'deny'")


def parse_conditions(value: object, field: str = "conditions") -> Conditions:
    if value is None:
        return NO_CONDITIONS
    if not isinstance(value, Mapping):
        raise _err(field, "conditions must be an object")
    _unknown_keys(value, _CONDITION_KEYS, field)
    ip_ranges = _parse_ip_ranges(value["ip_ranges"], f"{field}.ip_ranges") if "ip_ranges" in value else None
    require_mfa = value.get("require_mfa", False)
    if not isinstance(require_mfa, bool):
        raise _err(f"{field}.require_mfa", "require_mfa must be a boolean")
    max_age = DEFAULT_MFA_MAX_AGE_SECONDS
    if "mfa_max_age" in value:
        max_age = _parse_mfa_age(value["mfa_max_age"], f"{field}.mfa_max_age")
    window = _parse_window(value["time_window"], f"{field}.time_window") if "time_window" in value else None
    return Conditions(
        ip_ranges=ip_ranges, require_mfa=require_mfa, mfa_max_age_seconds=max_age, time_window=window
    )


def _parse_ip_ranges(value: object, field: str) -> tuple[IPNetwork, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or not value:
        raise _err(field, "ip_ranges must be a non-empty array of CIDR strings")
    if len(value) > MAX_IP_RANGES:
        raise _err(field, f"at most {MAX_IP_RANGES} ranges")
    out: list[IPNetwork] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _err(f"{field}[{i}]", "CIDR must be a string like 10.0.0.0/8 or 2001:db8::/32")
        try:
            out.append(ip_network(item.strip(), strict=True))
        except ValueError as exc:
            hint = ""
            try:
                hint = f"; did you mean {ip_network(item.strip(), strict=False)}?"
            except ValueError:
                pass
            raise _err(f"{field}[{i}]", f"invalid CIDR {item!r} ({exc}){hint}", value=item) from None
    return tuple(out)


def _parse_mfa_age(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _err(field, "mfa_max_age must be seconds (integer) or a duration like '15m'")
    try:
        seconds = int(parse_duration(value, field=field) / timedelta(seconds=1))
    except AppError:
        raise _err(field, "mfa_max_age must be seconds (integer) or a duration like '15m'") from None
    if not 1 <= seconds <= MAX_MFA_AGE_SECONDS:
        raise _err(field, f"mfa_max_age must be between 1 second and {MAX_MFA_AGE_SECONDS // 86400} days")
    return seconds


def _parse_window(value: object, field: str) -> TimeWindow:
    if not isinstance(value, Mapping):
        raise _err(field, "time_window must be an object {days, start, end, timezone}")
    _unknown_keys(value, _WINDOW_KEYS, field)
    days = _parse_days(value.get("days"), f"{field}.days")
    start = _parse_hhmm(value.get("start"), f"{field}.start", allow_24=False)
    end = _parse_hhmm(value.get("end"), f"{field}.end", allow_24=True)
    if start == end:
        raise _err(f"{field}.end", "end must differ from start (omit time_window for all day)")
    tz = value.get("timezone", "UTC")
    if not isinstance(tz, str) or not _zone_ok(tz):
        raise _err(f"{field}.timezone", f"unknown IANA time zone {tz!r} (e.g. 'UTC', 'Europe/Amsterdam')")
    if end == 24 * 60:
        end = 0 if start > 0 else end  # 'HH:MM-24:00' == 'HH:MM-00:00' (runs to midnight)
    return TimeWindow(days=days, start=start, end=end, timezone=tz)


def _parse_days(value: object, field: str) -> frozenset[int]:
    if value is None:
        return frozenset(range(7))
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or not value:
        raise _err(field, f"days must be a non-empty array of {list(DAY_NAMES)}")
    out: set[int] = set()
    for i, day in enumerate(value):
        key = day.lower() if isinstance(day, str) else day
        if key not in DAY_NAMES:
            raise _err(f"{field}[{i}]", f"unknown day {day!r}; use {list(DAY_NAMES)}")
        out.add(DAY_NAMES.index(key))
    return frozenset(out)


def _parse_hhmm(value: object, field: str, *, allow_24: bool) -> int:
    if not isinstance(value, str) or not _HHMM_RE.fullmatch(value) or (value == "24:00" and not allow_24):
        raise _err(field, "must be a time 'HH:MM' (00:00-23:59; end may be 24:00)")
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def _zone_ok(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
