"""`main.py audit verify` and `audit export`: the compliance officer's view of the chain."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, first_line, iso_date, no_database

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser("audit", help="check or export the audit chain")
    audit.set_defaults(run=run)
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = actions.add_parser("verify", help="recompute every hash; exit 1 at the first break")
    verify.add_argument("--digests", type=Path, default=None,
                        help="compare the daily digests with this file (from --write-digests); never written to")
    verify.add_argument("--write-digests", type=Path, default=None,
                        help="write the daily digests to this new file (JSON lines); an existing file is refused")
    verify.add_argument("--checkpoints", type=Path, action="append", default=[], metavar="FILE",
                        help="also check the chain against the checkpoints in FILE (repeatable); "
                             "the data folder's audit-checkpoints.jsonl is always checked")
    out = actions.add_parser("export", help="write the chain as CSV or JSON lines")
    out.add_argument("--format", choices=("csv", "jsonl"), default="jsonl")
    out.add_argument("--since", type=iso_date, default=None, help="first IST day to include (YYYY-MM-DD)")
    out.add_argument("--until", type=iso_date, default=None, help="last IST day to include (YYYY-MM-DD)")
    out.add_argument("--out", type=Path, default=None, help="file to write (default: standard output)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.store.db import StoreError, open_read_only

    url = settings.database_url
    if (missing := no_database(url, "nothing has been recorded in this data folder")) is not None:
        print(missing, file=sys.stderr)
        return EXIT_FAILED
    # Read as it is, read-only: verify and export never migrate or otherwise write to the evidence,
    # and run on an auditor's read-only copy.
    try:
        engine = open_read_only(url)
    except StoreError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        if args.audit_command == "verify":
            return _verify(engine, args, settings.home)
        if args.since and args.until and args.since > args.until:
            print(f"--since {args.since} is after --until {args.until}", file=sys.stderr)
            return EXIT_USAGE
        return _export(engine, args)
    except StoreError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except SQLAlchemyError as exc:
        print(f"audit: cannot read the database: {first_line(getattr(exc, 'orig', None) or exc)}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"audit: cannot write {exc.filename or 'the output'}: {exc.strerror or first_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        engine.dispose()


def _verify(engine: Engine, args: argparse.Namespace, home: Path) -> int:
    from app.store.chain_key import ALGORITHM, ChainKeys
    from app.store.checkpoints import (
        CheckpointError,
        check_checkpoints,
        check_digests,
        checkpoint_file,
        read_checkpoints,
        read_digests,
    )
    from app.store.verify import verify_chain

    if args.write_digests is not None and args.write_digests.exists():
        print(f"audit: {args.write_digests} already exists: digests are written to a new file only", file=sys.stderr)
        return EXIT_USAGE
    files = list(args.checkpoints)
    if checkpoint_file(home).is_file() and checkpoint_file(home) not in files:
        files.append(checkpoint_file(home))
    try:
        checkpoints = [checkpoint for path in files for checkpoint in read_checkpoints(path)]
        digests = read_digests(args.digests) if args.digests is not None else []
    except CheckpointError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return EXIT_FAILED
    keys = ChainKeys()
    wanted = {checkpoint.seq for checkpoint in checkpoints} | {int(entry["last_seq"]) for entry in digests}
    result = verify_chain(engine, keys=keys, hashes_at=wanted)
    for digest in result.digests:
        print(f"digest {digest.day.isoformat()} records={digest.records} last_seq={digest.last_seq} hash={digest.hash}")
    if result.keys:
        print(f"keyed ({ALGORITHM}): checked against key {', '.join(result.keys)} from {keys.describe()}")
    elif not result.missing_keys and result.records:
        print("not keyed (plain SHA-256): whoever can write the database could recompute this chain")
    problems, notes = check_checkpoints(result, checkpoints, keys)
    if checkpoints:
        print(f"checked {len(checkpoints)} checkpoints from {', '.join(str(path) for path in files)}")
    if digests:
        problems += check_digests(result, digests)
        print(f"compared {len(digests)} day digests from {args.digests}")
    for note in notes:
        print(f"note: {note}")
    for outage in result.outages:
        print(outage.describe())
    failed = False
    if result.broken_at is not None:
        print(f"BROKEN at seq {result.broken_at}: {result.reason}")
        failed = True
    for problem in [p for p in result.problems() if not p.startswith(f"record {result.broken_at}:")] + problems:
        print(f"BROKEN: {problem}")
        failed = True
    if failed:
        if args.write_digests is not None:
            print(f"audit: digests not written to {args.write_digests}: the chain did not verify", file=sys.stderr)
        return EXIT_FAILED
    if args.write_digests is not None:
        with args.write_digests.open("x", encoding="utf-8") as handle:
            for digest in result.digests:
                handle.write(json.dumps({"day": digest.day.isoformat(), "records": digest.records,
                                         "last_seq": digest.last_seq, "hash": digest.hash}) + "\n")
        print(f"wrote {len(result.digests)} day digests to {args.write_digests}")
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
