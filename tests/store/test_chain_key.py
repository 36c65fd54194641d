"""The keyed chain: HMAC-SHA256 under a key in the keyring, old SHA-256 records kept as they are."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app.domain.audit import AuditSource
from app.store.audit_writer import CHAIN_KEYED, AuditWriter
from app.store.chain_key import ChainKey, ChainKeys, fingerprint_of
from app.store.db import StoreError
from app.store.migrate import open_store
from app.store.verify import verify_chain
from tests.store.chain_fixtures import file_keys, fill


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ChainKeys:
    keyring_file = tmp_path / "keyring.json"
    monkeypatch.setenv("BULWARK_TEST_KEYRING_FILE", str(keyring_file))
    return file_keys(keyring_file)


def rows(url: str) -> list[tuple[int, str, str | None, str]]:
    engine = open_store(url)
    with engine.connect() as connection:
        found = connection.exec_driver_sql("SELECT seq, event_type, key_fp, hash FROM audit_log ORDER BY seq").all()
    engine.dispose()
    return [(r[0], r[1], r[2], r[3]) for r in found]


def test_the_desk_keys_a_new_chain_and_verify_names_the_key(db_url: str, keys: ChainKeys) -> None:
    writer = fill(db_url, 5, keys)
    fp = writer.key_fingerprint
    assert fp is not None and len(fp) == 16
    stored = rows(db_url)
    assert stored[0][1] == CHAIN_KEYED and {row[2] for row in stored} == {fp}
    result = verify_chain(writer.engine, keys=keys)
    assert result.ok and result.records == 6 and result.keys == [fp]


def test_verify_without_the_key_fails_closed_but_still_checks_the_structure(db_url: str, keys: ChainKeys,
                                                                              tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    writer = fill(db_url, 5, keys)
    monkeypatch.setenv("BULWARK_TEST_KEYRING_FILE", str(tmp_path / "another-machine.json"))
    result = verify_chain(writer.engine, keys=file_keys(tmp_path / "another-machine.json"))
    assert not result.ok
    assert result.broken_at is None and result.records == 6
    assert result.missing_keys == [writer.key_fingerprint]
    assert f"keyed with key {writer.key_fingerprint}; this machine's keyring" in result.problems()[0]


def test_old_records_stay_sha256_and_the_chain_is_keyed_from_the_switch_on(db_url: str, keys: ChainKeys) -> None:
    fill(db_url, 3, keys, create_key=False)
    writer = fill(db_url, 2, keys)
    stored = rows(db_url)
    assert [row[2] for row in stored] == [None, None, None] + [writer.key_fingerprint] * 3
    assert stored[3][1] == CHAIN_KEYED
    assert verify_chain(writer.engine, keys=keys).ok


def test_a_writer_that_does_not_create_keys_uses_the_chains_key_or_refuses(db_url: str, keys: ChainKeys, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    desk = fill(db_url, 2, keys)
    panic = fill(db_url, 1, keys, create_key=False)  # the panic command: same keyring, no new key
    assert panic.key_fingerprint == desk.key_fingerprint
    monkeypatch.setenv("BULWARK_TEST_KEYRING_FILE", str(tmp_path / "empty.json"))
    stranger = AuditWriter(open_store(db_url), keys=file_keys(tmp_path / "empty.json"))
    stranger.start()
    try:
        with pytest.raises(StoreError, match=f"keyed with key {desk.key_fingerprint}; this machine's keyring"):
            stranger.append_blocking("order.proposed", {}, actor="bob", source=AuditSource.API)
    finally:
        stranger.close()
    assert len(rows(db_url)) == 4  # nothing unkeyed was written after the keyed records


def test_the_key_is_in_the_keyring_only(tmp_path: Path, keys: ChainKeys) -> None:
    url = f"sqlite:///{tmp_path}/bulwark.db"
    writer = fill(url, 3, keys)
    secret = (tmp_path / "keyring.json").read_text().split('"')[3]
    assert fingerprint_of(bytes.fromhex(secret)) == writer.key_fingerprint
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("bulwark.db*"))
    assert secret.encode() not in on_disk and bytes.fromhex(secret) not in on_disk
    key = keys.require(str(writer.key_fingerprint))
    assert secret not in repr(key)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(key)


def test_the_fingerprint_is_domain_separated_from_a_plain_hash_of_the_key() -> None:
    secret = bytes(range(32))
    assert ChainKey(secret).fingerprint == fingerprint_of(secret)
    assert fingerprint_of(secret) != hashlib.sha256(secret).hexdigest()[:16]


def test_no_secure_keyring_leaves_the_chain_unkeyed_and_verify_says_so(tmp_path: Path) -> None:
    from keyring.backends.fail import Keyring

    url = f"sqlite:///{tmp_path}/bulwark.db"
    writer = fill(url, 2, ChainKeys(Keyring()))
    assert writer.key_fingerprint is None
    result = verify_chain(writer.engine, keys=ChainKeys(Keyring()))
    assert result.ok and not result.keyed


def test_panic_without_the_key_still_writes_the_halted_flag(tmp_path: Path, keys: ChainKeys,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from app.store.halt_flag import persist_halt

    url = f"sqlite:///{tmp_path}/bulwark.db"
    fill(url, 2, keys)
    monkeypatch.setenv("BULWARK_TEST_KEYRING_FILE", str(tmp_path / "empty.json"))
    panic = AuditWriter(open_store(url), keys=file_keys(tmp_path / "empty.json"))
    panic.start()
    try:
        persist_halt(panic, "AAAAAA", "operator pressed panic", "alice")
    finally:
        panic.close()
    engine = open_store(url)
    with engine.connect() as connection:
        state = connection.exec_driver_sql("SELECT state, reason FROM trading_state ORDER BY id DESC LIMIT 1").one()
    engine.dispose()
    assert tuple(state) == ("HALTED", "operator pressed panic")
    assert len(rows(url)) == 3  # no unkeyed record after the keyed ones
