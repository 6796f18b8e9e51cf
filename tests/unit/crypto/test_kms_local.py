import base64
import os
import stat

import pytest
from pydantic import SecretStr

from core.settings import Settings
from crypto import aead
from crypto.errors import DecryptError, KmsConfigError
from crypto.kms import AwsKms, KmsProvider, LocalKms, build_kms, describe_blob

CTX = {"partner_id": "ptn_a", "version": "1"}


async def test_wrap_unwrap_round_trip_and_prefix(root_key: bytes) -> None:
    kms = LocalKms(root_key)
    assert isinstance(kms, KmsProvider)
    blob = await kms.wrap(b"partner-key-bytes", CTX)
    info = describe_blob(blob)
    assert (info.provider, info.key_id) == ("local", kms.key_id)
    assert b"partner-key-bytes" not in blob
    assert await kms.unwrap(blob, CTX) == b"partner-key-bytes"


async def test_context_is_bound(root_key: bytes) -> None:
    kms = LocalKms(root_key)
    blob = await kms.wrap(b"k", CTX)
    with pytest.raises(DecryptError):
        await kms.unwrap(blob, {**CTX, "partner_id": "ptn_b"})
    # key order does not matter (canonical JSON)
    assert await kms.unwrap(blob, dict(reversed(list(CTX.items())))) == b"k"


async def test_wrong_root_key_fails_clearly(root_key: bytes) -> None:
    blob = await LocalKms(root_key).wrap(b"k", CTX)
    other = LocalKms(aead.new_key())
    with pytest.raises(DecryptError, match="not configured"):
        await other.unwrap(blob, CTX)


async def test_foreign_provider_blob_rejected(root_key: bytes) -> None:
    blob = await LocalKms(root_key).wrap(b"k", CTX)
    aws = AwsKms("alias/x", "us-east-1", client=object())
    with pytest.raises(DecryptError, match="provider 'local'"):
        await aws.unwrap(blob, CTX)
    with pytest.raises(DecryptError):
        describe_blob(b"garbage")
    with pytest.raises(DecryptError):
        describe_blob(blob[:8])


async def test_health_and_repr_hide_key(root_key: bytes) -> None:
    kms = LocalKms(root_key)
    await kms.health()
    assert base64.b64encode(root_key).decode() not in repr(kms)
    assert root_key.hex() not in repr(kms) and "***" in repr(kms)


async def test_key_file_create_load_rotate(tmp_path) -> None:
    path = LocalKms.create_key_file(tmp_path / "dev" / "kms.key")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(FileExistsError):
        LocalKms.create_key_file(path)
    first = LocalKms.from_file(path)
    blob = await first.wrap(b"old", CTX)

    LocalKms.rotate_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    rotated = LocalKms.from_file(path)
    assert rotated.key_id != first.key_id
    assert rotated.key_ids[1] == first.key_id
    assert await rotated.unwrap(blob, CTX) == b"old"  # old key still unwraps
    assert describe_blob(await rotated.wrap(b"new", CTX)).key_id == rotated.key_id


@pytest.mark.parametrize("text", ["not base64!!", base64.b64encode(b"short").decode(), ""])
def test_bad_key_material_is_a_config_error(tmp_path, text: str) -> None:
    p = tmp_path / "k"
    p.write_text(text)
    with pytest.raises(KmsConfigError) as ei:
        LocalKms.from_file(p)
    assert "KMS_LOCAL_KEY_FILE" in str(ei.value)
    with pytest.raises(KmsConfigError):
        LocalKms.from_file(tmp_path / "missing")


def test_build_kms_local(root_key: bytes, tmp_path) -> None:
    b64 = base64.b64encode(root_key).decode()
    kms = build_kms(Settings(kms_provider="local", kms_local_key=SecretStr(b64)))
    assert isinstance(kms, LocalKms) and kms.key_id == LocalKms(root_key).key_id
    path = LocalKms.create_key_file(tmp_path / "k")
    from_file = build_kms(Settings(kms_provider="local", kms_local_key_file=str(path)))
    assert from_file.key_id == LocalKms.from_file(path).key_id
    with pytest.raises(KmsConfigError, match="KMS_LOCAL_KEY"):
        build_kms(Settings(kms_provider="local"))


def test_build_kms_aws() -> None:
    kms = build_kms(
        Settings(kms_provider="aws", kms_key_id="alias/root", aws_endpoint_url="http://127.0.0.1:1")
    )
    assert isinstance(kms, AwsKms) and kms.key_id == "alias/root" and kms.name == "aws"
