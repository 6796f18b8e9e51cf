"""One real stack per matrix module: a migrated database clone, the app in-process (ASGI), a worker
subprocess (event relay, webhook and subscription delivery) and the ScaiKey emulator re-seeded with the
matrix identities (stack.py seed_document). Module-scoped so a module's hundred-odd rows share it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from devstack import services as svc
from tests.fixtures.app import REPO_ROOT, subprocess_env
from tests.fixtures.services import TestServices, create_database, drop_database, rand_suffix
from tests.helpers import reset_emulator
from tests.integration.matrix.stack import Stack, make_settings, seed_emulator


@pytest.fixture(scope="module")
async def stack(services: TestServices, template_db: str, scaikey: str,
                scaikey_client_secret: str) -> AsyncIterator[Stack]:
    import redis

    import core.settings as core_settings
    from api.app import create_app

    name = f"t_{rand_suffix()}"
    db_url = create_database(services.pg_admin_url, name, template=template_db)
    client = redis.Redis.from_url(services.redis_url)
    try:
        client.flushdb()
    finally:
        client.close()
    settings = make_settings(services, db_url, scaikey, scaikey_client_secret)
    await seed_emulator(scaikey)
    handles: list[svc.Handle] = []
    mp = pytest.MonkeyPatch()
    try:
        for field in [*(n.upper() for n in type(settings).model_fields), "SCAIKEY_URL"]:
            mp.delenv(field, raising=False)
        for key, value in subprocess_env(settings).items():
            if key in {n.upper() for n in type(settings).model_fields}:
                mp.setenv(key, value)
        core_settings.get_settings.cache_clear()
        log_path = Path(services.tmp_dir) / "logs" / f"matrix-worker-{rand_suffix(3)}.log"
        handles.append(svc.start_process(
            "worker", [sys.executable, "-m", "worker"], subprocess_env(settings), log_path,
            svc.log_says(log_path, svc.WORKER_READY_TEXT), timeout=90, cwd=REPO_ROOT))
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
                st = Stack(api=api, app=app, settings=settings, scaikey=scaikey, worker_log=log_path)
                await st.bootstrap()
                try:
                    yield st
                finally:
                    st.stop_receivers()
    finally:
        await reset_emulator(scaikey)  # back to the startup seed for the modules after this one
        svc.stop_all(handles, timeout=10)
        mp.undo()
        core_settings.get_settings.cache_clear()
        drop_database(services.pg_admin_url, name)
