"""Federation units: the mapping grammar and overlap rule, and how Vault answers map to RemoteError kinds and API
errors (a throttling backend is 429 backend_rate_limited, an outage 503 naming the backend)."""

from __future__ import annotations

import httpx
import pytest

from core.errors import AppError
from services.federation import backends as bk
from services.federation.mapping import check_disjoint, compile_mapping
from services.federation.remote import RemoteError
from services.federation.vault import VaultRemote


def test_mapping_grammar() -> None:
    [m] = compile_mapping({"external/hashicorp/**": "secret/data/**"}, vault=True)
    assert m.local == "external/hashicorp/" and m.remote == "secret/"
    assert m.to_remote("external/hashicorp/app/db") == "secret/app/db"
    assert m.to_local("secret/app/db") == "external/hashicorp/app/db"
    assert not m.matches("external/hashicorp") and not m.matches("external/hashicorpx/a")
    [a] = compile_mapping({"external/aws/**": "prod/**"}, vault=False)
    assert a.to_remote("external/aws/x/y") == "prod/x/y"
    for bad in ({"a/**": "secret/x"}, {"a/*": "secret/data/**"}, {"**": "secret/data/**"},
                {"a/b**": "secret/data/**"}, {"a/**": "secret/**"}, {"A/**": "secret/data/**"},
                {"a/**/b/**": "secret/data/**"}, {}, {"a/**": "secret/data/**", "a/b/**": "secret/data/**"}):
        with pytest.raises(AppError) as exc:
            compile_mapping(bad, vault=True)
        assert exc.value.code == "validation_error", bad
    with pytest.raises(AppError):
        check_disjoint(["ext/a/"], ["ext/"], other_name="other")
    check_disjoint(["ext/a/"], ["ext/ab/"], other_name="other")


def _remote(status: int) -> VaultRemote:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"errors": ["x"]})

    return VaultRemote("http://vault.test", "token", {"token": "s.secret-token"},
                       transport=httpx.MockTransport(handler))


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "kind", "code", "http"), [
    (429, "rate_limited", "backend_rate_limited", 429), (503, "unavailable", "service_unavailable", 503),
    (403, "auth", "service_unavailable", 503), (404, "not_found", "service_unavailable", 503)])
async def test_vault_answers_map_to_kinds_and_api_errors(status: int, kind: str, code: str, http: int) -> None:
    remote = _remote(status)
    with pytest.raises(RemoteError) as exc:
        await remote.read("secret/app/db")
    await remote.aclose()
    assert exc.value.kind == kind
    assert "s.secret-token" not in str(exc.value) and "s.secret-token" not in repr(remote)
    err = bk.unavailable({"id": "fed_1", "name": "prod-vault"}, exc.value)
    assert err.code == code and err.details["backend"] == "prod-vault" and err.status == http


@pytest.mark.asyncio
async def test_unreachable_vault_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    remote = VaultRemote("http://vault.test", "token", {"token": "t"}, transport=httpx.MockTransport(handler))
    with pytest.raises(RemoteError) as exc:
        await remote.list_keys("secret/")
    assert exc.value.kind == "unavailable"
