"""Access policies, bindings and the dry-run test (``/v1/policies``): core.md §7, §10.4."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import Any

from scaivault_sdk.models import Policy, PolicyBinding, PolicyTestResult
from scaivault_sdk.resources.base import Resource, segment


class PoliciesResource(Resource):
    """``client.policies``."""

    def list(self, *, scope: str | None = None, include_inactive: bool = False,
             limit: int | None = None) -> AsyncIterator[Policy]:
        """Every policy (summaries: rules and bindings are counted, not listed), across pages."""
        return self._paginate("/v1/policies", "policies", Policy.from_json,
                              {"scope": scope, "include_inactive": "true" if include_inactive else None}, limit=limit)

    async def get(self, policy_id: str) -> Policy:
        """One policy with its rules and bindings."""
        return Policy.from_json(await self._json("GET", f"/v1/policies/{segment(policy_id)}"))

    async def create(self, name: str, rules: builtins.list[dict[str, Any]], *, description: str | None = None,
                     scope: str | None = None) -> Policy:
        """Create a policy; each rule is ``{"path_pattern", "permissions", "conditions"?}``."""
        body: dict[str, Any] = {"name": name, "rules": rules}
        if description is not None:
            body["description"] = description
        if scope is not None:
            body["scope"] = scope
        return Policy.from_json(await self._json("POST", "/v1/policies", json=body, idempotent=False))

    async def replace(self, policy_id: str, name: str, rules: builtins.list[dict[str, Any]], *,
                      description: str | None = None) -> Policy:
        """Replace name, description and rules (``PUT``); bindings are kept."""
        body: dict[str, Any] = {"name": name, "rules": rules, "description": description}
        return Policy.from_json(await self._json("PUT", f"/v1/policies/{segment(policy_id)}", json=body,
                                                 idempotent=True))

    async def update(self, policy_id: str, **fields: Any) -> Policy:
        """Change any subset of ``name``, ``description``, ``rules``, ``is_active`` (``PATCH``)."""
        return Policy.from_json(await self._json("PATCH", f"/v1/policies/{segment(policy_id)}", json=fields,
                                                 idempotent=True))

    async def delete(self, policy_id: str, *, force: bool = False) -> None:
        """Delete; ``ConflictError(policy_in_use)`` while bindings exist unless ``force=True``."""
        await self._json("DELETE", f"/v1/policies/{segment(policy_id)}",
                         params={"force": "true" if force else None}, idempotent=False)

    async def bindings(self, policy_id: str) -> builtins.list[PolicyBinding]:
        body = await self._json("GET", f"/v1/policies/{segment(policy_id)}/bindings")
        return [PolicyBinding.from_json(b) for b in body.get("bindings") or []]

    async def bind(self, policy_id: str, identity_type: str, identity_id: str, *,
                   expires_at: str | None = None) -> PolicyBinding:
        """Bind to ``user`` / ``service_account`` / ``group`` ``identity_id`` (e.g. ``group:sre``)."""
        body: dict[str, Any] = {"identity_type": identity_type, "identity_id": identity_id}
        if expires_at is not None:
            body["expires_at"] = expires_at
        return PolicyBinding.from_json(await self._json("POST", f"/v1/policies/{segment(policy_id)}/bindings",
                                                        json=body, idempotent=False))

    async def unbind(self, policy_id: str, binding_id: str) -> None:
        await self._json("DELETE", f"/v1/policies/{segment(policy_id)}/bindings/{segment(binding_id)}",
                         idempotent=False)

    async def test(self, identity_id: str, path: str, permission: str, *, source_ip: str | None = None,
                   mfa_verified: bool | None = None, timestamp: str | None = None) -> PolicyTestResult:
        """Would ``identity_id`` get ``permission`` on ``path``? No side effects, no audit entry."""
        context = {k: v for k, v in (("source_ip", source_ip), ("mfa_verified", mfa_verified),
                                     ("timestamp", timestamp)) if v is not None}
        body: dict[str, Any] = {"identity_id": identity_id, "path": path, "permission": permission}
        if context:
            body["context"] = context
        return PolicyTestResult.from_json(await self._json("POST", "/v1/policies/test", json=body, idempotent=True))
