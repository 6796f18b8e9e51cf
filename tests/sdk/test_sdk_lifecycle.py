"""The SDK's lifecycle resources against the real API (uvicorn subprocess): PKI (CAs, roles, issue, sign, CSR
approval, certificates, revocation, CRL), rotation (policies, attach/detach, rotate, history, due), federation
(backends CRUD, status, sync refused in proxy mode), ACME look-ups, and dynamic credentials (engine, role,
generate, leases list/renew/revoke/revoke-prefix) against a real PostgreSQL target. Errors map to the same
exception tree as the secrets API; secrets (private keys, generated passwords) never appear in reprs."""

from __future__ import annotations

from typing import Any

import pytest
from scaivault_sdk import (
    AccessDeniedError,
    AuthenticationError,
    Certificate,
    NotFoundError,
    ScaiVaultClient,
    SyncScaiVaultClient,
    ValidationError,
)

from tests.integration.dynamic.conftest import CREATE, target  # noqa: F401 (fixture: a real PostgreSQL target)
from tests.integration.pki.helpers import make_csr


async def _pki_hierarchy(c: ScaiVaultClient, tag: str) -> tuple[Any, Any, Any]:
    root = await c.pki.cas.create(f"root-{tag}", f"Root {tag}", key_type="ec", key_size=256)
    inter = await c.pki.cas.create(f"inter-{tag}", f"Intermediate {tag}", ca_type="intermediate",
                                   parent_ca_id=root.id, key_type="ec", key_size=256)
    role = await c.pki.roles.create(f"web-{tag}", inter.id, allowed_domains=["example.com"], allow_subdomains=True,
                                    max_ttl="720h", key_type="ec", key_bits=256)
    return root, inter, role


async def test_pki_through_the_sdk(vault: Any) -> None:
    async with ScaiVaultClient(vault.url, token=vault.admin) as c:
        root, inter, role = await _pki_hierarchy(c, "sdk")
        assert root.ca_type == "root" and inter.parent_ca_id == root.id and role["name"] == "web-sdk"
        assert [ca.id async for ca in c.pki.cas.list()] == [root.id, inter.id]
        assert (await c.pki.roles.get("web-sdk"))["ca_id"] == inter.id

        issued = await c.pki.issue("web-sdk", "api.example.com", alt_names=["www.example.com"], ttl="24h")
        assert issued.certificate.startswith("-----BEGIN CERTIFICATE-----")
        assert issued.private_key and "PRIVATE KEY" in issued.private_key
        assert "PRIVATE KEY" not in repr(issued) and "private_key" not in issued.raw
        assert len(issued.ca_chain) == 2 and issued.serial_number

        signed = await c.pki.sign("web-sdk", make_csr("svc.example.com"))
        assert signed.private_key is None and signed.common_name == "svc.example.com"
        csr = await c.pki.csrs.submit("web-sdk", make_csr("queued.example.com"))
        assert csr["status"] == "pending"
        approved = await c.pki.csrs.approve(str(csr.id))
        assert approved["status"] == "approved" and approved.get("certificate_id")

        certs = [x async for x in c.pki.certificates.list(page_size=1)]  # three pages
        assert {x.id for x in certs} == {issued.id, signed.id, approved["certificate_id"]}
        got = await c.pki.certificates.get(issued.id)
        assert isinstance(got, Certificate) and got.certificate == issued.certificate
        assert "www.example.com" in got.alt_names
        assert (await c.pki.certificates.pem(issued.id)).strip() == issued.certificate.strip()

        revoked = await c.pki.certificates.revoke(issued.id, reason="key_compromise")
        assert revoked.revoked and revoked.revocation_reason == "key_compromise"
        again = await c.pki.certificates.revoke(issued.id, reason="superseded")  # the first revocation stands
        assert again.revocation_reason == "key_compromise"
        assert issued.id not in [x.id async for x in c.pki.certificates.list()]
        assert issued.id in [x.id async for x in c.pki.certificates.list(include_revoked=True)]
        assert "BEGIN X509 CRL" in await c.pki.cas.crl(inter.id)  # the public route, no token sent
        assert "BEGIN X509 CRL" in (await c.pki.cas.rebuild_crl(inter.id))["crl_pem"]
        ca_doc = await c.pki.cas.certificate(inter.id)
        assert ca_doc["certificate_pem"].startswith("-----BEGIN CERTIFICATE") and len(ca_doc["ca_chain"]) >= 1
        with pytest.raises(NotFoundError) as nokey:
            await c.pki.certificates.private_key(issued.id)  # the role does not store keys
        assert nokey.value.details.get("reason") == "private_key_not_stored"
        rejected = await c.pki.csrs.reject(str((await c.pki.csrs.submit("web-sdk", make_csr("no.example.com"))).id),
                                           reason="not needed")
        assert rejected["status"] == "rejected"
        assert [x["status"] async for x in c.pki.csrs.list(status="rejected")] == ["rejected"]
        anchor = await c.pki.trust_anchors.add("sdk-anchor", (await c.pki.cas.certificate(root.id))["certificate_pem"])
        assert [a.id async for a in c.pki.trust_anchors.list()] == [anchor.id]
        assert (await c.pki.trust_anchors.get(str(anchor.id)))["name"] == "sdk-anchor"
        await c.pki.trust_anchors.delete(str(anchor.id))

        with pytest.raises(ValidationError) as bad:
            await c.pki.issue("web-sdk", "evil.example.org")  # not allowed by the role
        assert bad.value.status in (400, 422) and bad.value.request_id
        with pytest.raises(ValidationError):
            await c.pki.certificates.revoke(signed.id, reason="because")
        with pytest.raises(NotFoundError) as missing:
            await c.pki.issue("no-such-role", "api.example.com")
        assert missing.value.code == "role_not_found"
        with pytest.raises(NotFoundError) as nocert:
            await c.pki.certificates.get("cert_01HXXXXXXXXXXXXXXXXXXXXXXX")
        assert nocert.value.code == "certificate_not_found"
        with pytest.raises(NotFoundError):
            await c.acme.get_order("acmeord_01HXXXXXXXXXXXXXXXXXXXXXXX")
        with pytest.raises(NotFoundError):
            await c.acme.managed("cert_01HXXXXXXXXXXXXXXXXXXXXXXX")
        assert [a async for a in c.acme.accounts()] == [] and [p async for p in c.dns_providers.list()] == []

        ca_revoked = await c.pki.cas.revoke(root.id, reason="cessation_of_operation")  # cascades to inter
        assert ca_revoked["revoked_at"] and not (await c.pki.cas.get(inter.id)).is_active
        assert (await c.pki.certificates.get(signed.id)).revoked

    async with ScaiVaultClient(vault.url, token=vault.ci) as ci:  # secrets scopes only
        with pytest.raises(AccessDeniedError) as denied:
            await ci.pki.issue("web-sdk", "api.example.com")
        assert denied.value.code == "insufficient_scope"
    async with ScaiVaultClient(vault.url) as anon:
        with pytest.raises(AuthenticationError):
            await anon.pki.certificates.get(signed.id)


async def test_rotation_and_federation_through_the_sdk(vault: Any) -> None:
    async with ScaiVaultClient(vault.url, token=vault.admin) as c:
        await c.secrets.write("sdk/rot/db", {"password": "v1"})
        pol = await c.rotation.policies.create("sdk-rot", "90d", grace_period="1h", warn_before=["7d", "1d"])
        assert pol.interval == "90d" and pol.warn_before == "7d,1d" and pol.is_active
        assignment = await c.rotation.policies.attach(pol.id, "sdk/rot/db")
        assert assignment["secret_path"] == "sdk/rot/db" and assignment["next_rotation_at"]
        assert (await c.rotation.policies.get(pol.id)).secrets_count == 1
        assert pol.id in [p.id async for p in c.rotation.policies.list()]
        due = await c.rotation.due(within_hours=24 * 91)
        assert [d["secret_path"] for d in due] == ["sdk/rot/db"]
        assert await c.rotation.due(within_hours=1, include_overdue=False) == []

        [pending] = await c.rotation.rotate(pol.id)
        assert pending.secret_path == "sdk/rot/db" and pending.status == "pending" and pending.trigger == "manual"
        history = [h async for h in c.rotation.history(pol.id)]
        assert pending.id in [h.id for h in history]

        assert (await c.rotation.policies.update(pol.id, interval="30d")).interval == "30d"
        assert not (await c.rotation.policies.disable(pol.id)).is_active
        assert (await c.rotation.policies.enable(pol.id)).is_active
        await c.rotation.policies.detach(pol.id, "sdk/rot/db")
        assert (await c.rotation.policies.get(pol.id)).secrets_count == 0
        await c.rotation.policies.delete(pol.id)
        with pytest.raises(NotFoundError) as gone:
            await c.rotation.policies.get(pol.id)
        assert gone.value.code == "rotation_policy_not_found"
        with pytest.raises(ValidationError) as dur:
            await c.rotation.policies.create("sdk-bad", "soon")
        assert dur.value.code == "invalid_duration"

        # federation: a proxy backend, created without connecting (verify=False), pointing at a closed port
        await c.secrets.write("sdk/fedcreds/bao", {"token": "root-token-value"})
        backend = await c.federation.create(
            "sdk-bao", "hashicorp-vault", {"endpoint": "http://127.0.0.1:9", "auth_method": "token",
                                           "auth_config_path": "sdk/fedcreds/bao"},
            {"sdk/fed/**": "secret/data/**"}, mode="proxy", verify=False)
        assert backend.mode == "proxy" and backend.path_mapping == {"sdk/fed/**": "secret/data/**"}
        assert "root-token-value" not in str(backend.raw)
        assert [b.id async for b in c.federation.list()] == [backend.id]
        assert (await c.federation.get(backend.id)).name == "sdk-bao"
        renamed = await c.federation.update(backend.id, name="sdk-bao-2", verify=False)
        assert renamed.name == "sdk-bao-2"
        status = await c.federation.status(backend.id)
        assert status["connection"]["status"] != "connected"
        assert [x async for x in c.federation.conflicts(backend.id)] == []
        with pytest.raises(ValidationError) as proxy_sync:
            await c.federation.sync(backend.id)  # sync mode only
        assert proxy_sync.value.status == 400
        synced = await c.federation.create(
            "sdk-bao-sync", "hashicorp-vault", {"endpoint": "http://127.0.0.1:9", "auth_method": "token",
                                                "auth_config_path": "sdk/fedcreds/bao"},
            {"sdk/fedsync/**": "secret/data/sync/**"}, mode="sync", sync_interval="1h", verify=False)
        assert (await c.federation.sync(synced.id))["status"] == "sync_requested"
        with pytest.raises(ValidationError):  # local prefixes of a tenant's backends must be disjoint
            await c.federation.create("sdk-overlap", "hashicorp-vault", dict(synced.raw["config"]),
                                      {"sdk/fed/x/**": "secret/data/x/**"}, mode="proxy", verify=False)
        await c.federation.delete(synced.id)
        await c.federation.delete(backend.id)
        with pytest.raises(NotFoundError) as nob:
            await c.federation.get(backend.id)
        assert nob.value.code == "backend_not_found"

    async with ScaiVaultClient(vault.url, token=vault.ci) as ci:
        with pytest.raises(AccessDeniedError):
            await ci.rotation.due()  # secrets:rotate
        with pytest.raises(AccessDeniedError):
            [b async for b in ci.federation.list()]


def target_has(pg: Any, role: str | None) -> bool:
    """Whether the generated role still exists at the target (the sync test has no running loop)."""
    import asyncio

    return asyncio.run(pg.role_exists(str(role)))


def test_dynamic_credentials_and_leases_sync_client(vault: Any, target: Any) -> None:  # noqa: F811
    with SyncScaiVaultClient(vault.url, token=vault.admin) as c:
        c.secrets.write("sdk/dyn/root", {"username": target.root_user, "password": target.root_password})
        engine = c.dynamic.engines.create("pg", "database", {
            "plugin": "postgresql", "connection_url": target.url_template(),
            "root_credentials_path": "sdk/dyn/root"}, default_ttl="1h", max_ttl="2h")
        assert engine["name"] == "pg"
        c.dynamic.roles.create("pg", "ro", creation_statements=[
            s.replace("{db}", f'"{target.database}"') for s in CREATE])
        assert [r["name"] for r in c.dynamic.roles.list("pg")] == ["ro"]
        assert c.dynamic.engines.get("pg")["connection_status"] == "connected"

        cred = c.dynamic.generate("pg", "ro", ttl="30m")
        password = cred.data["password"]
        assert cred.data["username"] == cred.lease.username and cred.lease.status == "active"
        assert password not in repr(cred) and "data" not in cred.raw
        second = c.dynamic.generate("pg", "ro")
        leases = list(c.leases.list(engine="pg", page_size=1))
        assert sorted(x.lease_id for x in leases) == sorted([cred.lease_id, second.lease_id])
        assert all(password not in str(x.raw) for x in leases)
        assert c.leases.get(cred.lease_id).username == cred.lease.username

        renewed = c.leases.renew(cred.lease_id, increment="90m")
        assert renewed.expires_at and cred.expires_at and renewed.expires_at > cred.expires_at
        with pytest.raises(ValidationError) as too_long:
            c.leases.renew(cred.lease_id, increment="5h")  # past max_expires_at: refused, not capped
        assert too_long.value.status == 422
        with pytest.raises(ValidationError):
            c.dynamic.generate("pg", "ro", ttl="10h")

        revoked = c.leases.revoke(cred.lease_id)
        assert revoked.status == "revoked" and not target_has(target, cred.lease.username)
        assert c.leases.revoke(cred.lease_id).status == "revoked"  # safe to repeat
        assert c.dynamic.engines.pause_revocation("pg")["revocation_paused"] is True
        held = c.leases.revoke(second.lease_id)  # 202: queued while revocation is paused
        assert held.status == "revoking" and target_has(target, second.lease.username)
        assert c.dynamic.engines.resume_revocation("pg")["revocation_paused"] is False
        third = c.dynamic.generate("pg", "ro")
        queued = c.leases.revoke_prefix("pg/ro")
        assert queued["queued"] >= 1 and third.lease_id in queued["lease_ids"]

        with pytest.raises(NotFoundError) as nolease:
            c.leases.get("lease_01HXXXXXXXXXXXXXXXXXXXXXXX")
        assert nolease.value.status == 404
        with pytest.raises(NotFoundError):
            c.dynamic.generate("pg", "no-such-role")
        with pytest.raises(ValidationError):
            c.leases.revoke_prefix("a/b/c")
    with SyncScaiVaultClient(vault.url, token=vault.ci) as ci:
        with pytest.raises(AccessDeniedError):
            ci.dynamic.generate("pg", "ro")
