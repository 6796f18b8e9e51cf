"""The resource base class: JSON calls, path quoting and cursor pagination on top of ``Transport``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from scaivault_sdk.models import Page
from scaivault_sdk.transport import Transport

T = TypeVar("T")


def segment(value: str) -> str:
    """One URL path segment (an id): every reserved character escaped, so it cannot change the route."""
    return quote(str(value), safe="")


def body(**fields: Any) -> dict[str, Any]:
    """A JSON body from keyword arguments, leaving out those that are None (the server's default applies)."""
    return {k: v for k, v in fields.items() if v is not None}


def secret_path(path: str) -> str:
    """A secret path for the URL: slashes kept (they are the hierarchy), everything else escaped."""
    return quote(path.strip("/"), safe="/")


class Resource:
    """Base for every API area."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def _json(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                    idempotent: bool | None = None) -> Any:
        response = await self._t.request(method, path, params=params, json=json, idempotent=idempotent)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def _page(self, path: str, key: str, parse: Callable[[dict[str, Any]], T],
                    params: Mapping[str, Any]) -> Page[T]:
        body = await self._json("GET", path, params=params)
        return Page(items=[parse(d) for d in body.get(key) or []], cursor=body.get("cursor"),
                    has_more=bool(body.get("has_more")))

    async def _paginate(self, path: str, key: str, parse: Callable[[dict[str, Any]], T], params: Mapping[str, Any],
                        *, limit: int | None = None, page_size: int = 100) -> AsyncIterator[T]:
        """Every item over all pages (following ``cursor``), stopping after ``limit`` items if given."""
        seen = 0
        cursor: str | None = None
        while True:
            size = page_size if limit is None else max(1, min(page_size, limit - seen))
            page = await self._page(path, key, parse, {**params, "limit": size, "cursor": cursor})
            for item in page.items:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if not page.has_more or not page.cursor:
                return
            cursor = page.cursor
