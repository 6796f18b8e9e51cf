import dataclasses

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from core.settings import Settings
from crypto.codec import ENCODING, EncryptionCodec, data_converter
from crypto.errors import DecryptError


@dataclasses.dataclass
class Secretish:
    path: str
    value: str


SECRET = "correct-horse-battery-staple-0123456789"


async def test_round_trip_and_ciphertext_hides_plaintext() -> None:
    codec = EncryptionCodec("codec-key-material-for-tests-0001")
    conv = data_converter(codec)
    payloads = await conv.encode([Secretish("app/db", SECRET), 42])
    assert len(payloads) == 2
    for p in payloads:
        assert p.metadata["encoding"] == ENCODING
        assert p.metadata["encryption-key-id"] == codec.key_id.encode()
        assert SECRET.encode() not in p.SerializeToString()
        assert b"app/db" not in p.SerializeToString()
    decoded = await conv.decode(payloads, [Secretish, int])
    assert decoded == [Secretish("app/db", SECRET), 42]


async def test_unencrypted_payloads_pass_through() -> None:
    plain = await DataConverter.default.encode(["hello"])
    codec = EncryptionCodec("codec-key-material-for-tests-0001")
    assert await codec.decode(plain) == plain


async def test_wrong_key_and_tamper_fail() -> None:
    a = EncryptionCodec("codec-key-material-for-tests-0001")
    b = EncryptionCodec("codec-key-material-for-tests-0002")
    assert a.key_id != b.key_id
    enc = await a.encode(await DataConverter.default.encode([SECRET]))
    with pytest.raises(DecryptError, match="unknown codec key") as ei:
        await b.decode(enc)
    assert SECRET not in str(ei.value)
    p = enc[0]
    data = bytearray(p.data)
    data[-1] ^= 1
    tampered = Payload(metadata=dict(p.metadata), data=bytes(data))
    with pytest.raises(DecryptError):
        await a.decode([tampered])


async def test_previous_secret_still_decodes() -> None:
    old = EncryptionCodec("old-codec-key-material-000000000")
    enc = await old.encode(await DataConverter.default.encode([SECRET]))
    new = EncryptionCodec(
        "new-codec-key-material-000000000", previous_secrets=["old-codec-key-material-000000000"]
    )
    dec = await new.decode(enc)
    assert await DataConverter.default.decode(dec, [str]) == [SECRET]
    assert (await new.encode(dec))[0].metadata["encryption-key-id"] == new.key_id.encode()


def test_from_settings_uses_configured_key_and_hides_it() -> None:
    s = Settings(temporal_codec_key=SecretStr("settings-codec-key-abcdefghijklmnop"))
    codec = EncryptionCodec.from_settings(s)
    assert codec.key_id == EncryptionCodec("settings-codec-key-abcdefghijklmnop").key_id
    assert "settings-codec-key" not in repr(codec)
    with pytest.raises(ValueError):
        EncryptionCodec("")
