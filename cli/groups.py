"""Shared command groups: a group such as ``audit`` holds both operator sub-commands (``audit verify``, run
against the database) and user sub-commands (``audit tail``, run through the API), so whichever module registers
first creates it and the other adds to it. Standard library only (the user CLI imports it)."""

from __future__ import annotations

import argparse

_GROUPS = "_scaivault_groups"


def command_group(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """The sub-command action of group ``name`` under ``sub``, created on first use."""
    existing: dict[str, argparse._SubParsersAction] = getattr(sub, _GROUPS, {})  # type: ignore[type-arg]
    if name in existing:
        return existing[name]
    parser = sub.add_parser(name, help=help, description=help)
    action = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")
    existing[name] = action
    setattr(sub, _GROUPS, existing)
    return action
