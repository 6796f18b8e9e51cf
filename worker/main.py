"""``scaivault worker``: connect, serve every registered task queue, shut down gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import timedelta

import redis.asyncio as aioredis
from temporalio.worker import Worker

from core import tracing
from core.logging import configure_logging
from core.settings import Settings, get_settings
from db.engine import Database
from db.migrate import ensure_schema
from worker import metrics_server
from worker.client import connect
from worker.registry import WorkerDeps, selected
from worker.schedules import ensure_schedules
from worker.visibility import ensure_search_attributes

log = logging.getLogger("scaivault.worker")


async def run(settings: Settings, *, queues: str | None = None, stop: asyncio.Event | None = None) -> None:
    configure_logging(settings.log_level, settings.log_format)
    tracing.configure_from_env("scaivault-worker")  # before connect(): the client then gets TracingInterceptor
    await asyncio.to_thread(ensure_schema, settings.database_url, settings.migrate_on_start)
    db = Database(settings, pool_size=min(settings.db_pool_size, 10), application_name="scaivault-worker")
    redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    client = await connect(settings)
    deps = WorkerDeps(settings=settings, db=db, redis=redis, temporal=client)
    workers: list[Worker] = []
    for reg in selected(queues or os.environ.get("SCAIVAULT_WORKER_QUEUES")):
        workers.append(Worker(
            client,
            task_queue=settings.task_queue(reg.concern),
            workflows=reg.workflows(),
            activities=reg.activities(deps),
            graceful_shutdown_timeout=timedelta(seconds=10),
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.temporal_sticky_queue_timeout_seconds),
        ))
    await ensure_search_attributes(client, settings)  # before any start that carries them (worker/visibility.py)
    await ensure_schedules(client, settings)
    stop = stop or asyncio.Event()
    __import__("audit.sealer").sealer.start_worker_sealer(db, settings, stop)  # AUDIT: chain sealer loop
    # /metrics of this worker (WORKER_METRICS_BIND_ADDRESS; off when empty): job runs, durations, queue depths
    metrics_server.start(settings.worker_metrics_bind_address, db, redis, stop)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    log.info("worker started", extra={"task_queues": [w.task_queue for w in workers], "pid": os.getpid()})
    runs = [asyncio.create_task(w.run()) for w in workers]
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([*runs, stopper], return_when=asyncio.FIRST_COMPLETED)
    log.info("worker shutting down")
    await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
    for t in runs:
        if t.done() and not t.cancelled() and t.exception():
            log.error("worker task failed", exc_info=t.exception())
    await redis.aclose()
    await db.dispose()
    log.info("worker stopped")


def main() -> None:
    asyncio.run(run(get_settings()))


if __name__ == "__main__":
    main()
