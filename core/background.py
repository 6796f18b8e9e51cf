"""Small helpers for the long-lived background tasks components run (listeners, flushers, probes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("scaivault.background")


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait for it to finish; an error it ended with is logged, not raised."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as exc:
        log.warning("background task ended with an error", extra={"error": type(exc).__name__})


def subscribe_forever(redis: Any, channel: str, on_message: Callable[[str], None],
                      on_gap: Callable[[], None], *, retry_seconds: float = 1.0) -> asyncio.Task[None]:
    """Listen on a Redis pub/sub ``channel`` for as long as the task lives, reconnecting after errors.

    ``on_gap`` runs after a disconnect, because messages sent meanwhile were missed (callers drop caches).
    """

    async def listen() -> None:
        while True:
            try:
                pubsub = redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(channel)
                async for msg in pubsub.listen():
                    if msg and msg.get("type") == "message":
                        data = msg["data"]
                        on_message(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception:
                on_gap()
                await asyncio.sleep(retry_seconds)

    return asyncio.create_task(listen())
