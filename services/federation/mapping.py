"""``path_mapping``: ``{"local/prefix/**": "remote/prefix/**"}``. The ``**`` is the last segment on both sides and
carries the remainder of the path; the local side needs a literal prefix (a mapping never claims the whole tenant).

The compiled form is a list of (local prefix, remote prefix) pairs; matching a local path is a prefix test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import AppError
from services.secrets import input as inp

MAX_MAPPINGS = 20
_REMOTE_RE = re.compile(r"[A-Za-z0-9/_+=.@-]+")


def _err(field: str, message: str) -> AppError:
    return AppError("validation_error", f"path_mapping: {message}",
                    {"fields": [{"field": f"path_mapping.{field}" if field else "path_mapping", "message": message}]})


@dataclass(frozen=True, slots=True)
class Mapping:
    local: str    # "external/hashicorp/" (ends with "/")
    remote: str   # "app/" or "" (the remote key prefix; for Vault, relative to the mount)

    def to_remote(self, path: str) -> str:
        return self.remote + path[len(self.local):]

    def to_local(self, key: str) -> str:
        return self.local + key[len(self.remote):]

    def matches(self, path: str) -> bool:
        return path.startswith(self.local) and len(path) > len(self.local)


def _prefix(pattern: str, field: str, *, local: bool) -> str:
    if not isinstance(pattern, str) or not pattern or len(pattern) > 512:
        raise _err(field, "patterns must be non-empty strings of at most 512 characters")
    if pattern.count("**") != 1 or not pattern.endswith("**") or "*" in pattern[:-2]:
        raise _err(field, f"{'local' if local else 'remote'} pattern {pattern!r} must end in '**' "
                          "(exactly one, as the last segment, no other wildcard)")
    prefix = pattern[:-2]
    if prefix and not prefix.endswith("/"):
        raise _err(field, f"'**' must be a whole segment in {pattern!r}")
    if local and not prefix:
        raise _err(field, "the local pattern needs a literal prefix (a mapping cannot claim every path)")
    body = prefix.rstrip("/")
    if body and local:
        problem = inp.path_problem(body)
        if problem is not None:
            raise _err(field, f"invalid prefix in {pattern!r}: {problem}")
    if body and not local and (_REMOTE_RE.fullmatch(body) is None or "//" in body or body.startswith("/")):
        raise _err(field, f"invalid remote prefix in {pattern!r} (letters, digits, '/_+=.@-' only, no empty segment)")
    return prefix


def compile_mapping(value: object, *, vault: bool) -> list[Mapping]:
    """Validate and compile. For Vault the remote template is ``<mount>/data/<prefix>**`` (the KV v2 API path, as
    in the docs' ``secret/data/**``); the mount is kept in the compiled remote prefix as ``<mount>/``."""
    if not isinstance(value, dict) or not value:
        raise _err("", "must be a non-empty object {local_pattern: remote_template}")
    if len(value) > MAX_MAPPINGS:
        raise _err("", f"at most {MAX_MAPPINGS} mappings per backend")
    out: list[Mapping] = []
    for local, remote in value.items():
        lp = _prefix(local, local, local=True)
        rp = _prefix(remote, local, local=False)
        if vault:
            parts = rp.split("/", 2)
            if len(parts) < 3 or parts[1] != "data" or not parts[0]:
                raise _err(local, f"a Vault KV v2 template looks like '<mount>/data/**', not {remote!r}")
            rp = parts[0] + "/" + parts[2]
        out.append(Mapping(lp, rp))
    check_disjoint([m.local for m in out], [m.local for m in out], same=True)
    return out


def overlaps(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


def check_disjoint(mine: list[str], others: list[str], *, same: bool = False, other_name: str = "") -> None:
    for i, a in enumerate(mine):
        for j, b in enumerate(others):
            if same and i == j:
                continue
            if overlaps(a, b):
                where = "another mapping of this backend" if same else f"a mapping of backend {other_name!r}"
                raise _err(a + "**", f"{a}** overlaps {b}** ({where}); local patterns must be disjoint")


def vault_split(remote_key: str) -> tuple[str, str]:
    """"secret/app/db" -> ("secret", "app/db")."""
    mount, _, key = remote_key.partition("/")
    return mount, key


def find(mappings: list[Mapping], path: str) -> Mapping | None:
    for m in mappings:
        if m.matches(path):
            return m
    return None
