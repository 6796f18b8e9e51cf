"""Admin API + tenant-scoped twins: the scope gate, visibility, pagination, writes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.conftest import Running

PLATFORM_403 = {"detail": "Platform token requires admin:read or admin:write scope"}
PROD_USERS = [
    "alice@acme.example",
    "bob@acme.example",
    "carol@acme.example",
    "dave@acme.example",
    "pat@acme.example",
]


def all_pages(emu: Running, path: str, token: str, **params: Any) -> tuple[list[dict], list[dict]]:
    """Follow pages until an empty one; returns (items, envelopes)."""
    items: list[dict] = []
    envelopes: list[dict] = []
    page = 1
    while True:
        resp = emu.client.get(path, params={**params, "page": page}, headers=emu.bearer(token))
        assert resp.status_code == 200, resp.text
        env = resp.json()
        envelopes.append(env)
        if not env["items"]:
            return items, envelopes
        items.extend(env["items"])
        page += 1


def test_platform_token_without_admin_scope_gets_exact_403(emu: Running) -> None:
    token = emu.mint(client_id="scaivault", scope="openid")
    for path in ("/api/v1/admin/users/", "/api/v1/admin/tenants", "/api/v1/admin/groups/",
                 "/api/v1/tenants/tnt_acme_prod/applications/me/effective-users"):  # fmt: skip
        resp = emu.client.get(path, headers=emu.bearer(token))
        assert resp.status_code == 403
        assert resp.content == b'{"detail":"Platform token requires admin:read or admin:write scope"}'


def test_tenant_tier_token_on_effective_users_gets_same_403(emu: Running) -> None:
    token = emu.cc_token("scaivault-tenant-sync")
    resp = emu.client.get(
        "/api/v1/tenants/tnt_acme_prod/applications/me/effective-users", headers=emu.bearer(token)
    )
    assert resp.status_code == 403 and resp.json() == PLATFORM_403


def test_allowed_scopes_patch_replaces_and_old_token_keeps_scopes(emu: Running) -> None:
    admin = emu.cc_token("scaivault")
    resp = emu.client.patch("/api/v1/admin/applications/app_scaivault", json={"allowed_scopes": ["openid"]},
                            headers=emu.bearer(admin))  # fmt: skip
    assert resp.status_code == 200 and resp.json()["allowed_scopes"] == ["openid"]
    # old token still carries admin scopes; a fresh one does not and hits the gate
    assert emu.client.get("/api/v1/admin/tenants", headers=emu.bearer(admin)).status_code == 200
    fresh = emu.cc_token("scaivault")
    assert emu.client.get("/api/v1/admin/tenants", headers=emu.bearer(fresh)).json() == PLATFORM_403
    emu.client.patch("/api/v1/admin/applications/scaivault", json={"allowed_scopes": ["admin:read"]},
                     headers=emu.bearer(admin)).raise_for_status()  # fmt: skip
    read_only = emu.cc_token("scaivault")
    assert emu.client.get("/api/v1/admin/tenants", headers=emu.bearer(read_only)).status_code == 200
    write = emu.client.post("/api/v1/admin/groups/", json={"tenant_id": "tnt_acme_prod", "name": "x"},
                            headers=emu.bearer(read_only))  # fmt: skip
    assert write.status_code == 403 and "admin:write" in write.json()["detail"]


def test_tenant_tier_scopes_own_tenant_only(emu: Running) -> None:
    token = emu.cc_token("scaivault-tenant-sync")
    own = emu.client.get(
        "/api/v1/tenants/tnt_acme_prod/groups", headers=emu.bearer(token), params={"per_page": 100}
    )
    assert own.status_code == 200
    assert {g["name"] for g in own.json()["items"]} == {"developers", "sre", "oncall", "platform-admins"}
    members = emu.client.get(
        "/api/v1/tenants/tnt_acme_prod/groups/grp_sre/members", headers=emu.bearer(token)
    )
    assert members.status_code == 200
    for path in (
        "/api/v1/tenants/tnt_acme_dev/groups",
        "/api/v1/tenants/tnt_acme_dev/groups/grp_testers/members",
    ):
        assert emu.client.get(path, headers=emu.bearer(token)).status_code == 403
    admin_groups = emu.client.get(
        "/api/v1/admin/groups/", headers=emu.bearer(token), params={"per_page": 100}
    )
    assert {g["tenant_id"] for g in admin_groups.json()["items"]} == {"tnt_acme_prod"}
    assert emu.client.get("/api/v1/admin/groups/", params={"tenant_id": "tnt_acme_dev"},
                          headers=emu.bearer(token)).status_code == 403  # fmt: skip
    assert emu.client.get("/api/v1/admin/tenants", headers=emu.bearer(token)).status_code == 403
    assert emu.client.get("/api/v1/admin/users/", headers=emu.bearer(token)).status_code == 200
    ci = emu.cc_token("ci-deployer")
    assert emu.client.get("/api/v1/tenants/tnt_acme_prod/groups", headers=emu.bearer(ci)).status_code == 403


@pytest.mark.parametrize(
    ("token_kind", "detail_part"),
    [
        ("none", "Not authenticated"),
        ("garbage", "Invalid token"),
        ("expired", "expired"),
        ("foreign", "Invalid token"),
    ],
)
def test_bad_bearer_is_401(emu: Running, token_kind: str, detail_part: str) -> None:
    headers = {}
    if token_kind == "garbage":
        headers = emu.bearer("abc.def.ghi")
    elif token_kind == "expired":
        headers = emu.bearer(emu.mint(client_id="scaivault", expired=True))
    elif token_kind == "foreign":
        headers = emu.bearer(emu.mint(client_id="scaivault", signing="foreign"))
    resp = emu.client.get("/api/v1/admin/tenants", headers=headers)
    assert resp.status_code == 401 and detail_part in resp.json()["detail"]


def test_pagination_spans_pages(emu: Running) -> None:
    token = emu.cc_token("scaivault")
    items, envelopes = all_pages(
        emu, "/api/v1/tenants/tnt_acme_prod/applications/scaivault/effective-users", token
    )
    assert [u["email"] for u in items] == PROD_USERS
    first = envelopes[0]
    assert first["per_page"] == 2 and first["total"] == 5 and first["pages"] == 3 and len(first["items"]) == 2
    assert [len(e["items"]) for e in envelopes] == [2, 2, 1, 0]
    groups, _ = all_pages(emu, "/api/v1/admin/groups/", token, tenant_id="tnt_acme_prod")
    assert len(groups) == 4
    capped = emu.client.get(
        "/api/v1/admin/groups/", params={"per_page": 500}, headers=emu.bearer(token)
    ).json()
    assert capped["per_page"] == 100 and len(capped["items"]) == 5
    assert (
        emu.client.get("/api/v1/admin/groups/", params={"page": 0}, headers=emu.bearer(token)).status_code
        == 422
    )


def test_effective_users_content(emu: Running) -> None:
    token = emu.cc_token("scaivault")
    resp = emu.client.get("/api/v1/tenants/tnt_acme_prod/applications/me/effective-users",
                          params={"per_page": 100}, headers=emu.bearer(token))  # fmt: skip
    users = {u["email"]: u for u in resp.json()["items"]}
    assert sorted(users) == PROD_USERS
    assert users["pat@acme.example"]["assignment_type"] == "DIRECT"
    assert users["dave@acme.example"]["status"] == "SUSPENDED"
    assert users["dave@acme.example"]["via_group_ids"] == ["grp_sre"]
    dev = emu.client.get("/api/v1/tenants/tnt_acme_dev/applications/app_scaivault/effective-users",
                         headers=emu.bearer(token))  # fmt: skip
    assert [u["email"] for u in dev.json()["items"]] == ["erin@acme.example"]
    assignees = emu.client.get("/api/v1/tenants/tnt_acme_prod/applications/scaivault/assignees",
                               params={"per_page": 100}, headers=emu.bearer(token)).json()["items"]  # fmt: skip
    assert {a["assignee_id"] for a in assignees} == {
        "usr_pat",
        "grp_developers",
        "grp_sre",
        "grp_platform_admins",
    }


def test_group_members_nested(emu: Running) -> None:
    token = emu.cc_token("scaivault")
    resp = emu.client.get(
        "/api/v1/admin/groups/grp_sre/members", headers=emu.bearer(token), params={"per_page": 10}
    )
    members = {m["email"]: m["membership_type"] for m in resp.json()["items"]}
    assert members == {
        "alice@acme.example": "DIRECT",
        "bob@acme.example": "NESTED",
        "dave@acme.example": "NESTED",
    }
    direct = emu.client.get("/api/v1/admin/groups/grp_sre/members", params={"include_nested": "false"},
                            headers=emu.bearer(token)).json()  # fmt: skip
    assert [m["email"] for m in direct["items"]] == ["alice@acme.example"]
    group = emu.client.get("/api/v1/admin/groups/grp_sre", headers=emu.bearer(token)).json()
    assert group["member_group_ids"] == ["grp_oncall"]


def test_role_token_visibility(emu: Running) -> None:
    tenant_admin = emu.cc_token("dev-admin")
    tenants = emu.client.get("/api/v1/admin/tenants", headers=emu.bearer(tenant_admin)).json()
    assert [t["id"] for t in tenants["items"]] == ["tnt_acme_prod"]
    assert emu.client.get("/api/v1/admin/partners", headers=emu.bearer(tenant_admin)).status_code == 403
    other = emu.client.get("/api/v1/tenants/tnt_acme_dev/applications/scaivault/effective-users",
                           headers=emu.bearer(tenant_admin))  # fmt: skip
    assert other.status_code == 403
    partner = emu.cc_token("partner-admin-svc")
    tenants = emu.client.get("/api/v1/admin/tenants", headers=emu.bearer(partner)).json()
    assert sorted(t["id"] for t in tenants["items"]) == ["tnt_acme_dev", "tnt_acme_prod"]
    platform = emu.cc_token("scaivault")
    partners = emu.client.get("/api/v1/admin/partners", headers=emu.bearer(platform)).json()
    assert [p["id"] for p in partners["items"]] == ["prt_acme"]


def test_user_writes_and_soft_delete(emu: Running) -> None:
    token = emu.cc_token("scaivault")
    created = emu.client.post("/api/v1/admin/users/", headers=emu.bearer(token),
                              json={"tenant_id": "tnt_acme_prod", "email": "zed@acme.example", "first_name": "Zed"})  # fmt: skip
    assert created.status_code == 201
    uid = created.json()["id"]
    assert uid.startswith("usr_")
    dup = emu.client.post("/api/v1/admin/users/", headers=emu.bearer(token),
                          json={"tenant_id": "tnt_acme_prod", "email": "zed@acme.example"})  # fmt: skip
    assert dup.status_code == 409
    emu.client.post("/api/v1/admin/groups/grp_developers/members", json={"user_id": uid},
                    headers=emu.bearer(token)).raise_for_status()  # fmt: skip
    eff = emu.client.get("/api/v1/tenants/tnt_acme_prod/applications/me/effective-users",
                         params={"per_page": 100}, headers=emu.bearer(token)).json()  # fmt: skip
    assert eff["total"] == 6
    assert emu.client.delete(f"/api/v1/admin/users/{uid}", headers=emu.bearer(token)).status_code == 204
    assert emu.client.get(f"/api/v1/admin/users/{uid}", headers=emu.bearer(token)).status_code == 404
    listed = emu.client.get("/api/v1/admin/users/", params={"tenant_id": "tnt_acme_prod", "per_page": 100},
                            headers=emu.bearer(token)).json()  # fmt: skip
    assert listed["total"] == 5
    emu.client.post(f"/api/v1/admin/users/{uid}/restore", headers=emu.bearer(token)).raise_for_status()
    assert emu.client.get(f"/api/v1/admin/users/{uid}", headers=emu.bearer(token)).status_code == 200


def test_tenant_tier_cannot_write(emu: Running) -> None:
    token = emu.cc_token("scaivault-tenant-sync")
    resp = emu.client.post("/api/v1/admin/groups/", json={"name": "x"}, headers=emu.bearer(token))
    assert resp.status_code == 403 and isinstance(resp.json()["detail"], str)


def test_nested_group_cycle_rejected(emu: Running) -> None:
    token = emu.cc_token("scaivault")
    resp = emu.client.post("/api/v1/admin/groups/grp_oncall/members", json={"group_id": "grp_sre"},
                           headers=emu.bearer(token))  # fmt: skip
    assert resp.status_code == 422


def test_tenant_suspension_blocks_tenant_apps(emu: Running) -> None:
    token = emu.cc_token("scaivault")
    resp = emu.client.patch("/api/v1/admin/tenants/tnt_acme_prod", json={"status": "SUSPENDED"},
                            headers=emu.bearer(token))  # fmt: skip
    assert resp.status_code == 200 and resp.json()["status"] == "SUSPENDED"
    denied = emu.client.post("/api/v1/auth/tenants/acme-prod/oauth/token", data={"grant_type": "client_credentials"},
                             auth=("ci-deployer", "dev-ci-deployer-secret"))  # fmt: skip
    assert denied.status_code == 400 and denied.json()["error"] == "unauthorized_client"
    # partner admins read tenants but only super_admin / platform admin may write them
    sync = emu.client.patch("/api/v1/admin/tenants/tnt_acme_dev", json={"status": "SUSPENDED"},
                            headers=emu.bearer(emu.cc_token("partner-admin-svc", root="/api/v1/auth/tenants/acme-dev")))  # fmt: skip
    assert sync.status_code == 403
