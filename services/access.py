"""The path-permission check every secret operation makes after the scope check.

``AccessChecker`` is the contract; the policies feature registers the real implementation,
``services.policy_access.PolicyAccessChecker``, as ``state.components["access"]`` (compiled policy index, default
deny; api/policy_setup.py). It also offers ``list_plan(ctx, prefix)`` (skip or unfilter list queries),
``decide(...)`` (the Decision without raising) and ``invalidate(tenant_id, partner_id)`` (after a change that
affects evaluation, e.g. group memberships from identity sync). ``AllowAll`` exists only so features can
be developed before policies are wired; the app never ships with it (tests assert default deny).
"""

from __future__ import annotations

from typing import Literal, Protocol

from api.context import RequestContext

Permission = Literal["read", "write", "delete", "list", "rotate", "admin"]


class AccessChecker(Protocol):
    async def check(self, ctx: RequestContext, path: str, permission: Permission, *,
                    scope: Literal["tenant", "partner"] = "tenant") -> None:
        """Return if allowed; raise AppError(access_denied | ip_not_allowed | mfa_required |
        time_window_violation, details.failed_condition) otherwise."""

    async def allowed(self, ctx: RequestContext, path: str, permission: Permission, *,
                      scope: Literal["tenant", "partner"] = "tenant") -> bool:
        """Like ``check`` but answers instead of raising (for per-item batch results and lists)."""

    async def filter(self, ctx: RequestContext, paths: list[str], permission: Permission, *,
                     scope: Literal["tenant", "partner"] = "tenant") -> list[str]:
        """The subset of ``paths`` the caller holds ``permission`` on (list filtering)."""


class AllowAll:
    async def check(self, ctx: RequestContext, path: str, permission: Permission, *,
                    scope: Literal["tenant", "partner"] = "tenant") -> None:
        return None

    async def allowed(self, ctx: RequestContext, path: str, permission: Permission, *,
                      scope: Literal["tenant", "partner"] = "tenant") -> bool:
        return True

    async def filter(self, ctx: RequestContext, paths: list[str], permission: Permission, *,
                     scope: Literal["tenant", "partner"] = "tenant") -> list[str]:
        return list(paths)
