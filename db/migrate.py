"""Alembic wrapper: forward, back, status, and the start-up schema gate.

Revisions are numbered ``0001``, ``0002``... so ``scaivault migrate --target 2`` means revision ``0002``.
Migrations run over psycopg (sync) under a PostgreSQL advisory lock, so several API workers starting at once
migrate exactly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

log = logging.getLogger("scaivault.migrate")
ROOT = Path(__file__).resolve().parent.parent
_LOCK_KEY = 0x5CA1_7A17  # pg_advisory_lock key for migrations


class SchemaError(RuntimeError):
    """The database schema and the code disagree in a way start-up must not paper over."""


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str
    pending: list[str]
    unknown: bool  # the database is at a revision this code does not know (newer code ran)

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def as_dict(self) -> dict[str, object]:
        return {"current": self.current, "head": self.head, "pending": self.pending,
                "database_newer_than_code": self.unknown, "up_to_date": self.up_to_date}


def _sync_url(database_url: str) -> str:
    scheme, rest = database_url.split("://", 1)
    return "postgresql+psycopg://" + rest if scheme.startswith("postgres") else database_url


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", _sync_url(database_url).replace("%", "%%"))
    return cfg


def normalize_revision(target: str) -> str:
    if target in {"head", "base"} or not target.isdigit():
        return target
    return "base" if int(target) == 0 else f"{int(target):04d}"


def status(database_url: str) -> SchemaStatus:
    cfg = alembic_config(database_url)
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    assert head is not None
    engine = sa.create_engine(_sync_url(database_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    known = {r.revision for r in script.walk_revisions()}
    unknown = current is not None and current not in known
    pending: list[str] = []
    if not unknown:
        for rev in script.iterate_revisions(head, current or "base"):
            if rev.revision != current:
                pending.append(rev.revision)
        pending.reverse()
    return SchemaStatus(current=current, head=head, pending=pending, unknown=unknown)


def _locked(database_url: str, fn) -> None:  # type: ignore[no-untyped-def]
    engine = sa.create_engine(_sync_url(database_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
            try:
                fn()
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()


def upgrade(database_url: str, target: str = "head") -> None:
    cfg = alembic_config(database_url)
    _locked(database_url, lambda: command.upgrade(cfg, normalize_revision(target)))


def downgrade(database_url: str, target: str) -> None:
    cfg = alembic_config(database_url)
    _locked(database_url, lambda: command.downgrade(cfg, normalize_revision(target)))


def upgrade_to_head(database_url: str) -> None:
    upgrade(database_url, "head")


def move_to(database_url: str, target: str) -> str:
    """Upgrade or downgrade to ``target``; returns "upgrade", "downgrade" or "none"."""
    st = status(database_url)
    if st.unknown:
        raise SchemaError(f"database is at revision {st.current}, which this code does not know")
    rev = normalize_revision(target)
    if rev == "head":
        rev = st.head
    script = ScriptDirectory.from_config(alembic_config(database_url))
    if rev != "base" and rev not in {r.revision for r in script.walk_revisions()}:
        raise SchemaError(f"unknown revision {target!r}; this code knows base (0) to {st.head}")
    if rev == (st.current or "base"):
        return "none"
    ancestors = {r.revision for r in script.iterate_revisions(st.current, "base")} if st.current else set()
    if rev == "base" or rev in ancestors:
        downgrade(database_url, rev)
        return "downgrade"
    upgrade(database_url, rev)
    return "upgrade"


def ensure_schema(database_url: str, migrate_on_start: bool) -> SchemaStatus:
    """The start-up gate shared by the API and the worker."""
    st = status(database_url)
    if st.unknown:
        raise SchemaError(
            f"database schema is at revision {st.current}, newer than this code (head {st.head}); "
            "refusing to start and leaving the schema untouched. Deploy the newer code or roll the "
            "database back with the newer code's `scaivault migrate --target N`."
        )
    if st.up_to_date:
        return st
    if not migrate_on_start:
        raise SchemaError(
            f"database schema is at {st.current or 'empty'} but the code needs {st.head} "
            f"(pending: {', '.join(st.pending)}); MIGRATE_ON_START=false, so run `scaivault migrate` first."
        )
    log.info("migrating schema", extra={"from": st.current, "to": st.head})
    upgrade(database_url, "head")
    return status(database_url)
