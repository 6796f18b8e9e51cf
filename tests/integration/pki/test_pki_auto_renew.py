"""Auto-renewal of internal-CA certificates (issue 16 item 4) through HTTP and the real worker subprocess: a short-
lived leaf issued with ``auto_renew`` renews by itself twice (renewed_from_id chain, certificate.renewed events,
pki_acme_renew audit rows, a new retrievable key that matches), the renewed leaf verifies with openssl against the
chain, pause stops it; a revoked CA makes the renewal fail with a classified error (query + audit), retried a
bounded number of times; a role that does not store keys refuses auto_renew."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization

from tests.integration.pki.conftest import make_hierarchy, ok, openssl, write


@pytest.fixture
def pki_settings(scaikey: str, settings_factory: Callable[..., Any]) -> Any:
    return settings_factory(base_url="https://vault.example.test",
                            rate_limit_overrides="pki_admin=100000, pki_issue=100000",
                            acme_retry_base_seconds=1, acme_retry_max_seconds=2, acme_order_max_tries=2)


async def poll(fn: Callable[[], Awaitable[Any]], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


async def sql(settings: Any, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def _hierarchy(api: httpx.AsyncClient, admin: dict[str, str], store: bool = True) -> dict[str, Any]:
    return await make_hierarchy(api, admin, key_type="ec", tag="ar" if store else "nk",
                                role_extra={"store_private_keys": store})


async def _managed(api: httpx.AsyncClient, admin: dict[str, str], cert_id: str) -> dict[str, Any]:
    return await ok(await api.get(f"/v1/pki/acme/managed/{cert_id}", headers=admin))  # type: ignore[no-any-return]


async def test_a_short_lived_internal_leaf_renews_by_itself_twice(api, admin, pki_settings, worker_process,
                                                                  tmp_path: Path) -> None:
    worker_process(pki_settings)
    h = await _hierarchy(api, admin)
    # 90 s leaf renewed 80 s before expiry: a renewal about every 10 s
    first = await ok(await api.post("/v1/pki/issue/web-ar", headers=admin, json={
        "common_name": "mtls.example.com", "ttl": "90s", "auto_renew": True, "renew_before": "80s"}))
    assert first["auto_renew"] is True and first["managed_certificate_id"] == first["id"]
    st = await _managed(api, admin, first["id"])
    assert st["workflow_id"].endswith(f"cert-renewal/tnt_acme_prod/{first['id']}")
    assert st["status"] == "waiting" and st["current_certificate_id"] == first["id"] and st["next_renewal"]

    async def renewed_twice() -> dict[str, Any] | None:
        s = await _managed(api, admin, first["id"])
        return s if s["renewals"] >= 2 else None

    st = await poll(renewed_twice, "two renewals")
    r = await api.post(f"/v1/pki/acme/managed/{first['id']}/pause", headers=admin)
    assert r.status_code == 202, r.text

    async def paused() -> dict[str, Any] | None:
        s = await _managed(api, admin, first["id"])
        return s if s["status"] == "paused" else None

    await poll(paused, "the paused state")
    rows = await sql(pki_settings, "SELECT id, renewed_from_id, not_after FROM pki_certificates WHERE role_name ="
                                   " 'web-ar' ORDER BY created_at, id")
    chain = [dict(r) for r in rows]
    assert chain[0]["id"] == first["id"] and chain[0]["renewed_from_id"] is None and len(chain) >= 3
    for prev, cur in itertools.pairwise(chain):
        assert cur["renewed_from_id"] == prev["id"] and cur["not_after"] > prev["not_after"]
    # pause stops it: no new record while paused
    await asyncio.sleep(12)
    assert len(await sql(pki_settings, "SELECT id FROM pki_certificates WHERE role_name = 'web-ar'")) == len(chain)
    assert (await _managed(api, admin, first["id"]))["status"] == "paused"

    events = [orjson.loads(e["data"]) for e in await sql(
        pki_settings, "SELECT data::text AS data FROM events WHERE event_type = 'certificate.renewed' ORDER BY seq")]
    assert [(e["old_certificate_id"], e["certificate_id"]) for e in events][:2] == [
        (chain[0]["id"], chain[1]["id"]), (chain[1]["id"], chain[2]["id"])]
    audit = await sql(pki_settings, "SELECT resource_id, identity_id, extra_data::text AS extra FROM audit_log"
                                    " WHERE action = 'pki_acme_renew' AND success ORDER BY seq")
    assert [a["resource_id"] for a in audit][:2] == [chain[1]["id"], chain[2]["id"]]
    assert audit[0]["identity_id"] == "system:pki-renewer" and orjson.loads(audit[0]["extra"])["kind"] == "internal"

    # the renewed leaf: same names, new key (retrievable and matching), verifies against root + intermediate
    cur = await ok(await api.get(f"/v1/pki/certificates/{chain[2]['id']}", headers=admin))
    assert cur["renewed_from_id"] == chain[1]["id"] and cur["common_name"] == "mtls.example.com"
    assert cur["private_key_stored"] is True and cur["role"] == "web-ar"
    key = await ok(await api.get(f"/v1/pki/certificates/{chain[2]['id']}/private-key", headers=admin))
    pem = (await api.get(f"/v1/pki/certificates/{chain[2]['id']}/pem", headers=admin)).text
    leaf = cx509.load_pem_x509_certificate(pem.encode())
    priv = serialization.load_pem_private_key(key["private_key"].encode(), None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert priv.public_key().public_bytes(serialization.Encoding.DER, spki) == leaf.public_key().public_bytes(
        serialization.Encoding.DER, spki)
    assert key["private_key"] != first["private_key"]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert 115 <= lifetime.total_seconds() <= 125  # same 90 s TTL (+30 s backdated notBefore)
    ca_pems = [(await ok(await api.get(f"/v1/pki/ca/{h[k]['id']}/certificate", headers=admin)))["certificate_pem"]
               for k in ("root", "inter")]
    root = write(tmp_path, "root.pem", ca_pems[0])
    inter = write(tmp_path, "inter.pem", ca_pems[1])
    leaf_path = write(tmp_path, "leaf.pem", leaf.public_bytes(serialization.Encoding.PEM))
    out = openssl("verify", "-CAfile", root, "-untrusted", inter, leaf_path)
    assert out.returncode == 0 and out.stdout.decode().strip().endswith("OK"), out.stdout + out.stderr

    # resume: it renews again
    assert (await api.post(f"/v1/pki/acme/managed/{first['id']}/resume", headers=admin)).status_code == 202
    n = len(chain)

    async def more() -> bool:
        return len(await sql(pki_settings, "SELECT id FROM pki_certificates WHERE role_name = 'web-ar'")) > n

    await poll(more, "a renewal after resume")


async def test_a_revoked_ca_fails_the_renewal_with_a_classified_error(api, admin, pki_settings,
                                                                      worker_process) -> None:
    worker_process(pki_settings)
    h = await _hierarchy(api, admin)
    first = await ok(await api.post("/v1/pki/issue/web-ar", headers=admin, json={
        "common_name": "svc.example.com", "ttl": "24h", "auto_renew": True}))
    st = await _managed(api, admin, first["id"])
    assert st["status"] in ("waiting", "ordering") and st["renewals"] == 0
    await ok(await api.post(f"/v1/pki/ca/{h['inter']['id']}/revoke", headers=admin, json={"reason": "key_compromise"}))
    assert (await api.post(f"/v1/pki/acme/managed/{first['id']}/renew", headers=admin)).status_code == 202

    async def failed() -> dict[str, Any] | None:
        s = await _managed(api, admin, first["id"])
        return s if s["status"] == "failed" else None

    st = await poll(failed, "the renewal to give up after acme_order_max_tries (2)")
    assert st["last_error"]["code"] == "renewal_ca_revoked" and h["inter"]["id"] in st["last_error"]["message"]
    assert st["attempts"] == 2 and st["renewals"] == 0 and st["current_certificate_id"] == first["id"]
    audit = await sql(pki_settings, "SELECT success, error_code, resource_id, extra_data::text AS extra FROM"
                                    " audit_log WHERE action = 'pki_acme_renew' ORDER BY seq")
    assert [(a["success"], a["error_code"], a["resource_id"]) for a in audit] == [
        (False, "renewal_ca_revoked", first["id"])] * 2
    extras = [orjson.loads(a["extra"]) for a in audit]
    assert [e["gave_up"] for e in extras] == [False, True] and "revoked" in extras[0]["error"]
    assert len(await sql(pki_settings, "SELECT id FROM pki_certificates WHERE renewed_from_id IS NOT NULL")) == 0


async def test_auto_renew_is_refused_for_roles_that_do_not_store_keys(api, admin) -> None:
    await _hierarchy(api, admin, store=False)
    r = await api.post("/v1/pki/issue/web-nk", headers=admin, json={
        "common_name": "a.example.com", "ttl": "1h", "auto_renew": True})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error" and "store_private_keys" in err["message"]
    for body in ({"auto_renew": "yes"}, {"renew_before": "10m"}):
        r = await api.post("/v1/pki/issue/web-nk", headers=admin, json={"common_name": "a.example.com", **body})
        assert r.status_code == 422, r.text
    await _hierarchy(api, admin)
    r = await api.post("/v1/pki/issue/web-ar", headers=admin, json={
        "common_name": "a.example.com", "ttl": "1h", "auto_renew": True, "renew_before": "2h"})
    assert r.status_code == 422 and "renew_before" in r.text
    # a certificate issued without auto_renew has no renewal workflow: the managed routes say so
    plain = await ok(await api.post("/v1/pki/issue/web-ar", headers=admin, json={"common_name": "b.example.com"}))
    r = await api.get(f"/v1/pki/acme/managed/{plain['id']}", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "certificate_not_found", r.text
