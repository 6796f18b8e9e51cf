"""The real ``AccessChecker`` (services/access.py contract): compiled policy index per tenant, default deny.

Cache (docs/policies.md "API" -> "Index cache"):

- one :class:`policy.PolicyIndex` per tenant (tenant + partner-scope policies) and one per (partner, tenant)
  (partner-scope policies only, for ``scope="partner"`` checks) per process. Both hold only the tenant's own
  bindings: a binding names an identity of the tenant it was made in, so another tenant's ``group:ops`` binding
  on a shared partner-scope policy never matches here (issue 11 item 7);
- a writer bumps ``policy:ver:<tenant>`` (or ``policy:ver:partner:<partner>``) in Redis after commit and
  publishes on ``scaivault:policy-invalidate``; every process drops the entry on that message at once;
- in case a message is missed, an entry re-reads its counters at most every ``recheck`` seconds (1 s: one
  MGET per tenant per second per process, never one per request) and rebuilds when they moved;
- Redis down: an entry is trusted for ``fallback_ttl`` seconds (5 s) after its build, then rebuilt from
  PostgreSQL; no entry lives longer than ``max_age`` (60 s) whatever Redis says.

Checks by ``system:`` principals (background jobs, never a token) are not evaluated. Every other caller,
admins included, needs a policy grant on the path (decision, spec §7.5 inferred).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from api.context import RequestContext
from core.background import cancel_and_wait
from db.engine import Database
from policy import Binding, Decision, EvalContext, ListPlan, PolicyIndex, check, compile_index, plan_list
from repositories import policies as repo
from services.access import Permission
from services.events.violations import ViolationReporter
from services.policies import policy_from_row

log = logging.getLogger("scaivault.policy")

CHANNEL = "scaivault:policy-invalidate"
Scope = Literal["tenant", "partner"]
Key = tuple[str, str, str]  # ("t", tenant_id, "") | ("p", partner_id, tenant_id)
Loader = Callable[[str | None, str | None], Awaitable[tuple[list[Any], list[Binding]]]]
IdentityResolver = Callable[[RequestContext], Awaitable[Iterable[str]]]


def tenant_version_key(tenant_id: str) -> str:
    return f"policy:ver:{tenant_id}"


def partner_version_key(partner_id: str) -> str:
    return f"policy:ver:partner:{partner_id}"


@dataclass(slots=True)
class _Entry:
    index: PolicyIndex
    partner_id: str | None
    versions: tuple[Any, ...] | None  # Redis counters read before the load; None: Redis was unavailable
    built_at: float
    checked_at: float


class PolicyAccessChecker:
    """Path-permission checks against the compiled index of the request's tenant."""

    def __init__(self, db: Database | None, redis: Any, *, loader: Loader | None = None,
                 recheck_seconds: float = 1.0, fallback_ttl_seconds: float = 5.0, max_age_seconds: float = 60.0,
                 violations: ViolationReporter | None = None, pubsub_redis: Any = None,
                 max_entries: int = 10_000) -> None:
        self.db = db
        self.redis = redis
        self.pubsub_redis = pubsub_redis
        self.loader: Loader = loader or self._load_from_db
        self.recheck = recheck_seconds
        self.fallback_ttl = fallback_ttl_seconds
        self.max_age = max_age_seconds
        self.violations = violations
        self.max_entries = max_entries  # tenants cached per process; the oldest-built entry goes first
        #: Set by the identity-sync feature to add cached group ids to a caller's token groups.
        self.identity_resolver: IdentityResolver | None = None
        self._entries: dict[Key, _Entry] = {}
        self._inflight: dict[Key, asyncio.Future[PolicyIndex]] = {}
        self._sub_task: asyncio.Task[None] | None = None
        self.rebuilds = 0  # observable in tests and the bench

    # --- the AccessChecker contract -------------------------------------------------------------
    async def check(self, ctx: RequestContext, path: str, permission: Permission, *,
                    scope: Scope = "tenant") -> None:
        if ctx.principal.token_kind == "system":
            return
        decision = await self.decide(ctx, path, permission, scope=scope)
        if not decision.allowed:
            if self.violations is not None:
                await self.violations.report(ctx, decision, scope)
            raise decision.to_error()

    async def allowed(self, ctx: RequestContext, path: str, permission: Permission, *,
                      scope: Scope = "tenant") -> bool:
        if ctx.principal.token_kind == "system":
            return True
        return (await self.decide(ctx, path, permission, scope=scope)).allowed

    async def filter(self, ctx: RequestContext, paths: list[str], permission: Permission, *,
                     scope: Scope = "tenant") -> list[str]:
        if ctx.principal.token_kind == "system":
            return list(paths)
        index = await self.index_for(ctx.tenant_id, ctx.partner_id, scope=scope)
        ids = frozenset(await self.identity_ids(ctx))
        ectx = self.eval_context(ctx)
        return [p for p in paths if check(index, ids, p, permission, ectx).allowed]

    async def list_plan(self, ctx: RequestContext, prefix: str, *, scope: Scope = "tenant") -> ListPlan:
        """How a listing under the string ``prefix`` must be filtered (NONE: skip the query; ALL: no filter)."""
        if ctx.principal.token_kind == "system":
            return ListPlan.ALL
        index = await self.index_for(ctx.tenant_id, ctx.partner_id, scope=scope)
        return plan_list(index, await self.identity_ids(ctx), prefix, self.eval_context(ctx))

    async def decide(self, ctx: RequestContext, path: str, permission: Permission | str, *,
                     scope: Scope = "tenant", explain: bool = False) -> Decision:
        index = await self.index_for(ctx.tenant_id, ctx.partner_id, scope=scope)
        return check(index, await self.identity_ids(ctx), path, permission, self.eval_context(ctx),
                     explain=explain)

    async def identity_ids(self, ctx: RequestContext) -> Iterable[str]:
        ids = ctx.principal.identity_ids
        if self.identity_resolver is None:
            return ids
        return (*ids, *await self.identity_resolver(ctx))

    @staticmethod
    def eval_context(ctx: RequestContext) -> EvalContext:
        return EvalContext(source_ip=ctx.source_ip, mfa_verified_at=ctx.principal.mfa_verified_at,
                           now=datetime.now(UTC))

    # --- the cache --------------------------------------------------------------------------------
    async def index_for(self, tenant_id: str, partner_id: str | None, *, scope: Scope = "tenant") -> PolicyIndex:
        """The compiled index for a tenant (``scope="partner"``: partner-scope policies of its partner only, with
        the tenant's bindings of them)."""
        if scope == "partner":
            if partner_id is None:
                return _EMPTY
            key: Key = ("p", partner_id, tenant_id)
        else:
            key = ("t", tenant_id, "")
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry.checked_at < self.recheck:
            return entry.index
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[PolicyIndex] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            index = await self._refresh(key, partner_id)
            fut.set_result(index)
            return index
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        finally:
            self._inflight.pop(key, None)

    def _version_keys(self, key: Key, partner_id: str | None) -> list[str]:
        if key[0] == "p":
            return [partner_version_key(key[1])]
        keys = [tenant_version_key(key[1])]
        if partner_id is not None:
            keys.append(partner_version_key(partner_id))
        return keys

    async def _read_versions(self, keys: list[str]) -> tuple[Any, ...] | None:
        if self.redis is None:
            return None
        try:
            return tuple(await self.redis.mget(keys))
        except Exception:
            log.warning("policy version check failed; trusting the index for the fallback TTL", exc_info=True)
            return None

    async def _refresh(self, key: Key, partner_id: str | None) -> PolicyIndex:
        now = time.monotonic()
        entry = self._entries.get(key)
        versions = await self._read_versions(self._version_keys(key, partner_id))
        if entry is not None and now - entry.built_at < self.max_age:
            if versions is not None and versions == entry.versions:
                entry.checked_at = now
                return entry.index
            if versions is None and now - entry.built_at < self.fallback_ttl:
                entry.checked_at = now
                return entry.index
        tenant_id = key[1] if key[0] == "t" else key[2]
        policies, bindings = await self.loader(tenant_id, partner_id)
        if key[0] == "p":
            policies = [p for p in policies if p.scope == "partner"]
        index = compile_index(policies, bindings, datetime.now(UTC), version=versions, tenant_id=tenant_id)
        self._entries.pop(key, None)  # re-insert at the end: dict order is build order
        self._entries[key] = _Entry(index, partner_id, versions, now, now)
        while len(self._entries) > self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self.rebuilds += 1
        return index

    async def _load_from_db(self, tenant_id: str | None, partner_id: str | None
                            ) -> tuple[list[Any], list[Binding]]:
        assert self.db is not None and tenant_id is not None
        async with self.db.raw() as conn:
            prow, brow = await repo.load_for_index(conn, tenant_id, partner_id)
        policies = [policy_from_row(r) for r in prow]
        bindings = [Binding(policy_id=b["policy_id"], identity_type=b["identity_type"],
                            identity_id=b["identity_id"], expires_at=b["expires_at"], id=b["id"],
                            tenant_id=b["tenant_id"]) for b in brow]
        return policies, bindings

    # --- invalidation -------------------------------------------------------------------------------
    def drop_local(self, *, tenant_id: str | None = None, partner_id: str | None = None) -> None:
        """Forget cached indexes in this process (a tenant's, or a partner's and all its tenants')."""
        if tenant_id is not None:
            for key in [k for k in self._entries if (k[0] == "t" and k[1] == tenant_id) or k[2] == tenant_id]:
                self._entries.pop(key, None)
        if partner_id is not None:
            for key in [k for k, e in self._entries.items() if e.partner_id == partner_id]:
                self._entries.pop(key, None)

    async def invalidate(self, tenant_id: str | None = None, partner_id: str | None = None) -> None:
        """Policies, bindings or group memberships changed (after commit): every process rebuilds.

        ``partner_id`` given: a partner-scope change, which affects every tenant of the partner.
        """
        self.drop_local(tenant_id=tenant_id, partner_id=partner_id)
        if self.redis is None:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                if tenant_id is not None:
                    pipe.incr(tenant_version_key(tenant_id))
                    pipe.publish(CHANNEL, f"t:{tenant_id}")
                if partner_id is not None:
                    pipe.incr(partner_version_key(partner_id))
                    pipe.publish(CHANNEL, f"p:{partner_id}")
                await pipe.execute()
        except Exception:
            log.warning("policy invalidation broadcast failed; other processes rebuild within max_age",
                        exc_info=True)

    def _on_message(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        kind, _, ident = text.partition(":")
        if kind == "t":
            self.drop_local(tenant_id=ident)
        elif kind == "p":
            self.drop_local(partner_id=ident)

    def start(self) -> None:
        """Listen for invalidation broadcasts (needs ``pubsub_redis``: a connection without read timeout)."""
        if self.pubsub_redis is None or self._sub_task is not None:
            return

        async def listen() -> None:
            while True:
                pubsub = self.pubsub_redis.pubsub(ignore_subscribe_messages=True)
                try:
                    await pubsub.subscribe(CHANNEL)
                    async for msg in pubsub.listen():
                        if msg and msg.get("type") == "message":
                            self._on_message(msg["data"])
                    await asyncio.sleep(1.0)  # the stream ended without an error: reconnect, never spin
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Messages may have been missed: the 1 s version re-check still catches every change.
                    await asyncio.sleep(1.0)
                finally:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()

        self._sub_task = asyncio.create_task(listen())

    async def stop(self) -> None:
        await cancel_and_wait(self._sub_task)
        self._sub_task = None


_EMPTY = compile_index((), (), datetime(1970, 1, 1, tzinfo=UTC))
