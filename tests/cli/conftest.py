"""A running API (uvicorn subprocess) plus ScaiKey tokens, with sa:dev-admin granted everything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.helpers import ADMIN, CI, bearer, client_token, grant


@dataclass
class Vault:
    url: str
    scaikey: str
    admin: str       # sa:dev-admin, scope admin, granted every permission on **
    ci: str          # sa:ci-deployer, secrets:read/write/list, no policy: denied by policies


@pytest.fixture
async def vault(api_server: Any, scaikey: str) -> Vault:
    admin = await client_token(scaikey, ADMIN)
    ci = await client_token(scaikey, CI)
    async with httpx.AsyncClient(base_url=api_server.url) as c:
        await grant(c, bearer(admin), ["sa:dev-admin"], permissions=("read", "write", "delete", "list", "rotate",
                                                                     "admin"))
    return Vault(url=api_server.url, scaikey=scaikey, admin=admin, ci=ci)
