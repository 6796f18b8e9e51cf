"""core/breaker.py: opens after the threshold, short-circuits without calling, closes on the first good probe."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.breaker import CircuitBreaker, CircuitOpen, GuardedRedis

pytestmark = pytest.mark.asyncio


async def _until(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline
        await asyncio.sleep(0.01)


async def test_opens_after_threshold_short_circuits_and_closes_on_probe() -> None:
    healthy = False
    calls = 0

    async def probe() -> None:
        if not healthy:
            raise RedisTimeoutError("stalled")

    async def call() -> str:
        nonlocal calls
        calls += 1
        raise RedisTimeoutError("stalled")

    changes: list[bool] = []
    b = CircuitBreaker("unit", probe, failure_threshold=3, probe_interval=0.01)
    b.on_change(changes.append)
    for _ in range(2):
        with pytest.raises(RedisTimeoutError):
            await b.call(call)
    assert not b.is_open
    with pytest.raises(RedisTimeoutError):
        await b.call(call)
    assert b.is_open and changes == [True]
    with pytest.raises(CircuitOpen):  # not attempted
        await b.call(call)
    assert calls == 3 and b.counts["short_circuited"] == 1 and b.snapshot()["state"] == "open"
    healthy = True
    await _until(lambda: not b.is_open)
    assert changes == [True, False] and b.snapshot()["state"] == "closed"

    async def ok() -> str:
        return "ok"

    assert await b.call(ok) == "ok"
    await b.stop()


async def test_a_success_resets_the_count_and_other_errors_do_not_count() -> None:
    async def probe() -> None:
        return None

    b = CircuitBreaker("unit2", probe, failure_threshold=2)
    b.record_failure("x")
    b.record_success()
    b.record_failure("x")
    assert not b.is_open

    async def bad() -> None:
        raise ValueError("not a dependency failure")

    with pytest.raises(ValueError):
        await b.call(bad)
    assert not b.is_open and b.consecutive_failures == 1
    await b.stop()


async def test_guarded_redis_routes_single_key_commands_through_the_breaker() -> None:
    class Fake:
        def __init__(self) -> None:
            self.n = 0

        async def incr(self, key: str) -> int:
            self.n += 1
            raise RedisTimeoutError("stalled")

        def pipeline(self) -> str:
            return "plain"

    async def probe() -> None:
        raise RedisTimeoutError("stalled")

    fake = Fake()
    b = CircuitBreaker("unit3", probe, failure_threshold=1, probe_interval=60)
    g = GuardedRedis(fake, b)  # type: ignore[arg-type]
    with pytest.raises(RedisTimeoutError):
        await g.incr("k")
    with pytest.raises(CircuitOpen):
        await g.incr("k")
    assert fake.n == 1 and g.pipeline() == "plain"
    await b.stop()
