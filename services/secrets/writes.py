"""Server-side generation: write a generated value as the next version of a tenant secret.

Implements the interface ``services.secret_policies.secret_writer`` looks for, so
``POST /v1/secret-policies/{id}/generate`` writes through the same path as ``PUT /v1/secrets/{path}``
(policy check, transaction, audit entry and ``secret.created``/``secret.updated`` event) and returns
metadata only: the generated value never leaves the server.
"""

from __future__ import annotations

from typing import Any

import orjson

from api.context import RequestContext
from auth.tenancy import UNASSIGNED_PARTNER
from repositories.secrets import Owner


async def write_generated(state: Any, ctx: RequestContext, *, path: str, secret_type: str,
                          data: dict[str, str], secret_policy_id: str) -> dict[str, Any]:
    service = state.components["secrets"]
    owner = Owner("tenant", ctx.tenant_id, ctx.partner_id or UNASSIGNED_PARTNER)
    doc = {"data": data, "secret_type": secret_type, "options": {"secret_policy_id": secret_policy_id}}
    created, body = await service.write(ctx, owner, path, doc)
    meta: dict[str, Any] = orjson.loads(body)
    meta["created"] = created
    return meta
