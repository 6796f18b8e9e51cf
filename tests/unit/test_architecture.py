"""docs/architecture.md stays true: every module is listed, and the import directions hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tools import module_index

ROOT = Path(__file__).resolve().parents[2]
PROJECT = set(module_index.PACKAGES)

# package -> project packages it must never import (docs/architecture.md "Import directions")
FORBIDDEN = {
    "crypto": PROJECT - {"crypto", "core"},
    "policy": PROJECT - {"policy", "core"},
    "secretgen": PROJECT - {"secretgen", "core"},
    "core": PROJECT - {"core"},
    "models": PROJECT - {"models", "core"},
    "repositories": {"api", "services", "activities", "workflows", "worker", "cli"},
    "services": {"activities", "cli", "devstack"},
    "activities": {"api", "cli", "worker"},
    "clients": PROJECT - {"clients", "core"},
    "sdk": PROJECT,                   # scaivault-sdk installs alone: no server package (docs/sdk.md)
    "cli/user": PROJECT - {"cli"},    # the user CLI runs on the SDK only (docs/cli.md)
}
# Value types and the request context that lower layers may share (documented in architecture.md).
ALLOWED_API_MODULES = {"api.context", "api.state", "api.deps", "api.errors"}


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def _files(pkg: str) -> list[Path]:
    return sorted(p for p in (ROOT / pkg).rglob("*.py") if "/versions/" not in p.as_posix())


def test_module_index_in_architecture_doc_is_current():
    assert module_index.main(["--check"]) == 0, "run: .venv/bin/python -m tools.module_index"


def test_every_module_has_a_docstring():
    assert [m for m, first in module_index.modules() if not first] == []


@pytest.mark.parametrize("pkg", sorted(FORBIDDEN))
def test_import_directions(pkg):
    bad = []
    for f in _files(pkg):
        for mod in _imports(f):
            top = mod.split(".")[0]
            if top in FORBIDDEN[pkg] and not (top == "api" and mod in ALLOWED_API_MODULES):
                bad.append(f"{f.relative_to(ROOT)} imports {mod}")
    assert bad == []


def test_workflows_import_only_their_types_and_activity_references():
    bad = []
    for f in _files("workflows"):
        for mod in _imports(f):
            top = mod.split(".")[0]
            if top in PROJECT and not (mod.startswith("workflows.types") or top == "activities"):
                bad.append(f"{f.relative_to(ROOT)} imports {mod}")
    assert bad == []


def test_routers_reach_sql_only_through_services():
    """Routers may import repository *value types*, never run repository functions themselves."""
    bad = []
    for f in _files("api/routers"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "repositories":
                bad.append(f"{f.relative_to(ROOT)}: from repositories import {[a.name for a in node.names]}")
            if isinstance(node, ast.Import) and any(a.name.startswith("repositories") for a in node.names):
                bad.append(f"{f.relative_to(ROOT)}: import repositories")
    assert bad == []
