"""Run every benchmark in turn and print their numbers (``make bench``). Each one starts what it needs on free
loopback ports and stops it by pid. Speed targets live here, never in timed tests.

    .venv/bin/python -m bench.run_all [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHES: list[tuple[str, list[str], list[str]]] = [
    # (script, normal args, --quick args)
    ("secrets_bench.py", ["--spawn", "--duration", "15"], ["--spawn", "--duration", "5"]),
    ("audit_bench.py", [], ["--seconds", "2"]),
    ("ratelimit_bench.py", [], ["--seconds", "2"]),
    ("policy_index_bench.py", [], []),
    ("policy_authz_bench.py", [], ["--rounds", "3"]),
    ("crypto_bench.py", [], ["--n", "5000"]),
    ("webhooks_bench.py", ["--events", "1000"], ["--events", "200"]),
    ("identity_sync_bench.py", [], ["--users", "2000", "--groups", "100"]),
    ("pki_bench.py", ["--spawn", "--duration", "10"], ["--spawn", "--duration", "2"]),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs (smoke-check that every bench works)")
    ap.add_argument("--only", help="comma-separated script names to run")
    args = ap.parse_args(argv)
    wanted = {n.strip() for n in args.only.split(",")} if args.only else None
    failed = []
    for script, normal, quick in BENCHES:
        if wanted and script not in wanted and script.removesuffix(".py") not in wanted:
            continue
        print(f"\n===== {script} =====", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / script), *(quick if args.quick else normal)],
                             cwd=HERE.parent)
        print(f"----- {script}: exit {rc} in {time.perf_counter() - t0:.0f}s", flush=True)
        if rc:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
