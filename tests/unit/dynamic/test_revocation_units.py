"""Pure pieces of dynamic credentials: the per-engine revocation token bucket, the retry backoff, statement
placeholders and rendering, generated names and passwords, connection URL checks, error scrubbing."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from core.errors import AppError
from services.dynamic import common, postgres
from services.dynamic.revocation import RateLimiter, backoff


def test_rate_limiter_bounds_throughput() -> None:
    async def run() -> float:
        limiter = RateLimiter(rate=200, burst=20)
        t0 = time.monotonic()
        for _ in range(10):
            await limiter.take(20)  # 200 leases: the first 20 are the burst, 180 more at 200/s take >= 0.9 s
        return time.monotonic() - t0

    elapsed = asyncio.run(run())
    assert elapsed >= 0.85, elapsed


def test_backoff_doubles_and_caps() -> None:
    s = SimpleNamespace(dynamic_revocation_backoff_seconds=2.0, dynamic_revocation_backoff_max_seconds=30.0)
    assert [backoff(s, n).total_seconds() for n in range(6)] == [2, 4, 8, 16, 30, 30]


def test_placeholders_and_render() -> None:
    stmt = "CREATE ROLE \"{{name}}\" PASSWORD '{{password}}' VALID UNTIL '{{ expiration }}'"
    assert postgres.placeholders(stmt) == {"name", "password", "expiration"}
    out = postgres.render(stmt, {"name": "v-a-1", "password": "Pw1", "expiration": "2030-01-01T00:00:00Z"})
    assert out == "CREATE ROLE \"v-a-1\" PASSWORD 'Pw1' VALID UNTIL '2030-01-01T00:00:00Z'"
    assert postgres.script(['DROP ROLE "{{name}}";', "  "], {"name": "x"}) == 'DROP ROLE "x"'


def test_generated_values_cannot_leave_their_quotes() -> None:
    for _ in range(200):
        name = common.generate_username("Read-Only's \"role\"")
        assert len(name) <= 63 and set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
        pw = common.generate_password()
        assert len(pw) == 32 and pw.isalnum()


@pytest.mark.parametrize("url", ["mysql://{{username}}:{{password}}@h/db", "postgresql://{{username}}@h:99999/db",
                                 "postgresql://{{username}}:{{password}}@h/db?x={{other}}", "", None])
def test_bad_connection_urls(url: object) -> None:
    with pytest.raises(AppError) as exc:
        postgres.check_url_template(url)
    assert exc.value.code == "invalid_config"


def test_dsn_quotes_credentials_and_scrub_hides_them() -> None:
    dsn = postgres.build_dsn("postgresql://{{username}}:{{password}}@h:5432/db", "us er", "p@ss/w:rd")
    assert dsn == "postgresql://us%20er:p%40ss%2Fw%3Ard@h:5432/db"
    assert common.scrub("auth failed for p@ss/w:rd", ["p@ss/w:rd"]) == "auth failed for ***"


def test_ttl_bounds() -> None:
    assert common.ttl("15m", "ttl") == ("15m", 900)
    with pytest.raises(AppError):
        common.ttl("400d", "ttl")
    with pytest.raises(AppError):
        common.ttl(True, "ttl")
