"""Publishing and cleaning up ACME challenge responses: http-01 key authorizations go to ``acme_http_tokens``
(served by the unauthenticated ``/.well-known/acme-challenge/<token>`` route of any API replica); dns-01 values
are written through the order's DNS provider, grouped per record name (a wildcard and its apex share
``_acme-challenge.<domain>``), waited for, and always removed afterwards."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from db.engine import Database
from repositories import acme as repo
from services.acme.client import Challenge
from services.acme.dns import DnsAdapter, DnsError

log = logging.getLogger("scaivault.acme")


def _by_record(chs: list[Challenge]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for ch in chs:
        if ch.challb is not None:
            out[ch.record].append(ch.validation)
    return out


async def publish(db: Database, order_id: str, kind: str, chs: list[Challenge], dns: DnsAdapter | None,
                  wait_seconds: float) -> None:
    if kind == "http-01":
        async with db.raw() as conn:
            await repo.put_tokens(conn, order_id, [(c.token, c.validation) for c in chs if c.challb is not None])
        return
    assert dns is not None
    for name, values in _by_record(chs).items():
        await dns.set_txt(name, values, wait_seconds)


async def cleanup(db: Database, order_id: str, kind: str, chs: list[Challenge], dns: DnsAdapter | None) -> None:
    """Best effort, never raises: a failed cleanup is logged (record name only) and the order goes on."""
    try:
        async with db.raw() as conn:
            await repo.delete_tokens(conn, order_id)
    except Exception:
        log.warning("acme http-01 token cleanup failed", extra={"order_id": order_id})
    if kind != "dns-01" or dns is None:
        return
    for name, values in _by_record(chs).items():
        try:
            await dns.delete_txt(name, values)
        except DnsError as exc:
            log.warning("acme dns-01 cleanup failed", extra={"order_id": order_id, "record": name,
                                                              "error": str(exc)[:200]})


async def key_authorization(conn: Any, token: str) -> str | None:
    """What the unauthenticated http-01 route answers for ``token`` (None: unknown or already cleaned up)."""
    return await repo.token(conn, token)


def describe(chs: list[Challenge], kind: str, error: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The order's public challenge list (no key authorization: the token alone is public in the URL)."""
    failed = {c["domain"]: c["error"] for c in (error or {}).get("details", {}).get("challenges", [])}
    out = []
    for c in chs:
        status = "invalid" if c.domain.lstrip("*.") in failed or c.domain in failed else c.status
        item: dict[str, Any] = {"domain": c.domain, "type": kind, "status": status, "record": c.record}
        if status == "invalid":
            item["error"] = failed.get(c.domain) or failed.get(c.domain.lstrip("*."))
        out.append(item)
    return out
