"""Checkpoints of the audit chain kept outside the database, so a cut or rewritten tail shows.

A checkpoint says "at this time the chain ended at record ``seq`` with hash ``hash``", signed
with the chain key (HMAC-SHA256, domain-separated from record MACs). The desk appends one to
``<data folder>/audit-checkpoints.jsonl`` at every backup (and into the backup's manifest) and at
every stop. ``audit verify`` then fails if the chain is shorter than a checkpoint (a deleted tail,
a truncation), if its hash at a checkpoint's ``seq`` differs (a fork: the chain was rewritten from
there), or if a checkpoint's signature does not verify (the file was edited).

A checkpoint of an unkeyed chain (no secure keyring) carries no signature: it still pins the
chain, but whoever can edit the file could edit it too, and verify says so.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, inspect, text

from .canonical import GENESIS_HASH, canonical_json
from .chain_key import ChainKeys, missing_key_message
from .db import StoreError, sqlite_path

if TYPE_CHECKING:
    from .audit_writer import AuditWriter
    from .verify import VerifyResult

CHECKPOINT_FILE = "audit-checkpoints.jsonl"
_FIELDS = ("seq", "hash", "time", "key", "reason")
T = TypeVar("T")


class CheckpointError(StoreError):
    """A checkpoint file cannot be read or written; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where the chain ended at ``time`` (UTC ISO), and the HMAC of that under key ``key`` (``None``: unsigned)."""

    seq: int
    hash: str
    time: str
    key: str | None
    reason: str
    signature: str | None = None

    def body(self) -> bytes:
        """The signed bytes: the canonical JSON of every field but the signature."""
        return canonical_json({name: getattr(self, name) for name in _FIELDS}).encode()

    def to_json(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in _FIELDS}, "signature": self.signature}

    def describe(self) -> str:
        return f"checkpoint of {self.time} ({self.reason}, seq {self.seq})"


def checkpoint_file(home: Path) -> Path:
    return Path(home) / CHECKPOINT_FILE


def make_checkpoint(seq: int, last_hash: str, key_fp: str | None, keys: ChainKeys, reason: str,
                    now: dt.datetime | None = None) -> Checkpoint:
    """A checkpoint of a chain ending at ``seq``/``last_hash``, signed with key ``key_fp`` (``ChainKeyError`` if absent)."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat(timespec="microseconds")
    unsigned = Checkpoint(seq, last_hash, moment, key_fp, reason)
    if key_fp is None:
        return unsigned
    return Checkpoint(seq, last_hash, moment, key_fp, reason, keys.require(key_fp).sign(unsigned.body()))


def append_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Append one line to ``path`` (created 0600), fsync'd before this returns."""
    line = (json.dumps(checkpoint.to_json(), sort_keys=True) + "\n").encode()
    created = not path.exists()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created and os.name != "nt":
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        raise CheckpointError(f"cannot write the checkpoint file {path}: {exc.strerror or exc}") from None


def chain_tail(engine: Engine) -> tuple[int, str, str | None]:
    """The last record's sequence number, hash and key fingerprint (``(0, GENESIS_HASH, None)`` when empty)."""
    if not inspect(engine).has_table("audit_log"):
        return 0, GENESIS_HASH, None
    keyed = "key_fp" in {column["name"] for column in inspect(engine).get_columns("audit_log")}
    with engine.connect() as connection:
        last = connection.exec_driver_sql(
            f"SELECT seq, hash, {'key_fp' if keyed else 'NULL'} FROM audit_log ORDER BY seq DESC LIMIT 1").first()
    return (0, GENESIS_HASH, None) if last is None else (int(last[0]), str(last[1]), last[2])


def write_checkpoint(source: Engine | AuditWriter, home: Path, *, reason: str = "stop",
                     keys: ChainKeys | None = None, now: dt.datetime | None = None) -> Checkpoint:
    """Checkpoint the chain's committed tail into ``<home>/audit-checkpoints.jsonl`` and return it.

    ``source`` is the store's engine or the desk's writer (whose keyring is then used). Call it
    at the desk's stop, once the writer has written what was queued.
    """
    engine = source if isinstance(source, Engine) else source.engine
    if keys is None:
        keys = ChainKeys() if isinstance(source, Engine) else source.keys
    seq, last_hash, key_fp = chain_tail(engine)
    checkpoint = make_checkpoint(seq, last_hash, key_fp, keys, reason, now)
    append_checkpoint(checkpoint_file(home), checkpoint)
    return checkpoint


def parse_checkpoint(doc: Any) -> Checkpoint:
    """A checkpoint from its JSON form; ``ValueError`` if it is not one."""
    if not isinstance(doc, dict):
        raise TypeError("not a JSON object")
    seq, digest, moment, key, reason, signature = (doc.get(name) for name in (*_FIELDS, "signature"))
    why = (
        "seq is not a record number" if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0
        else "hash is not a 64-digit hash" if not isinstance(digest, str) or len(digest) != 64
        else "time or reason missing" if not isinstance(moment, str) or not isinstance(reason, str)
        else "key is not a fingerprint" if key is not None and not isinstance(key, str)
        else "signature is not text" if signature is not None and not isinstance(signature, str)
        else None
    )
    if why is not None:
        raise ValueError(why)
    return Checkpoint(int(str(seq)), str(digest), str(moment), key, str(reason), signature)


def _read_lines(path: Path, file_kind: str, what: str, parse: Callable[[Any], T]) -> list[T]:
    """Every JSON line of ``path`` through ``parse``, in order; ``CheckpointError`` naming an unreadable
    file or the first line that is not ``what``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckpointError(f"cannot read the {file_kind} file {path}: {exc.strerror or exc}") from None
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            found.append(parse(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path} line {number} is not a {what}: {exc}") from None
    return found


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Every checkpoint in a file, in order; ``CheckpointError`` naming the first bad line."""
    return _read_lines(path, "checkpoint", "checkpoint", parse_checkpoint)


def check_checkpoints(result: VerifyResult, checkpoints: Iterable[Checkpoint], keys: ChainKeys) -> tuple[list[str], list[str]]:
    """Compare a verified chain (walked with ``hashes_at`` holding every checkpoint's ``seq``) with checkpoints.

    Returns (problems, notes): a bad signature, a missing tail or truncation, a fork are problems;
    an unsigned checkpoint is a note.
    """
    problems: list[str] = []
    notes: list[str] = []
    for checkpoint in checkpoints:
        what = checkpoint.describe()
        if checkpoint.key is None or checkpoint.signature is None:
            if checkpoint.key is not None or checkpoint.signature is not None:
                problems.append(f"{what}: half signed (a key without a signature, or the reverse): it was altered")
                continue
            notes.append(f"{what} is unsigned (the chain was not keyed): it pins the chain but is not itself protected")
        else:
            key = keys.get(checkpoint.key)
            if key is None:
                problems.append(f"{what}: cannot check its signature: " + missing_key_message(checkpoint.key, keys.describe()))
                continue
            if not _same(key.sign(checkpoint.body()), checkpoint.signature):
                problems.append(f"{what}: bad signature (the checkpoint was altered or forged)")
                continue
        if checkpoint.seq == 0:
            if checkpoint.hash != GENESIS_HASH:
                problems.append(f"{what}: an empty chain's checkpoint with a hash: it was altered")
            continue
        if result.broken_at is not None and checkpoint.seq >= result.broken_at:
            continue  # the break is already reported; the chain past it proves nothing
        seen = result.hashes_at.get(checkpoint.seq)
        if seen is None:
            problems.append(f"{what}: the chain ends at record {result.records}, so records up to {checkpoint.seq} "
                            "are missing (the tail was deleted or the table truncated)")
        elif seen != checkpoint.hash:
            problems.append(f"{what}: record {checkpoint.seq} has another hash than the checkpoint says "
                            "(the chain was rewritten from there on: a fork)")
    return problems, notes


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def read_digests(path: Path) -> list[dict[str, Any]]:
    """Day digests written by ``audit verify --write-digests``; ``CheckpointError`` naming a bad line."""
    found = _read_lines(path, "digests", "day digest", _parse_digest)
    if not found:
        raise CheckpointError(f"{path} holds no day digests")
    return found


def _parse_digest(doc: Any) -> dict[str, Any]:
    return {"day": dt.date.fromisoformat(doc["day"]), "last_seq": int(doc["last_seq"]),
            "records": int(doc["records"]), "hash": str(doc["hash"])}


def check_digests(result: VerifyResult, digests: Iterable[dict[str, Any]]) -> list[str]:
    """Compare a chain (walked with ``hashes_at`` holding every digest's ``last_seq``) with recorded day digests.

    A digest taken during a day names that day's last record then: the day may have grown since,
    so the chain must hold that record with that hash on that day, and a day it has completed since
    must still end there with as many records.
    """
    computed = {digest.day: digest for digest in result.digests}
    problems = []
    for entry in digests:
        day, last_seq = entry["day"], entry["last_seq"]
        seen = result.hashes_at.get(last_seq)
        if result.broken_at is not None and last_seq >= result.broken_at:
            continue  # already reported as the break
        if seen is None:
            problems.append(f"day {day}: its digest names record {last_seq}, but the chain ends at record "
                            f"{result.records} (records were deleted or the table truncated)")
        elif seen != entry["hash"] or result.days_at.get(last_seq) != day:
            problems.append(f"day {day}: record {last_seq} differs from the recorded digest (the chain was rewritten)")
        elif computed.get(day) is not None and computed[day].last_seq == last_seq and computed[day].records != entry["records"]:
            problems.append(f"day {day}: {computed[day].records} records, the recorded digest says {entry['records']}")
    return problems


def refuse_forgotten_store(url: str, home: Path) -> None:
    """Raise ``StoreError`` when the SQLite store at ``url`` is missing but this data folder's checkpoints
    show it held records: a new, empty store there would forget the desk's state (a HALTED flag) and
    its chain would start again at record 1."""
    path = sqlite_path(url)
    file = checkpoint_file(home)
    if path is None or path.exists() or not file.exists():
        return
    try:
        newest = max((checkpoint.seq for checkpoint in read_checkpoints(file)), default=0)
    except CheckpointError as exc:
        raise StoreError(f"{path} is missing and the checkpoint file cannot be read ({exc}); restore a backup") from None
    if newest > 0:
        raise StoreError(
            f"{path} is missing, but {file} shows the store held {newest} audit records: restore a backup "
            "(main.py backup restore); to start a new desk in this folder on purpose, move that file away first"
        )


def set_aside_after_restore(home: Path, moment: dt.datetime) -> Path | None:
    """Move the data folder's checkpoint file aside after a backup was restored; where it went, if there was one.

    Its checkpoints pin the chain that was replaced (kept in the restore's safety copy, which they
    still verify), not the restored one, which is shorter or forked from them by design. The restored
    chain gets new checkpoints from its next backup or stop.
    """
    file = checkpoint_file(home)
    if not file.exists():
        return None
    stamp = moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    dest, index = file.with_name(f"{file.name}.pre-restore-{stamp}"), 1
    while dest.exists():
        index += 1
        dest = file.with_name(f"{file.name}.pre-restore-{stamp}-{index}")
    try:
        os.replace(file, dest)
    except OSError as exc:
        raise CheckpointError(f"restored, but the checkpoint file {file} could not be moved aside: {exc.strerror or exc}") from None
    return dest


def refuse_rolled_back_store(engine: Engine, home: Path) -> None:
    """Raise ``StoreError`` when the chain does not reach the newest checkpoint in ``home``, or has another
    hash there: the store was cut, rolled back to an older copy, or rewritten since that checkpoint.

    A desk must not start on such a store: the state it holds (a HALTED flag, working orders) is not
    the desk's last. One indexed read, so every start can afford it; ``audit verify`` checks them all.
    """
    file = checkpoint_file(home)
    if not file.exists():
        return
    checkpoints = read_checkpoints(file)
    if not checkpoints:
        return
    newest = max(checkpoints, key=lambda checkpoint: checkpoint.seq)
    with engine.connect() as connection:
        found = connection.execute(text("SELECT hash FROM audit_log WHERE seq = :seq"), {"seq": newest.seq}).scalar()
    advice = ("restore the right backup (main.py backup restore, which sets these checkpoints aside), "
              "and run main.py audit verify")
    if found is None:
        raise StoreError(f"the store's audit chain ends before record {newest.seq}, which the {newest.describe()} in "
                         f"{file.name} pinned: the store was cut or rolled back to an older copy; {advice}")
    if not _same(str(found), newest.hash):
        raise StoreError(f"the store's audit record {newest.seq} is not the one the {newest.describe()} in {file.name} "
                         f"pinned: the chain was rewritten from there (a fork); {advice}")
