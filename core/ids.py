"""Prefixed, time-sortable identifiers (``pol_01JD...``), ULID layout in Crockford base32."""

from __future__ import annotations

import base64
import os
import time

# Crockford's alphabet, mapped from RFC 4648 base32 so encoding runs in C (this is on every request).
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = str.maketrans(_B32, _CROCKFORD)


def ulid() -> str:
    """26-char ULID: 48-bit millisecond timestamp + 80 random bits; lexicographically sortable."""
    raw = (int(time.time() * 1000) << 80 | int.from_bytes(os.urandom(10), "big")).to_bytes(16, "big")
    # 128 bits -> 26 base32 chars: left-pad to 130 bits by prefixing two zero bits (one zero byte -> 4 extra chars)
    return base64.b32encode(b"\x00\x00\x00\x00" + raw).decode()[6:32].translate(_TO_CROCKFORD)


def new_id(prefix: str) -> str:
    return f"{prefix}_{ulid()}"
