"""Path-pattern grammar (spec core.md §7.2): validation and compilation to a segment matcher.

Grammar (segments separated by ``/``, characters ``a-z 0-9 - _`` plus wildcards):

* ``*`` as a whole segment: exactly one segment.
* ``*`` inside a segment (``db-*``): any run of characters within that segment (possibly empty).
* ``?``: exactly one character within a segment.
* ``**`` as a whole segment: any number of segments, including zero; but as the *first* segment it must
  consume at least one (``**/ssl/*`` does not match ``ssl/cert``). A trailing ``/**`` therefore also
  matches the prefix itself (``app/**`` matches ``app``). Consecutive ``**`` segments collapse into one.
* Matching is anchored at both ends and case-sensitive.

Compilation picks the cheapest matcher for the shape of the pattern (exact string, literal subtree,
fixed segment count, general). Wildcard segments never use a backtracking regex over the whole
segment: ``*`` splits the segment into fixed-width chunks that are placed greedily (left-most), which
is exact for fixed-width chunks and linear-ish in the segment length, so no pattern can blow up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

from core.errors import AppError

MAX_PATTERN_CHARS: Final = 512
MAX_SEGMENTS: Final = 10
_LEGAL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_*?")
_WILD = frozenset("*?")

SegmentMatcher = Callable[[str], bool]


class _DStar:
    """Sentinel for a ``**`` segment."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "**"


DSTAR: Final = _DStar()


def _invalid(pattern: object, field: str, message: str) -> AppError:
    shown = pattern if isinstance(pattern, str) and len(pattern) <= MAX_PATTERN_CHARS else None
    return AppError("invalid_glob", f"{field}: {message}", {"pattern": shown, "field": field})


def validate(pattern: object, field: str = "path_pattern") -> list[str]:
    """Check ``pattern`` against the grammar and return its segments (``**`` runs collapsed).

    Raises ``AppError("invalid_glob")`` with ``details = {"pattern", "field"}``.
    """
    if not isinstance(pattern, str):
        raise _invalid(pattern, field, "path pattern must be a string")
    if not pattern:
        raise _invalid(pattern, field, "path pattern must not be empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise _invalid(pattern, field, f"path pattern is longer than {MAX_PATTERN_CHARS} characters")
    if pattern.startswith("/"):
        raise _invalid(pattern, field, "path pattern must not start with '/' (patterns are relative paths)")
    if pattern.endswith("/"):
        raise _invalid(pattern, field, "path pattern must not end with '/' (use 'prefix/**' for a subtree)")
    bad = sorted(set(pattern) - _LEGAL - {"/"})
    if bad:
        raise _invalid(
            pattern,
            field,
            f"illegal character(s) {''.join(bad)!r}; allowed are a-z 0-9 - _ / and the wildcards * ? **",
        )
    segments = pattern.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise _invalid(pattern, field, f"path pattern has more than {MAX_SEGMENTS} segments")
    out: list[str] = []
    for i, seg in enumerate(segments):
        if not seg:
            raise _invalid(pattern, field, f"empty segment at position {i} ('//')")
        if "**" in seg and seg != "**":
            raise _invalid(
                pattern,
                field,
                f"segment {seg!r}: '**' must be a whole segment on its own (use '*' inside a segment)",
            )
        if seg == "**" and out and out[-1] == "**":
            continue  # '**/**' == '**'
        out.append(seg)
    return out


class _WildSegment:
    """Matcher for one segment containing ``*`` and/or ``?`` (but not only a lone ``*``)."""

    __slots__ = ("_head", "_middle", "_min_len", "_star", "_tail")

    def __init__(self, seg: str) -> None:
        chunks = seg.split("*")
        self._star = len(chunks) > 1
        self._head = _Chunk(chunks[0])
        self._tail = _Chunk(chunks[-1]) if self._star else None
        self._middle = tuple(_Chunk(c) for c in chunks[1:-1] if c)
        self._min_len = sum(len(c) for c in chunks)

    def __call__(self, s: str) -> bool:
        n = len(s)
        if not self._star:
            return n == self._min_len and self._head.match_at(s, 0)
        if n < self._min_len or not self._head.match_at(s, 0):
            return False
        tail = self._tail
        assert tail is not None
        end = n - tail.width
        if not tail.match_at(s, end):
            return False
        pos = self._head.width
        for chunk in self._middle:  # greedy left-most placement is exact for fixed-width chunks
            found = chunk.find(s, pos, end)
            if found < 0:
                return False
            pos = found + chunk.width
        return True


class _Chunk:
    """A fixed-width piece of a segment pattern: literal characters and ``?``."""

    __slots__ = ("_re", "text", "width")

    def __init__(self, text: str) -> None:
        self.text = text
        self.width = len(text)
        self._re = (
            re.compile("".join("[^/]" if c == "?" else re.escape(c) for c in text)) if "?" in text else None
        )

    def match_at(self, s: str, pos: int) -> bool:
        if self._re is None:
            return s.startswith(self.text, pos)
        return self._re.match(s, pos) is not None

    def find(self, s: str, start: int, end: int) -> int:
        """Left-most position in ``[start, end - width]`` where the chunk matches, else -1."""
        if self._re is None:
            return s.find(self.text, start, end)
        m = self._re.search(s, start, end)
        return m.start() if m else -1


def _nonempty(s: str) -> bool:
    return s != ""


class Glob:
    """A compiled, validated path pattern.

    ``matches(path, segments)`` takes both the path string and ``path.split("/")`` so callers that test
    many patterns against one path split it once. ``match(path)`` is the convenience form.
    ``literal_prefix`` is the tuple of leading literal segments (used by the index trie) and
    ``literal_head`` the leading string before the first wildcard character (used for list pruning).
    """

    __slots__ = (
        "_fixed_after",
        "_parts",
        "is_literal",
        "literal_head",
        "literal_prefix",
        "matches",
        "pattern",
        "subtree_of",
    )

    def __init__(self, pattern: str, segments: list[str]) -> None:
        self.pattern = pattern
        parts: list[SegmentMatcher | _DStar] = []
        for seg in segments:
            if seg == "**":
                parts.append(DSTAR)
            elif seg == "*":
                parts.append(_nonempty)
            elif _WILD.intersection(seg):
                parts.append(_WildSegment(seg))
            else:
                parts.append(seg.__eq__)
        self._parts: tuple[SegmentMatcher | _DStar, ...] = tuple(parts)
        fixed_after = [0] * (len(parts) + 1)
        for i in range(len(parts) - 1, -1, -1):
            fixed_after[i] = fixed_after[i + 1] + (parts[i] is not DSTAR)
        self._fixed_after: tuple[int, ...] = tuple(fixed_after)
        prefix: list[str] = []
        for seg in segments:
            if _WILD.intersection(seg):
                break
            prefix.append(seg)
        self.literal_prefix: tuple[str, ...] = tuple(prefix)
        self.is_literal = len(prefix) == len(segments)
        cut = min((i for i, c in enumerate(pattern) if c in _WILD), default=len(pattern))
        self.literal_head = pattern[:cut]
        #: ``"a/b"`` for ``a/b/**``: the pattern matches exactly that subtree (including ``a/b``).
        self.subtree_of: str | None = None
        if pattern == "**":
            self.subtree_of = ""
        elif len(segments) >= 2 and segments[-1] == "**" and len(prefix) == len(segments) - 1:
            self.subtree_of = "/".join(prefix)
        self.matches: Callable[[str, Sequence[str]], bool] = self._pick_matcher(segments)

    @classmethod
    def compile(cls, pattern: object, field: str = "path_pattern") -> Glob:
        """Validate and compile. Raises ``AppError("invalid_glob")``."""
        segments = validate(pattern, field)
        assert isinstance(pattern, str)
        return cls(pattern if len(segments) == pattern.count("/") + 1 else "/".join(segments), segments)

    def match(self, path: str) -> bool:
        return self.matches(path, path.split("/"))

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Glob) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    # -- matcher selection ---------------------------------------------------------------------
    def _pick_matcher(self, segments: list[str]) -> Callable[[str, Sequence[str]], bool]:
        if self.is_literal:
            exact = self.pattern
            return lambda path, _segs: path == exact
        if self.subtree_of == "":
            return lambda path, _segs: path != ""
        if self.subtree_of is not None:
            root = self.subtree_of
            below = root + "/"
            return lambda path, _segs: path == root or path.startswith(below)
        if all(seg == "**" or seg.count("*") <= 1 for seg in segments):
            # At most one '*' per segment: a whole-pattern regex cannot backtrack badly (each '[^/]*'
            # is pinned between literals/'/'), and re's C loop beats the Python segment walk (bench).
            fullmatch = _to_regex(segments).fullmatch
            return lambda path, _segs: fullmatch(path) is not None
        if DSTAR not in self._parts:
            return self._fixed
        return self._general

    def _fixed(self, _path: str, segs: Sequence[str]) -> bool:
        parts = self._parts
        if len(segs) != len(parts):
            return False
        for p, s in zip(parts, segs, strict=True):
            if not p(s):  # type: ignore[operator]
                return False
        return True

    def _general(self, _path: str, segs: Sequence[str]) -> bool:
        if len(segs) < self._fixed_after[0]:
            return False
        return _match_from(self._parts, self._fixed_after, 0, segs, 0)


def _segment_regex(seg: str) -> str:
    if seg == "*":
        return "[^/]+"
    return "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in seg)


def _to_regex(segments: list[str]) -> re.Pattern[str]:
    """Whole-pattern regex with the same semantics as the segment matcher (used when it is safe)."""
    if segments == ["**"]:
        return re.compile(r"[^/]+(?:/[^/]+)*")
    out: list[str] = []
    need_sep = False
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg == "**":
            if i == 0:
                out.append(r"(?:[^/]+/)+")  # leading '**' consumes at least one segment
                need_sep = False
            elif i == last:
                out.append(r"(?:/[^/]+)*")  # trailing '/**' also matches the prefix itself
            else:
                out.append(r"/(?:[^/]+/)*")
                need_sep = False
            continue
        if need_sep:
            out.append("/")
        out.append(_segment_regex(seg))
        need_sep = True
    return re.compile("".join(out))


def _match_from(
    parts: Sequence[SegmentMatcher | _DStar],
    fixed_after: Sequence[int],
    pi: int,
    segs: Sequence[str],
    si: int,
) -> bool:
    n = len(segs)
    while pi < len(parts):
        p = parts[pi]
        if p is DSTAR:
            lo = si + 1 if pi == 0 else si  # a leading '**' consumes at least one segment
            if pi == len(parts) - 1:
                return n >= lo
            for k in range(lo, n - fixed_after[pi + 1] + 1):
                if _match_from(parts, fixed_after, pi + 1, segs, k):
                    return True
            return False
        if si >= n or not p(segs[si]):  # type: ignore[operator]
            return False
        pi += 1
        si += 1
    return si == n


def compile_glob(pattern: object, field: str = "path_pattern") -> Glob:
    """Module-level alias of :meth:`Glob.compile`."""
    return Glob.compile(pattern, field)
