"""Dynamic credentials (``/v1/dynamic``): lifecycle.md §4, docs/dynamic.md.

``client.dynamic.generate(engine, role)`` issues a credential (a new lease; never retried once sent, a repeat
would create a second account at the target). ``client.dynamic.leases`` (also ``client.leases``) lists, renews
and revokes leases; ``engines`` and ``roles`` manage the recipes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from scaivault_sdk.models import DynamicCredential, Lease, Record
from scaivault_sdk.resources.base import Resource, body, segment


class DynamicEngines(Resource):
    """``client.dynamic.engines`` (change: ``dynamic:manage``; read: ``dynamic:read``)."""

    async def create(self, name: str, type: str, config: dict[str, Any], *, default_ttl: str | None = None,
                     max_ttl: str | None = None) -> Record:
        """Create an engine; the server opens a test connection first (``ValidationError(invalid_config)``)."""
        doc = body(name=name, type=type, config=config, default_ttl=default_ttl, max_ttl=max_ttl)
        return Record.from_json(await self._json("POST", "/v1/dynamic/engines", json=doc, idempotent=False))

    async def list(self, *, limit: int | None = None) -> AsyncIterator[Record]:
        async for e in self._paginate("/v1/dynamic/engines", "engines", Record.from_json, {}, limit=limit):
            yield e

    async def get(self, name: str) -> Record:
        """The engine with its live ``connection_status``."""
        return Record.from_json(await self._json("GET", f"/v1/dynamic/engines/{segment(name)}"))

    async def update(self, name: str, **fields: Any) -> Record:
        return Record.from_json(await self._json("PATCH", f"/v1/dynamic/engines/{segment(name)}", json=fields,
                                                 idempotent=True))

    async def delete(self, name: str, *, revoke_leases: bool = False) -> None:
        """``ConflictError(engine_in_use)`` with live leases unless ``revoke_leases=True``."""
        await self._json("DELETE", f"/v1/dynamic/engines/{segment(name)}",
                         params={"revoke_leases": "true" if revoke_leases else None}, idempotent=False)

    async def rotate_root(self, name: str) -> Record:
        return Record.from_json(await self._json("POST", f"/v1/dynamic/engines/{segment(name)}/rotate-root",
                                                 idempotent=False))

    async def pause_revocation(self, name: str) -> Record:
        return Record.from_json(await self._json("POST", f"/v1/dynamic/engines/{segment(name)}/revocation/pause",
                                                 idempotent=True))

    async def resume_revocation(self, name: str) -> Record:
        return Record.from_json(await self._json("POST", f"/v1/dynamic/engines/{segment(name)}/revocation/resume",
                                                 idempotent=True))


class DynamicRoles(Resource):
    """``client.dynamic.roles``: an engine's credential recipes."""

    def _url(self, engine: str, name: str | None = None) -> str:
        base = f"/v1/dynamic/engines/{segment(engine)}/roles"
        return base if name is None else f"{base}/{segment(name)}"

    async def create(self, engine: str, name: str, **fields: Any) -> Record:
        """Database roles: ``creation_statements`` (required), ``revocation_statements``, ``renew_statements``,
        ``default_ttl``, ``max_ttl``; AWS roles: ``credential_type``, ``policy_document``/``policy_arns``/``role_arn``."""
        return Record.from_json(await self._json("POST", self._url(engine), json={"name": name, **fields},
                                                 idempotent=False))

    async def list(self, engine: str, *, limit: int | None = None) -> AsyncIterator[Record]:
        async for r in self._paginate(self._url(engine), "roles", Record.from_json, {}, limit=limit):
            yield r

    async def get(self, engine: str, name: str) -> Record:
        return Record.from_json(await self._json("GET", self._url(engine, name)))

    async def update(self, engine: str, name: str, **fields: Any) -> Record:
        return Record.from_json(await self._json("PATCH", self._url(engine, name), json=fields, idempotent=True))

    async def delete(self, engine: str, name: str) -> None:
        await self._json("DELETE", self._url(engine, name), idempotent=False)


class Leases(Resource):
    """``client.leases`` (= ``client.dynamic.leases``). Renewing or revoking another identity's lease needs
    ``dynamic:manage``."""

    async def list(self, *, engine: str | None = None, role: str | None = None, status: str | None = None,
                   limit: int | None = None, page_size: int = 100) -> AsyncIterator[Lease]:
        async for lease in self._paginate("/v1/dynamic/leases", "leases", Lease.from_json,
                                          {"engine": engine, "role": role, "status": status}, limit=limit,
                                          page_size=page_size):
            yield lease

    async def get(self, lease_id: str) -> Lease:
        return Lease.from_json(await self._json("GET", f"/v1/dynamic/leases/{segment(lease_id)}"))

    async def renew(self, lease_id: str, *, increment: str | None = None) -> Lease:
        """New expiry = now + ``increment`` (default the role's TTL); past the lease's ``max_expires_at`` it is
        refused (``ValidationError``, field ``increment``): issue a new credential then."""
        return Lease.from_json(await self._json("POST", f"/v1/dynamic/leases/{segment(lease_id)}/renew",
                                                json=body(increment=increment), idempotent=False))

    async def revoke(self, lease_id: str) -> Lease:
        """Revoke now. ``status`` is ``revoked`` when the target confirmed, ``revoking`` (with ``last_error``) when
        it failed or revocation is paused: the server keeps retrying. Safe to repeat."""
        return Lease.from_json(await self._json("POST", f"/v1/dynamic/leases/{segment(lease_id)}/revoke",
                                                idempotent=True))

    async def revoke_prefix(self, prefix: str) -> Record:
        """Queue every live lease of ``"<engine>"`` or ``"<engine>/<role>"``: ``{prefix, queued, lease_ids}``.
        Needs ``dynamic:manage``. Safe to repeat (already queued leases stay queued)."""
        return Record.from_json(await self._json("POST", "/v1/dynamic/leases/revoke-prefix",
                                                 json={"prefix": prefix}, idempotent=True))


class DynamicResource(Resource):
    """``client.dynamic``: ``generate`` and the sub-resources ``engines``, ``roles``, ``leases``."""

    def __init__(self, transport: Any) -> None:
        super().__init__(transport)
        self.engines = DynamicEngines(transport)
        self.roles = DynamicRoles(transport)
        self.leases = Leases(transport)

    async def generate(self, engine: str, role: str, *, ttl: str | None = None,
                       wait_until_usable: bool | None = None) -> DynamicCredential:
        """A new credential and its lease (scope ``dynamic:read``). ``ttl`` above the role's maximum is a
        ``ValidationError`` and creates nothing. Never retried once the request may have been applied."""
        doc = body(ttl=ttl, wait_until_usable=wait_until_usable)
        return DynamicCredential.from_json(await self._json(
            "POST", f"/v1/dynamic/engines/{segment(engine)}/creds/{segment(role)}", json=doc, idempotent=False))
