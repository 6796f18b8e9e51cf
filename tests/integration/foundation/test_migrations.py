"""Schema migrations forward and back, and the start-up gate the API and worker share."""

from __future__ import annotations

import subprocess
import sys

import asyncpg
import pytest

from db import migrate
from tests.fixtures.services import create_database, drop_database, rand_suffix, with_database


@pytest.fixture
def empty_db(services):
    name = f"mig_{rand_suffix()}"
    create_database(services.pg_admin_url, name)
    yield with_database(services.pg_admin_url, name)
    drop_database(services.pg_admin_url, name)


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", "migrate", *args, "--database-url", url],
                          capture_output=True, text=True, timeout=120)


async def test_forward_back_and_status_through_the_cli(empty_db):
    st = migrate.status(empty_db)
    assert st.current is None and st.pending and st.pending[-1] == st.head
    r = cli(url=empty_db)
    assert r.returncode == 0, r.stderr
    assert migrate.status(empty_db).up_to_date
    assert {"events", "tenants", "partners", "personal_access_tokens"} <= await _tables(empty_db)
    r = cli("--target", "1", url=empty_db)
    assert r.returncode == 0 and migrate.status(empty_db).current == "0001"
    assert "personal_access_tokens" not in await _tables(empty_db)
    r = cli("--target", "0", url=empty_db)
    assert r.returncode == 0
    assert await _tables(empty_db) == {"alembic_version"}
    r = cli("--status", url=empty_db)
    assert '"current": null' in r.stdout
    r = cli("--target", "999", url=empty_db)
    assert r.returncode == 1 and "unknown revision" in r.stderr
    assert cli(url=empty_db).returncode == 0


async def test_every_downgrade_is_reversible(empty_db):
    """Walk the whole chain down one step at a time and back up: each downgrade must work."""
    migrate.upgrade(empty_db, "head")
    chain = migrate.status(empty_db)
    revisions = []
    while chain.current is not None:
        revisions.append(chain.current)
        migrate.downgrade(empty_db, "-1")
        chain = migrate.status(empty_db)
    assert revisions[-1] == "0001"
    migrate.upgrade(empty_db, "head")
    assert migrate.status(empty_db).up_to_date


async def test_start_up_migrates_when_allowed(empty_db, settings_factory, make_app_client):
    async with make_app_client(settings_factory(database_url=empty_db)) as client:
        assert (await client.get("/v1/health/ready")).status_code == 200
    assert migrate.status(empty_db).up_to_date


async def test_start_up_refuses_pending_migrations_when_not_allowed(empty_db, settings_factory, make_app_client):
    with pytest.raises(migrate.SchemaError, match="MIGRATE_ON_START=false"):
        async with make_app_client(settings_factory(database_url=empty_db, migrate_on_start=False)):
            pass
    assert migrate.status(empty_db).current is None  # untouched


async def test_start_up_refuses_a_database_newer_than_the_code(empty_db, settings_factory, make_app_client):
    migrate.upgrade(empty_db, "head")
    conn = await asyncpg.connect(empty_db)
    try:
        await conn.execute("UPDATE alembic_version SET version_num = '9999'")
        before = await _tables(empty_db)
    finally:
        await conn.close()
    with pytest.raises(migrate.SchemaError, match="newer than this code"):
        async with make_app_client(settings_factory(database_url=empty_db)):
            pass
    assert await _tables(empty_db) == before
    assert migrate.status(empty_db).current == "9999"


async def test_worker_refuses_a_database_newer_than_the_code(empty_db, settings_factory):
    from tests.fixtures.app import subprocess_env

    migrate.upgrade(empty_db, "head")
    conn = await asyncpg.connect(empty_db)
    await conn.execute("UPDATE alembic_version SET version_num = '9999'")
    await conn.close()
    env = subprocess_env(settings_factory(database_url=empty_db))
    r = subprocess.run([sys.executable, "-m", "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "newer than this code" in r.stderr


async def test_concurrent_start_ups_migrate_once(empty_db):
    import asyncio

    await asyncio.gather(*(asyncio.to_thread(migrate.ensure_schema, empty_db, True) for _ in range(3)))
    assert migrate.status(empty_db).up_to_date
