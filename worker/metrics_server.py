"""The worker's Prometheus ``/metrics`` (WORKER_METRICS_BIND_ADDRESS, off when empty).

prometheus-client's own HTTP server (a daemon thread): it serves the process's registry, or the multiprocess
aggregate under PROMETHEUS_MULTIPROC_DIR. Queue depths and the DB/Redis probes are refreshed on the worker's event
loop every ``interval`` seconds (services/job_metrics.py), since the server thread cannot run async queries.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

log = logging.getLogger("scaivault.worker")
_tasks: set[asyncio.Task[None]] = set()


def parse_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"WORKER_METRICS_BIND_ADDRESS must be host:port, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def start(address: str, db: Any, redis: Any, stop: asyncio.Event, *, interval: float = 15.0) -> Any:
    """Serve /metrics on ``address`` and refresh the gauges until ``stop``; returns the server (or None)."""
    if not address:
        return None
    from services import job_metrics

    host, port = parse_address(address)
    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    server, _thread = start_http_server(port, host, registry=registry)
    log.info("worker metrics listening", extra={"address": f"{host}:{server.server_port}"})

    async def refresh_loop() -> None:
        while not stop.is_set():
            await job_metrics.refresh(db, redis)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass
        server.shutdown()

    _tasks.add(asyncio.create_task(refresh_loop()))  # keep a reference (the loop ends with stop)
    return server
