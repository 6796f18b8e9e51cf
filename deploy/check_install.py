"""Build-time check that the installed ``scaivault`` distribution is complete.

Imports every module the wheel installed, from outside the source tree, so a top-level package that
``[tool.setuptools.packages.find]`` forgot to include (or a module importing one) fails the image build
instead of the first request. Run as ``cd / && python /src/deploy/check_install.py``.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import sys

# Not imported: alembic's env.py runs migrations on import; the dev stack and the ScaiKey emulator need
# dev-only extras. ``__main__`` modules run their command on import.
SKIP_PREFIXES = ("migrations/", "devstack/", "scaikey_emulator/")


def installed_modules() -> list[str]:
    files = md.files("scaivault") or []
    names = set()
    for f in files:
        path = f.as_posix()
        if f.suffix != ".py" or f.name == "__main__.py" or path.startswith(SKIP_PREFIXES):
            continue
        names.add(path[:-3].replace("/", ".").removesuffix(".__init__"))
    return sorted(names)


def main() -> int:
    if "" in sys.path or any(p.rstrip("/") == "/src" for p in sys.path):
        print("run this from outside the source tree (cd / first)", file=sys.stderr)
        return 2
    modules = installed_modules()
    failures = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failures.append(f"  {name}: {type(exc).__name__}: {exc}")
    if failures or not modules:
        print("installed scaivault package is incomplete (check [tool.setuptools.packages.find] include):",
              file=sys.stderr)
        print("\n".join(failures) or "  no modules installed", file=sys.stderr)
        return 1
    print(f"scaivault install OK: {len(modules)} modules import")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
