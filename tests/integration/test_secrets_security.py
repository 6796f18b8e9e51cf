"""Tenant isolation, ciphertext binding, no plaintext at rest, concurrent writers, key rotation."""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets as pysecrets
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from cli.main import main as cli_main
from crypto import envelope
from crypto.kms import LocalKms
from db.engine import Database
from services import keys
from tests.helpers import CI, bearer, client_token
from tests.integration import secrets_helpers
from tests.integration.secrets_helpers import DEV_USER, Api

api = secrets_helpers.api  # the fixture

pytestmark = pytest.mark.asyncio


def _strip(resp: Any) -> tuple[int, Any]:
    body = resp.json() if resp.content else None
    if isinstance(body, dict) and "error" in body:
        body["error"].pop("request_id", None)
    return resp.status_code, body


async def _probe_all(api: Api, h: dict[str, str], path: str) -> dict[str, tuple[int, Any]]:
    c = api.client
    calls = {
        "get": c.get(f"/v1/secrets/{path}", headers=h),
        "get_version": c.get(f"/v1/secrets/{path}?version=1", headers=h),
        "metadata": c.get(f"/v1/secrets/{path}:metadata?include_deleted=true", headers=h),
        "versions": c.get(f"/v1/secrets/{path}:versions", headers=h),
        "list": c.get("/v1/secrets?prefix=iso/&include_deleted=true", headers=h),
        "patch": c.patch(f"/v1/secrets/{path}", json={"metadata": {"owner": "mallory"}}, headers=h),
        "restore": c.post(f"/v1/secrets/{path}:restore", headers=h),
        "destroy": c.post(f"/v1/secrets/{path}:destroy", json={"versions": [1]}, headers=h),
        "batch": c.post("/v1/secrets/batch", json={"paths": [path]}, headers=h),
        "batch_meta": c.post("/v1/secrets/batch/metadata", json={"paths": [path, "iso/**"],
                                                                  "options": {"expand_wildcards": True}}, headers=h),
        "delete": c.delete(f"/v1/secrets/{path}", headers=h),
        "delete_hard": c.delete(f"/v1/secrets/{path}?permanent=true", headers=h),
    }
    out = {}
    for name, coro in calls.items():  # sequentially: deletes come last
        out[name] = _strip(await coro)
    return out


async def test_other_tenant_can_neither_read_list_infer_nor_modify(api: Api) -> None:
    owner = await api.token()           # alice, tnt_acme_prod
    other = await api.token(DEV_USER)   # erin, tnt_acme_dev
    before = await _probe_all(api, other, "iso/secret")
    r = await api.put("iso/secret", {"password": "prod-only-value"}, owner, metadata={"tags": ["t"]})
    assert r.status_code == 201
    after = await _probe_all(api, other, "iso/secret")
    assert after == before  # byte-for-byte the same answers as for a path that does not exist
    assert after["get"][0] == 404 and after["get"][1]["error"]["code"] == "secret_not_found"
    assert after["list"] == (200, {"secrets": [], "cursor": None, "has_more": False})
    assert after["batch"][1]["errors"]["iso/secret"]["code"] == "secret_not_found"
    assert after["batch_meta"][1]["secrets"] == {}
    for name in ("patch", "restore", "destroy", "delete", "delete_hard", "metadata", "versions"):
        assert after[name][0] == 404, name
    # a PUT from the other tenant creates its own, unrelated secret
    r = await api.put("iso/secret", {"password": "dev-value"}, other)
    assert r.status_code == 201 and r.json()["version"] == 1
    got = (await api.client.get("/v1/secrets/iso/secret", headers=owner)).json()
    assert got["data"] == {"password": "prod-only-value"} and got["version"] == 1
    assert got["metadata"] == {"tags": ["t"]}
    # and switching tenant explicitly needs partner-admin rights
    r = await api.client.get("/v1/t/tnt_acme_prod/secrets/iso/secret", headers=other)
    assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_access_denied"
    r = await api.client.get("/v1/secrets/iso/secret", headers={**other, "X-Tenant-ID": "tnt_acme_prod"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_access_denied"


async def test_partner_admin_reaches_a_tenant_through_the_prefix(api: Api) -> None:
    owner = await api.token()
    await api.put("iso/x", {"a": "b"}, owner)
    admin = await api.partner_admin()
    r = await api.client.get("/v1/t/tnt_acme_prod/secrets/iso/x", headers=admin)
    assert r.status_code == 200 and r.json()["data"] == {"a": "b"}
    r = await api.client.get("/v1/t/tnt_acme_dev/secrets/iso/x", headers=admin)
    assert r.status_code == 404


async def test_copied_ciphertext_fails_to_decrypt(api: Api) -> None:
    prod, dev = await api.token(), await api.token(DEV_USER)
    await api.put("copy/a", {"v": "AAA-value"}, prod)
    await api.put("copy/b", {"v": "BBB-value"}, prod)
    await api.put("copy/a", {"v": "AAA-value-2"}, prod)
    await api.put("copy/c", {"v": "CCC-dev-value"}, dev)
    await api.client.put("/v1/partner/secrets/copy/a", json={"data": {"v": "PPP-partner"}},
                         headers=await api.partner_admin())

    async def ct(owner: str, path: str, version: int = 1) -> bytes:
        rows = await api.sql("SELECT v.ciphertext FROM secret_versions v JOIN secrets s ON s.id = v.secret_id"
                             " WHERE s.owner_id = $1 AND s.path = $2 AND v.version = $3", owner, path, version)
        return bytes(rows[0]["ciphertext"])

    async def overwrite(owner: str, path: str, version: int, blob: bytes) -> None:
        await api.sql("UPDATE secret_versions v SET ciphertext = $4 FROM secrets s WHERE s.id = v.secret_id"
                      " AND s.owner_id = $1 AND s.path = $2 AND v.version = $3", owner, path, version, blob)

    cases = [  # (source owner, path, version) -> (destination path, version), text that must not leak
        (("tnt_acme_prod", "copy/b", 1), ("copy/a", 2), "BBB"),          # another path, same tenant
        (("tnt_acme_prod", "copy/a", 1), ("copy/a", 2), "AAA-value\""),  # another version, same path
        (("tnt_acme_dev", "copy/c", 1), ("copy/b", 1), "CCC"),           # another tenant
        (("prt_acme", "copy/a", 1), ("copy/a", 1), "PPP"),               # partner scope -> tenant scope
    ]
    for (src_owner, src_path, src_v), (dst_path, dst_v), leaked in cases:
        await overwrite("tnt_acme_prod", dst_path, dst_v, await ct(src_owner, src_path, src_v))
        r = await api.client.get(f"/v1/secrets/{dst_path}?version={dst_v}", headers=prod)
        assert r.status_code == 500, (src_owner, src_path, r.text)
        assert r.json()["error"]["code"] == "decryption_failed"
        assert leaked not in r.text
        r = await api.client.post("/v1/secrets/batch", json={"paths": [dst_path], "options": {"version": dst_v}},
                                  headers=prod)
        assert r.json()["errors"][dst_path]["code"] == "decryption_failed" and leaked not in r.text


async def _text_columns(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' AND data_type IN"
        " ('text', 'character varying', 'bytea', 'jsonb', 'json', 'ARRAY', 'character')")
    return [(r["table_name"], r["column_name"], r["data_type"]) for r in rows]


async def _hits(conn: asyncpg.Connection, marker: str) -> list[str]:
    found = []
    for table, col, kind in await _text_columns(conn):
        cond = (f'position(convert_to($1, \'UTF8\') in "{col}") > 0' if kind == "bytea"
                else f'"{col}"::text LIKE \'%\' || $1 || \'%\'')
        if await conn.fetchval(f'SELECT count(*) FROM "{table}" WHERE {cond}', marker):
            found.append(f"{table}.{col}")
    return found


async def test_no_plaintext_anywhere_in_the_database(api: Api) -> None:
    h = await api.token()
    markers = [f"plaintext-marker-{pysecrets.token_hex(8)}" for _ in range(5)]
    await api.put("scan/kv", {"password": markers[0]}, h, metadata={"description": "visible-description-xyz"})
    await api.put("scan/json", {"nested": {"deep": [markers[1]]}}, h, secret_type="json")
    await api.put("scan/api", {"key": markers[2]}, h, secret_type="api_key")
    await api.put("scan/kv", {"password": markers[3]}, h)  # a second version
    await api.client.put("/v1/partner/secrets/scan/p", json={"data": {"k": markers[4]}},
                         headers=await api.partner_admin())
    r = await api.client.post("/v1/secrets/batch", json={"paths": ["scan/kv", "scan/json", "scan/api"]}, headers=h)
    assert markers[3] in r.text and markers[1] in r.text  # the values are really there to be found
    await api.component("secrets").tracker.flush()
    conn = await api.db()
    try:
        assert await _hits(conn, "visible-description-xyz") == ["secrets.metadata"]  # the scan does find text
        for m in markers:
            assert await _hits(conn, m) == [], m
    finally:
        await conn.close()


async def test_concurrent_cas_writers_lose_no_update(api: Api) -> None:
    h = await api.token()
    n = 12

    async def increment() -> int:
        attempts = 0
        while True:
            attempts += 1
            r = await api.client.get("/v1/secrets/cas/counter", headers=h)
            current, value = (0, 0) if r.status_code == 404 else (r.json()["version"], int(r.json()["data"]["n"]))
            r = await api.put("cas/counter", {"n": str(value + 1)}, h, options={"cas": current})
            if r.status_code in (200, 201):
                return attempts
            assert r.status_code == 409 and r.json()["error"]["code"] == "version_conflict", r.text
            await asyncio.sleep(random.random() / 50)

    attempts = await asyncio.gather(*(increment() for _ in range(n)))
    conflicts = sum(attempts) - n  # every attempt but each writer's last answered 409 version_conflict
    got = (await api.client.get("/v1/secrets/cas/counter", headers=h)).json()
    assert got["version"] == n and got["data"] == {"n": str(n)}
    versions = (await api.client.get("/v1/secrets/cas/counter:versions", headers=h)).json()["versions"]
    assert sorted(v["version"] for v in versions) == list(range(1, n + 1))
    for k in range(1, n + 1):  # no lost update: version k holds the k-th increment
        r = await api.client.get("/v1/secrets/cas/counter", params={"version": k}, headers=h)
        assert r.json()["data"] == {"n": str(k)}, (k, r.text)
    # exact audit trail: one successful write per version, one failed write per 409 the clients saw
    rows = await api.sql("SELECT success, version, error_code FROM audit_log WHERE action = 'write'"
                         " AND secret_path = 'cas/counter'")
    assert sorted(r["version"] for r in rows if r["success"]) == list(range(1, n + 1))
    assert [r["error_code"] for r in rows if not r["success"]] == ["version_conflict"] * conflicts


async def test_concurrent_blind_writers_each_get_their_own_version(api: Api) -> None:
    h = await api.token()
    n = 16
    results = await asyncio.gather(*(api.put("race/x", {"writer": str(i)}, h) for i in range(n)))
    assert sorted(r.json()["version"] for r in results) == list(range(1, n + 1))
    assert sum(r.status_code == 201 for r in results) == 1
    seen = set()
    for v in range(1, n + 1):
        seen.add((await api.client.get(f"/v1/secrets/race/x?version={v}", headers=h)).json()["data"]["writer"])
    assert seen == {str(i) for i in range(n)}


async def test_tenant_key_rotation_is_broadcast_to_running_apis(api: Api) -> None:
    h = bearer(await client_token(api.scaikey, CI))
    await api.put("rot/x", {"a": "1"}, h)
    listener = api.component("keyring_listener")
    await asyncio.wait_for(listener.subscribed.wait(), 30)
    db = Database(api.settings, pool_size=1)
    redis = aioredis.Redis.from_url(api.settings.redis_url)
    try:
        kek = await keys.rotate_tenant(keys.build_keyring(api.settings, db), redis, "tnt_acme_prod", "prt_acme")
    finally:
        await redis.aclose()
        await db.dispose()
    assert kek.version == 2
    version_used = 1
    deadline = asyncio.get_running_loop().time() + 30
    for i in itertools.count():  # the broadcast arrives asynchronously: poll with a generous deadline
        await api.put("rot/x", {"a": str(i)}, h)
        rows = await api.sql("SELECT v.ciphertext FROM secret_versions v JOIN secrets s ON s.id = v.secret_id"
                             " WHERE s.path = 'rot/x' ORDER BY v.version DESC LIMIT 1")
        version_used = envelope.peek_kek_version(bytes(rows[0]["ciphertext"]))
        if version_used == 2 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert version_used == 2
    got = await api.client.get("/v1/secrets/rot/x?version=1", headers=h)  # sealed under tenant key v1
    assert got.status_code == 200 and got.json()["data"] == {"a": "1"}


async def test_kms_rotate_cli_rewraps_and_old_data_stays_readable(
    scaikey: str, settings_factory: Any, make_app_client: Any, redis_clean: str, tmp_path: Path
) -> None:
    key_file = LocalKms.create_key_file(tmp_path / "root.key")
    settings = settings_factory(kms_local_key="", kms_local_key_file=str(key_file))
    old_key_id = LocalKms.from_file(key_file).key_id
    prod = bearer(await client_token(scaikey, CI))
    async with make_app_client(settings) as client:
        await secrets_helpers.grant_test_identities(secrets_helpers.Api(client, settings, scaikey, None))
        assert (await client.put("/v1/secrets/kms/a", json={"data": {"v": "before-rotation"}},
                                 headers=prod)).status_code == 201
        admin = bearer(await client_token(scaikey, ("partner-admin-svc", "dev-partner-admin-secret")))
        assert (await client.put("/v1/partner/secrets/kms/p", json={"data": {"v": "partner-before"}},
                                 headers=admin)).status_code == 201
    blobs_sql = "SELECT secret_id, version, ciphertext FROM secret_versions ORDER BY 1, 2"
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        blobs_before = [tuple(r) for r in await conn.fetch(blobs_sql)]
    finally:
        await conn.close()
    LocalKms.rotate_key_file(key_file)
    new_key_id = LocalKms.from_file(key_file).key_id
    assert new_key_id != old_key_id
    assert await asyncio.to_thread(cli_main, ["kms", "rotate"]) == 0
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await conn.fetch("SELECT kms_key_id FROM partner_keys")
        assert {r["kms_key_id"] for r in rows} == {new_key_id}
        # payloads were not re-encrypted: the version rows are byte-identical to before
        assert [tuple(r) for r in await conn.fetch(blobs_sql)] == blobs_before
    finally:
        await conn.close()
    key_file.write_text(key_file.read_text().splitlines()[0] + "\n")  # forget the old root key entirely
    assert await asyncio.to_thread(cli_main, ["kms", "rotate", "--only-stale"]) == 0
    async with make_app_client(settings) as client:
        r = await client.get("/v1/secrets/kms/a", headers=prod)
        assert r.status_code == 200 and r.json()["data"] == {"v": "before-rotation"}
        r = await client.get("/v1/partner/secrets/kms/p", headers=prod)
        assert r.status_code == 200 and r.json()["data"] == {"v": "partner-before"}
