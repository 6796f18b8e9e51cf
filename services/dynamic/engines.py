"""Dynamic engines (lifecycle.md §4.2; docs/dynamic.md "Engines"): CRUD, root credentials, live health.

* ``type: database`` + ``config.plugin: postgresql``: ``config.connection_url`` with ``{{username}}`` and
  ``{{password}}``, filled server-side from the secret at ``config.root_credentials_path`` (JSON
  ``{"username", "password"}``); ``type: aws``: ``config.region`` (and ``endpoint_url``), root secret JSON
  ``{"access_key_id", "secret_access_key"}``.
* The caller must hold ``read`` on the root secret's path (otherwise anyone with ``dynamic:manage`` could point a
  ``connection_url`` at their own host and receive the root password). The engine then reads it as
  ``system:dynamic-engines`` (audited reads).
* Create and PATCH open a test connection (``DYNAMIC_CONNECT_TIMEOUT_SECONDS``): failure is ``400
  invalid_config`` naming what failed, and nothing is stored. ``GET`` re-checks when the cached check is older
  than ``DYNAMIC_HEALTH_CACHE_SECONDS``; a status change emits ``engine.health_changed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from api.context import RequestContext
from core.errors import AppError
from core.ids import new_id
from repositories import dynamic as repo
from repositories.events import outbox
from repositories.secrets import Owner
from services.dynamic import aws, postgres
from services.dynamic.common import (
    SYSTEM_ENGINES,
    check_name,
    engine_not_found,
    invalid_config,
    iso,
    ttl,
    validation,
)
from services.dynamic.postgres import TargetError

log = logging.getLogger("scaivault.dynamic")
FIELDS = frozenset({"name", "type", "config", "default_ttl", "max_ttl", "description"})
PATH_MAX = 512


# ------------------------------------------------------------------------------------------- config
def validate(body: Mapping[str, Any], *, existing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    unknown = sorted(str(k) for k in body if k not in FIELDS)
    if unknown:
        raise validation(unknown[0], f"unknown field(s) {unknown}")
    name = check_name(body.get("name"))
    kind = body.get("type")
    if kind not in ("database", "aws"):
        raise invalid_config("type must be 'database' (with config.plugin 'postgresql') or 'aws'", field="type")
    cfg_in = body.get("config")
    if not isinstance(cfg_in, dict):
        raise invalid_config("config must be an object", field="config")
    path = cfg_in.get("root_credentials_path")
    if not isinstance(path, str) or not path or len(path) > PATH_MAX:
        raise invalid_config("config.root_credentials_path must name a secret", field="config.root_credentials_path")
    cfg: dict[str, Any] = {"root_credentials_path": path.strip("/")}
    plugin: str | None = None
    allowed = {"root_credentials_path", "revocation_rate_per_second"}
    if kind == "database":
        plugin = cfg_in.get("plugin")
        if plugin != "postgresql":
            raise invalid_config("config.plugin must be 'postgresql' (the database plugin this release supports)",
                                 field="config.plugin")
        cfg["plugin"] = plugin
        cfg["connection_url"] = postgres.check_url_template(cfg_in.get("connection_url"))
        allowed |= {"plugin", "connection_url"}
    else:
        cfg.update(aws.check_config(cfg_in))
        allowed |= {"region", "endpoint_url"}
    rate = cfg_in.get("revocation_rate_per_second")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 100_000:
            raise invalid_config("config.revocation_rate_per_second must be a number in (0, 100000]",
                                 field="config.revocation_rate_per_second")
        cfg["revocation_rate_per_second"] = rate
    extra = sorted(set(cfg_in) - allowed)
    if extra:
        raise invalid_config(f"unknown config key(s) {extra}", field=f"config.{extra[0]}")
    default_ttl, default_s = ttl(body.get("default_ttl", "1h"), "default_ttl")
    max_ttl, max_s = ttl(body.get("max_ttl", "24h"), "max_ttl")
    if default_s > max_s:
        raise validation("default_ttl", "default_ttl must not exceed max_ttl")
    return {"name": name, "type": kind, "plugin": plugin, "config": cfg, "default_ttl": default_ttl,
            "default_ttl_seconds": default_s, "max_ttl": max_ttl, "max_ttl_seconds": max_s}


def public(row: Mapping[str, Any], live_leases: int | None = None) -> dict[str, Any]:
    cfg = repo.config_of(row)  # type: ignore[arg-type]
    out = {"id": row["id"], "name": row["name"], "type": row["type"], "config": cfg,
           "default_ttl": row["default_ttl"], "max_ttl": row["max_ttl"],
           "connection_status": row["connection_status"], "last_checked_at": iso(row["last_checked_at"]),
           "last_error": row["last_error"], "revocation_paused": row["revocation_paused"],
           "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
           "created_by": row["created_by"]}
    if live_leases is not None:
        out["live_leases"] = live_leases
    return out


# ------------------------------------------------------------------------------------- root secrets
async def read_root(state: Any, tenant_id: str, partner_id: str | None, path: str) -> dict[str, Any]:
    """The root credentials secret, read server-side as ``system:dynamic-engines`` (audited)."""
    from audit.recorder import system_context
    from services.pki.common import partner_of

    ctx = system_context(SYSTEM_ENGINES, tenant_id, partner_id=partner_id, action="read", path=path)
    try:
        body = await state.components["secrets"].read(ctx, Owner("tenant", tenant_id, partner_of(partner_id)), path,
                                                      None)
    except AppError as exc:
        if exc.code in ("secret_not_found", "version_not_found", "invalid_path"):
            raise invalid_config(f"root credentials secret '{path}' not found",
                                 field="config.root_credentials_path") from None
        raise
    data = orjson.loads(body).get("data")
    if not isinstance(data, dict):
        raise invalid_config(f"root credentials secret '{path}' must be a JSON object",
                             field="config.root_credentials_path")
    return data


@dataclass
class Handle:
    kind: str
    pool: postgres.Pool | None = None
    client: aws.Client | None = None

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()


class Targets:
    """Per-process connections to targets, one handle per engine, rebuilt when the engine's config or its root
    credentials change (credentials are re-read at most every ``DYNAMIC_ROOT_CREDENTIALS_CACHE_SECONDS``)."""

    def __init__(self, settings: Any, pool_size: int, application_name: str = "scaivault-dynamic") -> None:
        self.settings = settings
        self.pool_size = pool_size
        self.application_name = application_name
        self._cache: dict[str, tuple[str, float, Handle]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def handle(self, state: Any, engine: Mapping[str, Any]) -> Handle:
        eid = engine["id"]
        hit = self._cache.get(eid)
        cfg_key = f"{engine['updated_at']}"
        if hit is not None and hit[1] > time.monotonic() and hit[0].startswith(cfg_key):
            return hit[2]
        async with self._locks.setdefault(eid, asyncio.Lock()):
            hit = self._cache.get(eid)
            if hit is not None and hit[1] > time.monotonic() and hit[0].startswith(cfg_key):
                return hit[2]
            cfg = repo.config_of(engine)  # type: ignore[arg-type]
            root = await read_root(state, engine["tenant_id"], engine["partner_id"], cfg["root_credentials_path"])
            fp = cfg_key + hashlib.sha256(orjson.dumps([cfg, root], option=orjson.OPT_SORT_KEYS)).hexdigest()
            ttl_s = float(self.settings.dynamic_root_credentials_cache_seconds)
            if hit is not None and hit[0] == fp:
                self._cache[eid] = (fp, time.monotonic() + ttl_s, hit[2])
                return hit[2]
            handle = build_handle(engine["type"], cfg, root, self.settings, self.pool_size, self.application_name)
            self._cache[eid] = (fp, time.monotonic() + ttl_s, handle)
            if hit is not None:
                await hit[2].close()
            return handle

    async def forget(self, engine_id: str) -> None:
        hit = self._cache.pop(engine_id, None)
        if hit is not None:
            await hit[2].close()

    async def close(self) -> None:
        for eid in list(self._cache):
            await self.forget(eid)


def _root_fields(kind: str, root: Mapping[str, Any]) -> tuple[str, str]:
    keys = ("username", "password") if kind == "database" else ("access_key_id", "secret_access_key")
    a, b = root.get(keys[0]), root.get(keys[1])
    if not isinstance(a, str) or not isinstance(b, str) or not a or not b:
        raise invalid_config(f"the root credentials secret must hold {keys[0]!r} and {keys[1]!r}",
                             field="config.root_credentials_path")
    return a, b


def build_handle(kind: str, cfg: Mapping[str, Any], root: Mapping[str, Any], settings: Any, size: int,
                 application_name: str = "scaivault-dynamic") -> Handle:
    user, secret = _root_fields(kind, root)
    timeout = float(settings.dynamic_connect_timeout_seconds)
    if kind == "database":
        dsn = postgres.build_dsn(cfg["connection_url"], user, secret)
        return Handle("database", pool=postgres.Pool(dsn, size, timeout, (secret,), application_name))
    return Handle("aws", client=aws.Client(dict(cfg), user, secret, timeout))


async def test_connection(kind: str, cfg: Mapping[str, Any], root: Mapping[str, Any], settings: Any) -> None:
    """Raise ``invalid_config`` naming what failed (never hangs: bounded by the connect timeout)."""
    user, secret = _root_fields(kind, root)
    timeout = float(settings.dynamic_connect_timeout_seconds)
    try:
        if kind == "database":
            await postgres.check(postgres.build_dsn(cfg["connection_url"], user, secret), timeout, (secret,))
        else:
            await aws.Client(dict(cfg), user, secret, timeout).check()
    except TargetError as exc:
        raise invalid_config(f"test connection failed: {exc}", field="config", reason=str(exc)) from None


async def check_handle(handle: Handle) -> None:
    if handle.pool is not None:
        pool = await handle.pool.get()
        try:
            async with pool.acquire(timeout=handle.pool.timeout) as conn:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), handle.pool.timeout)
        except Exception as exc:
            raise postgres.target_error(exc, handle.pool.secrets, sent=False) from None
    elif handle.client is not None:
        await handle.client.check()


# ---------------------------------------------------------------------------------------------- CRUD
async def fetch(conn: asyncpg.Connection, tenant_id: str, name: str, *, for_update: bool = False) -> asyncpg.Record:
    row = await repo.get_engine(conn, tenant_id, name, for_update=for_update)
    if row is None:
        raise engine_not_found(name)
    return row


def _targets(state: Any) -> Targets:
    t = state.components.get("dynamic_targets")
    if t is None:
        t = state.components["dynamic_targets"] = Targets(state.settings, state.settings.dynamic_target_pool_size)
    return t  # type: ignore[no-any-return]


async def _prepare(state: Any, ctx: RequestContext, doc: dict[str, Any]) -> None:
    path = doc["config"]["root_credentials_path"]
    await state.components["access"].check(ctx, path, "read")
    root = await read_root(state, ctx.tenant_id, ctx.partner_id, path)
    await test_connection(doc["type"], doc["config"], root, state.settings)


async def _audit(state: Any, ctx: RequestContext, conn: asyncpg.Connection, action: str, name: str,
                 extra: dict[str, Any]) -> None:
    await state.components["audit"].record(ctx, action=action, resource_type="dynamic_engine", resource_id=name,
                                           extra=extra, conn=conn)


async def create(state: Any, ctx: RequestContext, body: Mapping[str, Any]) -> dict[str, Any]:
    doc = validate(body)
    await _prepare(state, ctx, doc)
    async with state.db.raw() as conn, conn.transaction():
        try:
            async with conn.transaction():
                row = await repo.insert_engine(conn, id=new_id("dyn"), tenant_id=ctx.tenant_id,
                                               partner_id=ctx.partner_id, created_by=ctx.principal.identity_id,
                                               connection_status="connected", last_error=None, **doc)
        except asyncpg.UniqueViolationError:
            raise AppError("conflict", f"a dynamic engine named '{doc['name']}' already exists",
                           {"field": "name", "name": doc["name"]}) from None
        await _audit(state, ctx, conn, "dynamic_engine_create", doc["name"], {"type": doc["type"]})
    return public(row, 0)


async def list_engines(state: Any, ctx: RequestContext, *, after: str | None,
                       limit: int) -> tuple[list[dict[str, Any]], str | None]:
    async with state.db.raw() as conn:
        rows = await repo.list_engines(conn, ctx.tenant_id, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [public(r) for r in rows], (rows[-1]["id"] if more else None)


async def get(state: Any, ctx: RequestContext, name: str) -> dict[str, Any]:
    async with state.db.raw() as conn:
        row = await fetch(conn, ctx.tenant_id, name)
        live = await repo.live_count(conn, row["id"])
    checked = row["last_checked_at"]
    age = None if checked is None else (time.time() - checked.timestamp())
    if age is None or age > float(state.settings.dynamic_health_cache_seconds):
        row = await refresh_health(state, row) or row
    return public(row, live)


async def refresh_health(state: Any, row: Mapping[str, Any]) -> asyncpg.Record | None:
    """A live check of the engine's target; records it and emits ``engine.health_changed`` on a change."""
    status, error = "connected", None
    try:
        handle = await _targets(state).handle(state, row)
        await check_handle(handle)
    except (TargetError, AppError) as exc:
        status, error = "error", (exc.message if isinstance(exc, AppError) else str(exc))
        await _targets(state).forget(row["id"])
    from core import metrics

    metrics.ENGINE_HEALTH.labels(engine=row["name"]).set(1 if status == "connected" else 0)
    async with state.db.raw() as conn, conn.transaction():
        previous = await repo.set_health(conn, row["id"], status, error)
        if previous is not None and previous != status:
            await outbox.emit(conn, event_type="engine.health_changed", tenant_id=row["tenant_id"],
                              partner_id=row["partner_id"], identity_id=f"system:{SYSTEM_ENGINES}",
                              data={"engine": row["name"], "engine_id": row["id"], "previous_status": previous,
                                    "connection_status": status, "last_error": error})
        return await repo.engine_by_id(conn, row["tenant_id"], row["id"])


async def patch(state: Any, ctx: RequestContext, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    async with state.db.raw() as conn:
        row = await fetch(conn, ctx.tenant_id, name)
    if "name" in body and body["name"] != name:
        raise validation("name", "an engine cannot be renamed")
    if "type" in body and body["type"] != row["type"]:
        raise validation("type", "an engine's type cannot change")
    cfg = {**repo.config_of(row), **(body.get("config") or {})} if isinstance(body.get("config", {}), dict) \
        else body.get("config")
    merged = {"name": name, "type": row["type"], "default_ttl": row["default_ttl"], "max_ttl": row["max_ttl"],
              **{k: v for k, v in body.items() if k != "config"}, "config": cfg}
    doc = validate(merged)
    await _prepare(state, ctx, doc)
    async with state.db.raw() as conn, conn.transaction():
        await fetch(conn, ctx.tenant_id, name, for_update=True)
        new = await repo.update_engine(conn, ctx.tenant_id, name, config=doc["config"],
                                       default_ttl=doc["default_ttl"], default_ttl_seconds=doc["default_ttl_seconds"],
                                       max_ttl=doc["max_ttl"], max_ttl_seconds=doc["max_ttl_seconds"],
                                       connection_status="connected", last_error=None)
        await _audit(state, ctx, conn, "dynamic_engine_update", name, {"fields": sorted(str(k) for k in body)})
        live = await repo.live_count(conn, new["id"])
    await _targets(state).forget(new["id"])
    return public(new, live)


async def delete(state: Any, ctx: RequestContext, name: str, *, revoke_leases: bool) -> None:
    """Refused (409 engine_in_use) while live leases exist, unless ``revoke_leases``: then every live lease is
    revoked at the target first (same path as the revoker, confirmed before ``revoked``) and the engine is
    deleted only if all were confirmed; otherwise 409 names how many remain (they stay queued for the revoker)."""
    from services.dynamic import leases, revocation

    async with state.db.raw() as conn, conn.transaction():
        row = await fetch(conn, ctx.tenant_id, name, for_update=True)
        ids = await repo.live_ids_with_prefix(conn, ctx.tenant_id, name, None)
        if ids and not revoke_leases:
            raise AppError("engine_in_use", f"engine '{name}' has {len(ids)} live lease(s); revoke them first or "
                           "delete with ?revoke_leases=true", {"name": name, "live_leases": len(ids)})
        if ids:
            await repo.request_revoke(conn, ids, by=ctx.principal.identity_id)
    if ids:
        if row["revocation_paused"]:
            raise AppError("engine_in_use", f"revocation on engine '{name}' is paused; resume it first",
                           {"name": name, "live_leases": len(ids)})
        await leases.revoke_now(state, row, ids)
    async with state.db.raw() as conn, conn.transaction():
        row = await fetch(conn, ctx.tenant_id, name, for_update=True)
        left = await repo.live_count(conn, row["id"])
        if left == 0:
            await repo.delete_engine(conn, ctx.tenant_id, row["id"])
            await _audit(state, ctx, conn, "dynamic_engine_delete", name, {"revoked_leases": len(ids)})
    if left:
        await revocation.wake(state, ctx.tenant_id, row["id"], reason="engine_delete")
        raise AppError("engine_in_use", f"{left} lease(s) of engine '{name}' could not be revoked yet; the engine"
                       " is kept and they stay queued", {"name": name, "live_leases": left})
    await _targets(state).forget(row["id"])


async def set_paused(state: Any, ctx: RequestContext, name: str, paused: bool) -> None:
    """Pause or resume the engine's revocations (recorded in PostgreSQL, then the revoker is signalled)."""
    from services.dynamic import revocation
    from workflows.types.dynamic import PAUSE_SIGNAL, RESUME_SIGNAL, Pause, Wake

    async with state.db.raw() as conn, conn.transaction():
        row = await fetch(conn, ctx.tenant_id, name, for_update=True)
        await repo.set_paused(conn, row["id"], paused)
        await _audit(state, ctx, conn, "dynamic_engine_update", name, {"revocation_paused": paused})
    await revocation.signal(state, ctx.tenant_id, row["id"], PAUSE_SIGNAL if paused else RESUME_SIGNAL,
                            Pause("api") if paused else Wake("api"))
