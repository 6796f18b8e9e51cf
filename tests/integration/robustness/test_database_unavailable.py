"""A database connection lost mid-request is 503 service_unavailable naming the database, never a 500.

The test cuts the API's own backend while its query runs (the query waits on a table lock the test holds, then
the test terminates that backend with pg_terminate_backend, as PostgreSQL's shutdown does): the request answers
503 in the envelope with Retry-After, its failure is audited, nothing is stored, and the next request is served.
"""

from __future__ import annotations

import asyncio
import time

from tests.integration.secrets_helpers import api  # noqa: F401 - pytest fixture

BLOCKED = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
           " AND wait_event_type = 'Lock'")


async def test_query_cut_by_terminated_backend_is_503_naming_the_database(api):  # noqa: F811
    headers = await api.token()
    r = await api.put("dbloss/warm", {"a": 1}, headers)  # caches, pools and the tenant are warm
    assert r.status_code == 201, r.text
    locker = await api.db()
    try:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE secrets IN ACCESS EXCLUSIVE MODE")
        put = asyncio.create_task(api.put("dbloss/cut", {"a": 2}, headers))
        deadline = time.monotonic() + 30
        blocked: list[int] = []
        while not blocked:
            assert time.monotonic() < deadline, "the API's query never waited on the lock"
            assert not put.done(), put.result().text
            blocked = [row["pid"] for row in await locker.fetch(BLOCKED)]
            await asyncio.sleep(0.05)
        assert len(blocked) == 1
        assert await locker.fetchval("SELECT pg_terminate_backend($1)", blocked[0])
        await tx.rollback()
    finally:
        await locker.close()
    r = await asyncio.wait_for(put, 30)
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "service_unavailable" and err["details"] == {"dependency": "database"}
    assert "database" in err["message"] and err["request_id"] == r.headers["x-request-id"]
    assert r.headers["retry-after"] == "2"
    # the failure is audited like any other failed request, and nothing was stored
    rows = await api.sql("SELECT success, error_code FROM audit_log WHERE request_id = $1", err["request_id"])
    assert [(row["success"], row["error_code"]) for row in rows] == [(False, "service_unavailable")]
    assert await api.sql("SELECT 1 FROM secrets WHERE path = 'dbloss/cut'") == []
    # the same process serves the next request (the cut connection was dropped from its pool)
    r = await api.put("dbloss/after", {"a": 3}, headers)
    assert r.status_code == 201, r.text
    assert (await api.client.get("/v1/secrets/dbloss/cut", headers=headers)).status_code == 404


async def test_no_pool_connection_free_in_time_is_503_busy_not_500(
        scaikey, settings_factory, make_app_client, redis_clean):
    """Every pooled connection stays busy for the whole acquire timeout (one connection, held by a write that
    waits on a table lock): the next request that needs the database answers 503 in the envelope with
    Retry-After, and once the connection is free again requests are served."""
    from tests.helpers import reset_emulator
    from tests.integration.secrets_helpers import Api, grant_test_identities

    await reset_emulator(scaikey)
    settings = settings_factory(db_pool_size=1, db_pool_timeout_seconds=1)
    async with make_app_client(settings) as client:
        api = Api(client, settings, scaikey, client._transport.app)  # type: ignore[attr-defined]
        await grant_test_identities(api)
        headers = await api.token()
        assert (await api.put("busy/one", {"a": 1}, headers)).status_code == 201
        locker = await api.db()
        try:
            tx = locker.transaction()
            await tx.start()
            await locker.execute("LOCK TABLE secrets IN ACCESS EXCLUSIVE MODE")
            held = asyncio.create_task(api.put("busy/one", {"a": 2}, headers))  # takes the only connection
            deadline = time.monotonic() + 30
            while not await locker.fetch(BLOCKED):
                assert time.monotonic() < deadline and not held.done()
                await asyncio.sleep(0.05)
            r = await client.get("/v1/secrets/busy/other", headers=headers)
            await tx.rollback()
        finally:
            await locker.close()
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "service_unavailable"
        assert err["details"] == {"dependency": "database", "reason": "pool_exhausted"}
        assert r.headers["retry-after"] == "1"
        assert (await asyncio.wait_for(held, 30)).status_code == 200  # the held write completes once unlocked
        assert (await client.get("/v1/secrets/busy/one", headers=headers)).json()["data"] == {"a": 2}
