"""``pip install`` the SDK alone into a fresh venv, then read a secret from the real API in three lines."""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path
from typing import Any

from scaivault_sdk import ScaiVaultClient

REPO = Path(__file__).resolve().parents[2]
SERVER_ONLY = {"fastapi", "sqlalchemy", "sqlmodel", "asyncpg", "temporalio", "redis", "boto3", "pydantic",
               "cryptography", "uvicorn", "scaivault"}


async def test_sdk_installs_alone_and_reads_a_secret_in_three_lines(vault: Any, tmp_path: Path) -> None:
    async with ScaiVaultClient(vault.url, token=vault.admin) as c:
        await c.secrets.write("install/app/db", {"password": "pw-from-fresh-venv"})

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    src = tmp_path / "sdk"  # a copy: building in place would leave build/ and *.egg-info in the repo
    shutil.copytree(REPO / "sdk", src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([*pip, "--no-deps", str(src)], check=True, timeout=300)
    subprocess.run([*pip, "httpx>=0.27"], check=True, timeout=300)  # the SDK's one dependency (and its deps)

    script = (
        "from scaivault_sdk import SyncScaiVaultClient\n"
        f"vault = SyncScaiVaultClient({vault.url!r}, token={vault.admin!r})\n"
        "print(vault.secrets.read('install/app/db').data['password'])\n"
    )
    out = subprocess.run([py, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pw-from-fresh-venv"

    freeze = subprocess.run([py, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                            check=True).stdout.lower()
    installed = {line.split("==")[0] for line in freeze.splitlines()}
    assert "scaivault-sdk" in installed and "httpx" in installed
    assert installed & SERVER_ONLY == set(), "the SDK must not pull in server dependencies"
