"""Group commit of secret writes (services/secrets/write_batch.py, issue 13), seen through HTTP.

Concurrent PUTs to one path share transactions, yet each gets its own version (holding exactly its own value),
its own audit entry and its own ``secret.updated`` event, in version order. A write's own error (a ``cas``
mismatch) fails that write alone; a batch whose statement fails loses nothing (each write then runs alone);
paths the batch does not take (``max_versions``, new paths) keep their behaviour under the same concurrency.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson
import pytest

from services.secrets import write_batch
from tests.integration import secrets_helpers
from tests.integration.secrets_helpers import Api

api = secrets_helpers.api  # the fixture

pytestmark = pytest.mark.asyncio

WRITERS = 48


async def _versions_audits_events(api: Api, path: str) -> tuple[list[int], Counter[int], list[tuple[int, int]]]:
    versions = [r["version"] for r in await api.sql(
        "SELECT v.version FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.path = $1"
        " ORDER BY v.version", path)]
    audits = Counter(r["version"] for r in await api.sql(
        "SELECT version FROM audit_log WHERE secret_path = $1 AND action = 'write' AND success", path))
    events = []
    for r in await api.sql("SELECT event_type, data::text AS data FROM events WHERE path = $1 ORDER BY seq", path):
        d = orjson.loads(r["data"])
        events.append((d["version"], 0) if r["event_type"] == "secret.created"
                      else (d["new_version"], d["old_version"]))
    return versions, audits, events


async def test_concurrent_writes_to_one_path_each_get_their_own_version_audit_entry_and_event(api: Api) -> None:
    h = await api.token()
    path = "batch/hot/one"
    assert (await api.put(path, {"n": "start"}, h)).status_code == 201
    batcher = api.component("secrets").batcher
    before = dict(batcher.stats)

    responses = await asyncio.gather(*(api.put(path, {"n": f"value-{i}"}, h) for i in range(WRITERS)))

    assert [r.status_code for r in responses] == [200] * WRITERS, [r.text for r in responses if r.status_code != 200]
    got = {r.json()["version"]: i for i, r in enumerate(responses)}
    assert sorted(got) == list(range(2, WRITERS + 2)), "every write its own version, no gaps, no duplicates"
    for version, i in list(got.items())[:: 7]:  # the version a response names holds that request's value
        r = await api.client.get(f"/v1/secrets/{path}?version={version}", headers=h)
        assert r.json()["data"] == {"n": f"value-{i}"}
    versions, audits, events = await _versions_audits_events(api, path)
    assert versions == list(range(1, WRITERS + 2))
    assert audits == Counter(range(1, WRITERS + 2)), "one write audit entry per version"
    assert events == [(1, 0)] + [(v, v - 1) for v in range(2, WRITERS + 2)], "one event per version, in order"
    meta = (await api.client.get(f"/v1/secrets/{path}:metadata", headers=h)).json()
    assert meta["current_version"] == WRITERS + 1 and meta["version_count"] == WRITERS + 1
    # the writes really shared transactions (otherwise this test would not exercise the group commit)
    assert batcher.stats["batches"] - before["batches"] < WRITERS
    assert batcher.stats["writes"] - before["writes"] == WRITERS


async def test_a_cas_conflict_fails_only_that_write_of_a_batch(api: Api) -> None:
    h = await api.token()
    path = "batch/cas/one"
    await api.put(path, {"n": "1"}, h)
    plain = [api.put(path, {"n": f"plain-{i}"}, h) for i in range(10)]
    cas = [api.put(path, {"n": f"cas-{i}"}, h, options={"cas": 1}) for i in range(10)]
    responses = await asyncio.gather(*[c for pair in zip(plain, cas, strict=True) for c in pair])
    codes = Counter(r.status_code for r in responses)
    # cas=1 can succeed only while the secret is at version 1: at most one of them, and only first in line
    assert codes[200] in (10, 11) and codes[409] == 20 - codes[200], codes
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "version_conflict"
    versions, audits, events = await _versions_audits_events(api, path)
    assert versions == list(range(1, codes[200] + 2))
    assert audits == Counter(versions) and [v for v, _ in events] == versions
    failed = await api.sql("SELECT count(*) AS n FROM audit_log WHERE secret_path = $1 AND NOT success"
                           " AND error_code = 'version_conflict'", path)
    assert failed[0]["n"] == codes[409], "each refused write has its own failure audit entry"


async def test_a_failed_batch_statement_loses_nothing(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch statement fails (here: made invalid): nothing of it commits, and every write still succeeds
    on its own, exactly once."""
    h = await api.token()
    paths = [f"batch/fail/s{i}" for i in range(4)]
    for p in paths:
        await api.put(p, {"n": "0"}, h)
    monkeypatch.setattr(write_batch, "_APPLY", "SELECT no_such_column FROM secrets")
    batcher = api.component("secrets").batcher
    failed_before = batcher.stats["failed_batches"]
    responses = await asyncio.gather(*(api.put(paths[i % 4], {"n": f"v{i}"}, h) for i in range(24)))
    assert [r.status_code for r in responses] == [200] * 24
    assert batcher.stats["failed_batches"] > failed_before
    for p in paths:
        versions, audits, events = await _versions_audits_events(api, p)
        assert versions == list(range(1, 8)) and audits == Counter(versions) and [v for v, _ in events] == versions


async def test_paths_the_batch_does_not_take_keep_their_rules_under_concurrency(api: Api) -> None:
    h = await api.token()
    limited = "batch/limited/one"
    await api.put(limited, {"n": "0"}, h, options={"max_versions": 3})
    fresh = [f"batch/new/s{i}" for i in range(8)]
    responses = await asyncio.gather(
        *(api.put(limited, {"n": f"v{i}"}, h) for i in range(12)),
        *(api.put(p, {"n": "first"}, h) for p in fresh))
    assert [r.status_code for r in responses[:12]] == [200] * 12
    assert [r.status_code for r in responses[12:]] == [201] * 8
    versions = (await api.client.get(f"/v1/secrets/{limited}:versions", headers=h)).json()["versions"]
    assert [v["version"] for v in versions] == [11, 12, 13], "max_versions still prunes the oldest"
    audits = await api.sql("SELECT count(*) AS n FROM audit_log WHERE secret_path = $1 AND action = 'write'"
                           " AND success", limited)
    assert audits[0]["n"] == 13


async def test_partner_and_tenant_writes_in_one_batch_stay_apart(api: Api) -> None:
    admin = await api.partner_admin()
    h = await api.token()
    await api.client.put("/v1/partner/secrets/batch/shared", json={"data": {"who": "partner-0"}}, headers=admin)
    await api.put("batch/shared", {"who": "tenant-0"}, h)
    responses = await asyncio.gather(
        *(api.client.put("/v1/partner/secrets/batch/shared", json={"data": {"who": f"partner-{i}"}}, headers=admin)
          for i in range(1, 6)),
        *(api.put("batch/shared", {"who": f"tenant-{i}"}, h) for i in range(1, 6)))
    assert [r.status_code for r in responses] == [200] * 10
    assert all(r.json().get("scope") == "partner" for r in responses[:5])
    assert all("scope" not in r.json() for r in responses[5:])
    t = (await api.client.get("/v1/secrets/batch/shared", headers=h)).json()
    assert t["version"] == 6 and t["data"]["who"].startswith("tenant-")


async def test_a_row_that_moved_after_the_optimistic_read_is_retried_under_its_lock(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Round 1 reads rows unlocked; when another process wrote a row in between (simulated: the read returns
    the version before the current one), the statement leaves that row alone and round 2 applies the writes under
    the row lock, sealed for the versions they really get."""
    h = await api.token()
    path = "batch/moved/one"
    await api.put(path, {"n": "0"}, h)
    await api.put(path, {"n": "1"}, h)
    stale = write_batch._READ_MANY.replace("s.current_version,", "s.current_version - 1 AS current_version,")
    assert stale != write_batch._READ_MANY
    monkeypatch.setattr(write_batch, "_READ_MANY", stale)
    batcher = api.component("secrets").batcher
    retried = batcher.stats["retried"]
    responses = await asyncio.gather(*(api.put(path, {"n": f"v{i}"}, h) for i in range(12)))
    assert [r.status_code for r in responses] == [200] * 12
    assert batcher.stats["retried"] - retried >= 1  # then the row counts as contended: straight to the lock
    for r, i in zip(responses, range(12), strict=True):
        got = await api.client.get(f"/v1/secrets/{path}?version={r.json()['version']}", headers=h)
        assert got.json()["data"] == {"n": f"v{i}"}, "sealed for the version it got (the AAD binds it)"
    versions, audits, events = await _versions_audits_events(api, path)
    assert versions == list(range(1, 15)) and audits == Counter(versions) and [v for v, _ in events] == versions
