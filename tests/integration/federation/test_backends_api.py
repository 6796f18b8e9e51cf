"""Federated backends through HTTP against a real OpenBao dev server and moto_server: validation (each bad input a
clear error), verify on create (not a Vault, wrong credentials), CRUD, and proxy mode for both backend types
(reads go to the remote and are audited; writes refused; remote 404 is secret_not_found; outage is 503 naming
the backend; policies apply to the local path)."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from tests.helpers import CI, bearer, client_token

pytestmark = [pytest.mark.asyncio]


def _vault(bao: Any, creds_path: str, **over: Any) -> dict[str, Any]:
    body = {"name": f"b-{uuid.uuid4().hex[:8]}", "type": "hashicorp-vault", "mode": "proxy",
            "config": {"endpoint": bao.url, "auth_method": "token", "auth_config_path": creds_path},
            "path_mapping": {f"ext/{uuid.uuid4().hex[:6]}/**": "secret/data/**"}}
    body.update(over)
    return body


async def test_bad_input_is_refused_with_clear_errors(stack_factory: Any, bao: Any, moto: str) -> None:
    stack = await stack_factory(federation_min_sync_interval_seconds=60)
    assert (await stack.put("fedcreds/good", {"token": bao.token})).status_code == 201
    assert (await stack.put("fedcreds/bad", {"token": "not-the-token"})).status_code == 201

    async def create(body: dict[str, Any], status: int, code: str, verify: bool = True) -> dict[str, Any]:
        r = await stack.api.post(f"/v1/federation/backends?verify={str(verify).lower()}", json=body,
                                 headers=stack.admin)
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code, r.text
        return r.json()["error"]  # type: ignore[no-any-return]

    err = await create(_vault(bao, "fedcreds/bad"), 400, "invalid_config")
    assert "not-the-token" not in str(err)
    await create(_vault(bao, "fedcreds/good", config={"endpoint": moto, "auth_method": "token",
                                                       "auth_config_path": "fedcreds/good"}), 400, "invalid_config")
    await create(_vault(bao, "fedcreds/missing"), 400, "invalid_config")
    await create(_vault(bao, "fedcreds/good", type="azure-key-vault"), 422, "validation_error")
    await create(_vault(bao, "fedcreds/good", type="google-secret-manager"), 422, "validation_error")
    await create(_vault(bao, "fedcreds/good", path_mapping={"ext/a/*": "secret/data/**"}), 422, "validation_error")
    await create(_vault(bao, "fedcreds/good", path_mapping={"ext/a/**": "secret/data/x"}), 422, "validation_error")
    await create(_vault(bao, "fedcreds/good", path_mapping={"**": "secret/data/**"}), 422, "validation_error")
    await create(_vault(bao, "fedcreds/good", path_mapping={"ext/a/**": "secret/**"}), 422, "validation_error")
    await create(_vault(bao, "fedcreds/good", mode="sync", sync_interval="30s"), 422, "validation_error")
    await create(_vault(bao, "fedcreds/good", mode="sync"), 422, "validation_error")
    await create(_vault(bao, "fedcreds/good", config={"endpoint": "ftp://x", "auth_method": "token",
                                                       "auth_config_path": "fedcreds/good"}), 422,
                 "validation_error")
    await create(_vault(bao, "fedcreds/good", config={"endpoint": bao.url, "auth_method": "kubernetes",
                                                       "auth_config_path": "fedcreds/good"}), 422,
                 "validation_error")
    ok = _vault(bao, "fedcreds/good", path_mapping={"ext/shared/**": "secret/data/**"})
    r = await stack.api.post("/v1/federation/backends", json=ok, headers=stack.admin)
    assert r.status_code == 201, r.text
    created = r.json()
    assert "token" not in str(created) or bao.token not in str(created)
    # a second backend whose mapping overlaps the first one's
    await create(_vault(bao, "fedcreds/good", path_mapping={"ext/shared/deeper/**": "secret/data/**"}), 422,
                 "validation_error")
    await create(_vault(bao, "fedcreds/good", path_mapping={"ext/**": "secret/data/**"}), 422, "validation_error")

    # CRUD
    bid = created["id"]
    r = await stack.api.get(f"/v1/federation/backends/{bid}", headers=stack.admin)
    assert r.status_code == 200 and r.json()["name"] == ok["name"]
    r = await stack.api.get("/v1/federation/backends", headers=stack.admin)
    assert [b["id"] for b in r.json()["backends"]] == [bid]
    r = await stack.api.patch(f"/v1/federation/backends/{bid}", json={"mode": "sync", "sync_interval": "10m"},
                              headers=stack.admin)
    assert r.status_code == 200 and r.json()["sync_interval"] == "10m", r.text
    r = await stack.api.delete(f"/v1/federation/backends/{bid}", headers=stack.admin)
    assert r.status_code == 204
    r = await stack.api.get(f"/v1/federation/backends/{bid}", headers=stack.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "backend_not_found"


async def test_vault_proxy_mode_reads_remote_refuses_writes_and_names_outages(stack: Any, bao: Any,
                                                                           scaikey: str) -> None:
    local = f"ext/{uuid.uuid4().hex[:6]}"
    b = await stack.vault_backend(bao, mode="proxy", local=f"{local}/**")
    bao.put("app/db", {"password": "remote-v1"})
    r = await stack.get(f"{local}/app/db")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["data"] == {"password": "remote-v1"} and doc["federation"]["backend_id"] == b["id"]
    bao.put("app/db", {"password": "remote-v2"})
    r = await stack.get(f"{local}/app/db")
    assert r.json()["data"] == {"password": "remote-v2"} and r.json()["version"] == 2  # live, no cache
    rows = await stack.sql("SELECT action, identity_id, extra_data FROM audit_log WHERE secret_path = $1"
                           " AND action = 'read' AND success", f"{local}/app/db")
    assert len(rows) == 2 and b["id"] in rows[0]["extra_data"]
    r = await stack.get(f"{local}/app/missing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "secret_not_found"
    r = await stack.put(f"{local}/app/db", {"password": "local"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "federated_path_read_only", r.text
    r = await stack.api.delete(f"/v1/secrets/{local}/app/db", headers=stack.admin)
    assert r.status_code == 409
    # an unmapped path next to it is an ordinary local secret
    assert (await stack.put(f"{local}x/app", {"a": "b"})).status_code == 201
    # policies apply to the local path: ci-deployer has no grant here
    ci = bearer(await client_token(scaikey, CI))
    r = await stack.api.get(f"/v1/secrets/{local}/app/db", headers=ci)
    assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied", r.text
    # outage: 503 naming the backend
    bao.handle.stop(timeout=10)
    r = await stack.get(f"{local}/app/db")
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "service_unavailable" and err["details"]["backend"] == b["name"]
    st = await stack.status(b["id"])
    assert st["connection"]["status"] == "unreachable" and st["status"] == "unreachable"


async def test_asm_proxy_mode(stack: Any, moto: str) -> None:
    sm = boto3.client("secretsmanager", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    pre = f"prod{uuid.uuid4().hex[:6]}/"
    sm.create_secret(Name=pre + "app/api", SecretString='{"key": "asm-1"}')
    sm.create_secret(Name=pre + "app/plain", SecretString="just-a-string")
    local = f"ext/aws{uuid.uuid4().hex[:6]}"
    await stack.asm_backend(moto, mode="proxy", local=f"{local}/**", remote=f"{pre}**")
    r = await stack.get(f"{local}/app/api")
    assert r.status_code == 200 and r.json()["data"] == {"key": "asm-1"}, r.text
    r = await stack.get(f"{local}/app/plain")
    assert r.json()["data"] == {"value": "just-a-string"}
    sm.put_secret_value(SecretId=pre + "app/api", SecretString='{"key": "asm-2"}')
    assert (await stack.get(f"{local}/app/api")).json()["data"] == {"key": "asm-2"}
    r = await stack.get(f"{local}/app/none")
    assert r.status_code == 404 and r.json()["error"]["code"] == "secret_not_found"


async def test_vault_approle_auth(stack: Any, bao: Any) -> None:
    assert bao.call("POST", "/v1/sys/auth/approle", json={"type": "approle"}).status_code == 204
    policy = 'path "secret/*" { capabilities = ["read", "list"] }'
    assert bao.call("PUT", "/v1/sys/policies/acl/fed", json={"policy": policy}).status_code == 204
    assert bao.call("POST", "/v1/auth/approle/role/fed", json={"token_policies": ["fed"]}).status_code == 204
    role_id = bao.call("GET", "/v1/auth/approle/role/fed/role-id").json()["data"]["role_id"]
    secret_id = bao.call("POST", "/v1/auth/approle/role/fed/secret-id").json()["data"]["secret_id"]
    bao.put("team/cfg", {"url": "https://x"})
    local = f"ext/{uuid.uuid4().hex[:6]}"
    # a wrong secret_id is refused on create (verify)
    r = await stack.vault_backend(bao, mode="proxy", local=f"{local}/**", auth="approle",
                                  creds={"role_id": role_id, "secret_id": "wrong"}, expect=400)
    assert r["error"]["code"] == "invalid_config" and "wrong" not in str(r)
    await stack.vault_backend(bao, mode="proxy", local=f"{local}/**", auth="approle",
                              creds={"role_id": role_id, "secret_id": secret_id})
    r = await stack.get(f"{local}/team/cfg")
    assert r.status_code == 200 and r.json()["data"] == {"url": "https://x"}, r.text


async def test_mapping_index_is_invalidated_in_every_api_process(settings_factory: Any, api_server_factory: Any,
                                                                 scaikey: str, redis_clean: str, bao: Any) -> None:
    """Two API processes, an index TTL of an hour: B caches "no proxies" for the tenant, a backend is created
    through A, and B's next reads go to the remote (the pub/sub broadcast, not the TTL)."""
    import asyncio

    import httpx

    from tests.helpers import ADMIN, grant, reset_emulator
    from tests.integration.federation.conftest import FED

    await reset_emulator(scaikey)
    settings = settings_factory(**{**FED, "federation_index_ttl_seconds": 3600})
    server_a, server_b = api_server_factory(settings), api_server_factory(settings)
    admin = bearer(await client_token(scaikey, ADMIN))
    local = f"ext/{uuid.uuid4().hex[:6]}"
    bao.put("k", {"v": "remote"})
    async with httpx.AsyncClient(base_url=server_a.url, timeout=30) as a, \
            httpx.AsyncClient(base_url=server_b.url, timeout=30) as b:
        await grant(a, admin, ["sa:dev-admin"], name="federation-mp")
        assert (await a.put("/v1/secrets/fedcreds/mp", json={"data": {"token": bao.token}},
                            headers=admin)).status_code == 201
        assert (await b.get(f"/v1/secrets/{local}/k", headers=admin)).status_code == 404  # B caches the index
        r = await a.post("/v1/federation/backends", headers=admin, json={
            "name": "mp", "type": "hashicorp-vault", "mode": "proxy", "path_mapping": {f"{local}/**": "secret/data/**"},
            "config": {"endpoint": bao.url, "auth_method": "token", "auth_config_path": "fedcreds/mp"}})
        assert r.status_code == 201, r.text
        deadline = asyncio.get_running_loop().time() + 10  # pub/sub is asynchronous; far below the 1 h TTL
        while (r := await b.get(f"/v1/secrets/{local}/k", headers=admin)).status_code != 200:
            assert asyncio.get_running_loop().time() < deadline, r.text
            await asyncio.sleep(0.2)
        assert r.json()["data"] == {"v": "remote"}


async def test_creating_a_backend_needs_read_on_its_credentials_and_write_under_its_mapping(
        stack: Any, scaikey: str) -> None:
    """federation:write alone is not enough: otherwise it could send any secret's value to an endpoint of the
    caller's choosing, or make reads of paths it may not write return values it controls."""
    from tests.helpers import grant, user_token

    alice = "user:alice@acme.example"
    await grant(stack.api, stack.admin, [alice], pattern="fedcreds/alice", permissions=("read",), name="fa-read")
    await grant(stack.api, stack.admin, [alice], pattern="ext/alice/**", permissions=("read", "write"),
                name="fa-write")
    for path in ("fedcreds/alice", "fedcreds/admin-only"):
        assert (await stack.put(path, {"token": "t-" + path})).status_code == 201
    h = bearer(await user_token(scaikey, "alice@acme.example", scope="federation:write federation:read"))

    def body(creds: str, local: str) -> dict[str, Any]:
        return {"name": f"a-{uuid.uuid4().hex[:6]}", "type": "hashicorp-vault", "mode": "proxy",
                "config": {"endpoint": "http://127.0.0.1:9", "auth_method": "token", "auth_config_path": creds},
                "path_mapping": {local: "secret/data/**"}}

    r = await stack.api.post("/v1/federation/backends?verify=false", json=body("fedcreds/admin-only", "ext/alice/**"),
                             headers=h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied", r.text
    r = await stack.api.post("/v1/federation/backends?verify=false", json=body("fedcreds/alice", "prod/**"), headers=h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied", r.text
    r = await stack.api.post("/v1/federation/backends?verify=false", json=body("fedcreds/alice", "ext/alice/**"),
                             headers=h)
    assert r.status_code == 201, r.text
    r = await stack.api.patch(f"/v1/federation/backends/{r.json()['id']}?verify=false",
                              json={"path_mapping": {"prod/**": "secret/data/**"}}, headers=h)
    assert r.status_code == 403, r.text
    assert "t-fedcreds" not in r.text


async def test_optional_read_through_cache(stack_factory: Any, bao: Any, scaikey: str) -> None:
    """Off by default (test_vault_proxy_mode_... reads every change live); with FEDERATION_PROXY_CACHE_SECONDS a
    repeated read answers from memory, still policy-checked and audited."""
    stack = await stack_factory(federation_proxy_cache_seconds=300)
    local = f"ext/{uuid.uuid4().hex[:6]}"
    await stack.vault_backend(bao, mode="proxy", local=f"{local}/**")
    bao.put("c", {"v": "one"})
    assert (await stack.get(f"{local}/c")).json()["data"] == {"v": "one"}
    bao.put("c", {"v": "two"})
    assert (await stack.get(f"{local}/c")).json()["data"] == {"v": "one"}  # cached
    rows = await stack.sql("SELECT extra_data FROM audit_log WHERE secret_path = $1 AND action = 'read' ORDER BY ts",
                           f"{local}/c")
    assert len(rows) == 2 and '"cached": true' in rows[1]["extra_data"].replace('":true', '": true')
    ci = bearer(await client_token(scaikey, CI))
    assert (await stack.api.get(f"/v1/secrets/{local}/c", headers=ci)).status_code == 403
