import os

import pytest

from crypto import envelope
from crypto.errors import DecryptError

KEK = os.urandom(32)
AAD = envelope.aad_for_secret("tnt_a", "app/db/password", 3)


def test_seal_open_round_trip_and_version_prefix() -> None:
    blob = envelope.seal(b"s3cr3t-value", KEK, 7, AAD)
    assert blob[:4] == b"SV\x01\x01"  # magic, format version 1, kind payload
    assert envelope.peek_kek_version(blob) == 7
    assert b"s3cr3t-value" not in blob
    assert envelope.open_(blob, lambda v: {7: KEK}[v], AAD) == b"s3cr3t-value"
    assert envelope.open_(blob, KEK, AAD) == b"s3cr3t-value"  # plain bytes KEK accepted too


def test_each_seal_uses_fresh_data_key_and_nonces() -> None:
    a = envelope.seal(b"same", KEK, 1, AAD)
    b = envelope.seal(b"same", KEK, 1, AAD)
    assert a != b
    assert a[8:68] != b[8:68]  # wrapped data keys differ


def test_empty_and_large_payloads() -> None:
    for size in (0, 1, 65_536):
        data = os.urandom(size)
        assert envelope.open_(envelope.seal(data, KEK, 1, AAD), KEK, AAD) == data


@pytest.mark.parametrize(
    "other",
    [
        envelope.aad_for_secret("tnt_b", "app/db/password", 3),  # another tenant
        envelope.aad_for_secret("tnt_a", "app/db/passwort", 3),  # another path
        envelope.aad_for_secret("tnt_a", "app/db/password", 4),  # another version
        envelope.aad_for_secret("tnt_a", "app/db/password", 3, scope="partner"),  # another scope
    ],
    ids=["tenant", "path", "version", "scope"],
)
def test_blob_copied_to_another_context_fails(other: bytes) -> None:
    blob = envelope.seal(b"value", KEK, 1, AAD)
    with pytest.raises(DecryptError, match="authentication"):
        envelope.open_(blob, KEK, other)


def test_aad_is_unambiguous() -> None:
    # Field boundaries cannot be shifted: "a;b" + "c" != "a" + "b;c"
    assert envelope.aad_for_secret("t", "a;1:b", 1) != envelope.aad_for_secret("t;1:a", "b", 1)
    assert envelope.aad_for("secret", "ab", "c") != envelope.aad_for("secret", "a", "bc")


@pytest.mark.parametrize("offset", [0, 2, 3, 4, 7, 8, 30, 67, 68, 80, -1])
def test_any_flipped_byte_is_detected(offset: int) -> None:
    blob = bytearray(envelope.seal(b"payload-bytes", KEK, 1, AAD))
    blob[offset] ^= 0x01
    with pytest.raises(DecryptError):
        envelope.open_(bytes(blob), lambda v: KEK, AAD)


def test_kek_version_drives_key_lookup() -> None:
    old, new = os.urandom(32), os.urandom(32)
    keys = {1: old, 2: new}
    b1 = envelope.seal(b"one", old, 1, AAD)
    b2 = envelope.seal(b"two", new, 2, AAD)
    assert envelope.open_(b1, keys.__getitem__, AAD) == b"one"
    assert envelope.open_(b2, keys.__getitem__, AAD) == b"two"
    # Rewriting the version byte to point at the other key fails (header is authenticated).
    forged = b2[:4] + (1).to_bytes(4, "big") + b2[8:]
    with pytest.raises(DecryptError):
        envelope.open_(forged, keys.__getitem__, AAD)


def test_truncated_and_foreign_blobs() -> None:
    blob = envelope.seal(b"x", KEK, 1, AAD)
    with pytest.raises(DecryptError, match="truncated"):
        envelope.open_(blob[:50], KEK, AAD)
    with pytest.raises(DecryptError, match="magic"):
        envelope.open_(b"v1:" + blob, KEK, AAD)
    with pytest.raises(DecryptError):
        envelope.peek_kek_version(b"abc")


def test_wrap_key_round_trip_and_kind_separation() -> None:
    child, parent = os.urandom(32), os.urandom(32)
    aad = envelope.aad_for_tenant_key("tnt_a", "ptn_x", 1)
    w = envelope.wrap_key(child, parent, 5, aad)
    assert w[:4] == b"SV\x01\x02" and envelope.peek_kek_version(w) == 5
    assert envelope.unwrap_key(w, {5: parent}.__getitem__, aad) == child
    with pytest.raises(DecryptError):
        envelope.unwrap_key(w, parent, envelope.aad_for_tenant_key("tnt_b", "ptn_x", 1))
    with pytest.raises(DecryptError, match="not a sealed payload"):
        envelope.open_(w, parent, aad)
    with pytest.raises(DecryptError, match="not a wrapped key"):
        envelope.unwrap_key(envelope.seal(b"x", parent, 5, aad), parent, aad)


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError):
        envelope.seal(b"x", b"short", 1, AAD)
    with pytest.raises(ValueError):
        envelope.seal(b"x", KEK, 0, AAD)
    with pytest.raises(ValueError):
        envelope.aad_for_secret("t", "p", 1, scope="global")
