"""Fixtures: one in-process emulator (uvicorn in a thread, free loopback port) reset before each test."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
import uvicorn

from scaikey_emulator.app import create_app

SCAIVAULT_SECRET = "dev-insecure-client-secret"
SECRETS = {
    "scaivault": SCAIVAULT_SECRET,
    "scaivault-tenant-sync": "dev-tenant-sync-secret",
    "ci-deployer": "dev-ci-deployer-secret",
    "dev-admin": "dev-admin-secret",
    "partner-admin-svc": "dev-partner-admin-secret",
}
PLATFORM = "/api/v1/platform"
PROD = "/api/v1/auth/tenants/acme-prod"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Running:
    base_url: str
    client: httpx.Client

    def cc_token(self, client_id: str, scope: str | None = None, root: str | None = None) -> str:
        """client_credentials via HTTP Basic on the right surface for the app."""
        root = root or (PLATFORM if client_id == "scaivault" else PROD)
        data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
        resp = self.client.post(f"{root}/oauth/token", data=data, auth=(client_id, SECRETS[client_id]))
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    def mint(self, **body: Any) -> str:
        resp = self.client.post("/_emulator/tokens/mint", json=body)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["token"])

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def jwks(self) -> dict[str, Any]:
        return dict(self.client.get(f"{PLATFORM}/.well-known/jwks.json").json())


@pytest.fixture(scope="session")
def running() -> Iterator[Running]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    app = create_app("dev", base_url, settings={"default_page_size": 2})
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "emulator did not start"
        time.sleep(0.02)
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield Running(base_url, client)
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture()
def emu(running: Running) -> Running:
    resp = running.client.post("/_emulator/reset", json={})
    assert resp.status_code == 200
    running.client.cookies.clear()
    return running


def verify_like_scaivault(token: str, jwks: dict[str, Any], *, audience: str, issuer: str) -> dict[str, Any]:
    """A strict verifier: kid from JWKS, RS256/ES256 only, aud + iss + exp + nbf checked."""
    header = jwt.get_unverified_header(token)
    if header.get("alg") not in ("RS256", "ES256"):
        raise jwt.InvalidAlgorithmError(header.get("alg"))
    match = next((k for k in jwks["keys"] if k["kid"] == header.get("kid")), None)
    if match is None:
        raise jwt.InvalidKeyError("unknown kid")
    key = jwt.PyJWK(match)
    return dict(jwt.decode(token, key.key, algorithms=[match["alg"]], audience=audience, issuer=issuer))


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(emu: Running, root: str = PLATFORM, **params: str) -> httpx.Response:
    query = {"response_type": "code", "client_id": "vault-ui", "redirect_uri": "http://127.0.0.1/callback",
             "scope": "openid profile email offline_access secrets:read", "state": "st-1", "nonce": "n-1"}  # fmt: skip
    query.update(params)
    if "code_challenge" in query:
        query.setdefault("code_challenge_method", "S256")
    return emu.client.get(f"{root}/oauth/authorize", params=query, follow_redirects=False)


def redirect_params(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 302, resp.text
    location = resp.headers["location"]
    assert location.startswith("http://127.0.0.1/callback?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


# ------------------------------------------------------------------- webhook receiver
@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # scripted responses, then 200

    def wait(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.received


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            rec = holder["r"]
            rec.received.append(Received({k.lower(): v for k, v in self.headers.items()}, raw))
            status = rec.statuses.pop(0) if rec.statuses else 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"handled": true}')

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield holder["r"]
    server.shutdown()
    server.server_close()
