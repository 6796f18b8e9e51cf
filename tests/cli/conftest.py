"""A running API (uvicorn subprocess) plus ScaiKey tokens, with sa:dev-admin granted everything, and ``run``: the
``scaivault`` CLI called in-process with a private config file, returning (exit code, stdout, stderr)."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.main import main
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


class Runner:
    def __init__(self, vault: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path) -> None:
        self.vault, self.mp, self.capsys = vault, monkeypatch, capsys
        self.config = tmp_path / "home" / ".scaivault" / "config.json"
        monkeypatch.setenv("SCAIVAULT_CONFIG", str(self.config))
        monkeypatch.setenv("SCAIVAULT_URL", vault.url)
        for name in ("SCAIVAULT_TOKEN", "SCAIVAULT_TENANT_ID", "SCAIVAULT_PARTNER_ID", "SCAIVAULT_DEBUG"):
            monkeypatch.delenv(name, raising=False)

    def __call__(self, *argv: str, token: str | None = "admin", stdin: str | None = None) -> tuple[int, str, str]:
        if token is None:
            self.mp.delenv("SCAIVAULT_TOKEN", raising=False)
        else:
            self.mp.setenv("SCAIVAULT_TOKEN", {"admin": self.vault.admin, "ci": self.vault.ci}.get(token, token))
        self.mp.setattr(sys, "stdin", io.StringIO(stdin or ""))
        self.capsys.readouterr()
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            rc = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return rc, out, err


@pytest.fixture
def run(vault: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path) -> Runner:
    return Runner(vault, monkeypatch, capsys, tmp_path)
