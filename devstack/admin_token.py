"""Mint a dev admin token from the local ScaiKey emulator (client_credentials for ``dev-admin``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_SEED_FILE = REPO_ROOT / "scaikey_emulator" / "seeds" / "dev.json"
ADMIN_CLIENT_ID = "dev-admin"
ADMIN_TENANT_SLUG = "acme-prod"
# Used only when the seed file cannot be read; the emulator's dev seed is public test data.
FALLBACK_ADMIN_SECRET = "dev-admin-secret"


def _find_client(node: Any, client_id: str) -> dict[str, Any] | None:
    """Depth-first search of a seed document for the object whose client_id is ``client_id``."""
    if isinstance(node, dict):
        if node.get("client_id") == client_id:
            return node
        children: list[Any] = list(node.values())
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find_client(child, client_id)
        if found is not None:
            return found
    return None


def admin_client_secret(seed_file: Path = DEV_SEED_FILE, client_id: str = ADMIN_CLIENT_ID) -> str | None:
    """The ``dev-admin`` client secret from the emulator's dev seed, or None when absent."""
    try:
        doc = json.loads(seed_file.read_text())
    except (OSError, ValueError):
        return None
    client = _find_client(doc, client_id)
    if client is None:
        return None
    secret = client.get("client_secret") or client.get("secret")
    return str(secret) if secret else None


def mint_admin_token(
    scaikey_url: str,
    *,
    client_id: str = ADMIN_CLIENT_ID,
    tenant_slug: str = ADMIN_TENANT_SLUG,
    seed_file: Path = DEV_SEED_FILE,
    timeout: float = 10.0,
) -> str | None:
    """client_credentials against ``/api/v1/auth/tenants/{slug}/oauth/token``; None on any failure."""
    secret = admin_client_secret(seed_file, client_id) or FALLBACK_ADMIN_SECRET
    url = f"{scaikey_url.rstrip('/')}/api/v1/auth/tenants/{tenant_slug}/oauth/token"
    try:
        resp = httpx.post(
            url,
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
            timeout=timeout,
        )
        if resp.status_code != 200:
            return None
        token = resp.json().get("access_token")
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return token if isinstance(token, str) and token else None
