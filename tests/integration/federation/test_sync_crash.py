"""The worker is SIGKILLed during a 1,000-secret sync: another worker resumes the sync from the heartbeat (it
does not start over) and it completes without duplicating versions (every local secret has exactly one version,
one federation_sync write audit entry and one secret.created event)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.federation.conftest import poll

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

N = 1000


async def test_sigkill_during_a_1000_secret_sync_resumes_without_duplicate_versions(
        stack_factory: Any, bao: Any, worker_process: Any) -> None:
    stack = await stack_factory(federation_sync_page_size=25)
    slow = stack.settings.model_copy(update={"federation_crash_test_page_pause_seconds": 0.4})
    first = worker_process(slow)
    base = f"crash{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=bao.url, headers={"X-Vault-Token": bao.token}, timeout=30) as c:
        for i in range(0, N, 50):
            batch = [c.post(f"/v1/secret/data/{base}/d{i // 100}/s{j:04d}", json={"data": {"v": f"value-{j}"}})
                     for j in range(i, i + 50)]
            for r in [await x for x in batch]:
                assert r.status_code == 200, r.text
    local = f"ext/{uuid.uuid4().hex[:6]}"
    b = await stack.vault_backend(bao, mode="sync", local=f"{local}/**", remote=f"secret/data/{base}/**",
                                  sync_interval="1h")

    async def count() -> int:
        rows = await stack.sql("SELECT count(*) AS n FROM secrets WHERE owner_id = $1 AND path LIKE $2",
                               stack_tenant(stack), f"{local}/%")
        return int(rows[0]["n"])

    async def some_done() -> int:
        n = await count()
        return n if n >= 300 else 0

    await poll(some_done, "a third of the sync", timeout=180)
    first.kill()
    done_at_kill = await count()
    assert done_at_kill < N, "the sync finished before the kill; slow it down"
    worker_process(stack.settings)

    async def finished() -> bool:
        rows = await stack.sql("SELECT last_success_at, last_counts::text AS c FROM federation_backends WHERE id = $1",
                               b["id"])
        return rows[0]["last_success_at"] is not None

    await poll(finished, "the resumed sync to complete", timeout=240)
    assert await count() == N
    dup = await stack.sql("SELECT s.path, count(v.version) AS n FROM secrets s JOIN secret_versions v"
                          " ON v.secret_id = s.id WHERE s.path LIKE $1 GROUP BY s.path HAVING count(v.version) <> 1",
                          f"{local}/%")
    assert dup == [], dup[:5]
    writes = await stack.sql("SELECT count(*) AS n FROM audit_log WHERE action = 'federation_sync'"
                             " AND permission = 'write' AND secret_path LIKE $1", f"{local}/%")
    assert writes[0]["n"] == N
    events = await stack.sql("SELECT count(*) AS n FROM events WHERE event_type = 'secret.created' AND path LIKE $1",
                             f"{local}/%")
    assert events[0]["n"] == N
    # resumed from the heartbeat, not from zero: the retried attempt looked at fewer paths than were done at the kill
    [row] = await stack.sql("SELECT last_counts::text AS c FROM federation_backends WHERE id = $1", b["id"])
    counts = orjson.loads(row["c"])
    assert counts["listed"] == N and counts["unchanged"] < done_at_kill, counts
    st = await stack.status(b["id"])
    assert st["secrets_synced"] == N and st["status"] == "healthy"


def stack_tenant(stack: Any) -> str:
    from tests.helpers import TENANT

    return TENANT
