"""Access-policy data model (spec core.md §7.1-§7.4). Pure values: no I/O, no clock.

Everything here is immutable, so a compiled :class:`~policy.index.PolicyIndex` can be shared between
requests (and threads) without copying.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network
from typing import Literal

from policy.glob import Glob

Effect = Literal["allow", "deny"]
Scope = Literal["tenant", "partner"]
IdentityType = Literal["user", "service_account", "group"]

#: Default "fresh MFA" window when a rule sets ``require_mfa`` without ``mfa_max_age`` (15 minutes).
DEFAULT_MFA_MAX_AGE_SECONDS = 900

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Permission(enum.IntFlag):
    """The six permission strings of §7.3 as bit flags. ``ADMIN`` is the union of the other five."""

    READ = 1
    WRITE = 2
    DELETE = 4
    LIST = 8
    ROTATE = 16
    ADMIN = READ | WRITE | DELETE | LIST | ROTATE

    @classmethod
    def parse(cls, name: str) -> Permission:
        """``"read"`` -> ``Permission.READ``. Raises ``ValueError`` for anything else."""
        try:
            return _BY_NAME[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown permission {name!r}") from None

    @classmethod
    def parse_many(cls, names: Iterable[str]) -> Permission:
        out = cls(0)
        for name in names:
            out |= cls.parse(name)
        return out

    def to_names(self) -> list[str]:
        """Canonical string list: ``["admin"]`` when every bit is set, else the single bits in order."""
        return list(permission_names(int(self)))

    def covers(self, needed: Permission) -> bool:
        """True when every bit of ``needed`` is granted (``admin`` needs all five)."""
        return bool(needed) and (self & needed) == needed


_BY_NAME: dict[str, Permission] = {
    "read": Permission.READ,
    "write": Permission.WRITE,
    "delete": Permission.DELETE,
    "list": Permission.LIST,
    "rotate": Permission.ROTATE,
    "admin": Permission.ADMIN,
}
_SINGLE: tuple[tuple[str, Permission], ...] = tuple((n, p) for n, p in _BY_NAME.items() if n != "admin")
PERMISSION_NAMES: tuple[str, ...] = tuple(_BY_NAME)
#: Plain-int bits per permission string (the hot path avoids IntFlag arithmetic, which is slow).
PERMISSION_BITS: dict[str, int] = {name: int(bit) for name, bit in _BY_NAME.items()}
_ADMIN_BITS = int(Permission.ADMIN)
_NAMES: dict[int, tuple[str, ...]] = {
    bits: ("admin",) if bits == _ADMIN_BITS else tuple(n for n, b in _SINGLE if bits & int(b))
    for bits in range(_ADMIN_BITS + 1)
}


def permission_names(bits: int) -> tuple[str, ...]:
    """Canonical names for a bit set: ``("admin",)`` when all five bits are set."""
    return _NAMES[bits & _ADMIN_BITS]


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Wall-clock window in an IANA time zone.

    ``days`` are the days on which the window *starts* (0 = Monday). ``start``/``end`` are minutes
    since local midnight; the window is ``[start, end)``. When ``end <= start`` the window crosses
    midnight and its tail (``00:00``..``end``) belongs to the following calendar day, so
    ``fri 22:00-02:00`` allows Saturday 01:30 but not Friday 01:30.
    """

    days: frozenset[int]
    start: int
    end: int
    timezone: str = "UTC"

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def to_dict(self) -> dict[str, object]:
        return {
            "days": [DAY_NAMES[d] for d in sorted(self.days)],
            "start": _hhmm(self.start),
            "end": _hhmm(self.end),
            "timezone": self.timezone,
        }


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


IPNetwork = IPv4Network | IPv6Network


@dataclass(frozen=True, slots=True)
class Conditions:
    """Rule conditions, AND-ed (§7.4). ``None``/``False`` means "no such condition"."""

    ip_ranges: tuple[IPNetwork, ...] | None = None
    require_mfa: bool = False
    mfa_max_age_seconds: int = DEFAULT_MFA_MAX_AGE_SECONDS
    time_window: TimeWindow | None = None

    @property
    def empty(self) -> bool:
        return self.ip_ranges is None and not self.require_mfa and self.time_window is None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.ip_ranges is not None:
            out["ip_ranges"] = [str(n) for n in self.ip_ranges]
        if self.require_mfa:
            out["require_mfa"] = True
            out["mfa_max_age"] = self.mfa_max_age_seconds
        if self.time_window is not None:
            out["time_window"] = self.time_window.to_dict()
        return out


NO_CONDITIONS = Conditions()


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a policy. ``glob`` is the compiled form of ``path_pattern``."""

    path_pattern: str
    permissions: Permission
    conditions: Conditions = NO_CONDITIONS
    effect: Effect = "allow"
    glob: Glob = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.glob is None:
            object.__setattr__(self, "glob", Glob.compile(self.path_pattern))

    def to_dict(self) -> dict[str, object]:
        """Normalised JSON form (what the API should store and return)."""
        out: dict[str, object] = {
            "path_pattern": self.path_pattern,
            "permissions": self.permissions.to_names(),
        }
        if not self.conditions.empty:
            out["conditions"] = self.conditions.to_dict()
        if self.effect != "allow":
            out["effect"] = self.effect
        return out

    def summary(self) -> dict[str, object]:
        """Shape used in decisions: ``{path_pattern, permissions, effect}``."""
        return {
            "path_pattern": self.path_pattern,
            "permissions": self.permissions.to_names(),
            "effect": self.effect,
        }


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    name: str
    rules: tuple[Rule, ...]
    scope: Scope = "tenant"
    is_active: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True)
class Binding:
    """Attaches a policy to an identity id (``user:…``, ``sa:…``, ``group:…``). ``expires_at`` optional.

    ``tenant_id``: the tenant whose identity ``identity_id`` names. Identity ids are only unique inside a tenant
    (any tenant admin can create ``group:ops``), so an index compiled for a tenant keeps only that tenant's
    bindings (``compile_index(..., tenant_id=...)``); this matters for partner-scope policies, which every
    tenant of the partner loads."""

    policy_id: str
    identity_type: IdentityType
    identity_id: str
    expires_at: datetime | None = None
    id: str = ""
    tenant_id: str | None = None
