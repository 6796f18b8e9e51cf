"""The AWS target (boto3, run in a thread): an IAM user with an access key, or an assumed role (STS).

* ``iam_user``: CreateUser (path ``/scaivault/``), the role's inline ``policy_document`` and/or managed
  ``policy_arns``, CreateAccessKey. Revocation deletes the keys, the policies and the user; a user that no
  longer exists counts as revoked (idempotent).
* ``assumed_role``: STS AssumeRole on the role's ``role_arn`` for the lease's TTL (max 12h); AWS ends it at
  expiry and it cannot be revoked early, so revocation has nothing to do at the target.

New IAM keys take a few seconds to be accepted everywhere (eventual consistency). ``wait_until_usable`` on the
credentials request polls STS GetCallerIdentity with the new key until it answers (docs/dynamic.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from services.dynamic.common import describe_error, invalid_config
from services.dynamic.postgres import TargetError

CREDENTIAL_TYPES = ("iam_user", "assumed_role")
USER_PATH = "/scaivault/"


def check_config(cfg: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    region = cfg.get("region", "us-east-1")
    if not isinstance(region, str) or not region or len(region) > 32:
        raise invalid_config("config.region must be an AWS region name", field="config.region")
    out["region"] = region
    endpoint = cfg.get("endpoint_url")
    if endpoint is not None:
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")) or len(endpoint) > 512:
            raise invalid_config("config.endpoint_url must be an http(s) URL", field="config.endpoint_url")
        out["endpoint_url"] = endpoint
    return out


def check_role(cfg: dict[str, Any]) -> dict[str, Any]:
    kind = cfg.get("credential_type", "iam_user")
    if kind not in CREDENTIAL_TYPES:
        raise invalid_config(f"credential_type must be one of {list(CREDENTIAL_TYPES)}", field="credential_type")
    out: dict[str, Any] = {"credential_type": kind}
    if kind == "iam_user":
        doc = cfg.get("policy_document")
        arns = cfg.get("policy_arns", [])
        if doc is not None:
            if isinstance(doc, dict):
                doc = json.dumps(doc)
            if not isinstance(doc, str) or len(doc) > 10240:
                raise invalid_config("policy_document must be an IAM policy (object or JSON text)",
                                     field="policy_document")
            try:
                json.loads(doc)
            except ValueError:
                raise invalid_config("policy_document is not JSON", field="policy_document") from None
            out["policy_document"] = doc
        if not isinstance(arns, list) or not all(isinstance(a, str) and a.startswith("arn:") for a in arns):
            raise invalid_config("policy_arns must be a list of ARNs", field="policy_arns")
        out["policy_arns"] = arns
        if doc is None and not arns:
            raise invalid_config("an iam_user role needs policy_document or policy_arns", field="policy_document")
    else:
        arn = cfg.get("role_arn")
        if not isinstance(arn, str) or not arn.startswith("arn:"):
            raise invalid_config("an assumed_role role needs role_arn", field="role_arn")
        out["role_arn"] = arn
    return out


_THROTTLED = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable",
                        "InternalFailure", "InternalError"})


def unavailable(exc: BaseException) -> bool:
    """AWS could not be reached, timed out, throttled or failed on its side (5xx): retryable, not a config error."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    if isinstance(exc, BotoConnectionError | HTTPClientError | OSError | TimeoutError):
        return True  # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError, ...
    resp = getattr(exc, "response", None) or {}
    status = (resp.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
    return int(status) >= 500 or (resp.get("Error") or {}).get("Code") in _THROTTLED


class Client:
    def __init__(self, cfg: dict[str, Any], access_key_id: str, secret_access_key: str, timeout: float) -> None:
        import boto3
        from botocore.config import Config

        self.secret = secret_access_key
        self.cfg = cfg
        self.timeout = timeout
        bc = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2})
        kw = {"region_name": cfg["region"], "aws_access_key_id": access_key_id,
              "aws_secret_access_key": secret_access_key, "config": bc}
        if cfg.get("endpoint_url"):
            kw["endpoint_url"] = cfg["endpoint_url"]
        self._kw = kw
        self.iam = boto3.client("iam", **kw)
        self.sts = boto3.client("sts", **kw)

    async def _call(self, fn: Any, **kw: Any) -> Any:
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, **kw), self.timeout * 3)
        except TimeoutError:
            raise TargetError(f"AWS call timed out after {self.timeout * 3:g}s", unavailable=True) from None
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code == "NoSuchEntity":
                raise
            raise TargetError(describe_error(exc, (self.secret,)), unavailable=unavailable(exc)) from None

    async def check(self) -> None:
        await self._call(self.sts.get_caller_identity)

    async def create_user(self, role: dict[str, Any], username: str) -> dict[str, Any]:
        await self._call(self.iam.create_user, UserName=username, Path=USER_PATH)
        try:
            if role.get("policy_document"):
                await self._call(self.iam.put_user_policy, UserName=username, PolicyName="scaivault",
                                 PolicyDocument=role["policy_document"])
            for arn in role.get("policy_arns", []):
                await self._call(self.iam.attach_user_policy, UserName=username, PolicyArn=arn)
            key = (await self._call(self.iam.create_access_key, UserName=username))["AccessKey"]
        except Exception:
            await self.delete_user(username)  # leave nothing behind
            raise
        return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"],
                "username": username}

    async def assume_role(self, role: dict[str, Any], session: str, ttl_seconds: int) -> dict[str, Any]:
        out = await self._call(self.sts.assume_role, RoleArn=role["role_arn"], RoleSessionName=session[:64],
                               DurationSeconds=max(900, min(ttl_seconds, 43200)))
        c = out["Credentials"]
        return {"access_key_id": c["AccessKeyId"], "secret_access_key": c["SecretAccessKey"],
                "session_token": c["SessionToken"], "username": session}

    async def delete_user(self, username: str) -> None:
        """Delete keys, policies and the user; a missing user is success (already revoked)."""
        try:
            keys = await self._call(self.iam.list_access_keys, UserName=username)
            for k in keys.get("AccessKeyMetadata", []):
                await self._call(self.iam.delete_access_key, UserName=username, AccessKeyId=k["AccessKeyId"])
            for name in (await self._call(self.iam.list_user_policies, UserName=username)).get("PolicyNames", []):
                await self._call(self.iam.delete_user_policy, UserName=username, PolicyName=name)
            attached = await self._call(self.iam.list_attached_user_policies, UserName=username)
            for p in attached.get("AttachedPolicies", []):
                await self._call(self.iam.detach_user_policy, UserName=username, PolicyArn=p["PolicyArn"])
            await self._call(self.iam.delete_user, UserName=username)
        except TargetError:
            raise
        except Exception as exc:  # NoSuchEntity: gone already
            if getattr(exc, "response", {}).get("Error", {}).get("Code") != "NoSuchEntity":
                raise TargetError(describe_error(exc, (self.secret,))) from None

    async def wait_usable(self, access_key_id: str, secret_access_key: str, session_token: str | None,
                          deadline_seconds: float) -> bool:
        import boto3

        kw = dict(self._kw)
        kw.update(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)
        if session_token:
            kw["aws_session_token"] = session_token
        sts = boto3.client("sts", **kw)
        end = time.monotonic() + deadline_seconds
        while time.monotonic() < end:
            try:
                await asyncio.to_thread(sts.get_caller_identity)
                return True
            except Exception:
                await asyncio.sleep(1.0)
        return False


async def revoke(client: Client, role_types: dict[str, str], usernames: Sequence[str]) -> dict[str, str | None]:
    """``{username: None | error}``; assumed-role sessions have nothing to revoke."""
    out: dict[str, str | None] = {}
    for u in usernames:
        if role_types.get(u) == "assumed_role":
            out[u] = None
            continue
        try:
            await client.delete_user(u)
            out[u] = None
        except TargetError as exc:
            out[u] = str(exc)
    return out
