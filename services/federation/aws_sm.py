"""AWS Secrets Manager with boto3 (already a dependency, for the AWS KMS provider). Calls run in a thread.
Credentials (``{"aws_access_key_id", "aws_secret_access_key"[, "aws_session_token"]}``) are read from the
ScaiVault secret named by ``credentials_path``; ``endpoint_url`` in the backend config is for VPC endpoints and
tests (moto). Change detection uses the ``AWSCURRENT`` version id ListSecrets already returns."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from services.federation.remote import RemoteEntry, RemoteError, value_doc

_THROTTLE = {"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
_AUTH = {"UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException",
         "AccessDenied", "ExpiredTokenException", "InvalidClientTokenId"}


class AsmRemote:
    def __init__(self, region: str, creds: dict[str, Any], *, endpoint_url: str | None = None,
                 timeout: float = 5.0) -> None:
        import boto3
        from botocore.config import Config

        key_id, secret = creds.get("aws_access_key_id"), creds.get("aws_secret_access_key")
        if not isinstance(key_id, str) or not isinstance(secret, str):
            raise RemoteError("auth", "the credentials secret needs 'aws_access_key_id' and 'aws_secret_access_key'")
        self.region = region
        self._client = boto3.session.Session().client(
            "secretsmanager", region_name=region, endpoint_url=endpoint_url, aws_access_key_id=key_id,
            aws_secret_access_key=secret, aws_session_token=creds.get("aws_session_token"),
            config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}))

    def __repr__(self) -> str:
        return f"AsmRemote(region={self.region!r})"

    async def aclose(self) -> None:
        self._client.close()

    async def _do(self, fn: Any, **kw: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(fn, **kw)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _THROTTLE:
                raise RemoteError("rate_limited", "AWS Secrets Manager is throttling") from None
            if code in _AUTH:
                raise RemoteError("auth", f"AWS Secrets Manager refused the credentials ({code})") from None
            if code == "ResourceNotFoundException":
                raise RemoteError("not_found", "not found") from None
            if code.startswith("Internal") or code == "ServiceUnavailable":
                raise RemoteError("unavailable", f"AWS Secrets Manager error ({code})") from None
            raise RemoteError("invalid", f"AWS Secrets Manager error ({code})") from None
        except BotoCoreError as exc:
            raise RemoteError("unavailable", f"AWS Secrets Manager unreachable ({type(exc).__name__})") from None

    async def probe(self) -> None:
        await self._do(self._client.list_secrets, MaxResults=1)

    @staticmethod
    def _current(entry: dict[str, Any]) -> str | None:
        for vid, stages in (entry.get("SecretVersionsToStages") or {}).items():
            if "AWSCURRENT" in stages:
                return str(vid)
        return None

    async def list_keys(self, prefix: str) -> list[RemoteEntry]:
        out: list[RemoteEntry] = []
        kw: dict[str, Any] = {"MaxResults": 100}
        if prefix:
            kw["Filters"] = [{"Key": "name", "Values": [prefix]}]
        while True:
            page = await self._do(self._client.list_secrets, **kw)
            for e in page.get("SecretList", []):
                name = e.get("Name", "")
                if name.startswith(prefix) and not e.get("DeletedDate"):
                    out.append(RemoteEntry(name, self._current(e)))
            token = page.get("NextToken")
            if not token:
                break
            kw["NextToken"] = token
        return sorted(out, key=lambda e: e.key)

    async def version(self, key: str) -> str | None:
        try:
            d = await self._do(self._client.describe_secret, SecretId=key)
        except RemoteError as exc:
            if exc.kind == "not_found":
                return None
            raise
        return None if d.get("DeletedDate") else self._current(d)

    async def versions(self, keys: list[str]) -> dict[str, str | None]:
        return {k: await self.version(k) for k in keys}

    async def read(self, key: str) -> tuple[dict[str, Any], str]:
        r = await self._do(self._client.get_secret_value, SecretId=key)
        if r.get("SecretString") is not None:
            return value_doc(r["SecretString"]), str(r.get("VersionId"))
        blob = r.get("SecretBinary") or b""
        return {"value_base64": base64.b64encode(blob).decode()}, str(r.get("VersionId"))
