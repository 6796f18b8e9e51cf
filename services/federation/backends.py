"""Federated backends: validation, CRUD, ``status``, forced ``sync`` (spec lifecycle.md §6.1, §6.3).

A backend's own credentials are a ScaiVault secret named by ``auth_config_path`` (Vault) / ``credentials_path``
(ASM). They are read server-side only (``load_credentials``): never stored in the backend row, a Temporal payload,
a log line or a response. Whoever creates or changes a backend must be allowed to ``read`` that secret (else
``federation:write`` alone could send any secret's value to an endpoint of their choosing).
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from api.context import RequestContext
from core.cursor import decode_id_cursor, encode_id_cursor
from core.durations import parse_duration
from core.errors import AppError
from core.ids import new_id
from repositories import federation as repo
from repositories import secrets as secrets_repo
from repositories.events.outbox import iso
from repositories.secrets import Owner
from services.federation import mapping as mp
from services.federation.remote import Remote, RemoteError
from services.secrets import input as inp
from workflows.types.federation import FORCE_SIGNAL, SYNC_WORKFLOW, ForceSync, SyncState

log = logging.getLogger("scaivault.federation")

TYPES = ("hashicorp-vault", "aws-secrets-manager")
NOT_BUILT = ("azure-key-vault", "google-secret-manager")
VAULT_AUTH = ("token", "approle")
VAULT_AUTH_NOT_BUILT = ("kubernetes", "aws", "gcp")
_URL_RE = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?(/[A-Za-z0-9._~\-/]*)?")
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


def field_error(field: str, message: str) -> AppError:
    return AppError("validation_error", f"{field}: {message}", {"fields": [{"field": field, "message": message}]})


def not_found(backend_id: str) -> AppError:
    return AppError("backend_not_found", f"federated backend {backend_id!r} not found", {"backend_id": backend_id})


def workflow_id(settings: Any, tenant_id: str, backend_id: str) -> str:
    return f"{settings.temporal_task_queue_prefix}federation-sync/{tenant_id}/{backend_id}"


# ------------------------------------------------------------------------------------------------ validation
def _url(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) > 2048 or _URL_RE.fullmatch(value) is None:
        raise field_error(field, "must be an http(s) URL (scheme, host, optional port and path)")
    return value.rstrip("/")


def _cred_path(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise field_error(field, "is required: the path of the ScaiVault secret holding the credentials")
    problem = inp.path_problem(value)
    if problem is not None:
        raise field_error(field, problem)
    return value


def check_config(type_: str, config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise field_error("config", "must be an object")
    if type_ == "hashicorp-vault":
        allowed = {"endpoint", "auth_method", "auth_config_path", "tls_verify"}
        out: dict[str, Any] = {"endpoint": _url(config.get("endpoint"), "config.endpoint")}
        method = config.get("auth_method", "token")
        if method in VAULT_AUTH_NOT_BUILT:
            raise field_error("config.auth_method", f"'{method}' is not supported yet; use token or approle")
        if method not in VAULT_AUTH:
            raise field_error("config.auth_method", "must be token or approle")
        out["auth_method"] = method
        out["auth_config_path"] = _cred_path(config.get("auth_config_path"), "config.auth_config_path")
        tls = config.get("tls_verify", True)
        if not isinstance(tls, bool):
            raise field_error("config.tls_verify", "must be a boolean")
        out["tls_verify"] = tls
    else:
        allowed = {"region", "credentials_path", "endpoint_url"}
        region = config.get("region")
        if not isinstance(region, str) or _REGION_RE.fullmatch(region) is None:
            raise field_error("config.region", "must be an AWS region such as us-east-1")
        out = {"region": region, "credentials_path": _cred_path(config.get("credentials_path"),
                                                                "config.credentials_path")}
        if config.get("endpoint_url") is not None:
            out["endpoint_url"] = _url(config["endpoint_url"], "config.endpoint_url")
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise field_error(f"config.{unknown[0]}", "unknown key")
    return out


def check_type(type_: Any) -> str:
    if type_ in NOT_BUILT:
        raise field_error("type", f"'{type_}' backends are not supported yet (hashicorp-vault, aws-secrets-manager)")
    if type_ not in TYPES:
        raise field_error("type", f"must be one of {', '.join(TYPES)}")
    return str(type_)


def check_interval(settings: Any, mode: str, value: Any) -> tuple[str | None, int | None]:
    if mode != "sync":
        if value is not None:
            raise field_error("sync_interval", "only for mode 'sync'")
        return None, None
    if value is None:
        raise field_error("sync_interval", "is required when mode is 'sync'")
    if not isinstance(value, str):
        raise field_error("sync_interval", "must be a duration such as 15m")
    seconds = int(parse_duration(value, field="sync_interval").total_seconds())
    floor = settings.federation_min_sync_interval_seconds
    if seconds < floor:
        raise field_error("sync_interval", f"must be at least {floor}s (FEDERATION_MIN_SYNC_INTERVAL_SECONDS)")
    return value, seconds


def cred_path(row: Any) -> str:
    cfg = repo.jsonb(row["config"])
    return str(cfg.get("auth_config_path") or cfg.get("credentials_path"))


def compiled(row: Any) -> list[mp.Mapping]:
    return mp.compile_mapping(repo.jsonb(row["path_mapping"]), vault=row["type"] == "hashicorp-vault")


# ------------------------------------------------------------------------------------------------ remotes
async def load_credentials(state: Any, tenant_id: str, partner_id: str | None, path: str) -> dict[str, Any]:
    """The current value of the credentials secret (server-side only; not audited as a caller's read)."""
    from auth.tenancy import UNASSIGNED_PARTNER

    service = state.components["secrets"]
    owner = Owner("tenant", tenant_id, partner_id or UNASSIGNED_PARTNER)
    async with state.db.raw() as conn:
        row = await conn.fetchrow(secrets_repo.READ_ONE, "tenant", tenant_id, path, None)
    if row is None or row["deleted_at"] is not None or row["version"] is None or row["destroyed_at"] is not None:
        raise RemoteError("auth", f"the credentials secret '{path}' does not exist")
    plaintext = await service._open(owner, path, row["version"], row["ciphertext"])
    doc = orjson.loads(plaintext)
    return doc if isinstance(doc, dict) else {}


async def remote_for(state: Any, row: Any) -> Remote:
    cfg = repo.jsonb(row["config"])
    creds = await load_credentials(state, row["tenant_id"], row["partner_id"], cred_path(row))
    timeout = float(state.settings.federation_remote_timeout_seconds)
    if row["type"] == "hashicorp-vault":
        from services.federation.vault import VaultRemote

        return VaultRemote(cfg["endpoint"], cfg["auth_method"], creds, tls_verify=cfg.get("tls_verify", True),
                           timeout=timeout)
    from services.federation.aws_sm import AsmRemote

    return AsmRemote(cfg["region"], creds, endpoint_url=cfg.get("endpoint_url"), timeout=timeout)


def unavailable(row: Any, exc: RemoteError) -> AppError:
    code = "backend_rate_limited" if exc.kind == "rate_limited" else "service_unavailable"
    return AppError(code, f"federated backend '{row['name']}' failed: {exc.message}",
                    {"backend_id": row["id"], "backend": row["name"], "reason": exc.kind})


async def verify(state: Any, row: Any) -> None:
    try:
        remote = await remote_for(state, row)
    except RemoteError as exc:
        raise AppError("invalid_config", f"backend verification failed: {exc.message}",
                       {"reason": exc.kind}) from None
    try:
        await remote.probe()
    except RemoteError as exc:
        raise AppError("invalid_config", f"backend verification failed: {exc.message}", {"reason": exc.kind}) from None
    finally:
        await remote.aclose()


# ------------------------------------------------------------------------------------------------ public shape
def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else iso(ts)


def public(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"], "name": row["name"], "type": row["type"], "mode": row["mode"],
        "config": repo.jsonb(row["config"]), "path_mapping": repo.jsonb(row["path_mapping"]),
        "sync_interval": row["sync_interval"], "status": row["health"],
        "last_sync": _iso(row["last_sync_at"]), "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]), "created_by": row["created_by"],
    }


# ------------------------------------------------------------------------------------------------ CRUD
async def _check_overlap(conn: asyncpg.Connection, tenant_id: str, backend_id: str | None,
                         mappings: list[mp.Mapping]) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('federation-mapping:' || $1))", tenant_id)
    for other in await repo.all_for(conn, tenant_id):
        if other["id"] == backend_id:
            continue
        mp.check_disjoint([m.local for m in mappings], [m.local for m in compiled(other)], other_name=other["name"])


async def _may_read_credentials(state: Any, ctx: RequestContext, path: str) -> None:
    await state.components["access"].check(ctx, path, "read", scope="tenant")


PROBE_SEGMENT = "federation-mapping-probe"


async def _may_write_mapped(state: Any, ctx: RequestContext, mappings: list[mp.Mapping]) -> None:
    """A mapping decides what reads of its local paths return (proxy) or writes versions there (sync): the caller
    must be allowed to ``write`` under every local prefix it maps (checked on a path just under the prefix)."""
    for m in mappings:
        await state.components["access"].check(ctx, m.local + PROBE_SEGMENT, "write", scope="tenant")


async def create(state: Any, ctx: RequestContext, body: dict[str, Any], *, verify_remote: bool) -> dict[str, Any]:
    type_ = check_type(body.get("type"))
    mode = body.get("mode")
    if mode not in ("proxy", "sync"):
        raise field_error("mode", "must be proxy or sync")
    config = check_config(type_, body.get("config"))
    mappings = mp.compile_mapping(body.get("path_mapping"), vault=type_ == "hashicorp-vault")
    interval, seconds = check_interval(state.settings, mode, body.get("sync_interval"))
    name = body.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}", name):
        raise field_error("name", "1-128 characters: letters, digits, '_', '.', '-'")
    await _may_read_credentials(state, ctx, config.get("auth_config_path") or config["credentials_path"])
    await _may_write_mapped(state, ctx, mappings)
    backend_id = new_id("fed")
    row_like = {"id": backend_id, "name": name, "type": type_, "config": config, "tenant_id": ctx.tenant_id,
                "partner_id": ctx.partner_id}
    if verify_remote:
        await verify(state, row_like)
    async with state.db.raw() as conn, conn.transaction():
        await _check_overlap(conn, ctx.tenant_id, None, mappings)
        row = await repo.insert(conn, id=backend_id, tenant_id=ctx.tenant_id, partner_id=ctx.partner_id, name=name,
                                type=type_, mode=mode, config=config, path_mapping=body["path_mapping"],
                                sync_interval=interval, sync_interval_seconds=seconds,
                                created_by=ctx.principal.identity_id)
        if row is None:
            raise AppError("conflict", f"a federated backend named {name!r} exists", {"name": name})
        await state.get("audit").record(ctx, action="federation_backend_create", resource_type="federation_backend",
                                        resource_id=backend_id, conn=conn)
    await invalidate(state, ctx.tenant_id)
    if mode == "sync":
        await start_sync(state, row, reason="created", strict=False)
    return public(row)


async def get_row(state: Any, ctx: RequestContext, backend_id: str) -> Any:
    async with state.db.raw() as conn:
        row = await repo.get(conn, ctx.tenant_id, backend_id)
    if row is None:
        raise not_found(backend_id)
    return row


async def list_backends(state: Any, ctx: RequestContext, *, cursor: str | None, limit: int) -> dict[str, Any]:
    after = decode_id_cursor(cursor, "fed_") if cursor else None
    async with state.db.raw() as conn:
        rows = await repo.list_for(conn, ctx.tenant_id, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"backends": [public(r) for r in rows], "cursor": encode_id_cursor(rows[-1]["id"]) if more else None,
            "has_more": more}


async def update(state: Any, ctx: RequestContext, backend_id: str, fields: dict[str, Any], *,
                 verify_remote: bool) -> dict[str, Any]:
    current = await get_row(state, ctx, backend_id)
    type_ = current["type"]
    changes: dict[str, Any] = {}
    if fields.get("name") is not None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}", str(fields["name"])):
            raise field_error("name", "1-128 characters: letters, digits, '_', '.', '-'")
        changes["name"] = fields["name"]
    mode = fields.get("mode") or current["mode"]
    if mode not in ("proxy", "sync"):
        raise field_error("mode", "must be proxy or sync")
    changes["mode"] = mode
    config = repo.jsonb(current["config"])
    if fields.get("config") is not None:
        config = check_config(type_, fields["config"])
        changes["config"] = config
        await _may_read_credentials(state, ctx, config.get("auth_config_path") or config["credentials_path"])
    mapping_doc = fields["path_mapping"] if fields.get("path_mapping") is not None else repo.jsonb(
        current["path_mapping"])
    mappings = mp.compile_mapping(mapping_doc, vault=type_ == "hashicorp-vault")
    if fields.get("path_mapping") is not None:
        changes["path_mapping"] = mapping_doc
        await _may_write_mapped(state, ctx, mappings)
    given = fields.get("sync_interval", current["sync_interval"] if mode == "sync" else None)
    changes["sync_interval"], changes["sync_interval_seconds"] = check_interval(state.settings, mode, given)
    if verify_remote and "config" in changes:
        await verify(state, {**dict(current), "config": config})
    async with state.db.raw() as conn, conn.transaction():
        await _check_overlap(conn, ctx.tenant_id, backend_id, mappings)
        try:
            row = await repo.update(conn, ctx.tenant_id, backend_id, changes)
        except asyncpg.UniqueViolationError:
            raise AppError("conflict", "a federated backend with that name exists", {"name": changes["name"]}) from None
        if row is None:
            raise not_found(backend_id)
        await state.get("audit").record(ctx, action="federation_backend_update", resource_type="federation_backend",
                                        resource_id=backend_id, conn=conn)
    await invalidate(state, ctx.tenant_id)
    if row["mode"] == "sync":
        await start_sync(state, row, reason="updated", strict=False)
    return public(row)


async def delete(state: Any, ctx: RequestContext, backend_id: str) -> None:
    async with state.db.raw() as conn, conn.transaction():
        row = await repo.get(conn, ctx.tenant_id, backend_id, for_update=True)
        if row is None:
            raise not_found(backend_id)
        await repo.delete(conn, ctx.tenant_id, backend_id)
        await state.get("audit").record(ctx, action="federation_backend_delete", resource_type="federation_backend",
                                        resource_id=backend_id, conn=conn)
    await invalidate(state, ctx.tenant_id)
    if row["mode"] == "sync":  # wake the entity: its next run finds the backend gone and ends
        await start_sync(state, row, reason="deleted", strict=False, start=False)


async def invalidate(state: Any, tenant_id: str) -> None:
    proxy = state.components.get("federation")
    if proxy is not None:
        await proxy.invalidate(tenant_id)


# ------------------------------------------------------------------------------------------------ workflows
def initial_state(settings: Any, row: Any) -> SyncState:
    return SyncState(tenant_id=row["tenant_id"], backend_id=row["id"],
                     interval_seconds=int(row["sync_interval_seconds"] or 900),
                     heartbeat_timeout_seconds=settings.federation_sync_heartbeat_seconds)


async def start_sync(state: Any, row: Any, *, reason: str, strict: bool, start: bool = True) -> None:
    """Signal(-with-start) ``federation-sync/<tenant>/<backend>``. ``strict``: a Temporal failure is the caller's
    503; otherwise it is logged (the next forced sync starts the entity)."""
    from worker.client import with_deadline
    from worker.registry import FEDERATION

    temporal, settings = state.temporal, state.settings
    wf_id = workflow_id(settings, row["tenant_id"], row["id"])
    try:
        if temporal is None:
            raise AppError("service_unavailable", "Temporal is not configured", {"service": "temporal"})
        if start:
            from worker.visibility import start_options

            visibility = start_options(settings, area="federation", tenant_id=row["tenant_id"], resource_id=row["id"],
                                       summary=f"federation sync of backend {row['id']}")
            await with_deadline(settings, lambda rpc_timeout: temporal.start_workflow(
                SYNC_WORKFLOW, initial_state(settings, row), id=wf_id, task_queue=settings.task_queue(FEDERATION),
                start_signal=FORCE_SIGNAL, start_signal_args=[ForceSync(reason=reason)], rpc_timeout=rpc_timeout,
                **visibility,
            ), action="federation_sync.signal_with_start")
        else:
            await with_deadline(settings, lambda rpc_timeout: temporal.get_workflow_handle(wf_id).signal(
                FORCE_SIGNAL, ForceSync(reason=reason), rpc_timeout=rpc_timeout), action="federation_sync.signal")
    except Exception as exc:
        if strict:
            raise
        log.warning("could not signal the federation sync workflow",
                    extra={"backend_id": row["id"], "error": type(exc).__name__})


async def force_sync(state: Any, ctx: RequestContext, backend_id: str) -> dict[str, Any]:
    row = await get_row(state, ctx, backend_id)
    if row["mode"] != "sync":
        raise AppError("invalid_request", "only a sync-mode backend can be synced", {"backend_id": backend_id,
                                                                                     "mode": row["mode"]})
    await start_sync(state, row, reason="manual", strict=True)
    await state.get("audit").record(ctx, action="federation_sync", resource_type="federation_backend",
                                    resource_id=backend_id, extra={"trigger": "manual"})
    return {"id": backend_id, "status": "sync_requested",
            "workflow_id": workflow_id(state.settings, ctx.tenant_id, backend_id)}


async def status(state: Any, ctx: RequestContext, backend_id: str) -> dict[str, Any]:
    row = await get_row(state, ctx, backend_id)
    async with state.db.raw() as conn:
        open_conflicts = await conn.fetchval("SELECT count(*) FROM federation_conflicts WHERE backend_id = $1"
                                             " AND resolution IS NULL", backend_id)
    connection: dict[str, Any]
    t0 = time.perf_counter()
    try:
        remote = await remote_for(state, row)
        try:
            await remote.probe()
        finally:
            await remote.aclose()
        connection = {"status": "connected", "latency_ms": round((time.perf_counter() - t0) * 1000)}
    except RemoteError as exc:
        connection = {"status": "unreachable" if exc.kind == "unavailable" else
                      ("rate_limited" if exc.kind == "rate_limited" else "error"), "error": exc.message}
    health = row["health"]
    if connection["status"] != "connected":
        health = "unreachable" if connection["status"] == "unreachable" else "degraded"
    elif row["mode"] == "proxy":
        health = "healthy"
    lag = None
    if row["mode"] == "sync" and row["last_success_at"] is not None:
        lag = round((datetime.now(UTC) - row["last_success_at"]).total_seconds())
    return {
        "id": row["id"], "name": row["name"], "type": row["type"], "mode": row["mode"], "status": health,
        "last_sync": _iso(row["last_sync_at"]), "last_successful_sync": _iso(row["last_success_at"]),
        "last_sync_duration_ms": row["last_sync_duration_ms"], "secrets_synced": row["secrets_synced"],
        "last_sync_counts": repo.jsonb(row["last_counts"]), "last_error": row["last_error"],
        "lag_seconds": lag, "open_conflicts": int(open_conflicts or 0), "connection": connection,
    }
