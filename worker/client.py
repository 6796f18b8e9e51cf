"""One way to build a Temporal client, shared by the API and the worker (same data converter + codec)."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.converter import DataConverter

from core.settings import Settings


def data_converter(settings: Settings) -> DataConverter:
    """Every payload passes through the AES-GCM codec keyed from TEMPORAL_CODEC_KEY."""
    from crypto.codec import EncryptionCodec

    return dataclasses.replace(DataConverter.default, payload_codec=EncryptionCodec.from_settings(settings))


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        lazy=lazy,
    )
