"""`main.py audit verify` and `audit export`: the compliance officer's view of the chain."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, iso_date

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser("audit", help="check or export the audit chain")
    audit.set_defaults(run=run)
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = actions.add_parser("verify", help="recompute every hash; exit 1 at the first break")
    verify.add_argument("--digests", type=Path, default=None, help="also write the daily digests to this file (JSON lines)")
    out = actions.add_parser("export", help="write the chain as CSV or JSON lines")
    out.add_argument("--format", choices=("csv", "jsonl"), default="jsonl")
    out.add_argument("--since", type=iso_date, default=None, help="first IST day to include (YYYY-MM-DD)")
    out.add_argument("--until", type=iso_date, default=None, help="last IST day to include (YYYY-MM-DD)")
    out.add_argument("--out", type=Path, default=None, help="file to write (default: standard output)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from app.store.db import StoreError, make_engine, sqlite_path

    url = settings.database_url
    path = sqlite_path(url)
    if path is not None and not path.exists():
        print(f"no database at {path}: nothing has been recorded in this data folder", file=sys.stderr)
        return EXIT_FAILED
    # Read as it is: verify and export never migrate or otherwise write to the evidence.
    engine = make_engine(url)
    try:
        if args.audit_command == "verify":
            return _verify(engine, args)
        if args.since and args.until and args.since > args.until:
            print(f"--since {args.since} is after --until {args.until}", file=sys.stderr)
            return EXIT_USAGE
        return _export(engine, args)
    except StoreError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        engine.dispose()


def _verify(engine: Engine, args: argparse.Namespace) -> int:
    from app.store.verify import verify_chain

    result = verify_chain(engine)
    for digest in result.digests:
        print(f"digest {digest.day.isoformat()} records={digest.records} last_seq={digest.last_seq} hash={digest.hash}")
    if args.digests is not None:
        with args.digests.open("w", encoding="utf-8") as handle:
            for digest in result.digests:
                handle.write(json.dumps({"day": digest.day.isoformat(), "records": digest.records,
                                         "last_seq": digest.last_seq, "hash": digest.hash}) + "\n")
    if result.broken_at is not None:
        print(f"BROKEN at seq {result.broken_at}: {result.reason}")
        return EXIT_FAILED
    if result.missing_triggers:
        print(f"BROKEN: the database no longer refuses edits (append-only triggers missing: {', '.join(result.missing_triggers)})")
        return EXIT_FAILED
    print(f"verified {result.records} records")
    return EXIT_OK


def _export(engine: Engine, args: argparse.Namespace) -> int:
    from app.store.export import export

    if args.out is None:
        count = export(engine, sys.stdout, args.format, args.since, args.until)
    else:
        with args.out.open("w", encoding="utf-8", newline="") as handle:
            count = export(engine, handle, args.format, args.since, args.until)
    print(f"exported {count} records", file=sys.stderr)
    return EXIT_OK
