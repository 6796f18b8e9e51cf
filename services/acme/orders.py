"""ACME orders (lifecycle.md §3.6): validated and stored by the API (``pending``), then worked by the managed-
certificate workflow on the pki queue: publish challenges (``pending``), tell the CA (``processing``), finalize,
store the certificate record (``valid``) or record the classified error (``invalid`` once abandoned).

The issued certificate becomes a ``pki_certificates`` row with ``source = 'acme'``: PEM = the chain as the CA
delivered it (leaf first), its key sealed under the tenant key with the PKI's certificate-key AAD. Storing it,
marking the order valid, the event and the audit entry commit in one transaction under the order's row lock, so a
retried activity (a killed worker) stores nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
from cryptography import x509

from api.context import RequestContext
from audit.recorder import system_context
from core.durations import parse_duration
from core.errors import AppError
from core.ids import new_id
from core.settings import Settings
from db.engine import Database
from repositories import acme as repo
from repositories.events import outbox
from services.acme import accounts, challenges, client, common, providers
from services.acme.dns import DnsAdapter, DnsError
from services.pki import common as pki_common
from services.pki import x509 as pki_x509

_T = TypeVar("_T")
_FIELDS = frozenset({"account_id", "domains", "challenge_type", "dns_provider_id", "key_type", "auto_renew",
                     "renew_before"})
CLASSIFIED = frozenset({"acme_challenge_failed", "backend_rate_limited", "dns_provider_error", "acme_backend_error",
                        "acme_account_not_found", "dns_provider_not_found", "decryption_failed", "validation_error"})


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "account_id": row["account_id"], "dns_provider_id": row["dns_provider_id"],
            "domains": repo.jsonval(row, "domains"),  # type: ignore[arg-type]
            "challenge_type": row["challenge_type"], "key_type": row["key_type"], "status": row["status"],
            "challenges": repo.jsonval(row, "challenges"),  # type: ignore[arg-type]
            "error": repo.jsonval(row, "error"),  # type: ignore[arg-type]
            "tries": row["tries"], "certificate_id": row["certificate_id"], "managed_certificate_id":
                row["managed_id"], "renewal_of_id": row["renewal_of_id"], "auto_renew": row["auto_renew"],
            "renew_before": row["renew_before"], "created_at": common.iso(row["created_at"]),
            "updated_at": common.iso(row["updated_at"]), "created_by": row["created_by"]}


def _domains(value: object) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= 100:
        raise common.validation("domains", "domains must list 1-100 DNS names")
    return list(dict.fromkeys(common.check_domain(d) for d in value))


async def create(conn: asyncpg.Connection, ctx: RequestContext, body: Mapping[str, Any]) -> dict[str, Any]:
    """Validate everything and insert the order (``pending``); the caller commits and starts the workflow."""
    unknown = sorted(str(k) for k in body if k not in _FIELDS)
    if unknown:
        raise common.validation(unknown[0], f"unknown field(s): {', '.join(unknown)}")
    account_id = body.get("account_id")
    if not isinstance(account_id, str) or not account_id:
        raise common.validation("account_id", "account_id is required")
    domains = _domains(body.get("domains"))
    kind = body.get("challenge_type", "dns-01")
    if kind not in ("http-01", "dns-01"):
        raise common.validation("challenge_type", "challenge_type must be 'http-01' or 'dns-01'"
                                                  " (tls-alpn-01 is not supported)")
    key_type = body.get("key_type", "ec256")
    if key_type not in client.KEY_TYPES:
        raise common.validation("key_type", f"key_type must be one of {', '.join(client.KEY_TYPES)}")
    auto_renew = body.get("auto_renew", True)
    if not isinstance(auto_renew, bool):
        raise common.validation("auto_renew", "auto_renew must be a boolean")
    renew_before = body.get("renew_before")
    if renew_before is not None:
        if not isinstance(renew_before, str):
            raise common.validation("renew_before", "renew_before must be a duration such as 30d")
        if parse_duration(renew_before, field="renew_before").total_seconds() < 1:
            raise common.validation("renew_before", "renew_before must be at least 1s")
    wild = [d for d in domains if d.startswith("*.")]
    if kind == "http-01" and wild:
        raise common.validation("challenge_type", f"wildcard names need dns-01: {wild[0]}", name=wild[0])
    await accounts.fetch(conn, ctx.tenant_id, account_id)
    provider_id = body.get("dns_provider_id")
    if kind == "dns-01":
        if provider_id is not None:
            if not isinstance(provider_id, str):
                raise common.validation("dns_provider_id", "dns_provider_id must be a string")
            p = await providers.fetch(conn, ctx.tenant_id, provider_id)
            zones = repo.jsonval(p, "managed_zones")
            outside = [d for d in domains if not any(common.in_zone(d, z) for z in zones)]
            if outside:
                raise common.validation("domains", f"'{outside[0]}' is outside the DNS provider's managed_zones",
                                        name=outside[0], managed_zones=zones)
        else:
            match = [p for p in await repo.active_providers(conn, ctx.tenant_id)
                     if all(any(common.in_zone(d, z) for z in repo.jsonval(p, "managed_zones")) for d in domains)]
            if not match:
                raise common.validation("dns_provider_id", "no active DNS provider manages every name; name one"
                                                           " with dns_provider_id", domains=domains)
            provider_id = match[0]["id"]
    elif provider_id is not None:
        raise common.validation("dns_provider_id", "dns_provider_id is only used with dns-01")
    row = await repo.insert_order(conn, id=new_id("acmeord"), tenant_id=ctx.tenant_id, partner_id=ctx.partner_id,
                                  account_id=account_id, dns_provider_id=provider_id, domains=domains,
                                  challenge_type=str(kind), key_type=str(key_type), managed_id=new_id("cert"),
                                  renewal_of_id=None, auto_renew=auto_renew, renew_before=renew_before,
                                  created_by=ctx.principal.identity_id)
    return public(row)


async def fetch(conn: asyncpg.Connection, tenant_id: str, order_id: str) -> asyncpg.Record:
    row = await repo.get_order(conn, tenant_id, order_id)
    if row is None:
        raise common.order_not_found(order_id)
    return row


async def list_page(conn: asyncpg.Connection, tenant_id: str, after: str | None,
                    limit: int) -> tuple[list[dict[str, Any]], str | None]:
    rows = await repo.list_orders(conn, tenant_id, after, limit + 1)
    nxt = rows[limit - 1]["id"] if len(rows) > limit else None
    return [public(r) for r in rows[:limit]], nxt


async def start_failed(conn: asyncpg.Connection, order_id: str, err: AppError) -> None:
    """The workflow could not be started (Temporal down): the order is ``invalid`` with that error."""
    await repo.set_order(conn, order_id, status="invalid", error={"code": err.code, "message": err.message})


async def check_managed(conn: asyncpg.Connection, tenant_id: str, cert_id: str) -> None:
    """``cert_id`` is a managed certificate of the tenant: the first certificate of an order lineage, or an
    internal-CA certificate that starts a lineage (whether it has a workflow is the workflow engine's answer)."""
    if await repo.managed_exists(conn, tenant_id, cert_id):
        return
    internal = await conn.fetchval("SELECT 1 FROM pki_certificates WHERE tenant_id = $1 AND id = $2"
                                   " AND ca_id IS NOT NULL AND renewed_from_id IS NULL", tenant_id, cert_id)
    if not internal:
        raise AppError("certificate_not_found", f"managed certificate '{cert_id}' not found", {"id": cert_id})


# --------------------------------------------------------------------------------------------- worker side


async def _beating(aw: Awaitable[_T], beat: Callable[[], None], every: float = 2.0) -> _T:
    task = asyncio.ensure_future(aw)
    while True:
        done, _ = await asyncio.wait({task}, timeout=every)
        if done:
            return task.result()
        beat()


class Worker:
    """Runs one order attempt end to end (the activity body)."""

    def __init__(self, settings: Settings, db: Database, keyring: Any, audit: Any,
                 beat: Callable[[], None] = lambda: None) -> None:
        self.settings, self.db, self.keyring, self.audit, self.beat = settings, db, keyring, audit, beat

    async def _thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await _beating(asyncio.to_thread(fn, *args), self.beat)

    async def run(self, tenant_id: str, order_id: str, workflow_id: str | None) -> dict[str, Any]:
        async with self.db.raw() as conn:
            order = await fetch(conn, tenant_id, order_id)
            if order["status"] == "valid" and order["certificate_id"]:
                return await self._result(conn, order)  # a retried activity after the commit: replay
            if order["status"] == "invalid":
                raise AppError("acme_backend_error", "the order was abandoned", {"order_id": order_id})
            account = await accounts.fetch(conn, tenant_id, order["account_id"])
            account_key = await accounts.open_key(conn, self.keyring, account)
            dns: DnsAdapter | None = None
            if order["challenge_type"] == "dns-01":
                prov = await providers.fetch(conn, tenant_id, order["dns_provider_id"])
                dns = await providers.open_adapter(conn, self.keyring, prov)
            await repo.set_order(conn, order_id, status="pending", challenges=[], error=None)
        domains: list[str] = repo.jsonval(order, "domains")
        kind = order["challenge_type"]
        key_pem = await asyncio.to_thread(client.generate_cert_key, order["key_type"])
        csr = client.make_csr(key_pem, domains)
        session = await self._thread(lambda: client.Session(account["directory_url"], account_key,
                                                            account_url=account["account_url"],
                                                            ca_bundle=self.settings.acme_ca_bundle or None))
        acme_order = await self._thread(session.new_order, csr)
        chs = await self._thread(session.challenges, acme_order, kind)
        async with self.db.raw() as conn:
            await repo.set_order(conn, order_id, status="pending", challenges=challenges.describe(chs, kind))
        try:
            try:
                await _beating(challenges.publish(self.db, order_id, kind, chs, dns,
                                                  self.settings.acme_dns_propagation_timeout_seconds), self.beat)
            except DnsError as exc:
                raise AppError("dns_provider_error", str(exc)[:300]) from None
            async with self.db.raw() as conn:
                await repo.set_order(conn, order_id, status="processing")
            pause = self.settings.acme_crash_test_pause_seconds
            if pause:  # tests only: a crash test SIGKILLs the worker here, mid-order
                await _beating(asyncio.sleep(pause), self.beat)
            for ch in chs:
                await self._thread(session.answer, ch)
            async with self.db.raw() as conn:
                await repo.set_order(conn, order_id, status="processing", challenges=challenges.describe(chs, kind))
            fullchain = await self._thread(session.finalize, acme_order,
                                           self.settings.acme_finalize_timeout_seconds)
        except client.AcmeFailure as exc:
            err = {"code": exc.code, "message": exc.message, "details": exc.details}
            async with self.db.raw() as conn:
                await repo.set_order(conn, order_id, status="pending", challenges=challenges.describe(chs, kind, err),
                                     error=err)
            raise
        finally:
            await challenges.cleanup(self.db, order_id, kind, chs, dns)
        for ch in chs:
            ch.status = "valid"
        return await self._store(order, account, key_pem, fullchain, chs, workflow_id)

    async def _store(self, order: Mapping[str, Any], account: Mapping[str, Any], key_pem: bytes, fullchain: str,
                     chs: list[client.Challenge], workflow_id: str | None) -> dict[str, Any]:
        tenant_id, order_id = order["tenant_id"], order["id"]
        leaf = x509.load_pem_x509_certificate(fullchain.encode())
        renewal = order["renewal_of_id"] is not None
        cert_id = new_id("cert") if renewal else order["managed_id"]
        blob = await pki_common.seal(self.keyring, key_pem, pki_common.cert_key_aad(tenant_id, cert_id),
                                     tenant_id=tenant_id, partner_id=order["partner_id"])
        pub = leaf.public_key()
        key_bits = getattr(pub, "key_size", 256)
        key_type = "rsa" if order["key_type"].startswith("rsa") else "ec"
        domains: list[str] = repo.jsonval(order, "domains")  # type: ignore[assignment]
        async with self.db.raw() as conn, conn.transaction():
            current = await repo.get_order(conn, tenant_id, order_id, for_update=True)
            if current is None:
                raise common.order_not_found(order_id)
            if current["status"] == "valid" and current["certificate_id"]:
                return await self._result(conn, current)
            await repo.insert_certificate(
                conn, id=cert_id, tenant_id=tenant_id, partner_id=order["partner_id"],
                serial_number=pki_x509.serial_hex(leaf.serial_number), common_name=domains[0], alt_names=domains,
                key_type=key_type, key_bits=key_bits, certificate_pem=fullchain, key_ciphertext=blob,
                not_before=leaf.not_valid_before_utc, not_after=leaf.not_valid_after_utc,
                created_by=f"system:{common.SYSTEM_JOB}", renewed_from_id=order["renewal_of_id"],
                acme_account_id=account["id"], acme_order_id=order_id)
            await repo.set_order(conn, order_id, status="valid", challenges=challenges.describe(chs, order[
                "challenge_type"]), certificate_id=cert_id, tries=current["tries"] + 1)
            serial = pki_x509.serial_colon(leaf.serial_number)
            data = {"certificate_id": cert_id, "serial_number": serial, "common_name": domains[0],
                    "alt_names": domains, "not_after": common.iso(leaf.not_valid_after_utc),
                    "acme_account_id": account["id"], "acme_order_id": order_id, "source": "acme"}
            if renewal:
                data["old_certificate_id"] = order["renewal_of_id"]
            await outbox.emit(conn, event_type="certificate.renewed" if renewal else "certificate.issued",
                              tenant_id=tenant_id, partner_id=order["partner_id"],
                              identity_id=f"system:{common.SYSTEM_JOB}", data=data)
            ctx = system_context(common.SYSTEM_JOB, tenant_id, partner_id=order["partner_id"],
                                 workflow_id=workflow_id)
            await self.audit.record(ctx, action="pki_acme_renew" if renewal else "pki_acme_order",
                                    resource_type="certificate", resource_id=cert_id, conn=conn,
                                    extra={"order_id": order_id, "domains": domains, "serial_number": serial,
                                           "renewed_from_id": order["renewal_of_id"]})
            done = await repo.get_order(conn, tenant_id, order_id)
            return await self._result(conn, done)  # type: ignore[arg-type]

    async def _result(self, conn: asyncpg.Connection, order: Mapping[str, Any]) -> dict[str, Any]:
        cert = await repo.certificate(conn, order["tenant_id"], order["certificate_id"])
        assert cert is not None
        rb = order["renew_before"]
        return {"certificate_id": cert["id"], "not_before": common.iso(cert["not_before"]),
                "not_after": common.iso(cert["not_after"]), "renewed": order["renewal_of_id"] is not None,
                "auto_renew": order["auto_renew"],
                "renew_before_seconds": parse_duration(rb).total_seconds() if rb else None}

    async def record_failure(self, tenant_id: str, order_id: str, code: str, message: str, attempt: int,
                             abandon: bool, workflow_id: str | None) -> str | None:
        """Audit the failed attempt (``pki_acme_renew``/``pki_acme_order``, success false, the error); when
        ``abandon``, mark the order ``invalid`` and place a fresh one (returned). Exactly once per attempt."""
        async with self.db.raw() as conn, conn.transaction():
            order = await repo.get_order(conn, tenant_id, order_id, for_update=True)
            if order is None or order["status"] == "valid":
                return None
            if order["tries"] >= attempt and not (abandon and order["status"] != "invalid"):
                return None  # this attempt was recorded already (a retried activity)
            err = repo.jsonval(order, "error") or {"code": code, "message": message}
            err = {**err, "code": code, "message": message[:500]}
            renewal = order["renewal_of_id"] is not None
            ctx = system_context(common.SYSTEM_JOB, tenant_id, partner_id=order["partner_id"],
                                 workflow_id=workflow_id)
            if order["tries"] < attempt:
                await self.audit.record(ctx, action="pki_acme_renew" if renewal else "pki_acme_order",
                                        success=False, error_code=code, resource_type="acme_order",
                                        resource_id=order_id, conn=conn,
                                        extra={"order_id": order_id, "attempt": attempt, "error": message[:300],
                                               "managed_certificate_id": order["managed_id"]})
            if not abandon:
                await repo.set_order(conn, order_id, status="pending", error=err, tries=attempt)
                return None
            await repo.set_order(conn, order_id, status="invalid", error=err, tries=attempt)
            fresh = await repo.insert_order(
                conn, id=new_id("acmeord"), tenant_id=tenant_id, partner_id=order["partner_id"],
                account_id=order["account_id"], dns_provider_id=order["dns_provider_id"],
                domains=repo.jsonval(order, "domains"), challenge_type=order["challenge_type"],
                key_type=order["key_type"], managed_id=order["managed_id"], renewal_of_id=order["renewal_of_id"],
                auto_renew=order["auto_renew"], renew_before=order["renew_before"], created_by=order["created_by"])
            return str(fresh["id"])

    async def renewal_order(self, tenant_id: str, managed_id: str, from_certificate_id: str,
                            previous_order_id: str) -> str:
        """The order renewing ``from_certificate_id`` (idempotent: an open renewal of it is reused)."""
        async with self.db.raw() as conn, conn.transaction():
            prev = await fetch(conn, tenant_id, previous_order_id)
            existing = await conn.fetchval(
                "SELECT id FROM acme_orders WHERE tenant_id = $1 AND managed_id = $2 AND renewal_of_id = $3"
                " AND status <> 'invalid' ORDER BY id DESC LIMIT 1", tenant_id, managed_id, from_certificate_id)
            if existing:
                return str(existing)
            row = await repo.insert_order(
                conn, id=new_id("acmeord"), tenant_id=tenant_id, partner_id=prev["partner_id"],
                account_id=prev["account_id"], dns_provider_id=prev["dns_provider_id"],
                domains=repo.jsonval(prev, "domains"), challenge_type=prev["challenge_type"],
                key_type=prev["key_type"], managed_id=managed_id, renewal_of_id=from_certificate_id,
                auto_renew=prev["auto_renew"], renew_before=prev["renew_before"], created_by=prev["created_by"])
            return str(row["id"])


def classify(exc: BaseException) -> tuple[str, str, float | None]:
    if isinstance(exc, client.AcmeFailure):
        return exc.code, exc.message, exc.retry_after
    if isinstance(exc, AppError):
        return exc.code, exc.message, None
    if isinstance(exc, DnsError):
        return "dns_provider_error", str(exc)[:300], None
    return "internal_error", type(exc).__name__, None


def now() -> datetime:
    return datetime.now(UTC)

