"""Canonical bytes and hashes of audit records: the one definition both the writer and verify use."""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any

GENESIS_HASH = "0" * 64


def _default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"cannot put a {type(value).__name__} in an audit payload")


def canonical_json(payload: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, no NaN: the same payload always gives the same text."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default)


@functools.lru_cache(maxsize=4096)
def _json_string(value: str) -> str:
    # Actors, sources and event types repeat endlessly; quoting each once is enough.
    return json.dumps(value, ensure_ascii=False)


def record_bytes(seq: int, ts_ns: int, actor: str, source: str, event_type: str, payload_json: str) -> bytes:
    """The hashed form of a record: a canonical JSON array of its fields (the payload already canonical)."""
    return (
        f"[{seq:d},{ts_ns:d},{_json_string(actor)},{_json_string(source)},{_json_string(event_type)},{payload_json}]"
    ).encode()


def chain_hash(prev_hash: str, seq: int, ts_ns: int, actor: str, source: str, event_type: str, payload_json: str) -> str:
    """SHA-256 over the previous record's hash followed by this record's canonical bytes."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(record_bytes(seq, ts_ns, actor, source, event_type, payload_json))
    return digest.hexdigest()
