"""Settings: dev defaults, and refusal to start outside dev with missing or placeholder secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings

GOOD = {"token_hmac_key": "k" * 40, "audit_hmac_key": "a" * 40, "temporal_codec_key": "c" * 40,
        "scaikey_client_secret": "s" * 30, "kms_local_key": "x" * 44}


def test_dev_fills_missing_secrets_with_dev_defaults():
    s = Settings(env="dev", kms_local_key_file="/tmp/k")
    assert s.token_hmac_key.get_secret_value().startswith("dev-insecure-")
    assert "dev-insecure" not in repr(s)  # SecretStr never prints


@pytest.mark.parametrize("env", ["test", "prod"])
@pytest.mark.parametrize("var", ["token_hmac_key", "audit_hmac_key", "temporal_codec_key", "scaikey_client_secret"])
@pytest.mark.parametrize("value", ["", "changeme", "changethis", "dev-insecure-token-hmac-key-0000000000000000"])
def test_outside_dev_a_missing_or_placeholder_secret_names_the_variable(env, var, value):
    with pytest.raises(ValidationError, match=var.upper()):
        Settings(env=env, **{**GOOD, var: value})


def test_prod_local_kms_needs_an_explicit_key():
    kwargs = {k: v for k, v in GOOD.items() if k != "kms_local_key"}
    with pytest.raises(ValidationError, match="KMS_LOCAL_KEY"):
        Settings(env="prod", **kwargs)
    assert Settings(env="prod", kms_local_key_file="/etc/scaivault/kms.key", **kwargs).env == "prod"


def test_aws_kms_needs_a_key_id():
    with pytest.raises(ValidationError, match="KMS_KEY_ID"):
        Settings(env="test", kms_provider="aws", **GOOD)


def test_env_vars_and_aliases(monkeypatch):
    monkeypatch.setenv("ENV", "test")
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    monkeypatch.setenv("SCAIKEY_URL", "https://sk.example")
    for k, v in GOOD.items():
        monkeypatch.setenv(k.upper(), v)
    s = Settings()
    assert s.db_pool_size == 7 and s.scaikey_base_url == "https://sk.example"
    assert s.audience == "scaivault"  # defaults to the client id
    assert s.sqlalchemy_url.startswith("postgresql+asyncpg://")


def test_only_asymmetric_jwt_algorithms_survive_configuration():
    s = Settings(env="dev", jwt_algorithms="RS256,none,HS256,ES256")
    assert s.allowed_jwt_algorithms == ["RS256", "ES256"]


def test_sslmode_in_database_url_reaches_both_drivers():
    s = Settings(env="dev", database_url="postgresql://u:p@db:5432/sv?sslmode=require&application_name=x")
    assert s.sqlalchemy_url == "postgresql+asyncpg://u:p@db:5432/sv?application_name=x"
    assert s.db_ssl_mode == "require"


def test_every_setting_is_documented_in_the_deployment_guide():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    assert [n.upper() for n in Settings.model_fields if f"`{n.upper()}`" not in doc] == []
