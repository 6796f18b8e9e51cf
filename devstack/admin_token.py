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


DEV_ADMIN_POLICY = {
    "name": "dev-admin-full-access",
    "description": "make dev: lets the printed admin token read and write every secret of the dev tenant",
    "rules": [{"path_pattern": "**", "permissions": ["read", "write", "delete", "list", "rotate"]}],
}


def ensure_dev_admin_policy(api_url: str, token: str, *, identity_id: str = f"sa:{ADMIN_CLIENT_ID}",
                            timeout: float = 10.0) -> bool:
    """Bind a full-access policy to the dev admin (idempotent), so the quickstart works with curl.

    Policies deny by default, even for admins (docs/policies.md); in a real deployment an operator creates
    policies deliberately. Returns False on any failure (the stack still comes up).
    """
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=api_url, headers=headers, timeout=timeout) as c:
            r = c.post("/v1/policies", json=DEV_ADMIN_POLICY)
            if r.status_code == 409:
                return True  # already there from an earlier run
            if r.status_code != 201:
                return False
            pid = r.json()["id"]
            b = c.post(f"/v1/policies/{pid}/bindings",
                       json={"identity_type": "service_account", "identity_id": identity_id})
            return b.status_code in (201, 409)
    except httpx.HTTPError:
        return False


PARTNER_ADMIN_CLIENT_ID = "partner-admin-svc"
SCAIKEY_WEBHOOK_PATH = "/v1/identity/webhooks/scaikey"


def register_scaikey_webhook(scaikey_url: str, scaivault_client_secret: str, api_url: str, webhook_secret: str,
                             *, timeout: float = 10.0) -> str | None:
    """Register the API's ScaiKey receiver in the emulator with the generated ``SCAIKEY_WEBHOOK_SECRET`` (all
    event types), so a change made in ScaiKey reaches ScaiVault by webhook as it would in production. The
    emulator keeps its state in memory, so every ``make dev`` registers it again; an existing registration for
    the same URL is kept. Uses the ``scaivault`` platform app (admin:write). Returns the webhook id, or None."""
    url = api_url.rstrip("/") + SCAIKEY_WEBHOOK_PATH
    try:
        with httpx.Client(base_url=scaikey_url.rstrip("/"), timeout=timeout) as c:
            t = c.post("/api/v1/platform/oauth/token", data={"grant_type": "client_credentials"},
                       auth=("scaivault", scaivault_client_secret))
            if t.status_code != 200:
                return None
            headers = {"Authorization": f"Bearer {t.json()['access_token']}"}
            listed = c.get("/api/v1/admin/webhooks", headers=headers)
            if listed.status_code == 200:
                body = listed.json()
                items = body.get("items", body.get("webhooks", [])) if isinstance(body, dict) else body
                for hook in items or []:
                    if isinstance(hook, dict) and hook.get("url") == url:
                        return str(hook.get("id"))
            r = c.post("/api/v1/admin/webhooks", headers=headers, json={
                "url": url, "secret": webhook_secret, "events": [],
                "description": "make dev: ScaiKey changes reach ScaiVault's receiver"})
            return str(r.json()["id"]) if r.status_code == 201 else None
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def sync_identities(api_url: str, scaikey_url: str, *, timeout: float = 60.0) -> bool:
    """Mirror every seeded partner and tenant (names included) before the stack reports ready: one identity sync
    of everything the partner admin sees, waited for. The worker's first sweep does the same on a fresh stack,
    but only once per Temporal data directory and in the background, so without this a reused ``.scaivault-dev``
    or a quick first request could meet ``tenant_not_found``. Returns False on any failure."""
    import time

    token = mint_admin_token(scaikey_url, client_id=PARTNER_ADMIN_CLIENT_ID)
    if token is None:
        return False
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=api_url, headers=headers, timeout=10.0) as c:
            r = c.post("/v1/identity/sync")
            if r.status_code != 202:
                return False
            sync_id = r.json()["sync_id"]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                s = c.get(f"/v1/identity/sync/{sync_id}")
                if s.status_code == 200 and s.json().get("status") in ("succeeded", "failed", "skipped"):
                    return bool(s.json()["status"] == "succeeded")
                time.sleep(0.5)
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return False
