"""Schema migrations, applied at start-up before anything else touches the database.

Alembic takes a fifth of a second to import, which ``panic`` cannot spare on its way to the HALTED
flag: a database already at the head revision is opened without loading it (see ``_at_head``).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DatabaseError, DBAPIError, OperationalError

from .db import StoreError, make_engine, sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; refuse a database written by a newer Bulwark."""
    from alembic import command
    from alembic.script import ScriptDirectory

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
        if not _at_head(engine):
            upgrade(engine)
    except StoreError:
        raise
    except (DatabaseError, OperationalError) as exc:
        raise StoreError(f"cannot open the database: {_reason(exc)}") from exc
    return engine


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
