"""HashiCorp Vault / OpenBao KV v2 over its HTTP API with httpx (already a dependency; hvac would add a
synchronous client and a dependency for the five calls used here: sys/health, token lookup, approle login, KV v2
LIST/GET metadata and GET data). Auth: ``token`` (``{"token"}``) or ``approle`` (``{"role_id", "secret_id"}``,
optional ``mount``), read from the ScaiVault secret named by ``auth_config_path``. TLS is verified unless the
backend's ``tls_verify`` is false."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from services.federation.remote import RemoteEntry, RemoteError, value_doc

_CONCURRENCY = 8


class VaultRemote:
    def __init__(self, endpoint: str, auth_method: str, creds: dict[str, Any], *, tls_verify: bool = True,
                 timeout: float = 5.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.auth_method = auth_method
        self._creds = creds
        self._token: str | None = None
        self._client = httpx.AsyncClient(base_url=self.endpoint, verify=tls_verify, timeout=timeout,
                                         transport=transport, follow_redirects=False)
        self._login_lock = asyncio.Lock()

    def __repr__(self) -> str:  # never the token
        return f"VaultRemote({self.endpoint!r}, auth={self.auth_method!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _raw(self, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            return await self._client.request(method, url, **kw)
        except httpx.TimeoutException:
            raise RemoteError("unavailable", f"{self.endpoint} timed out") from None
        except httpx.HTTPError as exc:
            raise RemoteError("unavailable", f"{self.endpoint} unreachable ({type(exc).__name__})") from None

    async def _login(self) -> str:
        async with self._login_lock:
            if self._token is not None:
                return self._token
            if self.auth_method == "token":
                token = self._creds.get("token")
                if not isinstance(token, str) or not token:
                    raise RemoteError("auth", "the auth config secret has no 'token'")
                self._token = token
                return token
            role_id, secret_id = self._creds.get("role_id"), self._creds.get("secret_id")
            if not isinstance(role_id, str) or not isinstance(secret_id, str):
                raise RemoteError("auth", "the auth config secret needs 'role_id' and 'secret_id'")
            mount = str(self._creds.get("mount") or "approle")
            r = await self._raw("POST", f"/v1/auth/{mount}/login", json={"role_id": role_id, "secret_id": secret_id})
            if r.status_code != 200:
                raise self._error(r, "approle login")
            try:
                self._token = str(r.json()["auth"]["client_token"])
            except (ValueError, KeyError, TypeError):
                raise RemoteError("invalid", "approle login answered without a client token") from None
            return self._token

    def _error(self, r: httpx.Response, what: str) -> RemoteError:
        code = r.status_code
        if code == 429:
            return RemoteError("rate_limited", f"{what}: the backend is throttling (429)")
        if code in (401, 403):
            return RemoteError("auth", f"{what}: permission denied ({code})")
        if code == 404:
            return RemoteError("not_found", f"{what}: not found")
        if code >= 500:
            return RemoteError("unavailable", f"{what}: backend error ({code})")
        return RemoteError("invalid", f"{what}: unexpected status {code}")

    async def _call(self, method: str, url: str, what: str, **kw: Any) -> httpx.Response:
        for attempt in (1, 2):
            token = await self._login()
            r = await self._raw(method, url, headers={"X-Vault-Token": token}, **kw)
            if r.status_code == 403 and self.auth_method == "approle" and attempt == 1:
                self._token = None  # the approle token expired: log in again once
                continue
            return r
        return r

    async def probe(self) -> None:
        """The endpoint is a Vault (sys/health answers its JSON) and the credentials work (token lookup-self)."""
        r = await self._raw("GET", "/v1/sys/health", params={"standbyok": "true", "perfstandbyok": "true"})
        try:
            body = r.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "initialized" not in body or "sealed" not in body:
            raise RemoteError("invalid", f"{self.endpoint} does not answer like a Vault (GET /v1/sys/health)")
        if body.get("sealed"):
            raise RemoteError("unavailable", f"{self.endpoint} is sealed")
        r = await self._call("GET", "/v1/auth/token/lookup-self", "token lookup")
        if r.status_code != 200:
            raise self._error(r, "token lookup")

    async def list_keys(self, prefix: str) -> list[RemoteEntry]:
        mount, _, base = prefix.partition("/")
        out: list[str] = []
        pending = [base]
        while pending:
            d = pending.pop()
            r = await self._call("LIST", f"/v1/{mount}/metadata/{d}", "list")
            if r.status_code == 404:
                continue
            if r.status_code != 200:
                raise self._error(r, "list")
            for k in r.json().get("data", {}).get("keys", []):
                (pending if k.endswith("/") else out).append(d + k)
        return [RemoteEntry(f"{mount}/{k}", None) for k in sorted(out)]

    async def versions(self, keys: list[str]) -> dict[str, str | None]:
        sem = asyncio.Semaphore(_CONCURRENCY)

        async def one(k: str) -> tuple[str, str | None]:
            async with sem:
                return k, await self.version(k)

        return dict(await asyncio.gather(*(one(k) for k in keys)))

    async def version(self, key: str) -> str | None:
        mount, _, path = key.partition("/")
        r = await self._call("GET", f"/v1/{mount}/metadata/{path}", "metadata")
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise self._error(r, "metadata")
        data = r.json().get("data", {})
        current = data.get("current_version")
        meta = (data.get("versions") or {}).get(str(current)) or {}
        if not current or meta.get("deletion_time") or meta.get("destroyed"):
            return None
        return str(current)

    async def read(self, key: str) -> tuple[dict[str, Any], str]:
        mount, _, path = key.partition("/")
        r = await self._call("GET", f"/v1/{mount}/data/{path}", "read")
        if r.status_code != 200:
            raise self._error(r, "read")
        data = r.json().get("data") or {}
        return value_doc(data.get("data")), str((data.get("metadata") or {}).get("version"))
