"""API component set-up (api/app.py COMPONENTS "audit.setup:setup"): the recorder with its group-commit
sink, the request hooks, and (only with AUDIT_SEAL_IN_API=true) a sealer loop in this process. By default
the sealer runs in the Temporal worker process (worker/main.py) and as the housekeeping sweeper, so API
processes spend no CPU on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from api.state import AppState
from audit import hooks
from audit.recorder import DbAuditRecorder
from audit.sealer import SealerLoop, settings_chain_key
from audit.sink import GroupCommitSink


async def setup(state: AppState) -> Callable[[], Awaitable[None]]:
    s = state.settings
    sink = GroupCommitSink(s.asyncpg_dsn, max_batch=s.audit_batch_max, timeout=s.audit_write_timeout_seconds,
                           statement_timeout_ms=s.db_statement_timeout_ms)
    await sink.start()
    state.components["audit"] = DbAuditRecorder(s.audit_hmac_key.get_secret_value().encode(), db=state.db,
                                                sink=sink)
    state.components["on_error"] = hooks.on_error
    state.components["before_response"] = hooks.before_response
    # getattr: the field lives in core/settings.py (default False); absent means the default.
    sealer = SealerLoop(state.db, s.audit_seal_interval_seconds if getattr(s, "audit_seal_in_api", False)
                        else 0, key=settings_chain_key(s))
    sealer.start()

    async def teardown() -> None:
        await sealer.stop()
        await sink.stop()

    return teardown
