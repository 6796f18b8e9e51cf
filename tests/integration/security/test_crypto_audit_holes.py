"""Issue 11, crypto and tenancy (items 9 and 10), through the HTTP API, the CLI and the database.

9. a tenant first seen without a partner lives under its own placeholder partner (partner secrets refused there);
   moving it to a real partner (a signed ScaiKey ``tenant.updated`` webhook, the code path sync shares) re-wraps
   its keys in the moving transaction, and every secret version stays readable with the key cache disabled;
10. the audit chain is keyed: an edit re-sealed the unkeyed way by someone with database access but without
    AUDIT_HMAC_KEY fails ``scaivault audit verify``, which names the block; chains sealed before migration 0009
    (v1) still verify, and a keyed block appended to them protects them too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from audit.chain import CHAIN_V1, GENESIS, Block, block_hash, entry_digest, seal_block
from clients.scaikey import ScaiKeyClient
from crypto.errors import KmsUnavailable
from crypto.keyring import KeyHierarchy
from db import migrate
from db.engine import Database
from repositories.identity import directory as directory_repo
from repositories.keys import SqlKeyStore
from repositories.tenants import is_placeholder_partner
from services.identity import sync as identity_sync
from services.keys import build_keyring
from tests.fixtures.app import subprocess_env
from tests.helpers import bearer, grant, mint

pytestmark = pytest.mark.asyncio

WEBHOOK_SECRET = "whsec_crypto_holes_0123456789abcdef"
SECRETS = "secrets:read secrets:list secrets:write"


class Stack:
    def __init__(self, client: httpx.AsyncClient, settings: Any, scaikey: str) -> None:
        self.client, self.settings, self.scaikey = client, settings, scaikey
        self._known: set[str] = set()

    async def _emulator_tenant(self, tenant: str) -> None:
        """Register ``tenant`` with the ScaiKey emulator (its tokens' issuer must be a known tenant)."""
        if tenant in self._known:
            return
        async with httpx.AsyncClient(base_url=self.scaikey) as c:
            r = await c.post("/api/v1/platform/oauth/token", data={"grant_type": "client_credentials"},
                             auth=("scaivault", self.settings.scaikey_client_secret.get_secret_value()))
            assert r.status_code == 200, r.text
            r = await c.post("/api/v1/admin/tenants", headers=bearer(r.json()["access_token"]),
                             json={"id": tenant, "slug": tenant.replace("_", "-"), "partner_id": "prt_acme"})
            assert r.status_code in (201, 409), r.text
        self._known.add(tenant)

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.settings.asyncpg_dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def token(self, tenant: str, client_id: str, partner: str | None = None, **extra: Any) -> dict[str, str]:
        """A service token for ``tenant``: with ``partner`` None the ``partner_id`` claim is left out."""
        await self._emulator_tenant(tenant)
        body: dict[str, Any] = {"client_id": client_id, "tenant_id": tenant, "claims": {"tenant_id": tenant}, **extra}
        if partner is None:
            body["omit"] = ["partner_id"]
        else:
            body["claims"]["partner_id"] = partner
        return bearer(await mint(self.scaikey, **body))

    async def tenant_updated(self, tenant: str, partner: str) -> None:
        """A signed ScaiKey ``tenant.updated`` webhook naming the tenant's (new) partner."""
        body = {"event_id": f"evt_{secrets.token_hex(8)}", "event_type": "tenant.updated", "tenant_id": tenant,
                "partner_id": partner, "data": {"id": tenant, "partner_id": partner, "name": tenant,
                                                "status": "ACTIVE"}}
        raw = orjson.dumps(body)
        ts = int(time.time())
        sig = hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
        r = await self.client.post("/v1/identity/webhooks/scaikey", content=raw,
                                   headers={"X-ScaiKey-Signature": f"t={ts},v1={sig}",
                                            "Content-Type": "application/json"})
        assert r.status_code == 200, r.text


@pytest.fixture
async def stack(scaikey: str, settings_factory: Any, make_app_client: Any, redis_clean: str) -> AsyncIterator[Stack]:
    # key_cache_ttl_seconds=0: every read unwraps the tenant key again (no cached key hides a wrong partner).
    settings = settings_factory(scaikey_webhook_secret=WEBHOOK_SECRET, key_cache_ttl_seconds=0)
    async with make_app_client(settings) as client:
        yield Stack(client, settings, scaikey)


# ------------------------------------------------------------------------------------------------ item 9


async def _write_secrets(api: httpx.AsyncClient, h: dict[str, str]) -> dict[tuple[str, int], dict[str, str]]:
    written: dict[tuple[str, int], dict[str, str]] = {}
    for path, versions in (("db/password", 3), ("api/key", 1), ("deep/nested/thing", 2)):
        for v in range(1, versions + 1):
            data = {"value": f"{path}-v{v}-{secrets.token_hex(4)}"}
            r = await api.put(f"/v1/secrets/{path}", json={"data": data}, headers=h)
            assert r.status_code in (200, 201), r.text
            written[(path, v)] = data
    return written


async def _read_all(api: httpx.AsyncClient, h: dict[str, str], written: dict[tuple[str, int], dict[str, str]]) -> None:
    for (path, v), data in written.items():
        r = await api.get(f"/v1/secrets/{path}", params={"version": str(v)}, headers=h)
        assert r.status_code == 200, (path, v, r.text)
        assert r.json()["data"] == data
    for path in {p for p, _ in written}:
        r = await api.get(f"/v1/secrets/{path}", headers=h)  # current version, no explicit version
        assert r.status_code == 200, (path, r.text)


async def _key_partners(stack: Stack, tenant: str) -> set[str]:
    return {r["kms_key_id"] for r in await stack.sql("SELECT kms_key_id FROM tenant_keys WHERE tenant_id = $1",
                                                      tenant)}


async def test_a_tenant_moved_between_partners_reads_every_secret(stack: Stack) -> None:
    api = stack.client
    tenant = f"tnt_orphan_{secrets.token_hex(4)}"
    admin = await stack.token(tenant, "dev-admin")
    ci = await stack.token(tenant, "ci-deployer", scope=SECRETS)
    await grant(api, admin, ["sa:ci-deployer"])
    written = await _write_secrets(api, ci)

    # First seen without a partner claim: its own placeholder partner, never a shared one.
    placeholder = f"ptn_unassigned_{tenant}"
    rows = await stack.sql("SELECT partner_id FROM tenants WHERE id = $1", tenant)
    assert rows[0]["partner_id"] == placeholder
    assert await _key_partners(stack, tenant) == {f"partner:{placeholder}"}
    # ... whose partner namespace holds no partner secrets at all
    r = await api.get("/v1/partner/secrets/shared/thing", headers=ci)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
    assert "no partner" in r.json()["error"]["message"]

    # A second key version (what `scaivault kms rotate-tenant` does), so the move re-wraps more than one row.
    db = Database(stack.settings, pool_size=1)
    try:
        await build_keyring(stack.settings, db).rotate_tenant_key(tenant, placeholder)
    finally:
        await db.dispose()
    r = await api.put("/v1/secrets/db/password", json={"data": {"value": "after-rotation"}}, headers=ci)
    assert r.status_code == 200, r.text
    written[("db/password", 4)] = {"value": "after-rotation"}
    assert len(await _key_partners(stack, tenant)) == 1
    await _read_all(api, ci, written)

    # ScaiKey now names the real partner: the tenant moves, its keys are re-wrapped in the same transaction.
    for partner in ("prt_acme", "prt_other"):
        await stack.tenant_updated(tenant, partner)
        rows = await stack.sql("SELECT partner_id FROM tenants WHERE id = $1", tenant)
        assert rows[0]["partner_id"] == partner
        assert await _key_partners(stack, tenant) == {f"partner:{partner}"}
        assert {r["partner_id"] for r in await stack.sql(
            "SELECT partner_id FROM secrets WHERE scope = 'tenant' AND owner_id = $1", tenant)} == {partner}
        await _read_all(api, ci, written)  # key cache TTL 0: every read unwraps under the recorded partner
        moved = await stack.token(tenant, "ci-deployer", partner=partner, scope=SECRETS)
        await _read_all(api, moved, written)
        r = await api.put("/v1/secrets/api/key", json={"data": {"value": f"under-{partner}"}}, headers=moved)
        assert r.status_code == 200, r.text
        written[("api/key", max(v for p, v in written if p == "api/key") + 1)] = {"value": f"under-{partner}"}
    await _read_all(api, ci, written)


async def test_identity_sync_moves_a_tenant_and_its_keys_in_one_transaction(stack: Stack) -> None:
    """The sync path: ScaiKey lists the tenant under its real partner; the directory sweep moves it and re-wraps
    its keys. A move whose re-wrap fails (KMS down) rolls back entirely: the tenant stays readable where it was."""
    api = stack.client
    tenant = f"tnt_orphan_{secrets.token_hex(4)}"
    admin = await stack.token(tenant, "dev-admin")
    ci = await stack.token(tenant, "ci-deployer", scope=SECRETS)
    await grant(api, admin, ["sa:ci-deployer"])
    written = await _write_secrets(api, ci)
    placeholder = f"ptn_unassigned_{tenant}"

    class DownKms:
        key_id = "down"

        async def wrap(self, *_a: Any) -> bytes:
            raise KmsUnavailable("KMS is down")

        async def unwrap(self, *_a: Any) -> bytes:
            raise KmsUnavailable("KMS is down")

    db = Database(stack.settings, pool_size=2)
    try:
        broken = KeyHierarchy(DownKms(), SqlKeyStore(db), cache_ttl_seconds=0)  # type: ignore[arg-type]
        async with db.raw() as conn:
            with pytest.raises(KmsUnavailable):
                await directory_repo.upsert_tenant(conn, id=tenant, partner_id="prt_acme", name="x", slug=None,
                                                  status="ACTIVE", keyring=broken)
        rows = await stack.sql("SELECT partner_id FROM tenants WHERE id = $1", tenant)
        assert rows[0]["partner_id"] == placeholder
        assert await _key_partners(stack, tenant) == {f"partner:{placeholder}"}
        await _read_all(api, ci, written)

        # The emulator lists the tenant under prt_acme (see Stack._emulator_tenant): a full-sync sweep moves it.
        client = ScaiKeyClient(stack.settings)
        try:
            swept = await identity_sync.sweep_directory(db, client, client, partner_id=None)
        finally:
            await client.aclose()
        assert tenant in swept
    finally:
        await db.dispose()
    rows = await stack.sql("SELECT partner_id FROM tenants WHERE id = $1", tenant)
    assert rows[0]["partner_id"] == "prt_acme"
    assert await _key_partners(stack, tenant) == {"partner:prt_acme"}
    await _read_all(api, ci, written)


async def test_two_partnerless_tenants_never_share_a_partner_namespace(stack: Stack) -> None:
    api = stack.client
    tenants = [f"tnt_orphan_{secrets.token_hex(4)}" for _ in range(2)]
    for t in tenants:
        r = await api.get("/v1/auth/whoami", headers=await stack.token(t, "dev-admin"))
        assert r.status_code == 200, r.text
    rows = await stack.sql("SELECT id, partner_id FROM tenants WHERE id = ANY($1::text[])", tenants)
    partners = {r["id"]: r["partner_id"] for r in rows}
    assert partners == {t: f"ptn_unassigned_{t}" for t in tenants}
    assert all(is_placeholder_partner(p) for p in partners.values())
    # A tenant recorded under the legacy shared placeholder (before this fix) has no partner secrets either:
    # two tenants there would otherwise read and write one partner namespace.
    legacy = f"tnt_legacy_orphan_{secrets.token_hex(4)}"
    await stack.sql("INSERT INTO partners (id) VALUES ('ptn_unassigned') ON CONFLICT DO NOTHING")
    await stack.sql("INSERT INTO tenants (id, partner_id) VALUES ($1, 'ptn_unassigned')", legacy)
    for t in [*tenants, legacy]:
        h = await stack.token(t, "ci-deployer", scope=SECRETS)
        for method in ("GET", "PUT"):
            r = await api.request(method, "/v1/partner/secrets/shared/x", headers=h,
                                  json={"data": {"v": "1"}} if method == "PUT" else None)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (t, method, r.text)


# ------------------------------------------------------------------------------------------------ item 10


def _cli(settings: Any, *args: str) -> tuple[int, Any]:
    r = subprocess.run([sys.executable, "-m", "cli", "audit", *args], capture_output=True, text=True, timeout=120,
                       env=subprocess_env(settings))
    try:
        out = json.loads(r.stdout) if r.stdout.lstrip().startswith("{") else r.stdout
    except json.JSONDecodeError:
        out = r.stdout
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, out


async def _audited_requests(stack: Stack, tenant: str, n: int) -> None:
    h = await stack.token(tenant, "dev-admin", partner="prt_acme")
    for _ in range(n):
        r = await stack.client.get("/v1/auth/whoami", headers=h)
        assert r.status_code == 200, r.text


async def _wait_entries(stack: Stack, tenant: str, n: int) -> list[asyncpg.Record]:
    deadline = time.monotonic() + 30
    while True:
        rows = await stack.sql("SELECT seq FROM audit_log WHERE tenant_id = $1 ORDER BY seq", tenant)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        await _sleep(0.1)


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


_ROW_SQL = ("SELECT seq, id, tenant_id, partner_id, ts, request_id, correlation_id, identity_id, identity_type,"
            " action, resource_type, resource_id, secret_path, permission, version, success, error_code, source_ip,"
            " user_agent, duration_ms, extra_data::text AS extra_data FROM audit_log")


async def _forge_unkeyed(conn: asyncpg.Connection, tenant: str, block_no: int, *, relabel_v1: bool) -> None:
    """What a database superuser without the key can do: edit one entry of ``block_no``, re-digest it, re-hash
    that block and every later one with the only algorithm it can compute (unkeyed SHA-256), re-link them and
    move the head. With ``relabel_v1`` the forged blocks also claim to be v1."""
    await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER; ALTER TABLE audit_seals DISABLE TRIGGER USER")
    try:
        block = Block.of(await conn.fetchrow("SELECT * FROM audit_seals WHERE tenant_id = $1 AND block_no = $2",
                                             tenant, block_no))
        target = block.log_seqs[0]
        await conn.execute("UPDATE audit_log SET action = 'nothing_to_see', success = true WHERE seq = $1", target)
        row = await conn.fetchrow(f"{_ROW_SQL} WHERE seq = $1", target)
        prev = block.prev_hash
        for rec in await conn.fetch("SELECT * FROM audit_seals WHERE tenant_id = $1 AND block_no >= $2"
                                    " ORDER BY block_no", tenant, block_no):
            b = Block.of(rec)
            digests = [entry_digest(row) if s == target else d for s, d in zip(b.log_seqs, b.digests, strict=True)]
            new_hash = block_hash(prev, tenant, b.block_no, b.first_chain_seq, b.log_seqs, b.log_ids, digests)
            await conn.execute(
                "UPDATE audit_seals SET digests = $3, prev_hash = $4, hash = $5,"
                " chain_version = CASE WHEN $6 THEN 1 ELSE chain_version END WHERE tenant_id = $1 AND block_no = $2",
                tenant, b.block_no, digests, prev, new_hash, relabel_v1)
            prev = new_hash
        await conn.execute("UPDATE audit_chain_heads SET head_hash = $2 WHERE tenant_id = $1", tenant, prev)
    finally:
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER; ALTER TABLE audit_seals ENABLE TRIGGER USER")


@pytest.mark.parametrize("relabel_v1", [False, True], ids=["kept-v2", "relabelled-v1"])
async def test_verify_names_a_block_re_sealed_without_the_key(stack: Stack, relabel_v1: bool) -> None:
    tenant = f"tnt_audit_{secrets.token_hex(4)}"
    for _ in range(3):  # three sealing passes: three blocks
        await _audited_requests(stack, tenant, 2)
        await _wait_entries(stack, tenant, 1)
        code, out = _cli(stack.settings, "seal")
        assert code == 0, out
    code, out = _cli(stack.settings, "verify", "--tenant", tenant, "--require-keyed")
    assert code == 0 and out["ok"] and out["tenants"][0]["keyed"] is True, out
    blocks = await stack.sql("SELECT block_no, chain_version FROM audit_seals WHERE tenant_id = $1 ORDER BY block_no",
                             tenant)
    assert len(blocks) >= 2 and {b["chain_version"] for b in blocks} == {2}

    conn = await asyncpg.connect(stack.settings.asyncpg_dsn)
    try:
        await _forge_unkeyed(conn, tenant, 2, relabel_v1=relabel_v1)
    finally:
        await conn.close()
    code, out = _cli(stack.settings, "verify", "--tenant", tenant)
    assert code == 1 and out["ok"] is False, out
    broken = out["tenants"][0]["first_broken"]
    assert broken["block_no"] == 2, broken
    expected = "unkeyed (v1) block" if relabel_v1 else "edited block"
    assert expected in broken["reason"], broken
    # the API's verify agrees
    r = await stack.client.get("/v1/audit/verify", headers=await stack.token(tenant, "dev-admin", partner="prt_acme"))
    assert r.status_code == 200 and r.json()["ok"] is False and r.json()["first_broken"]["block_no"] == 2


async def test_the_head_mac_stops_a_rewound_head_and_a_raised_v1_boundary(stack: Stack) -> None:
    tenant = f"tnt_audit_{secrets.token_hex(4)}"
    await _audited_requests(stack, tenant, 2)
    await _wait_entries(stack, tenant, 2)
    assert _cli(stack.settings, "seal")[0] == 0
    await stack.sql("UPDATE audit_chain_heads SET v1_through_block = 99 WHERE tenant_id = $1", tenant)
    code, out = _cli(stack.settings, "verify", "--tenant", tenant)
    assert code == 1 and "head does not match its MAC" in out["tenants"][0]["first_broken"]["reason"], out
    await stack.sql("UPDATE audit_chain_heads SET v1_through_block = 0, head_mac = NULL WHERE tenant_id = $1", tenant)
    code, out = _cli(stack.settings, "verify", "--tenant", tenant)
    assert code == 1 and "head MAC removed" in out["tenants"][0]["first_broken"]["reason"], out


async def test_chains_sealed_before_the_upgrade_still_verify_and_become_keyed(
    scaikey: str, settings_factory: Any, make_app_client: Any, redis_clean: str
) -> None:
    """A database at 0008 with a v1 chain (sealed by the old, unkeyed algorithm) is migrated to 0009: the chain
    verifies (keyed: false); the next sealing pass appends a keyed block, after which an unkeyed re-seal of a
    legacy entry is caught too."""
    settings = settings_factory(scaikey_webhook_secret=WEBHOOK_SECRET)
    tenant = f"tnt_legacy_{secrets.token_hex(4)}"
    migrate.downgrade(settings.database_url, "0008")
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        cols = await conn.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = 'audit_seals'")
        assert "chain_version" not in {c["column_name"] for c in cols}
        prev, chain_seq = GENESIS, 0
        for block_no in (1, 2):
            seqs = []
            for _ in range(3):
                seqs.append(await conn.fetchval(
                    "INSERT INTO audit_log (id, tenant_id, ts, identity_id, identity_type, action, success)"
                    " VALUES ($1, $2, now(), 'sa:legacy', 'service_account', 'read', true) RETURNING seq",
                    f"log_{secrets.token_hex(8)}", tenant))
            rows = await conn.fetch(f"{_ROW_SQL} WHERE seq = ANY($1::int8[]) ORDER BY seq", seqs)
            b = seal_block(tenant, block_no, chain_seq + 1, prev, list(rows))  # no key: the pre-0009 algorithm
            assert b.chain_version == CHAIN_V1
            await conn.execute(
                "INSERT INTO audit_seals (tenant_id, block_no, first_chain_seq, last_chain_seq, log_seqs, log_ids,"
                " digests, last_ts, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8, $9)",
                tenant, b.block_no, b.first_chain_seq, b.last_chain_seq, b.log_seqs, b.log_ids, b.digests,
                b.prev_hash, b.hash)
            prev, chain_seq = b.hash, b.last_chain_seq
            await conn.execute(
                "INSERT INTO audit_chain_heads (tenant_id, head_block_no, head_chain_seq, head_hash, last_log_seq,"
                " pruned_hash) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id) DO UPDATE SET"
                " head_block_no = $2, head_chain_seq = $3, head_hash = $4, last_log_seq = $5",
                tenant, b.block_no, b.last_chain_seq, b.hash, b.log_seqs[-1], GENESIS)
    finally:
        await conn.close()
    migrate.upgrade(settings.database_url, "head")

    code, out = _cli(settings, "verify", "--tenant", tenant)
    assert code == 0 and out["ok"] and out["tenants"][0]["keyed"] is False and out["unkeyed_tenants"] == [tenant]
    assert out["tenants"][0]["checked"] == 6
    code, out = _cli(settings, "verify", "--tenant", tenant, "--require-keyed")
    assert code == 1 and out["tenants"][0]["ok"] is True  # consistent, but not keyed yet

    async with make_app_client(settings) as client:
        stack = Stack(client, settings, scaikey)
        await _audited_requests(stack, tenant, 2)
        await _wait_entries(stack, tenant, 8)
        assert _cli(settings, "seal")[0] == 0
        code, out = _cli(settings, "verify", "--tenant", tenant, "--require-keyed")
        assert code == 0 and out["tenants"][0]["keyed"] is True and out["tenants"][0]["checked"] >= 8, out
        versions = [r["chain_version"] for r in await stack.sql(
            "SELECT chain_version FROM audit_seals WHERE tenant_id = $1 ORDER BY block_no", tenant)]
        assert versions == [1, 1, 2]

        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            # a legacy entry edited and the chain re-hashed the unkeyed way: the v1 blocks check out again, but
            # the keyed block cannot be re-sealed over the moved prev_hash without the key
            await _forge_unkeyed(conn, tenant, 1, relabel_v1=False)
        finally:
            await conn.close()
        code, out = _cli(settings, "verify", "--tenant", tenant)
        assert code == 1, out
        broken = out["tenants"][0]["first_broken"]
        assert broken["block_no"] == 3 and "edited block" in broken["reason"], broken
