import re

import pytest

from crypto import tokens

KEY = b"k" * 32


def test_generate_format_and_prefix() -> None:
    token, prefix = tokens.generate_pat()
    assert re.fullmatch(r"skt_[0-9A-Za-z]{38}", token)
    assert prefix == token[:12] == tokens.token_id_prefix(token)
    assert tokens.looks_like_pat(token) and tokens.checksum_ok(token)
    assert len({tokens.generate_pat()[0] for _ in range(200)}) == 200


def test_checksum_detects_typos() -> None:
    token, _ = tokens.generate_pat()
    for i in range(4, len(token)):
        c = token[i]
        typo = token[:i] + ("A" if c != "A" else "B") + token[i + 1 :]
        assert not tokens.checksum_ok(typo), i
    swapped = token[:10] + token[11] + token[10] + token[12:]
    if swapped != token:
        assert not tokens.checksum_ok(swapped)
    assert not tokens.checksum_ok(token[:-1])


@pytest.mark.parametrize(
    "s",
    [
        "",
        "skt_",
        "skt_short",
        "scai_live_abcdefghijklmnopqrstuvwxyz0123456789",
        "eyJhbGciOi.x.y",
        "skt_" + "!" * 38,
    ],
)
def test_non_pats(s: str) -> None:
    assert not tokens.looks_like_pat(s) and not tokens.checksum_ok(s)


def test_hash_is_keyed_hex_and_verifiable() -> None:
    token, _ = tokens.generate_pat()
    h = tokens.hash_token(token, KEY)
    assert re.fullmatch(r"[0-9a-f]{64}", h) and token not in h
    assert h == tokens.hash_token(token, KEY)
    assert h != tokens.hash_token(token, b"other-key")
    assert tokens.verify_token(token, KEY, h)
    assert not tokens.verify_token(tokens.generate_pat()[0], KEY, h)
    with pytest.raises(ValueError):
        tokens.hash_token(token, b"")


def test_constant_time_equals() -> None:
    assert tokens.constant_time_equals("abc", "abc")
    assert tokens.constant_time_equals(b"abc", "abc")
    assert not tokens.constant_time_equals("abc", "abd")
    assert not tokens.constant_time_equals("abc", "abcd")
