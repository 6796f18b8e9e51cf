"""The queue behind every group commit (secrets writes, credential issuing): concurrent callers share statements.

``await queue.submit(item)`` queues an item. If no batch is running, a background task starts one with
everything queued at that moment (up to ``max_batch``); items queued while it runs form the next batch. So a
lone caller goes straight through, and under load each statement carries as many items as arrived during the
previous one: no timer, no added latency.

``run(batch)`` returns one result per item, in order; a result that is an exception instance is raised to that
item's caller alone (one caller's bad input never fails the others). If ``run`` raises, every caller of the batch
gets that error. The batch runs in its own task, so a caller that goes away (a cancelled request) never strands
the others, and a statement is never interrupted half-way by one caller's cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Item(Generic[T]):
    value: T
    future: asyncio.Future[Any]


class GroupCommitQueue(Generic[T]):
    def __init__(self, run: Callable[[list[T]], Awaitable[list[Any]]], max_batch: int) -> None:
        self._run = run
        self._max = max_batch
        self._queue: list[_Item[T]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, value: T) -> Any:
        item = _Item(value, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await item.future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max:]
            try:
                results = await self._run([i.value for i in batch])
            except Exception as exc:  # the statement failed: every caller of the batch gets its error
                for i in batch:
                    if not i.future.done():
                        i.future.set_exception(exc)
                continue
            except BaseException:
                for i in batch + self._queue:
                    if not i.future.done():
                        i.future.cancel()
                self._queue = []
                raise
            for i, r in zip(batch, results, strict=True):
                if i.future.done():
                    continue
                if isinstance(r, BaseException):
                    i.future.set_exception(r)
                else:
                    i.future.set_result(r)
