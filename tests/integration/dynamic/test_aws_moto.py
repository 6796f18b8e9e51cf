"""The AWS engine against moto_server: an IAM user with an access key is created per lease (the key answers STS
GetCallerIdentity as that user) and deleted with its policy at revocation; an assumed role returns STS session
credentials; bad input leaves no IAM user behind."""

from __future__ import annotations

import json
import uuid

import boto3
import httpx
import orjson
import pytest

pytestmark = pytest.mark.asyncio
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}


def iam(moto: str):  # type: ignore[no-untyped-def]
    return boto3.client("iam", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def scaivault_users(moto: str) -> list[str]:
    return [u["UserName"] for u in iam(moto).list_users(PathPrefix="/scaivault/")["Users"]]


async def aws_engine(stack, moto: str, name: str = "aws-main") -> dict:  # type: ignore[no-untyped-def]
    await stack.root_secret("infra/aws/root", access_key_id="testing", secret_access_key="testing")
    r = await stack.api.post("/v1/dynamic/engines", headers=stack.admin, json={
        "name": name, "type": "aws", "default_ttl": "15m", "max_ttl": "12h",
        "config": {"region": "us-east-1", "endpoint_url": moto, "root_credentials_path": "infra/aws/root"}})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_iam_user_keys_created_and_deleted(stack, moto) -> None:
    httpx.post(f"{moto}/moto-api/reset")
    eng = await aws_engine(stack, moto)
    r = await stack.api.post(f"/v1/dynamic/engines/{eng['name']}/roles", headers=stack.admin,
                             json={"name": "s3-read", "credential_type": "iam_user", "policy_document": POLICY})
    assert r.status_code == 201, r.text
    r = await stack.creds(eng["name"], "s3-read", wait_until_usable=True)
    assert r.status_code == 200, r.text
    lease = r.json()
    data = lease["data"]
    assert lease["usable"] is True
    user = data["username"]
    assert scaivault_users(moto) == [user]
    keys = iam(moto).list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [data["access_key_id"]]
    assert json.loads(json.dumps(iam(moto).get_user_policy(UserName=user, PolicyName="scaivault")["PolicyDocument"]))
    sts = boto3.client("sts", endpoint_url=moto, region_name="us-east-1", aws_access_key_id=data["access_key_id"],
                       aws_secret_access_key=data["secret_access_key"])
    assert sts.get_caller_identity()["Arn"].endswith(f"user/scaivault/{user}") or user in sts.get_caller_identity()["Arn"]
    dump = orjson.dumps([dict(x) for x in await stack.sql("SELECT * FROM dynamic_leases")], default=str).decode()
    assert data["secret_access_key"] not in dump and data["access_key_id"] in dump
    r = await stack.api.post(f"/v1/dynamic/leases/{lease['lease_id']}/revoke", headers=stack.admin)
    assert r.status_code == 200 and r.json()["status"] == "revoked", r.text
    assert scaivault_users(moto) == []
    # revoking a user that is already gone is idempotent (counts as revoked)
    lease2 = (await stack.creds(eng["name"], "s3-read")).json()
    c = iam(moto)
    c.delete_access_key(UserName=lease2["data"]["username"], AccessKeyId=lease2["data"]["access_key_id"])
    c.delete_user_policy(UserName=lease2["data"]["username"], PolicyName="scaivault")
    c.delete_user(UserName=lease2["data"]["username"])
    r = await stack.api.post(f"/v1/dynamic/leases/{lease2['lease_id']}/revoke", headers=stack.admin)
    assert r.status_code == 200 and r.json()["status"] == "revoked", r.text


async def test_assumed_role_and_bad_input(stack, moto) -> None:
    httpx.post(f"{moto}/moto-api/reset")
    arn = iam(moto).create_role(RoleName=f"r-{uuid.uuid4().hex[:6]}", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                                 "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    eng = await aws_engine(stack, moto, "aws-sts")
    base = f"/v1/dynamic/engines/{eng['name']}/roles"
    r = await stack.api.post(base, headers=stack.admin, json={"name": "deploy", "credential_type": "assumed_role",
                                                              "role_arn": arn})
    assert r.status_code == 201, r.text
    lease = (await stack.creds(eng["name"], "deploy", ttl="1h")).json()
    assert lease["data"]["session_token"] and lease["data"]["access_key_id"]
    r = await stack.api.post(f"/v1/dynamic/leases/{lease['lease_id']}/revoke", headers=stack.admin)
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    # bad role input
    r = await stack.api.post(base, headers=stack.admin, json={"name": "x", "credential_type": "iam_user"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_config"
    r = await stack.api.post(base, headers=stack.admin, json={"name": "x", "credential_type": "nope"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_config"
    # a managed policy that does not exist: the user is created, the attach fails, nothing stays behind
    r = await stack.api.post(base, headers=stack.admin, json={
        "name": "bad-arn", "credential_type": "iam_user", "policy_arns": ["arn:aws:iam::123456789012:policy/nope"]})
    assert r.status_code == 201
    r = await stack.creds(eng["name"], "bad-arn")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_config", r.text
    assert scaivault_users(moto) == []
    assert await stack.sql("SELECT id FROM dynamic_leases WHERE role_name = 'bad-arn'") == []
    # an engine whose endpoint answers nothing
    await stack.root_secret("infra/aws/root", access_key_id="testing", secret_access_key="testing")
    r = await stack.api.post("/v1/dynamic/engines", headers=stack.admin, json={
        "name": "aws-down", "type": "aws",
        "config": {"endpoint_url": "http://127.0.0.1:1", "root_credentials_path": "infra/aws/root"}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_config", r.text
