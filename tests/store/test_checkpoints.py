"""Checkpoints outside the database: written at backups and stops, signed with the chain key."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest

from app.store.backup import create_backup, manifest_path_for
from app.store.chain_key import ChainKeys
from app.store.checkpoints import (
    CHECKPOINT_FILE,
    CheckpointError,
    check_checkpoints,
    read_checkpoints,
    write_checkpoint,
)
from app.store.migrate import open_store
from app.store.verify import verify_chain
from tests.store.chain_fixtures import file_keys, fill

NOW = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ChainKeys:
    monkeypatch.setenv("BULWARK_TEST_KEYRING_FILE", str(tmp_path / "keyring.json"))
    return file_keys(tmp_path / "keyring.json")


def test_a_checkpoint_is_signed_appended_fsynced_and_private(tmp_path: Path, keys: ChainKeys) -> None:
    url = f"sqlite:///{tmp_path}/bulwark.db"
    writer = fill(url, 4, keys)
    first = write_checkpoint(writer, tmp_path, now=NOW)
    fill(url, 2, keys)
    second = write_checkpoint(writer.engine, tmp_path, keys=keys, now=NOW)
    path = tmp_path / CHECKPOINT_FILE
    if os.name != "nt":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_checkpoints(path) == [first, second]
    assert (first.seq, second.seq) == (5, 7) and first.key == writer.key_fingerprint and first.signature
    result = verify_chain(writer.engine, keys=keys, hashes_at={5, 7})
    assert check_checkpoints(result, [first, second], keys) == ([], [])


def test_a_fork_at_a_checkpoint_is_reported(tmp_path: Path, keys: ChainKeys) -> None:
    url = f"sqlite:///{tmp_path}/bulwark.db"
    writer = fill(url, 3, keys)
    checkpoint = write_checkpoint(writer, tmp_path, now=NOW)
    result = verify_chain(writer.engine, keys=keys, hashes_at={checkpoint.seq})
    result.hashes_at[checkpoint.seq] = "f" * 64  # the chain as an attacker with the key would have rewritten it
    problems, _ = check_checkpoints(result, [checkpoint], keys)
    assert len(problems) == 1 and "a fork" in problems[0]


def test_an_unkeyed_chains_checkpoint_is_unsigned_and_verify_says_so(tmp_path: Path) -> None:
    from keyring.backends.fail import Keyring

    url = f"sqlite:///{tmp_path}/bulwark.db"
    plain = ChainKeys(Keyring())
    writer = fill(url, 2, plain)
    checkpoint = write_checkpoint(writer, tmp_path, now=NOW)
    assert checkpoint.key is None and checkpoint.signature is None
    result = verify_chain(writer.engine, keys=plain, hashes_at={checkpoint.seq})
    problems, notes = check_checkpoints(result, [checkpoint], plain)
    assert problems == [] and "unsigned" in notes[0]


def test_a_damaged_checkpoint_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT_FILE
    path.write_text('{"seq": 1, "hash": "' + "0" * 64 + '", "time": "t", "key": null, "reason": "stop", "signature": null}\n'
                    "not json\n")
    with pytest.raises(CheckpointError, match="line 2 is not a checkpoint"):
        read_checkpoints(path)


def test_a_backup_puts_its_checkpoint_in_the_manifest_and_the_data_folder(tmp_path: Path, keys: ChainKeys) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{home}/bulwark.db"
    writer = fill(url, 3, keys)
    writer.engine.dispose()
    info = create_backup(url, tmp_path / "backups", now=NOW, checkpoints=home / CHECKPOINT_FILE, keys=keys)
    assert info.verified
    manifest = json.loads(manifest_path_for(info.path).read_text())
    [recorded] = read_checkpoints(home / CHECKPOINT_FILE)
    assert manifest["checkpoint"] == recorded.to_json()
    assert (recorded.seq, recorded.hash, recorded.key, recorded.reason) == (4, info.last_hash, writer.key_fingerprint, "backup")
    engine = open_store(url)
    result = verify_chain(engine, keys=keys, hashes_at={recorded.seq})
    assert check_checkpoints(result, [recorded], keys) == ([], [])
    engine.dispose()


def test_a_backup_does_not_bless_a_chain_cut_below_an_earlier_checkpoint(tmp_path: Path, keys: ChainKeys) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{home}/bulwark.db"
    writer = fill(url, 5, keys)
    stop = write_checkpoint(writer, home, now=NOW)
    # The attacker cuts the tail and puts the append-only triggers back, so the chain alone verifies.
    with writer.engine.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
        connection.exec_driver_sql(f"DELETE FROM audit_log WHERE seq > {stop.seq - 2}")
        connection.exec_driver_sql(
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'x'); END")
    writer.engine.dispose()

    info = create_backup(url, tmp_path / "backups", now=NOW, checkpoints=home / CHECKPOINT_FILE, keys=keys)

    manifest = json.loads(manifest_path_for(info.path).read_text())
    assert info.verified and manifest["checkpoint"] is None
    assert any(f"before the checkpoint at record {stop.seq}" in note for note in manifest["notes"])
    assert read_checkpoints(home / CHECKPOINT_FILE) == [stop]
