"""One way to build a Temporal client, shared by the API and the worker (same data converter + codec)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from temporalio.client import Client, Interceptor
from temporalio.converter import DataConverter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import TLSConfig

from core.errors import AppError
from core.settings import Settings

log = logging.getLogger("scaivault.temporal")
_T = TypeVar("_T")


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


def interceptors() -> list[Interceptor]:
    """The request-id carrier and the job metrics (worker side) always; OpenTelemetry's TracingInterceptor
    (with the baggage interceptor before it) only while tracing is on (core/tracing.py). A Worker built on the
    client inherits them."""
    from core import tracing
    from worker.interceptors import MetricsInterceptor, RequestIdInterceptor

    return [RequestIdInterceptor(), MetricsInterceptor(), *tracing.temporal_interceptors()]


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    api_key = settings.temporal_api_key.get_secret_value() or None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        interceptors=interceptors(),
        tls=tls_config(settings) if not api_key else (tls_config(settings) or True),
        api_key=api_key,
        lazy=lazy,
    )


async def with_deadline(settings: Settings, call: Callable[[timedelta], Awaitable[_T]], *, action: str) -> _T:
    """Run one client call that starts, signals or queries a workflow on a request's behalf, within
    TEMPORAL_RPC_TIMEOUT_SECONDS: ``call(rpc_timeout)`` passes the deadline to the SDK (``rpc_timeout=``), and
    the whole call (including a lazy client's first connect) is also bounded by it plus one second.

    A stalled, unreachable or failing Temporal becomes ``503 service_unavailable`` naming Temporal (retryable);
    ``WorkflowAlreadyStartedError`` is the caller's to handle and passes through.
    """
    seconds = settings.temporal_rpc_timeout_seconds
    try:
        return await asyncio.wait_for(call(timedelta(seconds=seconds)), seconds + 1.0)
    except WorkflowAlreadyStartedError:
        raise
    except Exception as exc:
        timed_out = isinstance(exc, TimeoutError) or "deadline" in str(exc).lower()
        log.warning("temporal call failed", extra={"action": action, "error": type(exc).__name__,
                                                   "timed_out": timed_out})
        why = f"did not answer within {seconds:g}s" if timed_out else "is unavailable"
        raise AppError("service_unavailable", f"Temporal (the workflow engine) {why}; what this request stored "
                       "is kept and picked up once Temporal is back, or retry shortly",
                       {"dependency": "temporal", "action": action}, headers={"Retry-After": "5"}) from None
