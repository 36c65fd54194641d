"""Schema migrations, applied at start-up before anything else touches the database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import DatabaseError, OperationalError

from .db import StoreError, make_engine, sqlite_path

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; refuse a database written by a newer Bulwark."""
    config = _config()
    script = ScriptDirectory.from_config(config)
    current = current_revision(engine)
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        raise StoreError(
            f"the database schema is at revision {current}, newer than this Bulwark knows "
            f"(up to {script.get_current_head()}); refusing to use it. Upgrade Bulwark, or restore a backup."
        )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def open_store(url: str, *, application_name: str = "bulwark") -> Engine:
    """Open the database at ``url``, migrate it to head and return its engine; ``StoreError`` on any failure."""
    path = sqlite_path(url)
    if path is not None and path.exists() and path.stat().st_size and not _looks_like_sqlite(path):
        raise StoreError(f"{path} is not a SQLite database (corrupt or overwritten); restore a backup")
    try:
        engine = make_engine(url, application_name=application_name)
        upgrade(engine)
    except StoreError:
        raise
    except (DatabaseError, OperationalError) as exc:
        raise StoreError(f"cannot open the database: {_reason(exc)}") from exc
    return engine


def _looks_like_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0]
