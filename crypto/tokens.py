"""Personal access tokens: ``skt_`` + 32 random base62 chars + 6-char base62 CRC32 checksum.

* The checksum (CRC32 of ``skt_`` + random part, base62, zero-padded to 6) lets clients and the server
  reject typos and truncated tokens offline, before any lookup.
* The random part carries 32 * log2(62) ≈ 190 bits of entropy.
* Only ``hash_token(token, key)`` (HMAC-SHA256 under ``TOKEN_HMAC_KEY``) is stored. The token is shown once.
* ``token_id_prefix`` (``skt_`` + first 8 random chars) is safe to store and display to identify a token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib

PREFIX = "skt_"
RANDOM_LEN = 32
CHECKSUM_LEN = 6
DISPLAY_PREFIX_LEN = len(PREFIX) + 8
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PAT_RE = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{RANDOM_LEN},}}")  # fullmatch: `$` accepts a final newline
_MIN_LEN = len(PREFIX) + RANDOM_LEN + CHECKSUM_LEN


def _base62(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
    return "".join(reversed(out)).rjust(width, "0")


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LEN)


def generate_pat() -> tuple[str, str]:
    """Return ``(token, token_id_prefix)``. Show the token once; store its hash and the prefix."""
    body = PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LEN))
    token = body + _checksum(body)
    return token, token[:DISPLAY_PREFIX_LEN]


def looks_like_pat(s: str) -> bool:
    """Shape check only: ``skt_`` followed by at least 38 base62 characters."""
    return len(s) >= _MIN_LEN and _PAT_RE.fullmatch(s) is not None


def checksum_ok(s: str) -> bool:
    """True when ``s`` looks like a PAT and its trailing checksum matches (detects typos offline)."""
    if not looks_like_pat(s):
        return False
    body, check = s[:-CHECKSUM_LEN], s[-CHECKSUM_LEN:]
    return hmac.compare_digest(_checksum(body), check)


def token_id_prefix(token: str) -> str:
    """The displayable identifier of a token (same value :func:`generate_pat` returned)."""
    return token[:DISPLAY_PREFIX_LEN]


def hash_token(token: str, key: bytes) -> str:
    """Hex HMAC-SHA256 of the token under ``key`` (TOKEN_HMAC_KEY). This is what gets stored."""
    if not key:
        raise ValueError("token HMAC key must not be empty")
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Timing-safe comparison of two strings or byte strings."""
    a_b = a.encode() if isinstance(a, str) else a
    b_b = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_b, b_b)


def verify_token(token: str, key: bytes, stored_hash: str) -> bool:
    """Constant-time check of a presented token against the stored hash."""
    return constant_time_equals(hash_token(token, key), stored_hash)
