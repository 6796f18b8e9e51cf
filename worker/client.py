"""One way to build a Temporal client, shared by the API and the worker (same data converter + codec)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.service import TLSConfig

from core.settings import Settings


def data_converter(settings: Settings) -> DataConverter:
    """Every payload passes through the AES-GCM codec keyed from TEMPORAL_CODEC_KEY."""
    from crypto.codec import EncryptionCodec

    return dataclasses.replace(DataConverter.default, payload_codec=EncryptionCodec.from_settings(settings))


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TEMPORAL_TLS with optional CA and client certificate (mTLS), e.g. for Temporal Cloud."""
    if not settings.temporal_tls:
        return False

    def read(path: str) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return TLSConfig(server_root_ca_cert=read(settings.temporal_tls_ca_file),
                     client_cert=read(settings.temporal_tls_cert_file),
                     client_private_key=read(settings.temporal_tls_key_file))


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    api_key = settings.temporal_api_key.get_secret_value() or None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        tls=tls_config(settings) if not api_key else (tls_config(settings) or True),
        api_key=api_key,
        lazy=lazy,
    )
