"""The event catalogue (spec lifecycle.md §5.2, core.md §13) and the matching rules shared by webhooks and
subscriptions.

A webhook or subscription lists event types. Accepted entries (decision): an exact catalogue name,
``<family>.*`` for a known family (``secret.*``), or ``*`` for everything. Anything else is
``400 invalid_event_type``. Features that emit a new event type add it to ``CATALOGUE`` here and to the
"Catalogue" section of docs/events.md (tests/unit/test_event_catalogue_docs.py checks both ways, and that
every event type literal in the code is catalogued).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.errors import AppError

CATALOGUE: frozenset[str] = frozenset({
    # secrets (core.md §13)
    "secret.created", "secret.updated", "secret.deleted", "secret.rotated", "secret.expiring",
    "secret.expired", "secret.accessed", "secret.restored", "secret.versions_destroyed",
    # policies
    "policy.created", "policy.updated", "policy.deleted", "policy.binding.created", "policy.binding.deleted",
    "policy.violation",
    # rotation (lifecycle.md §1.5)
    "rotation.due", "rotation.overdue", "rotation.completed", "rotation.failed",
    # certificates (lifecycle.md §3.8)
    "certificate.issued", "certificate.renewed", "certificate.revoked", "certificate.expiring",
    # dynamic secrets (lifecycle.md §4.4, inferred names)
    "lease.created", "lease.renewed", "lease.revoked", "lease.expired", "engine.health_changed",
    # federation (lifecycle.md §6.6, inferred names)
    "federation.sync.completed", "federation.sync.failed", "federation.conflict.detected",
    # the synthetic event POST /v1/webhooks/{id}/test sends
    "webhook.test",
})
FAMILIES: frozenset[str] = frozenset(name.split(".", 1)[0] for name in CATALOGUE)


def validate_event_types(values: Sequence[str], field: str = "events") -> list[str]:
    """Return ``values`` de-duplicated (order kept) or raise ``invalid_event_type`` naming the bad ones."""
    if not values:
        raise AppError("validation_error", f"{field} must list at least one event type",
                       {"fields": [{"field": field, "message": "at least one event type is required"}]})
    bad = [v for v in values if not _known(v)]
    if bad:
        raise AppError("invalid_event_type", f"unknown event type(s): {', '.join(map(repr, bad[:10]))}",
                       {"field": field, "invalid": bad[:50], "families": sorted(FAMILIES)})
    return list(dict.fromkeys(values))


def _known(value: str) -> bool:
    if value == "*" or value in CATALOGUE:
        return True
    return value.endswith(".*") and value[:-2] in FAMILIES


def type_matches(patterns: Iterable[str], event_type: str) -> bool:
    """Whether ``event_type`` is selected by a list of exact names, ``family.*`` or ``*``."""
    family = event_type.split(".", 1)[0]
    for p in patterns:
        if p == event_type or p == "*" or (p.endswith(".*") and p[:-2] == family):
            return True
    return False


def filters_match(filters: Mapping[str, Any] | None, event: Mapping[str, Any]) -> bool:
    """Webhook ``filters`` (spec §5.3). An event lacking the filtered attribute does not match.

    * ``path_prefix``: the event's ``path`` starts with it;
    * ``secret_type``: the event's ``data.secret_type`` equals it (a string or a list of accepted types);
    * ``tags``: the event's ``data.tags`` contains every listed tag (tags may be a list or a key/value map).
    """
    if not filters:
        return True
    prefix = filters.get("path_prefix")
    if prefix:
        path = event.get("path")
        if not isinstance(path, str) or not path.startswith(prefix):
            return False
    data = event.get("data") or {}
    wanted_type = filters.get("secret_type")
    if wanted_type:
        accepted = {wanted_type} if isinstance(wanted_type, str) else set(wanted_type)
        if data.get("secret_type") not in accepted:
            return False
    tags = filters.get("tags")
    if tags:
        return _tags_match(tags, data.get("tags"))
    return True


def _tags_match(wanted: Any, have: Any) -> bool:
    if isinstance(wanted, Mapping):
        return isinstance(have, Mapping) and all(have.get(k) == v for k, v in wanted.items())
    if isinstance(have, Mapping):
        have_set = {f"{k}:{v}" for k, v in have.items()} | set(have.keys())
    elif isinstance(have, list):
        have_set = {str(t) for t in have}
    else:
        return False
    return all(str(t) in have_set for t in wanted)
