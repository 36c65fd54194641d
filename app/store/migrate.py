"""Schema migrations, applied at start-up before anything else touches the database.

Alembic takes a fifth of a second to import, which ``panic`` cannot spare on its way to the HALTED
flag: a database already at the head revision is opened without loading it (see ``_at_head``).

A migration is all or nothing: every revision of one ``upgrade`` runs in one transaction (on SQLite
too, whose Python driver would otherwise commit each ``CREATE`` on its own), so a process killed
half-way leaves the schema as it was. A new SQLite store is built in a temporary file next to its
place and linked into place only once complete: SQLite leaves a zero-length file behind when it is
killed before its first write, so a zero-length ``bulwark.db`` is never a store being created, and
is refused as a store that was lost. A store an older Bulwark left half-created (tables, but no
schema version) is rebuilt when it holds no rows, and refused when it does.
"""

from __future__ import annotations

import ast
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, DBAPIError, OperationalError

from .db import StoreError, make_engine, refuse_lost_store, sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# A new store is built under this name next to its place; one left by a killed start is removed
# once it is older than any creation takes.
CREATING_PREFIX = ".creating-"
STALE_CREATION_S = 600.0
# The PostgreSQL advisory lock every migration holds for its transaction (any fixed 64-bit number
# no other application on the server uses: "bulwark\0" in ASCII).
MIGRATION_LOCK_KEY = 0x62756C7761726B00


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise StoreError(f"the store's migrations in {MIGRATIONS} have no head revision: the installation is incomplete")
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` in one transaction; refuse a database written by a newer Bulwark."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # pysqlite opens a transaction only before INSERT/UPDATE/DELETE and runs DDL in autocommit;
            # take the transaction from it. IMMEDIATE: a second process starting at the same moment
            # waits here, then finds the schema already at head.
            connection.execution_options(isolation_level="AUTOCOMMIT")
            # SQLite's own recipe for a table rebuilt in place (a batch migration): foreign keys off
            # outside the transaction (the pragma is a no-op inside one), checked before the commit.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                _upgrade_in(connection, revision)
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").first()
                if broken is not None:
                    raise StoreError(f"the migration left a row of {broken[0]} without its {broken[2]} row; nothing was changed")
            except BaseException:
                connection.exec_driver_sql("ROLLBACK")
                raise
            finally:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.exec_driver_sql("COMMIT")
        else:
            with connection.begin():
                # Desks starting together on one server take turns: the second finds the schema at head.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                _upgrade_in(connection, revision)


def _upgrade_in(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = _config()
    script = ScriptDirectory.from_config(config)
    current = MigrationContext.configure(connection).get_current_revision()
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        raise StoreError(
            f"the database schema is at revision {current}, newer than this Bulwark knows "
            f"(up to {script.get_current_head()}); refusing to use it. Upgrade Bulwark, or restore a backup."
        )
    if current is None:
        _clear_half_created(connection)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _clear_half_created(connection: Connection) -> None:
    """Drop the tables an interrupted first start of an older Bulwark left without a schema version.

    Only when every one of them is empty: a store holding rows is evidence and is never rebuilt.
    """
    from .models import Base

    present = set(inspect(connection).get_table_names())
    ours = [table for table in Base.metadata.sorted_tables if table.name in present]
    if not ours:
        return
    rows = {table.name: connection.execute(text(f'SELECT count(*) FROM "{table.name}"')).scalar_one() for table in ours}
    held = {name: count for name, count in rows.items() if count}
    if held:
        listed = ", ".join(f"{name} {count}" for name, count in sorted(held.items()))
        raise StoreError(
            f"the database holds Bulwark tables with rows ({listed}) but no schema version: it was "
            "half-created or damaged; refusing to rebuild it. Restore a backup."
        )
    Base.metadata.drop_all(connection, tables=ours)
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("DROP FUNCTION IF EXISTS audit_log_append_only()")
    log.warning("the store was left half-created by an interrupted first start (%s, all empty); rebuilding it",
                ", ".join(table.name for table in ours))


def open_store(url: str, *, application_name: str = "bulwark") -> Engine:
    """Open the database at ``url``, migrate it to head and return its engine; ``StoreError`` on any failure."""
    path = sqlite_path(url)
    if path is not None:
        refuse_lost_store(path)
        if path.exists() and not _looks_like_sqlite(path):
            raise StoreError(f"{path} is not a SQLite database (corrupt or overwritten); restore a backup")
    try:
        if path is not None and not path.exists() and _plain_file_url(url):
            from .checkpoints import refuse_forgotten_store

            # Any command that would create the store (calendar import, rearm...), not only the desk.
            refuse_forgotten_store(url, path.parent)
            try:
                _create_sqlite_store(url, path)
            except OSError as exc:
                raise StoreError(f"cannot create the store {path}: {exc.strerror or exc}") from exc
        engine = make_engine(url, application_name=application_name)
        if not _at_head(engine):
            upgrade(engine)
    except StoreError:
        raise
    except (DatabaseError, OperationalError) as exc:
        raise StoreError(f"cannot open the database: {_reason(exc)}") from exc
    return engine


def _plain_file_url(url: str) -> bool:
    """A SQLite URL naming a file directly (not a ``file:`` URI, whose options may forbid creating it)."""
    database = make_url(url).database or ""
    return not database.startswith("file:")


def _create_sqlite_store(url: str, path: Path) -> None:
    """Build a complete store in a temporary file beside ``path`` and link it into place.

    A link, not a rename: if another process put a store at ``path`` meanwhile, that one is kept.
    """
    folder = path.parent
    if not folder.is_dir():
        raise StoreError(f"database folder {folder} does not exist")
    _remove_stale_creations(path)
    handle, name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}{CREATING_PREFIX}")
    os.close(handle)
    building = Path(name)
    try:
        engine = make_engine(make_url(url).set(database=str(building)).render_as_string(hide_password=False))
        try:
            upgrade(engine)
            # Everything into the file itself: only the file is linked into place, not its log.
            with engine.connect() as connection:
                busy = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").scalar()
            if busy:
                raise StoreError(f"the new store {building} could not be completed (its log is busy); try again")
        finally:
            engine.dispose()
        _fsync(building)
        try:
            os.link(building, path)
        except FileExistsError:
            return
        except OSError:
            # No hard links on this file system (FAT, some network shares): a rename, which could
            # replace a store another process linked in the same instant, so look first.
            if path.exists():
                return
            os.replace(building, path)
        _fsync(folder)
    finally:
        for leftover in (building, building.with_name(building.name + "-wal"), building.with_name(building.name + "-shm")):
            leftover.unlink(missing_ok=True)


def _remove_stale_creations(path: Path) -> None:
    cutoff = time.time() - STALE_CREATION_S
    for leftover in path.parent.glob(f".{path.name}{CREATING_PREFIX}*"):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except OSError:
            continue


def _fsync(path: Path) -> None:
    if os.name == "nt" and path.is_dir():
        return  # Windows cannot open a folder to flush it; NTFS journals the link itself
    # Windows flushes only a handle open for writing.
    fd = os.open(path, os.O_RDONLY if path.is_dir() else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def scripted_head() -> str | None:
    """The head revision read from the migration scripts without alembic; ``None`` when they are not
    the plain linear chain of string revisions this reader understands (alembic decides then)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in sorted((MIGRATIONS / "versions").glob("*.py")):
        if script.name == "__init__.py":
            continue
        try:
            tree = ast.parse(script.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            return None
        found: dict[str, object] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                found[target.id] = value.value if isinstance(value, ast.Constant) else value
        revision, down = found.get("revision"), found.get("down_revision", ...)
        if not isinstance(revision, str) or not (down is None or isinstance(down, str)):
            return None
        revisions.add(revision)
        if down is not None:
            parents.add(down)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _at_head(engine: Engine) -> bool:
    """Whether the database is already at the head revision, so there is nothing to migrate.

    Any doubt (scripts this reader does not follow, no version table yet, an unreadable database)
    answers False, and ``upgrade`` with alembic decides and reports.
    """
    head = scripted_head()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:
        return False
    return list(versions) == [head]


def _looks_like_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0]
