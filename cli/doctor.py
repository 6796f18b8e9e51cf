"""``scaivault doctor``: the troubleshooting pages' checks (core.md §12.4, docs/operations.md "Troubleshooting")
against a running deployment, each with what is wrong and what to do.

Checks, in order: ``api`` (reachable), ``token`` (valid, ``whoami``), ``health`` (``/v1/health/detailed``: each
dependency, pool, latencies), ``policy`` (``--path``: a dry run for the caller or ``--identity``), ``webhooks``
(each enabled webhook gets a synthetic ``webhook.test`` from the server, plus its failed deliveries of the last
24 h), ``identity`` (last sync: status, age, ``users_method``), ``migrations`` (database revision vs the code's
head), ``workflows`` (failed or timed-out workflows of the last 24 h and running ones whose activity keeps
retrying, through the Temporal client), ``clock`` (skew against ScaiKey's and the API's ``Date`` header).

The API URL and token come from ``--url``/``--token``, else ``SCAIVAULT_URL``/``SCAIVAULT_TOKEN``, else the user
CLI's config file. The server-side checks (migrations, workflows, ScaiKey clock) use the deployment's own
settings (DATABASE_URL, TEMPORAL_*, SCAIKEY_URL) when present; without them they are skipped, not failed.

Exit 0 when no check failed (warnings and skips included), 1 otherwise (with a summary); ``--json`` prints one
object ``{"healthy", "failed", "checks": [{"name", "status", "summary", "hint", "details"}]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
_MARK = {OK: "ok  ", WARN: "warn", FAIL: "FAIL", SKIP: "skip"}


@dataclass
class Check:
    name: str
    status: str
    summary: str
    hint: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _error(r: httpx.Response) -> tuple[str, str]:
    try:
        err = r.json().get("error") or {}
        return str(err.get("code") or r.status_code), str(err.get("message") or r.text[:200])
    except ValueError:
        return str(r.status_code), r.text[:200]


_TOKEN_HINTS = {
    "token_expired": "the token has expired: get a new one (scaivault auth login, or your client-credentials flow)",
    "token_invalid": "the token is not valid here: a token from another ScaiKey environment, or a stale JWKS after "
                     "a ScaiKey key rotation (refreshed automatically within ~10 min)",
    "token_revoked": "the token was revoked: issue a new one",
    "authentication_required": "no token was sent: pass --token or set SCAIVAULT_TOKEN",
}


class Doctor:
    def __init__(self, args: argparse.Namespace, http: httpx.AsyncClient, settings: Any) -> None:
        self.args = args
        self.http = http
        self.settings = settings
        self.checks: list[Check] = []
        self.whoami: dict[str, Any] | None = None
        self.api_date: datetime | None = None

    def add(self, *a: Any, **kw: Any) -> Check:
        c = Check(*a, **kw)
        self.checks.append(c)
        return c

    async def run(self) -> list[Check]:
        if not await self.api_and_token():
            await self.server_side()
            return self.checks
        await self.health()
        await self.policy()
        await self.webhooks()
        await self.identity()
        await self.server_side()
        return self.checks

    async def server_side(self) -> None:
        await self.migrations()
        await self.workflows()
        await self.clock()

    # ----------------------------------------------------------------------------------------- API checks
    async def api_and_token(self) -> bool:
        try:
            r = await self.http.get("/v1/health")
        except httpx.HTTPError as exc:
            self.add("api", FAIL, f"API unreachable at {self.http.base_url}: {type(exc).__name__}",
                     "check --url / SCAIVAULT_URL, that the API process runs, and the network path to it")
            return False
        self.api_date = _date(r)
        self.add("api", OK, f"API answers at {self.http.base_url}")
        if not self.args.token:
            self.add("token", FAIL, "no token", _TOKEN_HINTS["authentication_required"])
            return False
        r = await self.http.get("/v1/auth/whoami")
        if r.status_code != 200:
            code, message = _error(r)
            self.add("token", FAIL, f"{r.status_code} {code}: {message}", _TOKEN_HINTS.get(code, ""),
                     {"code": code})
            return False
        me = r.json()
        self.whoami = me
        expires = me.get("token_expires_at")
        self.add("token", OK, f"{me.get('identity_id')} in tenant {me.get('tenant_id')}, scopes "
                 f"{' '.join(me.get('scopes') or [])}" + (f", expires {expires}" if expires else ""), details=me)
        return True

    async def health(self) -> None:
        r = await self.http.get("/v1/health/detailed")
        if r.status_code == 403:
            self.add("health", SKIP, "/v1/health/detailed needs the admin scope", "run doctor with an admin token")
            return
        if r.status_code != 200:
            code, message = _error(r)
            self.add("health", FAIL, f"/v1/health/detailed answered {r.status_code} {code}: {message}")
            return
        body = r.json()
        checks = body.get("checks") or {}
        bad = {name: c for name, c in checks.items() if isinstance(c, dict) and c.get("status") not in ("ok", None)}
        db = checks.get("database") or {}
        facts = [f"database {db.get('latency_ms')} ms, pool {db.get('pool_available')}/{db.get('pool_size')} "
                 "available"] if db else []
        redis = checks.get("redis") or {}
        if redis.get("latency_ms") is not None:
            facts.append(f"redis {redis.get('latency_ms')} ms")
        if not bad and body.get("status") in ("healthy", None):
            self.add("health", OK, "all dependencies ok" + (f" ({'; '.join(facts)})" if facts else ""),
                     details=body)
            return
        names = ", ".join(f"{n}: {c.get('status')}" + (f" ({c.get('error')})" if c.get("error") else "")
                          for n, c in sorted(bad.items()))
        self.add("health", FAIL, f"status {body.get('status')}: {names}",
                 "a dependency is failing: check that service and the API's connection settings for it "
                 "(REDIS_URL, DATABASE_URL, KMS_*, TEMPORAL_ADDRESS)", body)

    async def policy(self) -> None:
        if not self.args.path:
            return
        identity = self.args.identity or (self.whoami or {}).get("identity_id")
        body = {"identity_id": identity, "path": self.args.path, "permission": self.args.permission}
        r = await self.http.post("/v1/policies/test", json=body)
        if r.status_code != 200:
            code, message = _error(r)
            self.add("policy", FAIL, f"policy test answered {r.status_code} {code}: {message}",
                     "the dry run needs the policies:read scope (or admin)")
            return
        d = r.json()
        what = f"{identity} {self.args.permission} {self.args.path}"
        if d.get("allowed"):
            self.add("policy", OK, f"{what}: allowed by {d.get('matched_policy')}", details=d)
            return
        why = d.get("failed_condition") or d.get("reason") or d.get("code") or "no policy grants it"
        self.add("policy", FAIL, f"{what}: denied ({why})",
                 "if a group grant should apply, the group may not be in the identity cache yet (POST "
                 "/v1/identity/sync?tenant_id=...); check the failed condition; patterns are anchored ('*' is one "
                 "segment, '**' any depth)", d)

    async def webhooks(self) -> None:
        r = await self.http.get("/v1/webhooks", params={"limit": 100})
        if r.status_code == 403:
            self.add("webhooks", SKIP, "listing webhooks needs the admin scope")
            return
        if r.status_code != 200:
            code, message = _error(r)
            self.add("webhooks", FAIL, f"/v1/webhooks answered {r.status_code} {code}: {message}")
            return
        hooks = [h for h in r.json().get("webhooks", []) if h.get("enabled")]
        if not hooks:
            self.add("webhooks", OK, "no enabled webhooks")
            return
        unreachable, failing, details = [], [], {}
        since = datetime.now(UTC) - timedelta(hours=24)
        for hook in hooks[: self.args.webhook_limit]:
            info: dict[str, Any] = {"url": hook.get("url")}
            if not self.args.no_webhook_test:
                t = await self.http.post(f"/v1/webhooks/{hook['id']}/test")
                res = t.json() if t.status_code == 200 else {"status": "failed", "error": _error(t)[1]}
                info["test"] = res
                if res.get("status") != "success":
                    unreachable.append(f"{hook.get('name') or hook['id']} ({hook.get('url')}): "
                                       f"{res.get('error') or res.get('response_code')}")
            d = await self.http.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"status": "failed",
                                                                                     "limit": 20})
            recent = [x for x in (d.json().get("deliveries", []) if d.status_code == 200 else [])
                      if _after(x.get("updated_at") or x.get("created_at"), since)]
            info["failed_deliveries_24h"] = len(recent)
            if recent:
                failing.append(f"{hook.get('name') or hook['id']}: {len(recent)} failed in 24 h")
            details[hook["id"]] = info
        if unreachable:
            self.add("webhooks", FAIL, "unreachable: " + "; ".join(unreachable),
                     "check the receiver is up and reachable from the API/worker network (DNS, firewall, TLS); "
                     "then redeliver failed deliveries (POST /v1/webhooks/{id}/deliveries/{delivery}/redeliver)",
                     details)
        elif failing:
            self.add("webhooks", WARN, "; ".join(failing), "see GET /v1/webhooks/{id}/deliveries?status=failed",
                     details)
        else:
            self.add("webhooks", OK, f"{len(details)} webhook(s) reachable, no failed deliveries in 24 h",
                     details=details)

    async def identity(self) -> None:
        r = await self.http.get("/v1/identity/sync/history", params={"page_size": 1})
        if r.status_code in (401, 403):
            self.add("identity", SKIP, "reading sync history needs the identity read scope")
            return
        if r.status_code != 200:
            code, message = _error(r)
            self.add("identity", FAIL, f"sync history answered {r.status_code} {code}: {message}")
            return
        syncs = r.json().get("syncs") or []
        hint = "force one: POST /v1/identity/sync?tenant_id=... (scaivault doctor shows the result next time)"
        if not syncs:
            self.add("identity", WARN, "no identity sync has run yet: group grants cannot match", hint)
            return
        last = syncs[0]
        method = (last.get("stats") or {}).get("users_method")
        when = last.get("finished_at") or last.get("started_at")
        age = _age(when)
        summary = (f"last sync {last.get('status')} for {last.get('tenant_id')}"
                   + (f" {int(age // 60)} min ago" if age is not None else "") + f", users_method {method}")
        stale_after = self.args.sync_stale_minutes * 60
        if last.get("status") == "failed":
            self.add("identity", FAIL, summary + f": {last.get('error')}", "check ScaiKey reachability and the "
                     "sync client's credentials (SCAIKEY_*), then force a sync", last)
        elif age is not None and age > stale_after and last.get("status") not in ("pending", "running"):
            self.add("identity", FAIL, summary + f" (older than {self.args.sync_stale_minutes} min)",
                     "is the worker serving the identity queue? " + hint, last)
        else:
            self.add("identity", OK, summary, details=last)

    # ----------------------------------------------------------------------------------------- server side
    async def migrations(self) -> None:
        if self.settings is None or not getattr(self.settings, "database_url", ""):
            self.add("migrations", SKIP, "DATABASE_URL not set here: run doctor where the deployment's settings are")
            return
        from db import migrate

        try:
            st = await asyncio.wait_for(asyncio.to_thread(migrate.status, self.settings.database_url), 15)
        except Exception as exc:
            self.add("migrations", FAIL, f"cannot read the schema revision: {type(exc).__name__}",
                     "is PostgreSQL reachable with DATABASE_URL?")
            return
        if st.unknown:
            self.add("migrations", FAIL, f"database at {st.current}, newer than this code ({st.head})",
                     "upgrade the code, or roll the schema back with the newer release", st.as_dict())
        elif not st.up_to_date:
            self.add("migrations", FAIL, f"database at {st.current or 'base'}, code expects {st.head} "
                     f"({len(st.pending)} pending)", "run: scaivault migrate", st.as_dict())
        else:
            self.add("migrations", OK, f"schema at head {st.head}", details=st.as_dict())

    async def workflows(self) -> None:
        if self.settings is None:
            self.add("workflows", SKIP, "no deployment settings here (TEMPORAL_ADDRESS)")
            return
        from worker.client import connect

        try:
            client = await asyncio.wait_for(connect(self.settings), 10)
        except Exception as exc:
            self.add("workflows", FAIL, f"Temporal unreachable at {self.settings.temporal_address}: "
                     f"{type(exc).__name__}", "check TEMPORAL_ADDRESS / TLS settings and the Temporal frontend")
            return
        since = (datetime.now(UTC) - timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ")
        prefix = self.settings.temporal_task_queue_prefix
        scope = f" AND WorkflowId STARTS_WITH '{prefix}'" if prefix else ""
        failed: list[str] = []
        stuck: list[str] = []
        try:
            query = f"(ExecutionStatus = 'Failed' OR ExecutionStatus = 'TimedOut') AND CloseTime > '{since}'{scope}"
            async for wf in client.list_workflows(query, limit=200):
                failed.append(f"{wf.workflow_type} {wf.id} ({wf.status.name if wf.status else '?'})")
            running = [wf async for wf in client.list_workflows(f"ExecutionStatus = 'Running'{scope}", limit=200)]
            for wf in running:
                desc = await client.get_workflow_handle(wf.id, run_id=wf.run_id).describe()
                for act in desc.raw_description.pending_activities:
                    if act.attempt >= self.args.stuck_attempts:
                        reason = act.last_failure.message if act.HasField("last_failure") else ""
                        stuck.append(f"{wf.workflow_type} {wf.id}: activity {act.activity_type.name} attempt "
                                     f"{act.attempt}" + (f" ({reason[:120]})" if reason else ""))
        except Exception as exc:
            self.add("workflows", FAIL, f"listing workflows failed: {type(exc).__name__}: {str(exc)[:200]}")
            return
        details = {"failed_24h": failed[:50], "stuck": stuck[:50], "running": len(running)}
        hint = ("open the workflow in the Temporal UI (or temporal workflow show -w <id>) for the failure; "
                "docs/operations.md lists the common queries")
        if stuck:
            self.add("workflows", FAIL, f"{len(stuck)} stuck: " + "; ".join(stuck[:5]), hint, details)
        elif failed:
            self.add("workflows", FAIL, f"{len(failed)} failed in 24 h: " + "; ".join(failed[:5]), hint, details)
        else:
            self.add("workflows", OK, f"{len(running)} running, none stuck, none failed in 24 h", details=details)

    async def clock(self) -> None:
        skews: dict[str, float] = {}
        now = datetime.now(UTC)
        if self.api_date is not None:
            skews["api"] = (self.api_date - now).total_seconds()
        scaikey = getattr(self.settings, "scaikey_base_url", "") if self.settings is not None else ""
        if scaikey:
            try:
                async with httpx.AsyncClient(timeout=5) as c:
                    t0 = time.time()
                    r = await c.get(scaikey.rstrip("/") + "/.well-known/openid-configuration")
                    rtt = time.time() - t0
                d = _date(r)
                if d is not None:
                    skews["scaikey"] = (d - now).total_seconds() - rtt / 2
            except httpx.HTTPError as exc:
                self.add("clock", FAIL, f"ScaiKey unreachable at {scaikey}: {type(exc).__name__}",
                         "tokens cannot be verified without ScaiKey's JWKS; check SCAIKEY_URL and the network")
                return
        if not skews:
            self.add("clock", SKIP, "no Date header to compare against")
            return
        worst = max(skews.items(), key=lambda kv: abs(kv[1]))
        text = ", ".join(f"{k} {v:+.1f}s" for k, v in skews.items())
        if abs(worst[1]) > self.args.max_skew:
            self.add("clock", FAIL, f"clock skew {text} (over {self.args.max_skew:g}s)",
                     "token exp/nbf checks fail under skew: run NTP (chrony/systemd-timesyncd) on every host",
                     skews)
        else:
            self.add("clock", OK, f"skew {text}", details=skews)


def _date(r: httpx.Response) -> datetime | None:
    value = r.headers.get("date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _age(value: Any) -> float | None:
    d = _parse(value)
    return None if d is None else (datetime.now(UTC) - d).total_seconds()


def _after(value: Any, since: datetime) -> bool:
    d = _parse(value)
    return d is None or d >= since


def _settings() -> Any:
    try:
        from core.settings import get_settings

        return get_settings()
    except Exception:
        return None  # not on a deployment host: server-side checks are skipped


async def diagnose(args: argparse.Namespace) -> list[Check]:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    if args.tenant:
        headers["X-Tenant-ID"] = args.tenant
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=args.timeout) as http:
        return await Doctor(args, http, _settings()).run()


def _print(checks: list[Check], as_json: bool) -> None:
    failed = [c.name for c in checks if c.status == FAIL]
    if as_json:
        print(json.dumps({"healthy": not failed, "failed": failed, "checks": [asdict(c) for c in checks]},
                         indent=2, default=str))
        return
    for c in checks:
        print(f"[{_MARK[c.status]}] {c.name:<10} {c.summary}")
        if c.hint and c.status in (FAIL, WARN):
            print(f"       -> {c.hint}")
    print()
    print("healthy" if not failed else f"UNHEALTHY: {len(failed)} check(s) failed: {', '.join(failed)}")


def _run(args: argparse.Namespace) -> int:
    from cli.user.config import resolve

    cfg = resolve()
    args.url = (args.url or cfg.url).rstrip("/")
    args.token = args.token or cfg.token
    args.tenant = args.tenant or cfg.tenant_id
    checks = asyncio.run(diagnose(args))
    _print(checks, args.json)
    return 1 if any(c.status == FAIL for c in checks) else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("doctor", help="run the troubleshooting checks against a running deployment "
                       "(exit 0 healthy, 1 with a summary of what failed)")
    p.add_argument("--url", help="API URL (default SCAIVAULT_URL or the CLI config)")
    p.add_argument("--token", help="bearer token (default SCAIVAULT_TOKEN or the CLI config)")
    p.add_argument("--tenant", help="tenant to check (default the token's)")
    p.add_argument("--path", help="also dry-run a policy check for this secret path")
    p.add_argument("--identity", help="identity for --path (default the caller, e.g. user:alice@acme.example)")
    p.add_argument("--permission", default="read",
                   choices=["read", "write", "delete", "list", "rotate", "admin"])
    p.add_argument("--no-webhook-test", action="store_true",
                   help="do not send webhook.test events; only report failed deliveries")
    p.add_argument("--webhook-limit", type=int, default=20, help="webhooks to test at most")
    p.add_argument("--sync-stale-minutes", type=float, default=180.0,
                   help="identity sync older than this fails (default 180)")
    p.add_argument("--stuck-attempts", type=int, default=5,
                   help="a running workflow whose activity reached this attempt is stuck (default 5)")
    p.add_argument("--max-skew", type=float, default=30.0, help="seconds of clock skew tolerated (default 30)")
    p.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout per call, seconds")
    p.add_argument("--json", action="store_true", help="one JSON object for scripts")
    p.set_defaults(func=_run)
