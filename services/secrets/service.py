"""Secrets: versioned, envelope-encrypted values (spec core.md §6, §10.2, §10.3, §13; docs/secrets.md).

Rules live here; SQL lives in repositories/secrets.py. Every operation: path validation, then the
AccessChecker (``state.components["access"]``), then the work, then the AuditRecorder
(``state.components["audit"]``): reads audit before responding, writes audit and emit their event with
``conn=tx`` inside the change's transaction. The scope check and the partner-admin check happen earlier,
in the router.

Reads return ready-made JSON bytes: the decrypted payload is the canonical JSON that was sealed, so it is
spliced into the response (``orjson.Fragment``) without being parsed again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import orjson

from api.context import RequestContext
from core.durations import parse_duration
from core.errors import AppError
from crypto import envelope
from crypto.errors import DecryptError, KmsUnavailable
from repositories import secrets as repo
from repositories.events import outbox
from repositories.secrets import NewSecret, Owner
from services.housekeeping import sweeper
from services.secrets import input as inp
from services.secrets.access_tracker import AccessTracker
from services.secrets.row_cache import GEN_EXTRA, SecretRowCache, gen_key
from services.secrets.write_batch import FALLBACK, PendingWrite, batchable, make_batcher

_T = TypeVar("_T")
log = logging.getLogger("scaivault.secrets")

MAX_BATCH = 100
MAX_EXPANDED = 1000
LIST_DEFAULT_LIMIT = 100
LIST_MAX_LIMIT = 1000
_DUMP = orjson.OPT_UTC_Z
_PUT_KEYS = {"data", "secret_type", "metadata", "options"}
_PATCH_KEYS = {"metadata", "options", "secret_type"}
# RequestContext.internal key: the audit action of a version write made by background work on another's behalf
# (federation sync writes are ``federation_sync``); absent = ``write``.
WRITE_AUDIT_ACTION = "write_audit_action"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def not_found(path: str, **extra: Any) -> AppError:
    """The one 404 for a path: identical for a missing path and another owner's path."""
    return AppError("secret_not_found", f"Secret '{path}' not found", {"path": path, **extra})


def version_not_found(path: str, version: int | None, **extra: Any) -> AppError:
    return AppError("version_not_found", f"Version {version} of secret '{path}' not found",
                    {"path": path, "version": version, **extra})


@dataclass(slots=True)
class Deps:
    """What the service needs, looked up per call so components replaced at start-up are honoured."""

    state: Any

    @property
    def access(self) -> Any:
        return self.state.components["access"]

    @property
    def audit(self) -> Any:
        return self.state.components["audit"]

    @property
    def keyring(self) -> Any:
        return self.state.components["keyring"]

    @property
    def limiter(self) -> Any:
        return self.state.components.get("rate_limiter")

    @property
    def federation(self) -> Any:
        """``services.federation.proxy.FederationProxy`` when federation is set up (docs/federation.md)."""
        return self.state.components.get("federation")

    @property
    def rotation(self) -> Any:
        """``services.rotation.rotate.RotationHook`` when the rotation feature is set up (docs/rotation.md)."""
        return self.state.components.get("rotation")


def _changes_secrets(fn: Callable[..., Awaitable[_T]]) -> Callable[..., Awaitable[_T]]:
    """After a mutating call that succeeded (its transaction committed), invalidate the owner's cached rows in
    every process. A rejected call (validation, denial, conflict) rolled back and changed nothing, so it must
    not invalidate: otherwise any caller could keep a tenant's read cache cold with bad requests. If a call is
    cancelled between its commit and its return, the cache TTL bounds how long another process may serve the
    old row (that caller never got a response to order reads after)."""

    @functools.wraps(fn)
    async def wrapper(self: SecretsService, ctx: RequestContext, owner: Owner, *args: Any, **kw: Any) -> _T:
        result = await fn(self, ctx, owner, *args, **kw)
        await self.changed(owner)
        if self.deps.rotation is not None:  # wake rotation workflows the change affects (attach, outside rotation)
            await self.deps.rotation.after_commit(ctx)
        return result

    return wrapper


class SecretsService:
    def __init__(self, state: Any, tracker: AccessTracker, cache: SecretRowCache | None = None) -> None:
        self.deps = Deps(state)
        self.db = state.db
        # Generation bumps go through the process's Redis circuit breaker (ratelimit/setup.py) when there is one.
        self.redis = state.components.get("redis_guarded", state.redis)
        self.cache = cache or SecretRowCache()
        self._unsent_bumps: set[str] = set()
        self._bumps_queued: dict[str, asyncio.Future[None]] = {}
        self._resend_task: asyncio.Task[None] | None = None
        breaker = state.components.get("redis_breaker")
        if breaker is not None:
            breaker.on_change(self._redis_breaker_changed)
        self.settings = state.settings
        self.tracker = tracker
        self.retention = parse_duration(self.settings.soft_delete_retention, field="SOFT_DELETE_RETENTION")
        self.batcher = make_batcher(self, self.settings)  # group commit of appends (services/secrets/write_batch.py)

    async def changed(self, owner: Owner) -> None:
        """Bump the owner's secrets generation (read-cache coherence across processes), once the change has
        committed. Callers that arrive while a bump for the owner is queued but not yet sent share it: a
        group-committed batch of writes costs one ``INCR`` per owner, not one per write, and every caller
        still returns only after an ``INCR`` sent after its own commit."""
        self.cache.invalidate(owner.owner_id)
        key = gen_key(owner.scope, owner.owner_id)
        fut = self._bumps_queued.get(key)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = self._bumps_queued[key] = loop.create_future()
            loop.call_soon(lambda: loop.create_task(self._send_bump(key, fut)))
        await asyncio.shield(fut)

    async def _send_bump(self, key: str, fut: asyncio.Future[None]) -> None:
        self._bumps_queued.pop(key, None)  # later callers queue the next bump: this one may precede their commit
        try:
            await self.redis.incr(key)
        except Exception as exc:  # the cache TTL bounds staleness elsewhere; the change itself is committed
            # Sent again when the Redis circuit breaker closes (other processes' rows cached before the outage).
            self._unsent_bumps.add(key)
            log.warning("could not publish a secrets generation bump", extra={"error": type(exc).__name__})
        finally:
            if not fut.done():
                fut.set_result(None)

    def _redis_breaker_changed(self, is_open: bool) -> None:
        """Redis became unavailable or came back: rows cached under a generation read before the change of
        state may be stale (a bump may have been lost meanwhile), so drop them; once back, resend lost bumps."""
        self.cache.clear()
        if not is_open and self._unsent_bumps:
            self._resend_task = asyncio.get_running_loop().create_task(self._resend_bumps())

    async def _resend_bumps(self) -> None:
        keys, self._unsent_bumps = self._unsent_bumps, set()
        for key in sorted(keys):
            try:
                await self.redis.incr(key)
            except Exception as exc:
                self._unsent_bumps.add(key)
                log.warning("could not resend a secrets generation bump", extra={"error": type(exc).__name__})

    # ---------------------------------------------------------------------------------- helpers
    async def _check(self, ctx: RequestContext, owner: Owner, path: str, permission: str) -> None:
        await self.deps.access.check(ctx, path, permission, scope=owner.scope)

    def _aad(self, owner: Owner, path: str, version: int) -> bytes:
        return envelope.aad_for_secret(owner.owner_id, path, version, scope=owner.scope)

    async def _open(self, owner: Owner, path: str, version: int, blob: bytes) -> bytes:
        try:
            return await self.deps.keyring.open(  # type: ignore[no-any-return]
                blob, self._aad(owner, path, version), partner_id=owner.partner_id, tenant_id=owner.tenant_id)
        except KmsUnavailable:
            raise AppError("kms_unavailable", "the key management service is unavailable; retry later") from None
        except DecryptError:
            log.error("secret version failed to decrypt", extra={"scope": owner.scope, "owner": owner.owner_id,
                                                                   "path": path, "version": version})
            raise AppError(
                "decryption_failed",
                "the stored ciphertext of this secret version failed authentication (tampered with, or copied "
                "from another secret); quote the request_id to your operator",
                {"path": path, "version": version},
            ) from None

    def _visible(self, path: str, row: asyncpg.Record | None, version: int | None) -> asyncpg.Record:
        """Map a joined read row to 404s (missing, deleted, pruned, destroyed, expired) or return it."""
        if row is None:
            raise not_found(path)
        if row["deleted_at"] is not None:
            raise not_found(path, deleted=True)
        if row["version"] is None:
            raise version_not_found(path, version if version is not None else row["current_version"])
        if row["destroyed_at"] is not None:
            raise version_not_found(path, row["version"], destroyed=True)
        exp = row["version_expires_at"]
        if exp is not None and exp <= _now():
            details = {"expired": True, "expires_at": _iso(exp)}
            if version is None:
                raise AppError("secret_not_found", f"Secret '{path}' expired", {"path": path, **details})
            raise version_not_found(path, version, **details)
        return row

    @staticmethod
    def _value_doc(owner: Owner, path: str, row: asyncpg.Record, plaintext: bytes) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "path": path, "secret_type": row["secret_type"], "version": row["version"],
            "data": orjson.Fragment(plaintext), "metadata": orjson.Fragment(row["metadata"]),
            "created_at": row["created_at"], "updated_at": row["updated_at"],
            "expires_at": row["version_expires_at"], "rotation_policy_id": row["rotation_policy_id"],
        }
        if owner.scope == "partner":
            doc["scope"] = "partner"
        hints = inp.read_hints(row["secret_type"], plaintext)  # e.g. a certificate's not_after (secret_type hint)
        if hints:
            doc["parsed"] = hints
        return doc

    # ------------------------------------------------------------------------------------ read
    async def read(self, ctx: RequestContext, owner: Owner, path: str, version: int | None) -> bytes:
        """GET value: one SQL round trip, warm keys, JSON bytes out."""
        inp.check_path(path)
        await self._check(ctx, owner, path, "read")
        fed = self.deps.federation
        if fed is not None:  # a proxy-mode backend serves this path (one dict lookup when the tenant has none)
            proxied = await fed.read(ctx, owner, path, version)
            if proxied is not None:
                return proxied  # type: ignore[no-any-return]
        gen = ctx.internal.get(GEN_EXTRA) if owner.scope == "tenant" else None
        row = self.cache.get(owner.owner_id, path, version, gen) if gen is not None else None
        if row is None:
            async with self.db.raw() as conn:
                row = await conn.fetchrow(repo.READ_ONE, owner.scope, owner.owner_id, path, version)
            if gen is not None and row is not None:
                self.cache.put(owner.owner_id, path, version, gen, row)
        row = self._visible(path, row, version)
        plaintext = await self._open(owner, path, row["version"], row["ciphertext"])
        await self.deps.audit.record(ctx, action="read", path=path, permission="read", version=row["version"])
        self.tracker.touch(row["id"])
        return orjson.dumps(self._value_doc(owner, path, row, plaintext), option=_DUMP)

    async def batch_read(self, ctx: RequestContext, owner: Owner, doc: dict[str, Any]) -> bytes:
        paths, options = _batch_body(doc, {"include_metadata", "fail_fast", "version"})
        version = options.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise inp.field_error("options.version", "must be a positive integer")
        fail_fast = bool(options.get("fail_fast", False))
        include_meta = bool(options.get("include_metadata", False))
        errors: dict[str, dict[str, Any]] = {}
        failed: list[tuple[str, str]] = []  # (path, error code): one success=false audit entry each
        wanted: list[str] = []
        for p in paths:
            try:
                inp.check_path(p)
                await self._check(ctx, owner, p, "read")
                wanted.append(p)
            except AppError as exc:
                if fail_fast:
                    await self._audit_failed(ctx, [(p, exc.code)], "read", {"batch": True})
                    raise
                errors[p] = {"code": exc.code, "message": exc.message}
                failed.append((p, exc.code))
        rows: dict[str, asyncpg.Record] = {}
        if wanted:
            async with self.db.raw() as conn:
                rows = {r["path"]: r for r in await repo.read_many(conn, owner, wanted, version)}
                meta = {r["path"]: r for r in await repo.metadata_many(conn, owner, wanted)} if include_meta else {}
        out: dict[str, Any] = {}
        for p in paths:
            if p not in wanted:
                continue
            try:
                row = self._visible(p, rows.get(p), version)
                plaintext = await self._open(owner, p, row["version"], row["ciphertext"])
            except AppError as exc:
                if fail_fast:
                    await self._audit_failed(ctx, [(p, exc.code)], "read", {"batch": True})
                    raise
                errors[p] = {"code": exc.code, "message": exc.message}
                failed.append((p, exc.code))
                continue
            item: dict[str, Any] = {"data": orjson.Fragment(plaintext), "version": row["version"],
                                    "secret_type": row["secret_type"]}
            hints = inp.read_hints(row["secret_type"], plaintext)
            if hints:
                item["parsed"] = hints
            if include_meta and p in meta:
                item["metadata"] = self._meta_doc(owner, meta[p])
            out[p] = (item, row)
        limiter = self.deps.limiter
        if limiter is not None and out:
            await limiter.charge(ctx, "read_secrets", len(out))
        for p, (_, row) in out.items():
            await self.deps.audit.record(ctx, action="read", path=p, permission="read", version=row["version"],
                                         extra={"batch": True})
            self.tracker.touch(row["id"])
        # Every denied, missing or invalid path is its own failed read, so a batch in which everything failed is
        # never one successful read in the log (the request-level hook writes nothing once these exist).
        await self._audit_failed(ctx, failed, "read", {"batch": True})
        body = {"secrets": {p: item for p, (item, _) in out.items()}, "errors": errors}
        return orjson.dumps(body, option=_DUMP)

    # -------------------------------------------------------------------------------- metadata
    @staticmethod
    def _meta_doc(owner: Owner, row: asyncpg.Record) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "path": row["path"], "secret_type": row["secret_type"], "version": row["current_version"],
            "current_version": row["current_version"], "version_count": row["version_count"],
            "metadata": orjson.Fragment(row["metadata"]), "max_versions": row["max_versions"],
            "created_at": row["created_at"], "created_by": row["created_by"], "updated_at": row["updated_at"],
            "updated_by": row["updated_by"], "expires_at": row["expires_at"],
            "last_accessed_at": row["last_accessed_at"], "rotation_policy_id": row["rotation_policy_id"],
            "secret_policy_id": row["secret_policy_id"], "notify_before": row["notify_before"],
            "rotation_status": None, "deleted_at": row["deleted_at"], "recoverable_until": row["recoverable_until"],
            "scope": owner.scope,
        }
        return doc

    async def metadata(self, ctx: RequestContext, owner: Owner, path: str, include_deleted: bool) -> bytes:
        inp.check_path(path)
        await self._check(ctx, owner, path, "list")
        rotation = None
        async with self.db.raw() as conn:
            row = await repo.metadata(conn, owner, path)
            if row is not None and row["rotation_policy_id"] and self.deps.rotation is not None:
                rotation = await self.deps.rotation.status(conn, row["id"])
        if row is None or (row["deleted_at"] is not None and not include_deleted):
            raise not_found(path)
        await self.deps.audit.record(ctx, action="list", path=path, permission="list",
                                     extra={"operation": "read_metadata"})
        doc = self._meta_doc(owner, row)
        if rotation is not None:
            doc["rotation_status"] = rotation
        return orjson.dumps(doc, option=_DUMP)

    async def versions(self, ctx: RequestContext, owner: Owner, path: str) -> bytes:
        inp.check_path(path)
        await self._check(ctx, owner, path, "list")
        async with self.db.raw() as conn:
            row = await repo.metadata(conn, owner, path)
            if row is None or row["deleted_at"] is not None:
                raise not_found(path)
            rows = await repo.versions(conn, row["id"])
        await self.deps.audit.record(ctx, action="list", path=path, permission="list",
                                     extra={"operation": "list_versions"})
        items = [{"version": r["version"], "created_at": r["created_at"], "created_by": r["created_by"],
                  "is_current": r["version"] == row["current_version"], "expires_at": r["expires_at"],
                  "destroyed": r["destroyed_at"] is not None, "destroyed_at": r["destroyed_at"]} for r in rows]
        return orjson.dumps({"path": path, "current_version": row["current_version"], "versions": items},
                            option=_DUMP)

    async def list_secrets(self, ctx: RequestContext, owner: Owner, *, prefix: str, limit: int, cursor: str | None,
                   tags: list[str], expiring_within: str | None, include_deleted: bool) -> bytes:
        inp.check_prefix(prefix)
        after = decode_cursor(cursor)
        expiring_before = None
        if expiring_within:
            expiring_before = _now() + parse_duration(expiring_within, field="expiring_within")
        items: list[dict[str, Any]] = []
        has_more = False
        last: str | None = after
        async with self.db.raw() as conn:
            for _ in range(5):  # refill when the access filter drops rows; bounded work per request
                rows = await repo.list_page(conn, owner, prefix=prefix, after=last, tags=tags or None,
                                            expiring_before=expiring_before, include_deleted=include_deleted,
                                            limit=limit + 1 - len(items))
                page, has_more = rows[: limit - len(items)], len(rows) > limit - len(items)
                allowed = set(await self.deps.access.filter(ctx, [r["path"] for r in page], "list",
                                                            scope=owner.scope))
                items += [self._meta_doc(owner, r) for r in page if r["path"] in allowed]
                if page:
                    last = page[-1]["path"]
                if not has_more or len(items) >= limit:
                    break
        await self.deps.audit.record(ctx, action="list", path=prefix or None, permission="list",
                                     extra={"operation": "list", "count": len(items)})
        body = {"secrets": items, "cursor": encode_cursor(last) if has_more and last else None,
                "has_more": has_more}
        return orjson.dumps(body, option=_DUMP)

    async def batch_metadata(self, ctx: RequestContext, owner: Owner, doc: dict[str, Any]) -> bytes:
        paths, options = _batch_body(doc, {"expand_wildcards"})
        expand = bool(options.get("expand_wildcards", False))
        errors: dict[str, dict[str, Any]] = {}
        failed: list[tuple[str, str]] = []  # (path, error code): one success=false audit entry each
        concrete: list[str] = []
        named: set[str] = set()  # paths the caller wrote out (not found by expanding a wildcard)
        async with self.db.raw() as conn:
            for p in paths:
                try:
                    if expand and _is_pattern(p):
                        concrete += await self._expand(ctx, conn, owner, p)
                    else:
                        concrete.append(inp.check_path(p))
                        named.add(p)
                except AppError as exc:
                    errors[p] = {"code": exc.code, "message": exc.message}
                    failed.append((p, exc.code))
            concrete = list(dict.fromkeys(concrete))[:MAX_EXPANDED]
            allowed = set(await self.deps.access.filter(ctx, concrete, "list", scope=owner.scope))
            rows = {r["path"]: r for r in await repo.metadata_many(conn, owner, [p for p in concrete if p in allowed])}
        out: dict[str, Any] = {}
        for p in concrete:
            if p in rows:
                out[p] = self._meta_doc(owner, rows[p])
            elif p not in named:  # expanded (a wildcard's own base, or deleted meanwhile) but not there: no answer
                continue
            elif p not in allowed:  # a path the caller named; expanded paths it may not list are gone already
                errors[p] = {"code": "access_denied", "message": "No policy permits list on this path"}
                failed.append((p, "access_denied"))
            else:
                errors[p] = {"code": "secret_not_found", "message": f"Secret '{p}' not found"}
                failed.append((p, "secret_not_found"))
        await self._audit_failed(ctx, failed, "list", {"operation": "batch_metadata"})
        if out or not failed:  # a batch in which everything failed is not also one successful listing
            await self.deps.audit.record(ctx, action="list", permission="list",
                                         extra={"operation": "batch_metadata", "count": len(out)})
        return orjson.dumps({"secrets": out, "errors": errors}, option=_DUMP)

    async def _expand(self, ctx: RequestContext, conn: asyncpg.Connection, owner: Owner, pattern: str) -> list[str]:
        """The existing paths a wildcard names that the caller may ``list``. The others are dropped silently,
        exactly as ``GET /v1/secrets?prefix=`` drops them: naming them (even as access_denied) would reveal them."""
        from policy.glob import compile_glob

        glob = compile_glob(pattern, field="paths")
        base = "/".join(glob.literal_prefix)
        prefix = base + "/" if base else ""
        found = await repo.paths_under(conn, owner, prefix, MAX_EXPANDED + 1)
        if base and glob.match(base):
            found.insert(0, base)
        matched = [p for p in found if glob.match(p)]
        return await self.deps.access.filter(ctx, matched, "list", scope=owner.scope) if matched else []  # type: ignore[no-any-return]

    async def _audit_failed(self, ctx: RequestContext, failed: list[tuple[str, str]], action: str,
                            extra: dict[str, Any]) -> None:
        """One ``success: false`` entry per failed batch item. A path that is not valid is not recorded as a
        path (only its error code): nothing unvalidated goes into the audit log. Written concurrently, so they
        share the audit sink's group commits instead of waiting for one commit each."""
        if failed:
            await asyncio.gather(*(
                self.deps.audit.record(ctx, action=action, path=p if inp.path_problem(p) is None else None,
                                       permission=action, success=False, error_code=code, extra=extra)
                for p, code in failed))

    # ---------------------------------------------------------------------------------- writes
    def _new(self, ctx: RequestContext, secret_type: str, metadata: dict[str, Any], opts: inp.WriteOptions,
             stored: asyncpg.Record | None, now: datetime) -> NewSecret:
        def keep(name: str) -> Any:
            value = getattr(opts, name)
            if inp.WriteOptions.is_set(value):
                return value
            return stored[name] if stored is not None else None

        expires_in = opts.expires_in if inp.WriteOptions.is_set(opts.expires_in) else None
        return NewSecret(
            secret_type=secret_type, metadata_json=orjson.dumps(metadata).decode(),
            max_versions=keep("max_versions"), expires_at=now + expires_in if expires_in else None,
            rotation_policy_id=keep("rotation_policy_id"), secret_policy_id=keep("secret_policy_id"),
            notify_before=keep("notify_before"), actor=ctx.principal.identity_id,
        )

    def _event_base(self, ctx: RequestContext, owner: Owner) -> dict[str, Any]:
        return {"tenant_id": ctx.tenant_id, "partner_id": owner.partner_id,
                "identity_id": ctx.principal.identity_id, "request_id": ctx.request_id}

    def _scoped(self, owner: Owner, data: dict[str, Any]) -> dict[str, Any]:
        if owner.scope == "partner":
            data["scope"] = "partner"
        return data

    @_changes_secrets
    async def write(self, ctx: RequestContext, owner: Owner, path: str, doc: dict[str, Any], *,
                    rotation: Any = None) -> tuple[bool, bytes]:
        """PUT: append a version. Returns (created, body without data). ``rotation`` (a
        ``services.rotation.rotate.RotationWrite``) makes it a rotation of an existing secret (idempotent per cycle)."""
        inp.check_path(path)
        await self._check(ctx, owner, path, "write")
        if self.deps.federation is not None:
            await self.deps.federation.check_write(owner, path)  # proxied paths are read-only
        inp.reject_unknown(doc, _PUT_KEYS)
        if "data" not in doc:
            raise inp.field_error("data", "is required")
        given_type = inp.check_secret_type(doc["secret_type"]) if doc.get("secret_type") is not None else None
        plaintext = inp.check_data(doc["data"], given_type) if given_type else None
        metadata = inp.check_metadata(doc["metadata"]) if doc.get("metadata") is not None else None
        opts = inp.check_options(doc.get("options"))
        kek = await self._kek(owner)  # warm the key before taking the row lock
        if self.batcher is not None and batchable(opts, rotation):
            body = await self.batcher.submit(PendingWrite(
                ctx, owner, path, doc, given_type, plaintext, metadata, opts, kek,
                ctx.internal.get(WRITE_AUDIT_ACTION, "write")))
            if body is not FALLBACK:
                return False, body
        async with self.db.raw() as conn, conn.transaction():
            row = await repo.lock(conn, owner, path)
            now = _now()
            if self.deps.rotation is not None:
                await self.deps.rotation.check(conn, ctx, owner, opts)
            if row is not None and row["deleted_at"] is not None:
                if row["recoverable_until"] is not None and row["recoverable_until"] > now:
                    raise AppError("secret_exists", f"Secret '{path}' is deleted and still recoverable; restore "
                                   "it or delete it permanently first",
                                   {"path": path, "recoverable_until": _iso(row["recoverable_until"])})
                await repo.purge(conn, row["id"])
                row = None
            if row is None and rotation is not None:
                raise not_found(path)
            if row is None:
                created = await self._create(ctx, conn, owner, path, doc, given_type, plaintext, metadata, opts,
                                             kek, now)
                if created is not None:
                    return True, created
                row = await repo.lock(conn, owner, path)  # lost a creation race: append instead
                assert row is not None
            return False, await self._append(ctx, conn, owner, path, row, doc, given_type, plaintext, metadata,
                                             opts, kek, now, rotation)

    async def _kek(self, owner: Owner) -> Any:
        try:
            return await self.deps.keyring.kek(owner.partner_id, owner.tenant_id)
        except KmsUnavailable:
            raise AppError("kms_unavailable", "the key management service is unavailable; retry later") from None

    async def _create(self, ctx: RequestContext, conn: asyncpg.Connection, owner: Owner, path: str,
                      doc: dict[str, Any], given_type: str | None, plaintext: bytes | None,
                      metadata: dict[str, Any] | None, opts: inp.WriteOptions, kek: Any,
                      now: datetime) -> bytes | None:
        if opts.cas not in (None, 0):
            raise _conflict(path, opts.cas, 0)
        secret_type = given_type or "kv"
        plaintext = plaintext if plaintext is not None else inp.check_data(doc["data"], secret_type)
        new = self._new(ctx, secret_type, metadata or {}, opts, None, now)
        blob = envelope.seal(plaintext, kek.key, kek.version, self._aad(owner, path, 1))
        row = await repo.create(conn, owner, path, new, blob)
        if row is None:
            return None
        if self.deps.rotation is not None:
            await self.deps.rotation.created(conn, ctx, owner, row["id"], new)
        tags = (metadata or {}).get("tags", [])
        await outbox.emit(conn, event_type="secret.created", path=path, **self._event_base(ctx, owner),
                          data=self._scoped(owner, {"version": 1, "secret_type": secret_type,
                                                    "created_by": new.actor, "tags": tags,
                                                    "expires_at": _iso(new.expires_at)}))
        await self.deps.audit.record(ctx, action=ctx.internal.get(WRITE_AUDIT_ACTION, "write"), path=path,
                                     permission="write", version=1, extra={"created": True}, conn=conn)
        return self._write_body(owner, path, 1, new, row["created_at"], row["updated_at"])

    async def _append(self, ctx: RequestContext, conn: asyncpg.Connection, owner: Owner, path: str,
                      row: asyncpg.Record, doc: dict[str, Any], given_type: str | None, plaintext: bytes | None,
                      metadata: dict[str, Any] | None, opts: inp.WriteOptions, kek: Any, now: datetime,
                      rotation: Any = None) -> bytes:
        current = row["current_version"]
        if opts.cas is not None and opts.cas != current:
            raise _conflict(path, opts.cas, current)
        hook = self.deps.rotation
        if rotation is not None:  # idempotent per (secret, cycle): a retried rotation writes nothing
            replayed = await hook.replayed(conn, row, rotation)
            if replayed is not None:
                return replayed  # type: ignore[no-any-return]
        secret_type = given_type or row["secret_type"]
        plaintext = plaintext if plaintext is not None else inp.check_data(doc["data"], secret_type)
        stored_meta = orjson.loads(row["metadata"])
        new = self._new(ctx, secret_type, metadata if metadata is not None else stored_meta, opts, row, now)
        version = current + 1
        blob = envelope.seal(plaintext, kek.key, kek.version, self._aad(owner, path, version))
        try:
            res = await repo.append_version(conn, row["id"], version, new, blob)
        except asyncpg.UniqueViolationError:  # pragma: no cover - the row lock makes this unreachable
            raise _conflict(path, opts.cas if opts.cas is not None else current, current + 1) from None
        rot = await hook.appended(conn, ctx, owner, row, current, version, new, rotation) if hook else None
        await outbox.emit(conn, event_type="secret.updated", path=path, **self._event_base(ctx, owner),
                          data=self._scoped(owner, {"old_version": current, "new_version": version,
                                                    "updated_by": new.actor, "is_rotation": rot is not None}))
        extra = {"pruned_versions": res["pruned"]} if res["pruned"] else {}
        if rot is not None:
            extra.update(rot.audit_extra())
        action = "rotate" if rot is not None else ctx.internal.get(WRITE_AUDIT_ACTION, "write")
        await self.deps.audit.record(ctx, action=action, path=path,
                                     permission="write", version=version, extra=extra or None, conn=conn)
        if rot is not None:
            await hook.emit(conn, ctx, owner, path, rot)
        return self._write_body(owner, path, version, new, res["created_at"], res["updated_at"],
                                metadata_json=new.metadata_json)

    @staticmethod
    def _write_body(owner: Owner, path: str, version: int, new: NewSecret, created_at: datetime,
                    updated_at: datetime, metadata_json: str | None = None) -> bytes:
        doc: dict[str, Any] = {
            "path": path, "secret_type": new.secret_type, "version": version,
            "metadata": orjson.Fragment(metadata_json or new.metadata_json), "created_at": created_at,
            "updated_at": updated_at, "expires_at": new.expires_at, "rotation_policy_id": new.rotation_policy_id,
            "secret_policy_id": new.secret_policy_id, "max_versions": new.max_versions,
        }
        if owner.scope == "partner":
            doc["scope"] = "partner"
        return orjson.dumps(doc, option=_DUMP)

    @_changes_secrets
    async def update_metadata(self, ctx: RequestContext, owner: Owner, path: str, doc: dict[str, Any]) -> bytes:
        """PATCH: metadata (shallow merge, null removes a key) and options; never a new version."""
        inp.check_path(path)
        await self._check(ctx, owner, path, "write")
        inp.reject_unknown(doc, _PATCH_KEYS)
        if "secret_type" in doc:
            raise inp.field_error("secret_type", "cannot change without a new version; PUT new data instead")
        patch = inp.check_metadata(doc["metadata"], partial=True) if doc.get("metadata") is not None else {}
        opts = inp.check_options(doc.get("options"), allow_cas=False)
        async with self.db.raw() as conn, conn.transaction():
            row = await repo.lock(conn, owner, path)
            if row is None or row["deleted_at"] is not None:
                raise not_found(path)
            now = _now()
            merged = inp.merge_metadata(orjson.loads(row["metadata"]), patch)
            new = self._new(ctx, row["secret_type"], merged, opts, row, now)
            if inp.WriteOptions.is_set(opts.expires_in):
                await repo.set_version_expiry(conn, row["id"], row["current_version"], new.expires_at)
            else:
                new.expires_at = row["expires_at"]
            if self.deps.rotation is not None:
                await self.deps.rotation.check(conn, ctx, owner, opts)
            pruned = await repo.update_settings(conn, row["id"], new)
            if self.deps.rotation is not None:
                await self.deps.rotation.settings_changed(conn, ctx, owner, row, new)
            await self.deps.audit.record(ctx, action="write", path=path, permission="write",
                                         extra={"operation": "update_metadata", "pruned_versions": pruned},
                                         conn=conn)
            fresh = await repo.metadata(conn, owner, path)
        assert fresh is not None
        return orjson.dumps(self._meta_doc(owner, fresh), option=_DUMP)

    @_changes_secrets
    async def delete(self, ctx: RequestContext, owner: Owner, path: str, permanent: bool) -> None:
        inp.check_path(path)
        await self._check(ctx, owner, path, "delete")
        if self.deps.federation is not None:
            await self.deps.federation.check_write(owner, path)  # proxied paths are read-only
        async with self.db.raw() as conn, conn.transaction():
            row = await repo.lock(conn, owner, path)
            if row is None or (row["deleted_at"] is not None and not permanent):
                raise not_found(path)
            data: dict[str, Any] = {"version_count": row["version_count"], "deleted_by": ctx.principal.identity_id,
                                    "permanent": permanent}
            if permanent:
                await repo.purge(conn, row["id"])
            else:
                until = await repo.soft_delete(conn, row["id"], ctx.principal.identity_id, self.retention)
                data["recoverable_until"] = _iso(until)
            await outbox.emit(conn, event_type="secret.deleted", path=path, **self._event_base(ctx, owner),
                              data=self._scoped(owner, data))
            await self.deps.audit.record(ctx, action="delete", path=path, permission="delete",
                                         extra={"permanent": permanent}, conn=conn)

    @_changes_secrets
    async def restore(self, ctx: RequestContext, owner: Owner, path: str) -> bytes:
        inp.check_path(path)
        await self._check(ctx, owner, path, "write")
        async with self.db.raw() as conn, conn.transaction():
            row = await repo.lock(conn, owner, path)
            if row is None:
                raise not_found(path)
            if row["deleted_at"] is not None:
                if row["recoverable_until"] is None or row["recoverable_until"] <= _now():
                    raise not_found(path)
                await repo.restore(conn, row["id"], ctx.principal.identity_id)
                await outbox.emit(conn, event_type="secret.restored", path=path, **self._event_base(ctx, owner),
                                  data=self._scoped(owner, {"version_count": row["version_count"],
                                                            "restored_by": ctx.principal.identity_id}))
            await self.deps.audit.record(ctx, action="write", path=path, permission="write",
                                         extra={"operation": "restore"}, conn=conn)
            fresh = await repo.metadata(conn, owner, path)
        assert fresh is not None
        return orjson.dumps(self._meta_doc(owner, fresh), option=_DUMP)

    @_changes_secrets
    async def destroy(self, ctx: RequestContext, owner: Owner, path: str, doc: dict[str, Any]) -> bytes:
        """Erase the ciphertext of specific versions for good; their history rows stay."""
        inp.check_path(path)
        await self._check(ctx, owner, path, "delete")
        inp.reject_unknown(doc, {"versions"})
        wanted = doc.get("versions")
        if (not isinstance(wanted, list) or not wanted or len(wanted) > 100
                or not all(inp.is_version(v) for v in wanted)):
            raise inp.field_error("versions", "must be a list of 1-100 positive version numbers")
        wanted = sorted(set(wanted))
        async with self.db.raw() as conn, conn.transaction():
            row = await repo.lock(conn, owner, path)
            if row is None or row["deleted_at"] is not None:
                raise not_found(path)
            missing = sorted(set(wanted) - await repo.existing_versions(conn, row["id"], wanted))
            if missing:
                raise AppError("version_not_found", f"Versions {missing} of secret '{path}' not found",
                               {"path": path, "versions": missing})
            destroyed = await repo.destroy_versions(conn, row["id"], wanted, ctx.principal.identity_id)
            if destroyed:
                await outbox.emit(conn, event_type="secret.versions_destroyed", path=path,
                                  **self._event_base(ctx, owner),
                                  data=self._scoped(owner, {"versions": destroyed,
                                                            "destroyed_by": ctx.principal.identity_id}))
            await self.deps.audit.record(ctx, action="delete", path=path, permission="delete",
                                         extra={"operation": "destroy_versions", "versions": wanted}, conn=conn)
        return orjson.dumps({"path": path, "destroyed": wanted})


# ---------------------------------------------------------------------------------------- helpers


def _conflict(path: str, expected: int, current: int) -> AppError:
    return AppError("version_conflict", f"Secret '{path}' is at version {current}, not {expected}; re-read and retry",
                    {"path": path, "expected_version": expected, "current_version": current})


def _is_pattern(p: Any) -> bool:
    return isinstance(p, str) and ("*" in p or "?" in p)


def _batch_body(doc: dict[str, Any], option_keys: set[str]) -> tuple[list[str], dict[str, Any]]:
    inp.reject_unknown(doc, {"paths", "options"})
    paths = doc.get("paths")
    if not isinstance(paths, list) or not paths:
        raise inp.field_error("paths", "must be a non-empty list of secret paths")
    if len(paths) > MAX_BATCH:
        raise inp.field_error("paths", f"at most {MAX_BATCH} paths per request")
    if any(not isinstance(p, str) for p in paths):
        raise inp.field_error("paths", "every path must be a string")
    options = doc.get("options") or {}
    if not isinstance(options, dict):
        raise inp.field_error("options", "must be a JSON object")
    unknown = sorted(set(options) - option_keys)
    if unknown:
        raise AppError("validation_error", "unknown option", {"fields": [
            {"field": f"options.{k}", "message": "unknown option"} for k in unknown]})
    return list(dict.fromkeys(paths)), options


def encode_cursor(path: str) -> str:
    import base64

    return base64.urlsafe_b64encode(orjson.dumps({"p": path})).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    import base64

    try:
        doc = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        path = doc["p"]
        if not isinstance(path, str) or inp.path_problem(path) is not None:
            raise ValueError
    except Exception:
        raise AppError("invalid_cursor", "cursor is malformed or expired") from None
    return path


# ------------------------------------------------------------------------------------- components


async def setup_secrets(state: Any) -> Any:
    """COMPONENTS hook: ``state.components["secrets"]`` plus its last-accessed flusher; registers the read
    cache's generation counter with the rate limiter so reads learn it without an extra round trip."""
    tracker = AccessTracker(state.db)
    state.components["secrets"] = SecretsService(state, tracker)
    limiter = state.components.get("rate_limiter")
    if limiter is not None and hasattr(limiter, "watch"):
        limiter.watch("read_secrets", lambda ctx: gen_key("tenant", ctx.tenant_id), GEN_EXTRA)
    tracker.start()
    return tracker.stop


@sweeper("purge_deleted_secrets")
async def purge_deleted_secrets(conn: asyncpg.Connection, settings: Any, limit: int) -> int:
    """Hard-delete soft-deleted secrets whose recovery window has passed; each purge is audited as
    ``system:housekeeping`` (action ``delete``, extra.permanent) in the same transaction."""
    from audit.recorder import DbAuditRecorder, system_context

    recorder = DbAuditRecorder(settings.audit_hmac_key.get_secret_value().encode())
    async with conn.transaction():
        purged = await repo.purge_expired_deleted(conn, limit)
        for row in purged:
            owner = row["tenant_id"] or row["owner_id"]
            await recorder.record(system_context("housekeeping", owner), action="delete", path=row["path"],
                                  permission="delete", extra={"permanent": True, "reason": "recovery_window_ended",
                                                              "scope": row["scope"]}, conn=conn)
    return len(purged)


