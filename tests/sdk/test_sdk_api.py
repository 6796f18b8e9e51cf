"""The SDK against the real API: secrets, batch, pagination, policies, audit, auth, errors, client credentials,
the read cache and verify_webhook."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from scaivault_sdk import (
    AccessDeniedError,
    AuthenticationError,
    ClientCredentials,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ScaiVaultClient,
    SyncScaiVaultClient,
    ValidationError,
    WebhookVerificationError,
    verify_webhook,
)
from scaivault_sdk.signature import sign

from tests.helpers import CI


async def test_secrets_lifecycle_async(vault: Any) -> None:
    async with ScaiVaultClient(vault.url, token=vault.admin) as c:
        first = await c.secrets.write("sdk/app/db", {"password": "s3cret-1"}, secret_type="json",
                                      metadata={"owner": "team:sdk", "tags": ["db"]}, max_versions=5)
        assert first.version == 1
        await c.secrets.write("sdk/app/db", {"password": "s3cret-2"})
        s = await c.secrets.read("sdk/app/db")
        assert s.data == {"password": "s3cret-2"} and s.version == 2 and s.secret_type == "json"
        assert "s3cret" not in repr(s)
        assert (await c.secrets.read("sdk/app/db", version=1)).data == {"password": "s3cret-1"}
        meta = await c.secrets.read_metadata("sdk/app/db")
        assert meta.version_count == 2 and meta.metadata["owner"] == "team:sdk"
        updated = await c.secrets.update_metadata("sdk/app/db", {"owner": "team:other"})
        assert updated.metadata["owner"] == "team:other" and updated.version == 2
        versions = await c.secrets.versions("sdk/app/db")
        assert [v.version for v in versions] == [1, 2] and versions[-1].is_current
        await c.secrets.delete("sdk/app/db")
        with pytest.raises(NotFoundError) as err:
            await c.secrets.read("sdk/app/db")
        assert err.value.code == "secret_not_found" and err.value.status == 404 and err.value.request_id
        await c.secrets.restore("sdk/app/db")
        assert (await c.secrets.read("sdk/app/db")).version == 2
        await c.secrets.delete("sdk/app/db", permanent=True)
        with pytest.raises(NotFoundError):
            await c.secrets.read_metadata("sdk/app/db", include_deleted=True)


async def test_list_paginates_and_batch_read_returns_secrets(vault: Any) -> None:
    async with ScaiVaultClient(vault.url, token=vault.admin) as c:
        for i in range(7):
            await c.secrets.write(f"sdk/list/k{i}", {"v": str(i)})
        paths = [m.path async for m in c.secrets.list("sdk/list/", page_size=3)]  # 3 pages
        assert paths == [f"sdk/list/k{i}" for i in range(7)]
        assert [m.path async for m in c.secrets.list("sdk/list/", limit=4, page_size=3)] == paths[:4]
        page = await c.secrets.list_page("sdk/list/", limit=3)
        assert page.has_more and page.cursor and len(page.items) == 3
        done: list[tuple[int, int]] = []
        result = await c.secrets.batch_read([*paths, "sdk/list/missing"], progress=lambda d, t: done.append((d, t)))
        assert sorted(result.secrets) == paths and result.secrets["sdk/list/k3"].data == {"v": "3"}
        assert result.errors["sdk/list/missing"].code == "secret_not_found"
        assert done == [(8, 8)]


async def test_error_tree_carries_code_and_request_id(vault: Any) -> None:
    async with ScaiVaultClient(vault.url, token=vault.ci) as c:  # scopes but no policy
        with pytest.raises(AccessDeniedError) as denied:
            await c.secrets.read("sdk/anything")
        assert denied.value.status == 403 and denied.value.code == "access_denied" and denied.value.request_id
        with pytest.raises(AccessDeniedError) as scope:
            await c.policies.test("sa:x", "a/b", "read")
        assert scope.value.code == "insufficient_scope"
    async with ScaiVaultClient(vault.url, token=vault.admin) as c:
        with pytest.raises(ValidationError) as bad:
            await c.secrets.read("bad//path")
        assert bad.value.code == "invalid_path" and bad.value.status == 400
        with pytest.raises(ValidationError) as colon:  # refused locally: ':' would select an operation suffix
            await c.secrets.read("app/db:versions")
        assert colon.value.code == "invalid_path"
        with pytest.raises(ValidationError) as fields:
            await c.policies.create("p", [])
        assert fields.value.status in (400, 422)
        with pytest.raises(NotFoundError) as missing:
            await c.policies.get("pol_doesnotexist")
        assert missing.value.code == "policy_not_found"
    async with ScaiVaultClient(vault.url, token="skt_not_a_real_token") as c:
        with pytest.raises(AuthenticationError) as unauth:
            await c.auth.whoami()
        assert unauth.value.status == 401 and unauth.value.code.startswith("token_")
    async with ScaiVaultClient(vault.url) as c:
        with pytest.raises(AuthenticationError) as none:
            await c.secrets.read("x/y")
        assert none.value.code == "authentication_required"


async def test_policies_audit_auth_and_identity(vault: Any) -> None:
    async with ScaiVaultClient(vault.url, token=vault.admin) as c:
        me = await c.auth.whoami()
        assert me.identity_id == "sa:dev-admin" and me.tenant_id == "tnt_acme_prod"
        pol = await c.policies.create("sdk-readers", [{"path_pattern": "sdk/**", "permissions": ["read"]}])
        binding = await c.policies.bind(pol.id, "service_account", "sa:ci-deployer")
        assert [b.id for b in await c.policies.bindings(pol.id)] == [binding.id]
        decision = await c.policies.test("sa:ci-deployer", "sdk/x", "read")
        assert decision.allowed is True
        assert (await c.policies.test("sa:ci-deployer", "other/x", "read")).allowed is False
        assert pol.id in [p.id async for p in c.policies.list()]
        await c.policies.unbind(pol.id, binding.id)
        await c.policies.delete(pol.id)
        await c.secrets.write("sdk/audit/x", {"k": "v"})
        entries = [e async for e in c.audit.logs(limit=5, path_prefix="sdk/audit/")]
        assert entries and entries[0].secret_path == "sdk/audit/x" and entries[0].action == "write"
        exported = [e async for e in c.audit.export(path_prefix="sdk/audit/")]
        assert [e.get("action") for e in exported] == ["write"]
        tok = await c.auth.create_token("sdk-test", ["secrets:read"], expires_in="1d")
        assert tok.token and tok.token.startswith("skt_") and "skt_" not in repr(tok)
        assert tok.id in [t.id async for t in c.auth.list_tokens()]
        await c.auth.revoke_token(tok.id)
        roles = await c.identity.roles()
        assert roles


def test_sync_client_same_api(vault: Any) -> None:
    with SyncScaiVaultClient(vault.url, token=vault.admin) as c:
        c.secrets.write("sdk/sync/a", {"k": "1"})
        c.secrets.write("sdk/sync/b", {"k": "2"})
        assert c.secrets.read("sdk/sync/a").data == {"k": "1"}
        assert [m.path for m in c.secrets.list("sdk/sync/", page_size=1)] == ["sdk/sync/a", "sdk/sync/b"]
        assert c.secrets.batch_read(["sdk/sync/a", "sdk/sync/b"]).secrets["sdk/sync/b"].data == {"k": "2"}
        with pytest.raises(NotFoundError):
            c.secrets.read("sdk/sync/none")
        assert c.auth.whoami().identity_id == "sa:dev-admin"


async def test_client_credentials_fetch_and_refresh(vault: Any) -> None:
    token_url = f"{vault.scaikey}/api/v1/auth/tenants/acme-prod/oauth/token"
    calls: list[str] = []

    async def count(request: httpx.Request) -> None:
        if str(request.url) == token_url:
            calls.append(request.method)

    async with httpx.AsyncClient(event_hooks={"request": [count]}) as http:
        cred = ClientCredentials(token_url, CI[0], CI[1], http=http)
        assert "dev-ci-deployer-secret" not in repr(cred)
        async with ScaiVaultClient(vault.url, client_id=CI[0], client_secret=CI[1], token_url=token_url) as c:
            c._transport.credential = cred
            assert (await c.auth.whoami()).identity_id == "sa:ci-deployer"
            assert (await c.auth.whoami()).identity_id == "sa:ci-deployer"
            assert calls == ["POST"]  # one grant, reused
            cred._expires_at = time.monotonic() - 1  # the refresh margin has been reached
            assert (await c.auth.whoami()).identity_id == "sa:ci-deployer"
            assert calls == ["POST", "POST"]
    with pytest.raises(AuthenticationError):
        async with ScaiVaultClient(vault.url, client_id=CI[0], client_secret="wrong", token_url=token_url) as c:
            await c.auth.whoami()


async def test_read_cache_ttl_and_event_invalidation(vault: Any) -> None:
    async with ScaiVaultClient(vault.url, token=vault.admin, cache_ttl=300) as cached, \
            ScaiVaultClient(vault.url, token=vault.admin) as other:
        await other.secrets.write("sdk/cache/x", {"v": "1"})
        assert (await cached.secrets.read("sdk/cache/x")).data == {"v": "1"}
        await other.secrets.write("sdk/cache/x", {"v": "2"})  # another process changes it
        assert (await cached.secrets.read("sdk/cache/x")).data == {"v": "1"}  # still cached
        cached.handle_event({"event_type": "secret.updated", "path": "sdk/cache/x", "data": {"new_version": 2}})
        assert (await cached.secrets.read("sdk/cache/x")).data == {"v": "2"}
        await cached.secrets.write("sdk/cache/x", {"v": "3"})  # own writes invalidate
        assert (await cached.secrets.read("sdk/cache/x")).data == {"v": "3"}
        cached.handle_event({"event_type": "policy.updated"})
        assert cached.cache is not None and len(cached.cache) == 0


async def test_rate_limited_maps_to_rate_limit_error(settings_factory: Any, api_server_factory: Any,
                                                    scaikey: str) -> None:
    from tests.helpers import ADMIN, client_token

    server = api_server_factory(settings_factory(rate_limit_overrides="auth=1"))
    token = await client_token(scaikey, ADMIN)
    async with ScaiVaultClient(server.url, token=token, retry=RetryPolicy(max_retry_after=0.5)) as c:
        with pytest.raises(RateLimitError) as err:
            for _ in range(5):
                await c.auth.whoami()
        assert err.value.status == 429 and err.value.retry_after and err.value.retry_after >= 1


def test_verify_webhook() -> None:
    body = b'{"event_id": "evt_1", "event_type": "secret.updated", "path": "a/b"}'
    ts = int(time.time())
    headers = {"x-scaivault-timestamp": str(ts), "X-ScaiVault-Signature": sign("whsec", ts, body)}
    assert verify_webhook(body, headers, "whsec")["event_id"] == "evt_1"
    assert verify_webhook(body, headers, ["old", "whsec"])["path"] == "a/b"  # during a secret rotation
    with pytest.raises(WebhookVerificationError) as bad:
        verify_webhook(body + b" ", headers, "whsec")
    assert bad.value.status == 401
    with pytest.raises(WebhookVerificationError) as stale:
        verify_webhook(body, {**headers, "x-scaivault-timestamp": str(ts - 3600)}, "whsec")
    assert stale.value.status == 401
    with pytest.raises(WebhookVerificationError) as missing:
        verify_webhook(body, {}, "whsec")
    assert missing.value.status == 400


def test_same_signature_as_the_server_reference() -> None:
    from clients.webhook_verify import sign as server_sign

    assert sign("k", 1714478400, b"{}") == server_sign("k", 1714478400, b"{}")
