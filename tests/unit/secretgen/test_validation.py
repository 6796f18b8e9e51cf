"""Secret-policy validation (spec core.md §10.7)."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import AppError
from secretgen import RandomConfig, validate_secret_policy

SPEC_EXAMPLE: dict[str, Any] = {
    "id": "sp_db_passwords",
    "name": "Database Passwords",
    "policy_type": "password",
    "fields": [
        {
            "name": "password",
            "generator": "random",
            "config": {
                "length": 32,
                "charset": "safe",
                "require_upper": True,
                "require_lower": True,
                "require_digit": True,
                "require_symbol": True,
            },
        }
    ],
    "is_active": True,
    "description": "Strong 32-char passwords for database users",
}


def test_spec_example() -> None:
    spec = validate_secret_policy(SPEC_EXAMPLE)
    assert spec.name == "Database Passwords" and spec.policy_type == "password"
    (field,) = spec.fields
    assert field.generator == "random" and field.companion is None
    assert isinstance(field.config, RandomConfig)
    assert field.config.length == 32 and len(field.config.required) == 4
    assert spec.output_keys == ("password",)


@pytest.mark.parametrize(
    ("name", "generator", "config", "keys"),
    [
        ("private_key", "ssh_keypair", {}, ("private_key", "public_key")),
        ("db_private_key", "rsa_keypair", {}, ("db_private_key", "db_public_key")),
        ("signing", "ec_keypair", {"curve": "P-384"}, ("signing", "signing_public")),
        ("key", "ec_keypair", {"public_key_field": "pub"}, ("key", "pub")),
        ("password", "bcrypt_hash", {"rounds": 4}, ("password", "hash")),
        ("admin_pw", "bcrypt_hash", {}, ("admin_pw", "admin_pw_hash")),
        ("admin_pw", "bcrypt_hash", {"hash_field": "htpasswd"}, ("admin_pw", "htpasswd")),
    ],
)
def test_companion_keys(name: str, generator: str, config: dict[str, Any], keys: tuple[str, ...]) -> None:
    spec = validate_secret_policy(
        {"name": "x", "fields": [{"name": name, "generator": generator, "config": config}]}
    )
    assert spec.output_keys == keys


def field_doc(generator: str, config: Any, name: str = "f") -> dict[str, Any]:
    return {
        "name": "p",
        "fields": [
            {"name": "ok", "generator": "hex"},
            {"name": name, "generator": generator, "config": config},
        ],
    }


BAD_CONFIG = [
    ("random", {"length": 0}, "length"),
    ("random", {"length": 1025}, "length"),
    ("random", {"length": "32"}, "length"),
    ("random", {"length": True}, "length"),
    ("random", {"charset": "emoji"}, "charset"),
    ("random", {"require_upper": "yes"}, "require_upper"),
    ("random", {"charset": "numeric", "require_upper": True}, "require_upper"),
    ("random", {"charset": "alpha", "require_digit": True}, "require_digit"),
    (
        "random",
        {"charset": "safe", "exclude_chars": "-_.~!@#%^*+=", "require_symbol": True},
        "require_symbol",
    ),
    ("random", {"charset": "numeric", "exclude_chars": "012345678"}, "exclude_chars"),
    (
        "random",
        {"length": 2, "charset": "all", "require_upper": True, "require_lower": True, "require_digit": True},
        "length",
    ),
    (
        "random",
        {
            "length": 4,
            "charset": "safe",
            "require_upper": True,
            "require_lower": True,
            "require_digit": True,
            "require_symbol": True,
            "exclude_chars": "-_.~!@#%^*+BCDEFGHIJKLMNOPQRSTUVWXYZ",
        },
        "length",
    ),
    ("random", {"lenght": 32}, "lenght"),
    ("hex", {"length": 0}, "length"),
    ("uuid", {"version": 5}, "version"),
    ("template", {}, "template"),
    ("template", {"template": ""}, "template"),
    ("template", {"template": "{{random}}"}, "template"),
    ("template", {"template": "{{random:0}}"}, "template"),
    ("template", {"template": "{{uuid:4}}"}, "template"),
    ("template", {"template": "{{password}}"}, "template"),
    ("template", {"template": "abc {{hex:4"}, "template"),
    ("template", {"template": "abc }} x"}, "template"),
    ("rsa_keypair", {"bits": 1024}, "bits"),
    ("ec_keypair", {"curve": "P-521"}, "curve"),
    ("ssh_keypair", {"key_type": "dsa"}, "key_type"),
    ("ssh_keypair", {"comment": "a\nb"}, "comment"),
    ("ssh_keypair", {"key_type": "ed25519", "bits": 4096}, "bits"),
    ("bcrypt_hash", {"rounds": 31}, "rounds"),
    ("bcrypt_hash", {"length": 100}, "length"),
    ("static", {}, "value"),
    ("static", {"value": 5}, "value"),
]


@pytest.mark.parametrize(("generator", "config", "key"), BAD_CONFIG)
def test_invalid_config_points_at_field(generator: str, config: dict[str, Any], key: str) -> None:
    with pytest.raises(AppError) as exc:
        validate_secret_policy(field_doc(generator, config))
    assert exc.value.code == "invalid_config"
    assert exc.value.status == 400
    assert exc.value.details["field"] == f"fields[1].config.{key}"


def test_unknown_generator_is_invalid_config() -> None:
    with pytest.raises(AppError) as exc:
        validate_secret_policy(field_doc("magic", {}))
    assert (exc.value.code, exc.value.details["field"]) == ("invalid_config", "fields[1].generator")


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"fields": [{"name": "a", "generator": "hex"}]}, "name"),
        ({"name": "p", "fields": []}, "fields"),
        ({"name": "p"}, "fields"),
        (
            {"name": "p", "policy_type": "banana", "fields": [{"name": "a", "generator": "hex"}]},
            "policy_type",
        ),
        ({"name": "p", "fields": [{"name": "1a", "generator": "hex"}]}, "fields[0].name"),
        ({"name": "p", "fields": [{"name": "a", "generator": "hex", "config": []}]}, "fields[0].config"),
        ({"name": "p", "fields": [{"name": "a", "generator": "hex", "cfg": {}}]}, "fields[0].cfg"),
        (
            {"name": "p", "fields": [{"name": "a", "generator": "hex"}, {"name": "a", "generator": "uuid"}]},
            "fields[1].name",
        ),
        (
            {
                "name": "p",
                "fields": [
                    {"name": "public_key", "generator": "hex"},
                    {"name": "private_key", "generator": "ssh_keypair"},
                ],
            },
            "fields[1].config",
        ),
        ({"name": "p", "fields": ["a"]}, "fields[0]"),
        ({"name": "p", "extra": 1, "fields": [{"name": "a", "generator": "hex"}]}, "extra"),
    ],
)
def test_structural_errors(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(AppError) as exc:
        validate_secret_policy(doc)
    assert exc.value.code == "validation_error"
    assert exc.value.status == 422
    assert exc.value.details["field"] == field


def test_static_value_never_in_repr_or_errors() -> None:
    spec = validate_secret_policy(field_doc("static", {"value": "hunter2-very-secret"}))
    assert "hunter2" not in repr(spec)
    with pytest.raises(AppError) as exc:
        validate_secret_policy(field_doc("static", {"value": "hunter2-very-secret", "x": 1}))
    assert "hunter2" not in exc.value.message and "hunter2" not in repr(exc.value.details)
