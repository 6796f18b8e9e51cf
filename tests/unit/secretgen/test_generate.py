"""Generator output (spec core.md §10.7)."""

from __future__ import annotations

import re
import string
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import bcrypt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from secretgen import CHARSETS, generate, validate_secret_policy

NOW = datetime(2024, 6, 7, 12, 0, tzinfo=UTC)


def one(generator: str, config: dict[str, Any], name: str = "v") -> dict[str, str]:
    spec = validate_secret_policy(
        {"name": "p", "fields": [{"name": name, "generator": generator, "config": config}]}
    )
    return generate(spec, NOW)


@pytest.mark.parametrize("charset", list(CHARSETS))
@pytest.mark.parametrize("length", [1, 16, 64])
def test_random_length_and_alphabet(charset: str, length: int) -> None:
    for _ in range(20):
        v = one("random", {"length": length, "charset": charset})["v"]
        assert len(v) == length
        assert set(v) <= set(CHARSETS[charset])


def test_charset_definitions() -> None:
    assert set(CHARSETS["alphanumeric"]) == set(string.ascii_letters + string.digits)
    assert CHARSETS["numeric"] == string.digits
    assert CHARSETS["hex"] == "0123456789abcdef"
    assert set(CHARSETS["safe"]) == set(string.ascii_letters + string.digits + "-_.~!@#%^*+=")
    assert set(CHARSETS["all"]) == set(string.ascii_letters + string.digits + string.punctuation)


REQ = {"require_upper": True, "require_lower": True, "require_digit": True, "require_symbol": True}


@pytest.mark.parametrize(("charset", "length"), [("safe", 4), ("safe", 8), ("all", 5), ("safe", 32)])
def test_required_classes_always_present(charset: str, length: int) -> None:
    for _ in range(300):
        v = one("random", {"length": length, "charset": charset, **REQ})["v"]
        assert len(v) == length
        assert any(c.isupper() for c in v)
        assert any(c.islower() for c in v)
        assert any(c.isdigit() for c in v)
        assert any(not c.isalnum() for c in v)


def test_exclude_chars() -> None:
    exclude = "0OIl1"
    for _ in range(200):
        v = one(
            "random",
            {"length": 40, "charset": "alphanumeric", "exclude_chars": exclude, "require_digit": True},
        )["v"]
        assert not set(v) & set(exclude)
        assert any(c.isdigit() for c in v)


def test_statistical_sanity_every_char_appears_and_no_gross_bias() -> None:
    counts: Counter[str] = Counter()
    draws = 400
    for _ in range(draws):
        counts.update(one("random", {"length": 32, "charset": "safe", **REQ})["v"])
    alphabet = CHARSETS["safe"]
    assert set(counts) == set(alphabet)  # no character (hence no class) is ever missing
    expected = draws * 32 / len(alphabet)  # ~173 per char
    # generous bounds: a broken generator (e.g. modulo bias to one half, stuck chars) lands outside
    assert min(counts.values()) > expected * 0.5
    assert max(counts.values()) < expected * 1.6


def test_required_class_positions_are_not_fixed() -> None:
    # "one of each class at the front" implementations put a symbol at a fixed index; we must not.
    firsts = Counter(
        one("random", {"length": 8, "charset": "safe", **REQ})["v"][0].isalpha() for _ in range(300)
    )
    assert firsts[True] > 100 and firsts[False] > 30


@pytest.mark.parametrize("length", [1, 2, 31, 32, 33])
def test_hex(length: int) -> None:
    v = one("hex", {"length": length})["v"]
    assert re.fullmatch(f"[0-9a-f]{{{length}}}", v)


def test_uuid4_and_uuid7() -> None:
    u4 = uuid.UUID(one("uuid", {"version": 4})["v"])
    assert u4.version == 4 and u4.variant == uuid.RFC_4122
    u7 = uuid.UUID(one("uuid", {"version": 7})["v"])
    assert u7.version == 7 and u7.variant == uuid.RFC_4122
    assert u7.int >> 80 == int(NOW.timestamp() * 1000)
    assert len({one("uuid", {"version": 7})["v"] for _ in range(50)}) == 50


def test_template() -> None:
    v = one("template", {"template": "sk_{{timestamp}}_{{random:12}}.{{hex:6}}-{{ uuid }}"})["v"]
    m = re.fullmatch(r"sk_(\d+)_([A-Za-z0-9]{12})\.([0-9a-f]{6})-([0-9a-f-]{36})", v)
    assert m is not None
    assert int(m.group(1)) == int(NOW.timestamp())
    assert uuid.UUID(m.group(4)).version == 4


def test_static_and_multi_field_output() -> None:
    spec = validate_secret_policy(
        {
            "name": "OAuth client",
            "policy_type": "oauth_client",
            "fields": [
                {"name": "client_id", "generator": "template", "config": {"template": "app-{{hex:8}}"}},
                {"name": "client_secret", "generator": "random", "config": {"length": 48}},
                {"name": "issuer", "generator": "static", "config": {"value": "https://idp.example"}},
            ],
        }
    )
    data = generate(spec)
    assert set(data) == {"client_id", "client_secret", "issuer"}
    assert data["issuer"] == "https://idp.example"
    assert len(data["client_secret"]) == 48
    assert generate(spec)["client_secret"] != data["client_secret"]


def test_rsa_keypair() -> None:
    data = one("rsa_keypair", {"bits": 2048}, name="private_key")
    key = serialization.load_pem_private_key(data["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    pub = serialization.load_pem_public_key(data["public_key"].encode())
    assert pub.public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]


@pytest.mark.parametrize(("curve", "cls"), [("P-256", ec.SECP256R1), ("P-384", ec.SECP384R1)])
def test_ec_keypair(curve: str, cls: type) -> None:
    data = one("ec_keypair", {"curve": curve}, name="private_key")
    key = serialization.load_pem_private_key(data["private_key"].encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, cls)
    assert data["public_key"].startswith("-----BEGIN PUBLIC KEY-----")


def test_ssh_ed25519() -> None:
    data = one("ssh_keypair", {"key_type": "ed25519", "comment": "deploy@ci"}, name="private_key")
    key = serialization.load_ssh_private_key(data["private_key"].encode(), password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    assert data["public_key"].startswith("ssh-ed25519 ") and data["public_key"].endswith(" deploy@ci")
    loaded = serialization.load_ssh_public_key(data["public_key"].encode())
    assert loaded.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) == key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_ssh_rsa() -> None:
    data = one("ssh_keypair", {"key_type": "rsa", "bits": 2048}, name="private_key")
    key = serialization.load_ssh_private_key(data["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert data["public_key"].startswith("ssh-rsa ")


def test_bcrypt_hash() -> None:
    data = one("bcrypt_hash", {"length": 20, "rounds": 4}, name="password")
    assert len(data["password"]) == 20
    assert data["hash"].startswith("$2b$04$")
    assert bcrypt.checkpw(data["password"].encode(), data["hash"].encode())
