"""Opening a store already at the head revision skips alembic; every doubt still goes through it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.store import migrate
from app.store.db import make_engine
from app.store.migrate import (
    current_revision,
    head_revision,
    open_store,
    scripted_head,
    upgrade,
)


def test_the_scripts_head_read_without_alembic_is_alembics_head() -> None:
    assert scripted_head() == head_revision()


def test_a_store_behind_the_head_is_still_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bulwark.db"
    engine = make_engine(url)
    upgrade(engine, "0001")
    engine.dispose()
    opened = open_store(url)
    assert current_revision(opened) == head_revision()


def write_script(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(f'"""A migration."""\n{body}\n\n\ndef upgrade() -> None:\n    pass\n')


@pytest.mark.parametrize(
    "scripts",
    [
        {"a.py": 'revision = "0001"\ndown_revision = None', "b.py": 'revision = "0002"\ndown_revision = ("0001",)'},
        {"a.py": 'revision = "0001"\ndown_revision = None', "b.py": 'revision = "0002"\ndown_revision = None'},
        {"a.py": 'revision = "0001"'},
        {"a.py": 'revision = make_id()\ndown_revision = None'},
        {"a.py": 'revision = "0001"\ndown_revision = None', "b.py": "this is not python ("},
    ],
    ids=["merge", "two-heads", "no-down-revision", "computed", "unparsable"],
)
def test_scripts_the_reader_does_not_follow_leave_the_decision_to_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scripts: dict[str, str]
) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    for name, body in scripts.items():
        write_script(versions, name, body)
    monkeypatch.setattr(migrate, "MIGRATIONS", tmp_path)
    assert scripted_head() is None


def test_an_annotated_linear_chain_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    write_script(versions, "0001_a.py", 'revision: str = "0001"\ndown_revision: str | None = None')
    write_script(versions, "0002_b.py", 'revision: str = "0002"\ndown_revision: str | None = "0001"')
    monkeypatch.setattr(migrate, "MIGRATIONS", tmp_path)
    assert scripted_head() == "0002"
