"""The audit store's fast paths give exactly what the plain definitions give.

``verify_chain`` builds each record's hashed text with cached quoting, and ``Redactor.canonical``
encodes a flat payload without walking it: both are checked here against ``canonical.chain_hash``
and ``canonical_json(redact(...))`` over arbitrary text (quotes, backslashes, control characters,
line separators, astral characters), so a shortcut that drifts from the definition fails.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.store.audit_writer import AuditEntry, AuditWriter
from app.store.canonical import GENESIS_HASH, canonical_json, chain_hash
from app.store.chain_key import ChainKey, ChainKeys
from app.store.db import make_engine
from app.store.migrate import open_store
from app.store.redaction import REDACTED, Redactor
from app.store.verify import verify_chain
from tests.bench.audit import MemoryKeyring

T0_NS = 1_793_592_000_000_000_000  # 2026-11-02 10:00 IST
SECRET_KEY = bytes(range(32))

# Any character SQLite can store as UTF-8 text (no lone surrogates).
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
PLAIN = st.one_of(TEXT, st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
                  st.booleans(), st.none())


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    """An empty store at the head revision, copied for each example (migrating per example is slow)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "template.db"
        engine = open_store(f"sqlite:///{path}")
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        yield path


def _records(draw: st.DrawFn) -> list[tuple[str, str, str, str]]:
    # A few names, reused: consecutive records share or change actor, source and event type, as
    # on a desk, so the walk's reuse of the previous record's quoted fields is exercised both ways.
    names = draw(st.lists(TEXT, min_size=1, max_size=3))
    pick = st.sampled_from(names)
    payload = st.dictionaries(TEXT, PLAIN, max_size=3).map(canonical_json)
    return draw(st.lists(st.tuples(pick, pick, pick, payload), min_size=1, max_size=12))


@st.composite
def chains(draw: st.DrawFn) -> tuple[list[tuple[str, str, str, str]], bool, int, str]:
    records = _records(draw)
    keyed = draw(st.booleans())
    edited = draw(st.integers(1, len(records)))
    replacement = draw(TEXT.filter(lambda text: text != records[edited - 1][0]))
    return records, keyed, edited, replacement


def _store(template: Path, folder: str, rows: list[tuple[object, ...]]) -> str:
    path = Path(folder) / "bulwark.db"
    shutil.copyfile(template, path)
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO audit_log (seq, ts_ns, actor, source, event_type, payload, prev_hash, hash, key_fp) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    connection.close()
    return f"sqlite:///{path}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain=chains())
def test_verify_agrees_with_the_python_definition_of_the_chain(
    template: Path, chain: tuple[list[tuple[str, str, str, str]], bool, int, str],
) -> None:
    records, keyed, edited, replacement = chain
    keyring = MemoryKeyring()
    key = ChainKey(SECRET_KEY)
    keyring.set_password("bulwark", "audit.chain_key." + key.fingerprint, SECRET_KEY.hex())
    keys = ChainKeys(keyring)
    rows: list[tuple[object, ...]] = []
    prev = GENESIS_HASH
    for seq, (actor, source, event_type, payload) in enumerate(records, start=1):
        ts_ns = T0_NS + seq
        digest = chain_hash(prev, seq, ts_ns, actor, source, event_type, payload, key if keyed else None)
        rows.append((seq, ts_ns, actor, source, event_type, payload, prev, digest, key.fingerprint if keyed else None))
        prev = digest
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(_store(template, folder, rows))
        result = verify_chain(engine, keys=keys, hashes_at=range(1, len(rows) + 1), integrity=False)
        engine.dispose()
    assert (result.ok, result.records, result.last_hash) == (True, len(rows), prev), result.problems()
    assert result.hashes_at == {row[0]: row[7] for row in rows}

    # The same chain with one actor changed and every hash kept: broken at exactly that record.
    forged = [row if row[0] != edited else (row[0], row[1], replacement, *row[3:]) for row in rows]
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(_store(template, folder, forged))
        result = verify_chain(engine, keys=keys, integrity=False)
        engine.dispose()
    assert (result.ok, result.broken_at) == (False, edited)
    assert result.reason is not None and "does not match its" in result.reason


SECRETS = st.lists(st.text(st.characters(codec="utf-8"), min_size=6, max_size=10), max_size=2)


@st.composite
def payloads(draw: st.DrawFn) -> tuple[list[str], dict[str, object]]:
    secrets = draw(SECRETS)
    value = PLAIN
    if secrets:
        # Values that hold a registered secret somewhere inside them.
        value = st.one_of(PLAIN, st.tuples(TEXT, st.sampled_from(secrets), TEXT).map("".join))
    keys = st.one_of(TEXT, st.sampled_from(["api_key", "session_token", "password", "note", "price"]))
    return secrets, draw(st.dictionaries(keys, value, max_size=5))


@settings(max_examples=200, deadline=None)
@given(case=payloads())
def test_the_redacted_canonical_text_is_the_full_walks(case: tuple[list[str], dict[str, object]]) -> None:
    secrets, payload = case
    redactor = Redactor(secrets)
    assert redactor.canonical(payload) == canonical_json(redactor.redact(dict(payload)))


def test_a_secret_that_json_escapes_is_still_found_in_a_flat_payload() -> None:
    # In the JSON text the quote and the newline are escaped: the plain secret is not in it.
    secret = 'ab"cd\nef'
    text = Redactor([secret]).canonical({"note": f"token was {secret}!", "qty": 1})
    assert text == canonical_json({"note": f"token was {REDACTED}!", "qty": 1})


def test_the_writer_hashes_each_record_with_its_own_actor_source_and_event(template: Path) -> None:
    # Runs of equal names and changes in each one alone: the writer reuses the quoted names of the
    # record before only while all three are the same.
    named = [("alice", "api", "order.sent"), ("alice", "api", "order.sent"), ('bo"b', "api", "order.sent"),
             ('bo"b', "ui\u2028", "order.sent"), ('bo"b', "ui\u2028", "fill\n"), ("alice", "api", "order.sent")]
    keyring = MemoryKeyring()
    keys = ChainKeys(keyring)
    ticks = iter(range(T0_NS, T0_NS + 100))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bulwark.db"
        shutil.copyfile(template, path)
        writer = AuditWriter(make_engine(f"sqlite:///{path}"), keys=keys, create_key=True, clock_ns=lambda: next(ticks))
        writer.start()

        async def append_all() -> list[AuditEntry]:
            futures = [writer.append(event, {"n": n}, actor=actor, source=source)
                       for n, (actor, source, event) in enumerate(named)]
            return list(await asyncio.gather(*futures))

        try:
            entries = asyncio.run(append_all())
        finally:
            writer.close()
        key = keys.get(entries[0].key_fp or "")
        assert key is not None
        stored = sqlite3.connect(path).execute(
            "SELECT seq, ts_ns, actor, source, event_type, payload, prev_hash, hash FROM audit_log ORDER BY seq").fetchall()
        writer.engine.dispose()
    assert [(row[2], row[3], row[4]) for row in stored[1:]] == named
    for seq, ts_ns, actor, source, event_type, payload, prev_hash, digest in stored:
        assert digest == chain_hash(prev_hash, seq, ts_ns, actor, source, event_type, payload, key)
