"""Secrets (``/v1/secrets`` and, for partner-wide secrets, ``/v1/partner/secrets``): core.md §10.2, §10.3."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from scaivault_sdk.cache import ReadCache
from scaivault_sdk.errors import ValidationError
from scaivault_sdk.models import (
    BatchReadResult,
    ItemError,
    Page,
    Record,
    Secret,
    SecretMetadata,
    SecretVersion,
)
from scaivault_sdk.resources.base import Resource, secret_path
from scaivault_sdk.transport import Transport

BATCH_MAX_PATHS = 100  # server limit per batch request (core.md §10.3); larger inputs are sent in chunks


class SecretsResource(Resource):
    """Read, write and manage secrets. ``client.secrets`` (tenant) and ``client.partner_secrets`` (partner)."""

    def __init__(self, transport: Transport, base: str = "/v1/secrets", cache: ReadCache | None = None) -> None:
        super().__init__(transport)
        self._base = base
        self._cache = cache

    def _url(self, path: str, op: str | None = None) -> str:
        if ":" in path:  # illegal in paths (core.md §6.2); on the wire it would select an operation suffix
            raise ValidationError(400, "invalid_path", "a secret path cannot contain ':'", {"path": path})
        return f"{self._base}/{secret_path(path)}" + (f":{op}" if op else "")

    def _forget(self, path: str) -> None:
        if self._cache is not None:
            self._cache.invalidate_path(path.strip("/"))

    async def read(self, path: str, *, version: int | None = None) -> Secret:
        """The value of ``path`` (latest version, or ``version``). Served from the read cache when enabled."""
        key = path.strip("/")
        if self._cache is not None:
            hit = self._cache.get(self._base, key, version)
            if hit is not None:
                return hit  # type: ignore[no-any-return]
        body = await self._json("GET", self._url(path), params={"version": version})
        secret = Secret.from_json(body, path=key)
        if self._cache is not None:
            self._cache.put(self._base, key, version, secret)
        return secret

    async def read_metadata(self, path: str, *, include_deleted: bool = False) -> SecretMetadata:
        """Version count, tags, timestamps, rotation status; never the value (needs ``secrets:list``)."""
        body = await self._json("GET", self._url(path, "metadata"),
                                params={"include_deleted": "true" if include_deleted else None})
        return SecretMetadata.from_json(body)

    async def write(self, path: str, data: Any, *, secret_type: str | None = None,
                    metadata: dict[str, Any] | None = None, max_versions: int | None = None,
                    expires_in: str | None = None, rotation_policy_id: str | None = None,
                    notify_before: builtins.list[str] | None = None) -> SecretMetadata:
        """Write a new version (the first one creates the secret). Never retried once it may have been applied."""
        body: dict[str, Any] = {"data": data}
        if secret_type is not None:
            body["secret_type"] = secret_type
        if metadata is not None:
            body["metadata"] = metadata
        options = {k: v for k, v in (("max_versions", max_versions), ("expires_in", expires_in),
                                     ("rotation_policy_id", rotation_policy_id),
                                     ("notify_before", notify_before)) if v is not None}
        if options:
            body["options"] = options
        try:
            return SecretMetadata.from_json(await self._json("PUT", self._url(path), json=body, idempotent=False))
        finally:
            self._forget(path)

    async def update_metadata(self, path: str, metadata: dict[str, Any] | None = None, *,
                              max_versions: int | None = None, expires_in: str | None = None,
                              rotation_policy_id: str | None = None) -> SecretMetadata:
        """Change metadata keys and/or options without creating a version (``PATCH``)."""
        body: dict[str, Any] = {}
        if metadata is not None:
            body["metadata"] = metadata
        options = {k: v for k, v in (("max_versions", max_versions), ("expires_in", expires_in),
                                     ("rotation_policy_id", rotation_policy_id)) if v is not None}
        if options:
            body["options"] = options
        try:
            return SecretMetadata.from_json(await self._json("PATCH", self._url(path), json=body, idempotent=True))
        finally:
            self._forget(path)

    async def delete(self, path: str, *, permanent: bool = False) -> None:
        """Soft delete (restorable within the retention window), or ``permanent=True`` to purge every version."""
        try:
            await self._json("DELETE", self._url(path), params={"permanent": "true" if permanent else None},
                             idempotent=False)
        finally:
            self._forget(path)

    async def restore(self, path: str) -> SecretMetadata:
        """Undo a soft delete while it is still recoverable."""
        try:
            return SecretMetadata.from_json(await self._json("POST", self._url(path, "restore"), idempotent=False))
        finally:
            self._forget(path)

    async def versions(self, path: str) -> builtins.list[SecretVersion]:
        """Every retained version, oldest first, with ``is_current`` marking the latest."""
        body = await self._json("GET", self._url(path, "versions"))
        return [SecretVersion.from_json(v) for v in body.get("versions") or []]

    async def rotate(self, path: str) -> Record:
        """Rotate now through the secret's rotation policy (``POST {path}:rotate``; needs ``secrets:rotate``)."""
        try:
            return Record.from_json(await self._json("POST", self._url(path, "rotate"), idempotent=False) or {})
        finally:
            self._forget(path)

    def list(self, prefix: str | None = None, *, limit: int | None = None, page_size: int = 100,
             tags: Sequence[str] | None = None, expiring_within: str | None = None,
             include_deleted: bool = False) -> AsyncIterator[SecretMetadata]:
        """Every secret under ``prefix`` the caller may list, sorted by path, across pages (``async for``)."""
        params: dict[str, Any] = {"prefix": prefix, "expiring_within": expiring_within,
                                  "include_deleted": "true" if include_deleted else None}
        if tags:
            params["tag"] = list(tags)
        return self._paginate(self._base, "secrets", SecretMetadata.from_json, params, limit=limit,
                              page_size=page_size)

    async def list_page(self, prefix: str | None = None, *, limit: int = 100, cursor: str | None = None,
                        expiring_within: str | None = None) -> Page[SecretMetadata]:
        """One page; pass ``page.cursor`` back for the next."""
        return await self._page(self._base, "secrets", SecretMetadata.from_json,
                                {"prefix": prefix, "limit": limit, "cursor": cursor,
                                 "expiring_within": expiring_within})

    def expiring(self, days: int, prefix: str | None = None) -> AsyncIterator[SecretMetadata]:
        """Secrets whose current version expires within ``days`` days."""
        return self.list(prefix, expiring_within=f"{int(days)}d")

    async def batch_read(self, paths: Sequence[str], *, include_metadata: bool = False, fail_fast: bool = False,
                         version: int | None = None,
                         progress: Callable[[int, int], None] | None = None) -> BatchReadResult:
        """Read many paths; partial success is normal (``.secrets`` and ``.errors``).

        More than 100 paths are sent as several requests; ``progress(done, total)`` is called after each.
        """
        unique = list(dict.fromkeys(p.strip("/") for p in paths))
        secrets: dict[str, Secret] = {}
        errors: dict[str, ItemError] = {}
        for start in range(0, len(unique), BATCH_MAX_PATHS):
            chunk = unique[start:start + BATCH_MAX_PATHS]
            options: dict[str, Any] = {"include_metadata": include_metadata, "fail_fast": fail_fast}
            if version is not None:
                options["version"] = version
            body = await self._json("POST", f"{self._base}/batch", json={"paths": chunk, "options": options},
                                    idempotent=True)  # a read: safe to repeat
            for p, d in (body.get("secrets") or {}).items():
                secrets[p] = Secret.from_json(d, path=p)
            for p, e in (body.get("errors") or {}).items():
                errors[p] = ItemError(code=str(e.get("code")), message=str(e.get("message")))
            if progress is not None:
                progress(min(start + BATCH_MAX_PATHS, len(unique)), len(unique))
        return BatchReadResult(secrets=secrets, errors=errors)

    async def batch_metadata(self, paths: Sequence[str], *, expand_wildcards: bool = False) -> dict[str, Any]:
        """Metadata for many paths (or patterns with ``expand_wildcards``): ``{"secrets": {...}, "errors": {...}}``."""
        return await self._json("POST", f"{self._base}/batch/metadata", idempotent=True,  # type: ignore[no-any-return]
                                json={"paths": list(paths), "options": {"expand_wildcards": expand_wildcards}})
