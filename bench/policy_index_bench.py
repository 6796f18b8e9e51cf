"""Policy evaluation cost per check for 1 and 1,000 policies in a tenant.

Run: .venv/bin/python bench/policy_index_bench.py

Scenarios
* tenant with N policies, the caller bound to 3 of them (typical): cost must not grow with N.
* the caller bound to all N policies (worst case): the literal-prefix trie keeps the candidate set small.
* glob matcher vs. an equivalent precompiled regex, for reference.
"""

from __future__ import annotations

import re
import sys
import timeit
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy import Binding, EvalContext, Glob, check, compile_index, parse_policy

NOW = datetime(2024, 6, 7, 12, 0, tzinfo=UTC)
CALLER = ("user:alice", "group:g0", "group:g1")


def make_tenant(n: int, *, bind_all: bool) -> tuple[list, list]:
    policies, bindings = [], []
    for i in range(n):
        rules = [
            {"path_pattern": f"team{i}/app/**", "permissions": ["read", "list"]},
            {
                "path_pattern": f"team{i}/db/*",
                "permissions": ["read"],
                "conditions": {"ip_ranges": ["10.0.0.0/8"]},
            },
            {"path_pattern": f"team{i}/certs/db-*", "permissions": ["read"]},
            {"path_pattern": f"team{i}/root", "permissions": ["admin"], "effect": "deny"},
        ]
        policies.append(parse_policy({"name": f"pol{i}", "rules": rules}, policy_id=f"pol_{i}"))
        who = f"group:g{i % 2}" if bind_all or i < 3 else f"group:other{i}"
        bindings.append(Binding(f"pol_{i}", "group", who))
    # one tenant-wide rule everyone has
    policies.append(
        parse_policy(
            {"name": "shared", "rules": [{"path_pattern": "**/ssl/*", "permissions": ["read"]}]},
            policy_id="pol_shared",
        )
    )
    bindings.append(Binding("pol_shared", "user", "user:alice"))
    return policies, bindings


def per_check_us(n: int, *, bind_all: bool, number: int = 20000) -> tuple[float, float]:
    policies, bindings = make_tenant(n, bind_all=bind_all)
    index = compile_index(policies, bindings, NOW)
    ctx = EvalContext(source_ip="10.1.2.3", now=NOW)
    paths = [
        "team1/app/x/y",
        "team2/db/password",
        "team0/certs/db-primary",
        "team1/root",
        "svc/ssl/cert",
        "none/x",
    ]
    check(index, CALLER, paths[0], "read", ctx)  # warm the view cache
    t = timeit.timeit(
        lambda: [check(index, CALLER, p, "read", ctx) for p in paths], number=number // len(paths)
    )
    build = timeit.timeit(lambda: compile_index(policies, bindings, NOW), number=3) / 3
    return t / (number // len(paths)) / len(paths) * 1e6, build * 1e3


def glob_vs_regex(number: int = 200000) -> None:
    cases = [("app/**", "app/db/password"), ("**/ssl/*", "svc/ssl/cert"), ("app/db-*/x", "app/db-primary/x")]
    rx = {
        "app/**": re.compile(r"app(?:/[^/]+)*"),
        "**/ssl/*": re.compile(r"(?:[^/]+/)+ssl/[^/]+"),
        "app/db-*/x": re.compile(r"app/db-[^/]*/x"),
    }
    for pattern, path in cases:
        g = Glob.compile(pattern)
        segs = path.split("/")
        tg = (
            timeit.timeit(lambda g=g, path=path, segs=segs: g.matches(path, segs), number=number)
            / number
            * 1e9
        )
        r = rx[pattern]
        tr = timeit.timeit(lambda r=r, path=path: r.fullmatch(path), number=number) / number * 1e9
        print(f"  {pattern:<14} glob {tg:6.0f} ns   regex.fullmatch {tr:6.0f} ns")


def main() -> None:
    print("per-check evaluation time (6 paths mixed allow/deny/condition/no-match):")
    for bind_all in (False, True):
        label = "caller bound to all policies" if bind_all else "caller bound to 3 policies  "
        for n in (1, 1000):
            us, build_ms = per_check_us(n, bind_all=bind_all)
            print(f"  {label} | {n:>5} policies: {us:6.2f} us/check   (compile_index {build_ms:7.2f} ms)")
    print("glob matcher vs precompiled regex (path already split once per check):")
    glob_vs_regex()


if __name__ == "__main__":
    main()
