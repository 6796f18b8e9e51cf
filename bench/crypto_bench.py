"""Micro-benchmark of the per-read crypto path: µs per seal / open of a 1 KB payload.

    .venv/bin/python bench/crypto_bench.py [--size 1024] [--n 20000]

Also times a warm ``KeyHierarchy.open`` (cache hit, no KMS call) to show the keyring overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crypto import envelope
from crypto.keyring import InMemoryKeyStore, KeyHierarchy
from crypto.kms import LocalKms


def _per_call_us(fn, n: int) -> float:
    for _ in range(min(n, 1000)):  # warm-up
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


async def _hierarchy_open_us(payload: bytes, n: int) -> float:
    h = KeyHierarchy(LocalKms(os.urandom(32)), InMemoryKeyStore())
    aad = envelope.aad_for_secret("tnt_bench", "bench/path", 1)
    blob = await h.seal(payload, aad, partner_id="ptn_bench", tenant_id="tnt_bench")
    for _ in range(1000):
        await h.open(blob, aad, partner_id="ptn_bench", tenant_id="tnt_bench")
    start = time.perf_counter()
    for _ in range(n):
        await h.open(blob, aad, partner_id="ptn_bench", tenant_id="tnt_bench")
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()

    kek = os.urandom(32)
    payload = os.urandom(args.size)
    aad = envelope.aad_for_secret("tnt_bench", "bench/path", 1)
    blob = envelope.seal(payload, kek, 1, aad)

    print(f"payload {args.size} B, {args.n} iterations")
    print(
        f"aad_for_secret      {_per_call_us(lambda: envelope.aad_for_secret('tnt_bench', 'bench/path', 1), args.n):7.2f} µs"
    )
    print(f"seal                {_per_call_us(lambda: envelope.seal(payload, kek, 1, aad), args.n):7.2f} µs")
    print(f"open_               {_per_call_us(lambda: envelope.open_(blob, kek, aad), args.n):7.2f} µs")
    print(f"KeyHierarchy.open   {asyncio.run(_hierarchy_open_us(payload, args.n)):7.2f} µs (warm cache)")


if __name__ == "__main__":
    main()
