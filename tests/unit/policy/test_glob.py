"""Path-pattern grammar (spec core.md §7.2)."""

from __future__ import annotations

import pytest

from core.errors import AppError
from policy.glob import Glob

# (pattern, path, expected)
SPEC_TABLE = [
    # the documented table, row by row
    ("app/db", "app/db", True),
    ("app/db", "app/db/password", False),
    ("app/db/*", "app/db/password", True),
    ("app/db/*", "app/db/user", True),
    ("app/db/*", "app/db/primary/password", False),
    ("app/**", "app/db", True),
    ("app/**", "app/db/password", True),
    ("app/**", "app/a/b/c/d/e/f/g/h/i", True),
    ("app/**", "other/app/db", False),
    ("**/ssl/*", "app/ssl/cert", True),
    ("**/ssl/*", "service/ssl/key", True),
    ("**/ssl/*", "ssl/cert", False),
]

MORE = [
    # anchoring: no implicit prefix/suffix matching
    ("app/db", "app/dbx", False),
    ("app/db", "xapp/db", False),
    ("db", "app/db", False),
    ("app", "app/db", False),
    # '*' is exactly one whole segment
    ("app/*", "app", False),
    ("app/*", "app/db/password", False),
    ("*/db", "app/db", True),
    ("*/db", "a/b/db", False),
    ("*", "app", True),
    ("*", "app/db", False),
    # '**' zero or more in the middle / at the end
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/b", True),
    ("a/**/b", "a/x/y/z/b", True),
    ("a/**/b", "a/x/y/z/c", False),
    ("a/**/b", "b", False),
    ("app/**", "app", True),  # trailing /** matches the prefix itself
    ("app/**", "apple", False),
    ("app/**", "apps/x", False),
    ("**", "a", True),
    ("**", "a/b/c", True),
    ("**/db", "x/db", True),
    ("**/db", "db", False),  # leading ** consumes at least one segment
    ("**/db", "x/y/db", True),
    ("**/**/db", "x/db", True),  # collapsed to **/db
    ("a/**/**", "a", True),
    ("**/ssl/**", "app/ssl", True),
    ("**/ssl/**", "app/ssl/x/y", True),
    ("**/ssl/**", "ssl/x", False),
    ("a/*/**", "a", False),
    ("a/*/**", "a/b", True),
    ("a/*/**", "a/b/c/d", True),
    ("a/**/c/*", "a/c/x", True),
    ("a/**/c/*", "a/b/c/x", True),
    ("a/**/c/*", "a/b/c", False),
    # '?' = exactly one character within a segment
    ("app/db?", "app/db1", True),
    ("app/db?", "app/db", False),
    ("app/db?", "app/db12", False),
    ("app/?", "app/x", True),
    ("app/?", "app/xy", False),
    ("a?c", "a/c", False),  # never crosses '/'
    # '*' inside a segment = any run of non-'/' characters
    ("secrets/db-*", "secrets/db-", True),
    ("secrets/db-*", "secrets/db-primary", True),
    ("secrets/db-*", "secrets/db", False),
    ("secrets/db-*", "secrets/db-primary/x", False),
    ("*-key", "api-key", True),
    ("*-key", "api-keys", False),
    ("a*b*c", "abc", True),
    ("a*b*c", "axxbyyc", True),
    ("a*b*c", "axxcyyb", False),
    ("a*b?c", "ab_c", True),
    ("a*b?c", "abxbzc", True),
    ("a*b?c", "abc", False),
    ("x*x", "x", False),
    ("x*x", "xx", True),
    ("env-*/**", "env-prod/db/pw", True),
    ("env-*/**", "env-prod", True),
    ("env-*/**", "other/env-prod", False),
    # case-sensitive
    ("app/db", "App/db", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), SPEC_TABLE + MORE)
def test_match(pattern: str, path: str, expected: bool) -> None:
    assert Glob.compile(pattern).match(path) is expected


def test_pathological_pattern_is_fast_and_correct() -> None:
    # A backtracking regex would take ages here; the chunk matcher is linear-ish.
    g = Glob.compile("*a*a*a*a*a*a*a*a*a*b")
    assert g.match("a" * 500) is False
    assert g.match("a" * 500 + "b") is True


@pytest.mark.parametrize(
    ("pattern", "prefix", "is_literal", "subtree_of"),
    [
        ("app/db", ("app", "db"), True, None),
        ("app/**", ("app",), False, "app"),
        ("app/db-*/x", ("app",), False, None),
        ("**/ssl/*", (), False, None),
        ("**", (), False, ""),
    ],
)
def test_compiled_shape(
    pattern: str, prefix: tuple[str, ...], is_literal: bool, subtree_of: str | None
) -> None:
    g = Glob.compile(pattern)
    assert g.literal_prefix == prefix
    assert g.is_literal is is_literal
    assert g.subtree_of == subtree_of


INVALID = [
    ("", "empty"),
    ("/app/db", "start with '/'"),
    ("app/db/", "end with '/'"),
    ("app//db", "empty segment"),
    ("App/db", "illegal character"),
    ("app/db.key", "illegal character"),
    ("app/db key", "illegal character"),
    ("app/***", "whole segment"),
    ("app/**x", "whole segment"),
    ("x**/app", "whole segment"),
    ("a/b/c/d/e/f/g/h/i/j/k", "more than 10 segments"),
    ("a" * 513, "longer than 512"),
]


@pytest.mark.parametrize(("pattern", "fragment"), INVALID)
def test_invalid(pattern: str, fragment: str) -> None:
    with pytest.raises(AppError) as exc:
        Glob.compile(pattern, "rules[3].path_pattern")
    assert exc.value.code == "invalid_glob"
    assert exc.value.status == 400
    assert fragment in exc.value.message
    assert exc.value.details["field"] == "rules[3].path_pattern"
    assert "pattern" in exc.value.details


def test_non_string_is_invalid() -> None:
    with pytest.raises(AppError) as exc:
        Glob.compile(None)
    assert exc.value.code == "invalid_glob"


def test_ten_segments_and_512_chars_are_allowed() -> None:
    assert Glob.compile("a/b/c/d/e/f/g/h/i/j").match("a/b/c/d/e/f/g/h/i/j")
    assert Glob.compile("a" * 512).match("a" * 512)


def _reference(pattern: str, path: str) -> bool:
    """Straightforward spec implementation: recursion over segments, fnmatch within a segment."""
    from fnmatch import fnmatchcase

    pat, segs = pattern.split("/"), path.split("/")

    def rec(pi: int, si: int) -> bool:
        if pi == len(pat):
            return si == len(segs)
        if pat[pi] == "**":
            start = si + 1 if pi == 0 else si
            return any(rec(pi + 1, k) for k in range(start, len(segs) + 1))
        return si < len(segs) and fnmatchcase(segs[si], pat[pi]) and rec(pi + 1, si + 1)

    return rec(0, 0)


def test_matchers_agree_with_reference_implementation() -> None:
    import random

    rng = random.Random(7)
    seg_pool = ["a", "b", "ab", "*", "**", "a*", "*b", "a?", "?", "a*b*", "*a*b", "a?*b", "**"]
    path_pool = ["a", "b", "ab", "aab", "abb", "ba", "axb", "aabb"]
    checked = 0
    for _ in range(3000):
        pattern = "/".join(rng.choice(seg_pool) for _ in range(rng.randint(1, 4)))
        try:
            g = Glob.compile(pattern)
        except AppError:
            continue
        for _ in range(10):
            path = "/".join(rng.choice(path_pool) for _ in range(rng.randint(1, 5)))
            assert g.match(path) is _reference(g.pattern, path), (pattern, path)
            checked += 1
    assert checked > 10000
