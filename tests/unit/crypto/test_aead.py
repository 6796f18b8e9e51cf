import pytest

from crypto import aead
from crypto.errors import DecryptError


def test_round_trip_and_random_nonce() -> None:
    key = aead.new_key()
    a = aead.encrypt(key, b"hello", b"ctx")
    b = aead.encrypt(key, b"hello", b"ctx")
    assert a != b  # fresh nonce each time
    assert len(a) == len(b"hello") + aead.OVERHEAD
    assert aead.decrypt(key, a, b"ctx") == b"hello"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda key, blob, aad: (aead.new_key(), blob, aad),  # wrong key
        lambda key, blob, aad: (key, blob, b"other"),  # wrong AAD
        lambda key, blob, aad: (key, blob[:-1] + bytes([blob[-1] ^ 1]), aad),  # tag flipped
        lambda key, blob, aad: (key, blob[:5] + bytes([blob[5] ^ 1]) + blob[6:], aad),  # nonce flipped
        lambda key, blob, aad: (key, blob[:10], aad),  # truncated
    ],
    ids=["wrong-key", "wrong-aad", "tag", "nonce", "truncated"],
)
def test_failures_raise_decrypt_error_without_secrets(mutate) -> None:
    key = aead.new_key()
    blob = aead.encrypt(key, b"topsecret-plaintext", b"ctx")
    k, bl, ad = mutate(key, blob, b"ctx")
    with pytest.raises(DecryptError) as ei:
        aead.decrypt(k, bl, ad)
    text = str(ei.value)
    assert "topsecret" not in text and key.hex() not in text and repr(key) not in text


def test_key_length_checked() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        aead.encrypt(b"short", b"x", b"")
