"""The desk pins its audit chain outside the database: a checkpoint at every stop, signed with the
chain's key; and a data folder whose checkpoints show a store is not silently given a new, empty one.
Real `main.py` processes on a real SQLite file, with a keyring in a test file (never the user's)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.store.checkpoints import checkpoint_file, read_checkpoints
from app.store.db import StoreError
from app.store.migrate import open_store
from tests.store.chain_fixtures import keyring_env
from tests.support.desk_process import audit_records, run_main

pytestmark = pytest.mark.slow


def simulate(home: Path, env: dict[str, str] | None = None) -> None:
    proc = run_main(home, "simulate", "--seconds", "1", "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_stop_appends_a_checkpoint_signed_with_the_chain_key_that_verify_checks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = keyring_env(tmp_path / "keyring.json")
    simulate(home, env)
    first = read_checkpoints(checkpoint_file(home))
    keyed = audit_records(home, "audit.chain_keyed")
    assert len(first) == 1 and len(keyed) == 1
    fingerprint = json.loads(str(keyed[0]["payload"]))["key"]
    stop = audit_records(home, "app.stop")[-1]
    assert first[0].seq == stop["seq"] and first[0].key == fingerprint and first[0].signature
    assert first[0].reason == "stop"

    simulate(home, env)
    second = read_checkpoints(checkpoint_file(home))
    assert len(second) == 2 and second[0] == first[0] and second[1].seq > first[0].seq

    proc = run_main(home, "audit", "verify", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"checked against key {fingerprint}" in proc.stdout
    assert "checked 2 checkpoints" in proc.stdout


def test_a_missing_store_whose_checkpoints_show_records_is_refused_not_recreated(tmp_path: Path) -> None:
    home = tmp_path / "home"
    simulate(home)
    held = read_checkpoints(checkpoint_file(home))[-1].seq
    for name in ("bulwark.db", "bulwark.db-wal", "bulwark.db-shm"):
        (home / name).unlink(missing_ok=True)

    proc = run_main(home, "simulate", "--seconds", "1", "--json")

    assert proc.returncode != 0
    assert f"shows the store held {held} audit records" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (home / "bulwark.db").exists()


def test_a_desk_without_a_secure_keyring_says_its_chain_is_not_keyed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # keyring's own fail backend: what a headless Linux machine without a secret service has.
    simulate(home, {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    [checkpoint] = read_checkpoints(checkpoint_file(home))
    assert checkpoint.key is None and checkpoint.signature is None
    assert audit_records(home, "audit.chain_keyed") == []
    alerts = [json.loads(str(r["payload"])) for r in audit_records(home, "alert.raised")]
    assert any("the audit chain is not keyed" in str(a.get("message")) for a in alerts), alerts


def test_a_store_rolled_back_to_an_older_copy_is_refused_at_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    simulate(home)
    older = tmp_path / "older.db"
    shutil.copyfile(home / "bulwark.db", older)  # the first run stopped cleanly: no WAL left to copy
    simulate(home)
    pinned = read_checkpoints(checkpoint_file(home))[-1].seq
    for name in ("bulwark.db-wal", "bulwark.db-shm"):
        (home / name).unlink(missing_ok=True)
    shutil.copyfile(older, home / "bulwark.db")

    proc = run_main(home, "simulate", "--seconds", "1", "--json")

    assert proc.returncode != 0
    assert f"ends before record {pinned}" in proc.stderr and "rolled back" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_command_recreates_a_store_its_checkpoints_knew(tmp_path: Path) -> None:
    """open_store, which every command that writes uses (calendar import, rearm, the desk), refuses too."""
    home = tmp_path / "home"
    simulate(home)
    for name in ("bulwark.db", "bulwark.db-wal", "bulwark.db-shm"):
        (home / name).unlink(missing_ok=True)

    with pytest.raises(StoreError, match="shows the store held"):
        open_store(f"sqlite:///{home / 'bulwark.db'}")
    assert not (home / "bulwark.db").exists()


def test_a_keyring_that_lost_the_chains_key_is_a_critical_alert_and_the_chain_goes_on_under_a_new_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    simulate(home, keyring_env(tmp_path / "keyring.json"))
    [first] = audit_records(home, "audit.chain_keyed")
    old = json.loads(str(first["payload"]))["key"]

    simulate(home, keyring_env(tmp_path / "another-keyring.json"))

    second = audit_records(home, "audit.chain_keyed")[-1]
    new = json.loads(str(second["payload"]))
    assert new["previous_key"] == old and new["key"] != old
    alerts = [json.loads(str(r["payload"])) for r in audit_records(home, "alert.raised")]
    assert any(a["level"] == "CRITICAL" and f"key {old} is not in this machine's keyring" in a["message"] for a in alerts)
