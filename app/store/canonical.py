"""Canonical bytes and hashes of audit records: the one definition both the writer and verify use."""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import json.encoder as json_encoder
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chain_key import ChainKey

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


# One encoder for every payload: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default)
# The C encoder ``_ENCODER.encode`` would build again on every call, built once: the same options
# and so the same text. Without a circular-reference check (a cycle ends in RecursionError, still
# an error), so one encoder serves every thread.
try:
    from _json import make_encoder as _make_c_encoder
except ImportError:  # a Python built without the C accelerator
    _C_ENCODER = None
else:
    _C_ENCODER = _make_c_encoder(None, _default, json_encoder.encode_basestring, None, ":", ",", True, False, False)


def canonical_json(payload: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, no NaN: the same payload always gives the same text."""
    if _C_ENCODER is None:
        return _ENCODER.encode(payload)
    return "".join(_C_ENCODER(payload, 0))


@functools.lru_cache(maxsize=4096)
def json_string(value: str) -> str:
    # Actors, sources and event types repeat endlessly; quoting each once is enough.
    return json.dumps(value, ensure_ascii=False)


def record_bytes(seq: int, ts_ns: int, actor: str, source: str, event_type: str, payload_json: str) -> bytes:
    """The hashed form of a record: a canonical JSON array of its fields (the payload already canonical)."""
    return (
        f"[{seq:d},{ts_ns:d},{json_string(actor)},{json_string(source)},{json_string(event_type)},{payload_json}]"
    ).encode()


def chain_hash(
    prev_hash: str, seq: int, ts_ns: int, actor: str, source: str, event_type: str, payload_json: str,
    key: ChainKey | None = None,
) -> str:
    """The hash over the previous record's hash followed by this record's canonical bytes.

    HMAC-SHA256 under ``key`` for a keyed record (``key_fp`` set), plain SHA-256 for the records
    written before the chain was keyed.
    """
    message = prev_hash.encode("ascii") + record_bytes(seq, ts_ns, actor, source, event_type, payload_json)
    return hashlib.sha256(message).hexdigest() if key is None else key.hexdigest(message)
