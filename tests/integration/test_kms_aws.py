"""AwsKms and KeyHierarchy against a real moto_server (started here on a free loopback port)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from crypto import envelope
from crypto.errors import DecryptError, KmsUnavailable
from crypto.keyring import InMemoryKeyStore, KeyHierarchy
from crypto.kms import AwsKms, describe_blob

REGION = "us-east-1"
CTX = {"scaivault:purpose": "test", "partner_id": "ptn_a"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _moto_binary() -> str:
    local = Path(sys.executable).with_name("moto_server")
    found = str(local) if local.exists() else shutil.which("moto_server")
    if not found:
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    return found


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen(
        [_moto_binary(), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {proc.returncode}; see {log.name}")
            try:
                if httpx.get(url + "/moto-api/", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("moto_server did not become ready in 30 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()  # by pid
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def kms_client(moto_url: str):
    httpx.post(moto_url + "/moto-api/reset", timeout=5)
    return boto3.client(
        "kms",
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _new_key(client) -> str:
    return str(client.create_key(Description="scaivault root")["KeyMetadata"]["KeyId"])


def _aws(key_id: str, url: str, **kw) -> AwsKms:
    return AwsKms(key_id, REGION, url, access_key_id="testing", secret_access_key="testing", **kw)


async def test_wrap_unwrap_round_trip(kms_client, moto_url: str) -> None:
    key_id = _new_key(kms_client)
    kms = _aws(key_id, moto_url)
    blob = await kms.wrap(b"partner-key-32-bytes-0123456789a", CTX)
    info = describe_blob(blob)
    assert (info.provider, info.key_id) == ("aws", key_id)
    assert b"partner-key-32-bytes" not in blob
    assert await kms.unwrap(blob, CTX) == b"partner-key-32-bytes-0123456789a"
    await kms.health()


async def test_wrong_context_is_a_decrypt_error(kms_client, moto_url: str) -> None:
    kms = _aws(_new_key(kms_client), moto_url)
    blob = await kms.wrap(b"k" * 32, CTX)
    with pytest.raises(DecryptError):
        await kms.unwrap(blob, {**CTX, "partner_id": "ptn_b"})


async def test_disabled_key_is_unavailable(kms_client, moto_url: str) -> None:
    key_id = _new_key(kms_client)
    kms = _aws(key_id, moto_url)
    await kms.health()
    kms_client.disable_key(KeyId=key_id)
    with pytest.raises(KmsUnavailable, match="Disabled"):
        await kms.health()
    # (moto still decrypts under a disabled key, so Decrypt refusal is not asserted here.)


async def test_unreachable_endpoint_is_unavailable() -> None:
    kms = _aws("alias/none", f"http://127.0.0.1:{_free_port()}", max_attempts=1, connect_timeout=0.5)
    with pytest.raises(KmsUnavailable) as ei:
        await kms.wrap(b"secret-bytes", CTX)
    assert "secret-bytes" not in str(ei.value)


async def test_emulator_without_credentials_uses_placeholders(
    kms_client, moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    kms = AwsKms(_new_key(kms_client), REGION, moto_url)
    assert await kms.unwrap(await kms.wrap(b"x", CTX), CTX) == b"x"


async def test_key_hierarchy_on_aws_and_root_rotation(kms_client, moto_url: str) -> None:
    old_key, new_key = _new_key(kms_client), _new_key(kms_client)
    store = InMemoryKeyStore()
    writer = KeyHierarchy(_aws(old_key, moto_url), store)
    aad = envelope.aad_for_secret("tnt_a", "app/db", 1)
    blob = await writer.seal(b"db-password", aad, partner_id="ptn_a", tenant_id="tnt_a")
    assert writer.stats.kms_calls == 1  # partner key created (one Encrypt)

    reader = KeyHierarchy(_aws(old_key, moto_url), store)
    assert await reader.open(blob, aad, partner_id="ptn_a", tenant_id="tnt_a") == b"db-password"
    assert await reader.open(blob, aad, partner_id="ptn_a", tenant_id="tnt_a") == b"db-password"
    assert reader.stats.kms_calls == 1  # one Decrypt cold, none warm

    report = await KeyHierarchy(_aws(new_key, moto_url), store).rotate_root()
    assert report.rewrapped == 1 and report.kms_key_id == new_key
    assert describe_blob(store.partner[("ptn_a", 1)].wrapped).key_id == new_key

    fresh = KeyHierarchy(_aws(new_key, moto_url), store)
    assert await fresh.open(blob, aad, partner_id="ptn_a", tenant_id="tnt_a") == b"db-password"
