"""docs/events.md "Catalogue" lists exactly the subscribable event types, and every event type the code emits is
subscribable by name (issue 21 item 4: secret.restored and secret.versions_destroyed were emitted and documented
but refused as 400 invalid_event_type)."""

from __future__ import annotations

import re
from pathlib import Path

from services.events.catalogue import CATALOGUE, validate_event_types

ROOT = Path(__file__).resolve().parents[2]
_FAMILIES = ("secret", "policy", "rotation", "certificate", "lease", "engine", "federation", "webhook")
# event type literals in code that are not event types (a Temporal signal name, ...)
_NOT_EVENTS = {"webhook.redeliver"}


def documented() -> set[str]:
    text = (ROOT / "docs/events.md").read_text()
    section = text.split("## Catalogue", 1)[1].split("**Decision:**", 1)[0]
    names: set[str] = set()
    for token in re.findall(r"`([a-z_.|]+)`", section):
        head, _, rest = token.partition("|")
        stem = head.rpartition(".")[0]
        names.add(head)
        names.update(f"{stem}.{alt}" for alt in rest.split("|") if alt)
    return {n for n in names if "." in n}


def emitted() -> set[str]:
    families = "|".join(_FAMILIES)
    pattern = re.compile(r"""["']((?:""" + families + r""")\.[a-z_]+(?:\.[a-z_]+)?)["']""")
    found: set[str] = set()
    for folder in ("services", "api", "activities", "workflows", "repositories", "worker", "secretgen", "audit"):
        for f in (ROOT / folder).rglob("*.py"):
            found.update(pattern.findall(f.read_text()))
    return found - _NOT_EVENTS


def test_documented_catalogue_is_the_code_catalogue() -> None:
    assert documented() == set(CATALOGUE)


def test_every_documented_event_type_is_subscribable_by_name() -> None:
    names = sorted(documented())
    assert "secret.restored" in names and "secret.versions_destroyed" in names
    assert validate_event_types(names) == names


def test_every_event_type_the_code_emits_is_catalogued() -> None:
    missing = emitted() - set(CATALOGUE)
    assert not missing, f"emitted but not in services/events/catalogue.py CATALOGUE: {sorted(missing)}"
