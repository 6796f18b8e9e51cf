"""Character sets and character classes for the ``random`` generator (spec core.md §10.7)."""

from __future__ import annotations

import string
from typing import Final

UPPER: Final = string.ascii_uppercase
LOWER: Final = string.ascii_lowercase
DIGITS: Final = string.digits
ALPHA: Final = UPPER + LOWER
ALNUM: Final = ALPHA + DIGITS
#: ``safe`` symbols: no quotes, backslash, backtick, ``$``, ``&``, ``|``, ``;``, spaces or brackets,
#: so values survive shells, URLs (mostly), YAML and connection strings without escaping.
SAFE_SYMBOLS: Final = "-_.~!@#%^*+="
SYMBOLS: Final = string.punctuation

CHARSETS: Final[dict[str, str]] = {
    "alphanumeric": ALNUM,
    "alpha": ALPHA,
    "numeric": DIGITS,
    "hex": "0123456789abcdef",
    "safe": ALNUM + SAFE_SYMBOLS,
    "symbols": SYMBOLS,
    "all": ALNUM + SYMBOLS,
}

#: Requirement flag -> predicate on a character. The classes are disjoint.
CLASSES: Final = {
    "require_upper": frozenset(UPPER),
    "require_lower": frozenset(LOWER),
    "require_digit": frozenset(DIGITS),
    "require_symbol": frozenset(SYMBOLS),
}


def class_members(alphabet: str, flag: str) -> str:
    members = CLASSES[flag]
    return "".join(c for c in alphabet if c in members)


def acceptance_probability(alphabet_size: int, class_sizes: list[int], length: int) -> float:
    """P(a uniform random string of ``length`` over the alphabet contains >= 1 char of every class).

    Inclusion-exclusion over the (disjoint) required classes. Used to refuse configs for which
    rejection sampling would need too many draws.
    """
    total = 0.0
    k = len(class_sizes)
    for mask in range(1 << k):
        missing = sum(class_sizes[i] for i in range(k) if mask >> i & 1)
        sign = -1.0 if bin(mask).count("1") % 2 else 1.0
        total += sign * ((alphabet_size - missing) / alphabet_size) ** length
    return max(0.0, total)
