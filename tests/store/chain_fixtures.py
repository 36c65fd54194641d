"""Keyed audit chains for the tamper tests: a keyring in a file (never the user's), a frozen clock."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from app.domain.audit import AuditSource
from app.store.audit_writer import AuditWriter
from app.store.chain_key import ChainKeys
from app.store.db import make_engine
from app.store.migrate import open_store
from tests.support.file_keyring import TestFileKeyring

# 2026-11-02 10:00 IST, a Monday: nothing here depends on today's date.
T0_NS = 1_793_592_000_000_000_000
KEYRING_BACKEND = "tests.support.file_keyring.TestFileKeyring"


def file_keys(keyring_file: Path) -> ChainKeys:
    """Chain keys in a JSON keyring file; the caller has set ``BULWARK_TEST_KEYRING_FILE`` to it."""
    assert os.environ.get("BULWARK_TEST_KEYRING_FILE") == str(keyring_file)
    return ChainKeys(TestFileKeyring())


def keyring_env(keyring_file: Path) -> dict[str, str]:
    return {"PYTHON_KEYRING_BACKEND": KEYRING_BACKEND, "BULWARK_TEST_KEYRING_FILE": str(keyring_file)}


def fill(url: str, count: int, keys: ChainKeys | None, *, create_key: bool = True, start_ns: int = T0_NS,
         step_ns: int = 60_000_000_000, payload_pad: int = 0) -> AuditWriter:
    """Append ``count`` records (one a minute from ``start_ns``) and return the closed writer."""
    ticks = iter(range(start_ns, start_ns + step_ns * (count + 2), step_ns))
    writer = AuditWriter(open_store(url), keys=keys, create_key=create_key, clock_ns=lambda: next(ticks))
    writer.start()
    try:
        for i in range(count):
            writer.append_blocking("order.proposed", {"i": i, "pad": "x" * payload_pad}, actor="alice",
                                   source=AuditSource.API)
    finally:
        writer.close()
    return writer


def tamper(home: Path, *statements: str, then: Callable[[Path], None] | None = None) -> None:
    """Drop the append-only triggers, change what the attacker wants, and put the triggers back."""
    engine = make_engine(f"sqlite:///{home}/bulwark.db")
    with engine.begin() as c:
        c.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        c.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
        for statement in statements:
            c.exec_driver_sql(statement)
    if then is not None:
        then(home)
    with engine.begin() as c:
        for action in ("UPDATE", "DELETE"):
            c.exec_driver_sql(f"CREATE TRIGGER audit_log_no_{action.lower()} BEFORE {action} ON audit_log "
                              "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END")
    engine.dispose()
