"""Export the audit chain for compliance: CSV or JSON lines, optionally for a range of IST days."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from typing import TextIO

from sqlalchemy import Engine, text

from app.domain.india_time import IST

COLUMNS = ("seq", "ts_ns", "ts_ist", "actor", "source", "event_type", "payload", "prev_hash", "hash")


def _day_start_ns(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), IST).timestamp()) * 1_000_000_000


def rows(engine: Engine, since: dt.date | None = None, until: dt.date | None = None) -> Iterator[dict[str, object]]:
    """Records in sequence order; ``since`` and ``until`` are inclusive IST calendar days."""
    clauses, params = [], {}
    if since is not None:
        clauses.append("ts_ns >= :lo")
        params["lo"] = _day_start_ns(since)
    if until is not None:
        clauses.append("ts_ns < :hi")
        params["hi"] = _day_start_ns(until + dt.timedelta(days=1))
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    query = text(f"SELECT seq, ts_ns, actor, source, event_type, payload, prev_hash, hash FROM audit_log{where} ORDER BY seq")
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=10_000).execute(query, params)
        for seq, ts_ns, actor, source, event_type, payload, prev_hash, digest in result:
            stamp = dt.datetime.fromtimestamp(ts_ns / 1e9, IST).isoformat(timespec="microseconds")
            yield {"seq": seq, "ts_ns": ts_ns, "ts_ist": stamp, "actor": actor, "source": source,
                   "event_type": event_type, "payload": payload, "prev_hash": prev_hash, "hash": digest}


def export(engine: Engine, out: TextIO, fmt: str, since: dt.date | None = None, until: dt.date | None = None) -> int:
    """Write the records to ``out`` as ``csv`` or ``jsonl``; returns how many were written.

    In JSON lines the payload is embedded as the object it is, so the export is directly usable;
    ``payload`` text in CSV is the exact canonical JSON the hash covers.
    """
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows(engine, since, until):
            writer.writerow(row)
            count += 1
    elif fmt == "jsonl":
        for row in rows(engine, since, until):
            out.write(json.dumps({**row, "payload": json.loads(str(row["payload"]))}, ensure_ascii=False) + "\n")
            count += 1
    else:
        raise ValueError(f"format must be csv or jsonl, got {fmt!r}")
    return count
