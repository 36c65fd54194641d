"""Four desks on one PostgreSQL: durable audit appends/s in total and per desk, and p99 durable append latency.

Run: ``python -m tests.bench.firm --json``. Each desk is its own process (``multiprocessing``,
spawned) with its own ``AuditWriter`` and desk id, all extending the one audit chain of one
PostgreSQL database, as the desks of a firm do: every batch a writer commits takes
``LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE``, so the desks take turns at the chain's tail.

The database: ``--db-url`` (a server where the bench may ``CREATE DATABASE``, whose fresh database
is dropped afterwards, or else an existing empty database, left as the run leaves it); without it a
throwaway cluster (``tests/pg_server.py``: fsync on, ``BULWARK_TEST_PG_URL`` if set) and a fresh
database on it. The report names the server's version, its ``fsync`` and ``synchronous_commit``
(either off is a miss: the appends would not be durable) and the file system under its data
directory, where the fsyncs land; ``--data-folder`` only holds each desk process's log.

The chain is keyed as desks key it (HMAC-SHA256): the bench creates one key in an in-memory keyring
(never the user's) and hands its secret to every desk's process over a pipe, so all desks append
with the one key and the chain verifies as one.

First a baseline: one desk alone on the same database. Then ``--desks`` (4) desks started together
behind a barrier. Each run has two phases, every desk in the same phase at once:

1. Throughput: each desk keeps ``--window`` (100) appends in flight for ``--seconds`` (10), all awaited
   durable; the firm's total is all desks' appends over the span from the first start to the last finish.
2. Latency: each desk appends one order's record at a time and awaits it durable, ``--latency-samples``
   (300) times, while the other desks do the same: every desk's order records contend for the one lock.

Targets: the whole chain verifies once at the end (with the expected number of records); the desks'
total appends/s >= 0.5x the lone desk's; the p99 of a single durable append over all desks' samples
<= 25 ms; the server's fsync and synchronous_commit on. Exits 1 when a target is missed. The report
also counts each desk's records in the chain and how often the chain passed from one desk to another.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, make_url

from app.store.audit_writer import AuditEntry, AuditWriter
from app.store.chain_key import SERVICE, ChainKeys, entry_name
from app.store.migrate import open_store
from app.store.verify import verify_chain

from ..pg_server import HINT, pg_base_url, psycopg_conninfo
from .audit import PAYLOAD, MemoryKeyring, latency, latency_spread, where
from .machine import filesystem, filesystem_warning, finish, scratch_folder

SHARING_RATIO = 0.5
SINGLE_APPEND_P99_MS = 25.0
# Spawned processes import the store on a loaded machine before the first barrier, and a desk waits
# at each barrier for the slowest to finish its phase.
BARRIER_TIMEOUT_S = 120.0
DIFFERS = [
    ("the firm's total is all desks' appends over the span from the first desk's start to the last desk's "
     "finish of the phase; each desk's own figure is its appends over its own span"),
    "the baseline is one desk process alone, with the same window, payload and phases, on the same database first",
    "the window is each desk's own: N desks keep N x --window appends in flight between them, as N desks would",
    ("latency is pooled over every desk's samples for the target; each desk's own p50 and p99 are listed "
     "beside it"),
    "each desk appends with the one chain key the bench created; a desk's record carries its desk id in the payload",
]


@dataclass(frozen=True)
class DeskPlan:
    """What one desk's process does: its id, the database, and the two phases' sizes."""

    desk_id: str
    url: str
    seconds: float
    window: int
    samples: int
    log: str


def desk_ids(count: int, prefix: str) -> list[str]:
    """``count`` desk ids of 6 characters from A-Z and 2-7, as desks have: ``DESKA2``, ``DESKB2``..."""
    return [f"{prefix}{chr(ord('A') + i)}2" for i in range(count)]


async def timed_throughput(writer: AuditWriter, seconds: float, window: int) -> tuple[int, float, float]:
    """Appends kept ``window`` in flight until ``seconds`` have passed, then the window drained.

    Returns the appends, and the wall-clock start and end (``time.time``: one clock for all
    processes of this machine, so the firm's span can be taken across desks). A slot frees as each
    append's future resolves (one callback per future), as in ``tests.bench.audit``.
    """
    slots = asyncio.Semaphore(window)
    failures: list[BaseException] = []

    def settled(future: asyncio.Future[AuditEntry]) -> None:
        error = future.exception()
        if error is not None:
            failures.append(error)
        slots.release()

    started = time.time()
    deadline = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < deadline and not failures:
        await slots.acquire()
        future = writer.append("order.sent", {**PAYLOAD, "i": count}, actor="bench", source="simulation")
        future.add_done_callback(settled)
        count += 1
    for _ in range(window):
        await slots.acquire()
    if failures:
        raise failures[0]
    return count, started, time.time()


async def desk_phases(plan: DeskPlan, keys: ChainKeys, barrier: Any) -> dict[str, Any]:
    engine = open_store(plan.url, application_name=f"bulwark-bench-{plan.desk_id}")
    # No key of its own: the desk appends with the key the chain is keyed with, which it was handed.
    writer = AuditWriter(engine, keys=keys, desk_id=plan.desk_id)
    writer.start()
    try:
        # The connection, the table's columns and the key chosen before the clock starts.
        await writer.append("app.start", {"bench": "firm"}, actor="bench", source="simulation")
        barrier.wait(BARRIER_TIMEOUT_S)
        commits = writer.commits
        appends, started, ended = await timed_throughput(writer, plan.seconds, plan.window)
        commits = writer.commits - commits
        barrier.wait(BARRIER_TIMEOUT_S)
        samples = await latency(writer, plan.samples)
    finally:
        writer.close()
        engine.dispose()
    return {"desk": plan.desk_id, "appends": appends, "started": started, "ended": ended, "commits": commits,
            "samples_ms": samples, "records": 1 + appends + len(samples)}


def desk_main(plan: DeskPlan, pipe: Any, barrier: Any) -> None:
    """A spawned desk: take the chain key from the pipe, run both phases behind the barrier, send the figures back."""
    with open(plan.log, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 2)
    try:
        fingerprint, secret = pipe.recv()
        keyring = MemoryKeyring()
        keyring.set_password(SERVICE, entry_name(fingerprint), secret)
        pipe.send(asyncio.run(desk_phases(plan, ChainKeys(keyring), barrier)))
    except BaseException as exc:  # noqa: BLE001 - whatever stopped the desk, the parent must hear it
        # The other desks wait at the barrier for this one: let them go at once rather than at its timeout.
        barrier.abort()
        traceback.print_exc()
        pipe.send({"desk": plan.desk_id, "error": f"{type(exc).__name__}: {exc}"})


def run_desks(url: str, ids: list[str], key: tuple[str, str], args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    """Run one process per desk id, all together behind one barrier; each desk's figures, in ``ids`` order."""
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(len(ids))
    started: list[tuple[DeskPlan, Any, Any]] = []
    try:
        for desk in ids:
            plan = DeskPlan(desk, url, args.seconds, args.window, args.latency_samples, str(folder / f"desk-{desk}.log"))
            mine, theirs = spawn.Pipe()
            process = spawn.Process(target=desk_main, args=(plan, theirs, barrier), name=f"desk-{desk}", daemon=True)
            process.start()
            theirs.close()
            # The secret goes over the pipe: never on a command line or in a file.
            mine.send(key)
            started.append((plan, mine, process))
        deadline = time.monotonic() + 2 * BARRIER_TIMEOUT_S + args.seconds + args.latency_samples
        results = []
        for plan, pipe, _process in started:
            try:
                if not pipe.poll(max(0.0, deadline - time.monotonic())):
                    raise SystemExit(f"desk {plan.desk_id} did not report in time; its log:\n{log_tail(plan.log)}")
                result = pipe.recv()
            except EOFError:
                raise SystemExit(f"desk {plan.desk_id}'s process ended without a report; its log:\n"
                                 f"{log_tail(plan.log)}") from None
            if "error" in result:
                raise SystemExit(f"desk {plan.desk_id} failed: {result['error']}; its log:\n{log_tail(plan.log)}")
            results.append(result)
        return results
    finally:
        for _plan, pipe, process in started:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=10)
            pipe.close()


def log_tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's figures: the total over the firm's span, each desk's own, and the pooled latency."""
    span = max(r["ended"] for r in results) - min(r["started"] for r in results)
    appends = sum(r["appends"] for r in results)
    pooled = [sample for r in results for sample in r["samples_ms"]]
    per_desk = [{"desk": r["desk"], "durable_appends_per_sec": round(r["appends"] / (r["ended"] - r["started"])),
                 "appends": r["appends"], "commits": r["commits"],
                 "single_append_ms": latency_spread(r["samples_ms"])} for r in results]
    return {"desks": len(results), "durable_appends_per_sec": round(appends / span), "appends": appends,
            "seconds": round(span, 2), "commits": sum(r["commits"] for r in results), "per_desk": per_desk,
            "single_append_ms": {**latency_spread(pooled),
                                 "what": "one durable append at a time, awaited, by each desk, the desks at once; pooled"}}


def postgres_url(text: str) -> str:
    url = make_url(text)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername != "postgresql+psycopg":
        raise SystemExit(f"--db-url must be a PostgreSQL URL (postgresql+psycopg://...), not {url.drivername}://")
    return url.render_as_string(hide_password=False)


def create_database(base: str) -> str | None:
    """A new database's name on the server at ``base``; ``None`` if the role may not create one."""
    import psycopg

    name = f"bulwark_bench_firm_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(psycopg_conninfo(base), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.errors.InsufficientPrivilege:
        return None
    return name


@contextlib.contextmanager
def fresh_database(base: str, name: str) -> Iterator[str]:
    """The URL of database ``name`` on the server at ``base``, dropped afterwards."""
    import psycopg

    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(psycopg_conninfo(base), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_database(url: str) -> bool:
    import psycopg

    with psycopg.connect(psycopg_conninfo(url)) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").fetchone()
    return row is not None and row[0] == 0


@contextlib.contextmanager
def bench_database(db_url: str | None) -> Iterator[tuple[str, str]]:
    """The database URL the desks share, and in words where it is."""
    import psycopg

    if db_url is None:
        with pg_base_url() as base:
            if base is None:
                raise SystemExit(f"no PostgreSQL server to run on: pass --db-url, or {HINT}")
            name = create_database(base)
            if name is None:
                raise SystemExit("the throwaway PostgreSQL server refused CREATE DATABASE")
            with fresh_database(base, name) as url:
                yield url, "a fresh database on a throwaway server (tests/pg_server.py), dropped afterwards"
        return
    given = postgres_url(db_url)
    shown = make_url(given).render_as_string(hide_password=True)
    try:
        name = create_database(given)
        empty = name is not None or empty_database(given)
    except psycopg.OperationalError as exc:
        raise SystemExit(f"cannot reach the PostgreSQL server at {shown}: {' '.join(str(exc).split())}") from None
    if name is not None:
        with fresh_database(given, name) as url:
            yield url, "a fresh database on the --db-url server, dropped afterwards"
        return
    if not empty:
        raise SystemExit(f"{shown}: may not create a database there, and the database has tables: "
                         "give a server where the bench may CREATE DATABASE, or an empty database")
    yield given, "the --db-url database, which was empty (left with the bench's chain)"


def server_facts(engine: Engine, db_url: str | None) -> dict[str, Any]:
    """The server's version and durability settings, and the file system under its data directory."""
    facts: dict[str, Any] = {}
    with engine.connect() as connection:
        for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method", "data_directory"):
            try:
                with connection.begin_nested():
                    facts[name] = str(connection.exec_driver_sql(f"SHOW {name}").scalar())
            except Exception:  # noqa: BLE001 - data_directory needs pg_read_all_settings; unknown is reported as such
                facts[name] = None
    host = make_url(db_url).host if db_url is not None else "127.0.0.1"
    local = host in (None, "", "localhost", "127.0.0.1", "::1")
    directory = facts["data_directory"]
    # The fsyncs land in the server's data directory: only a server on this machine lets us name its file system.
    facts["filesystem"] = filesystem(directory) if local and directory and os.path.isdir(directory) else "unknown"
    return facts


def server_warning(kind: str) -> str | None:
    """Why the durable-write figures may not hold on a desk's server, from its data directory's file system."""
    if kind == "unknown":
        return ("the file system under the PostgreSQL server's data directory is unknown (a server on another "
                "machine, or a role without pg_read_all_settings): whether its fsync costs what a disk's does is not checked")
    if filesystem_warning(kind) is None:
        return None
    return (f"the PostgreSQL server's data directory is on {kind}: fsync may cost nothing there, so durable-write "
            "figures may flatter the store; run the server on a local disk")


def check_chain(engine: Engine, keys: ChainKeys, expected: int) -> dict[str, Any]:
    started = time.perf_counter()
    result = verify_chain(engine, keys=keys)
    seconds = time.perf_counter() - started
    with engine.connect() as connection:
        by_desk: dict[Any, Any] = dict(connection.exec_driver_sql(
            "SELECT coalesce(payload::json->>'desk', '-'), count(*) FROM audit_log GROUP BY 1 ORDER BY 1").all())
        # How often the chain passes from one desk to another: the desks took turns, not one after the other.
        turns = connection.exec_driver_sql(
            "SELECT count(*) FROM (SELECT payload::json->>'desk' AS desk, lag(payload::json->>'desk') OVER (ORDER BY seq) "
            "AS before FROM audit_log) AS chain WHERE desk IS DISTINCT FROM before AND before IS NOT NULL").scalar()
    return {"ok": result.ok, "records": result.records, "expected_records": expected, "broken_at": result.broken_at,
            "reason": result.reason, "keys": result.keys, "verify_seconds": round(seconds, 2),
            "records_by_desk": {str(desk): int(count) for desk, count in by_desk.items()}, "desk_turns": turns}


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    with bench_database(args.db_url) as (url, database):
        engine = open_store(url, application_name="bulwark-bench-firm")
        try:
            server = server_facts(engine, args.db_url)
            keyring = MemoryKeyring()
            keys = ChainKeys(keyring)
            # The chain keyed once, here: every desk is handed this key and appends with it.
            writer = AuditWriter(engine, keys=keys, create_key=True)
            writer.start()
            writer.append_blocking("app.start", {"bench": "firm", "desks": args.desks}, actor="bench", source="simulation")
            writer.close()
            fingerprint = writer.key_fingerprint
            secret = keyring.get_password(SERVICE, entry_name(fingerprint)) if fingerprint is not None else None
            if fingerprint is None or secret is None:
                raise SystemExit("the bench could not key the chain in its in-memory keyring")
            key = (fingerprint, secret)
            solo = run_desks(url, desk_ids(1, "SOLO"), key, args, folder)
            desks = run_desks(url, desk_ids(args.desks, "DESK"), key, args, folder)
            baseline, firm = summarise(solo), summarise(desks)
            # The key announcement and the bench's own first record, then every desk's records, baseline included.
            expected = 2 + sum(r["records"] for r in solo + desks)
            chain = check_chain(engine, keys, expected)
        finally:
            engine.dispose()
    warning = server_warning(server["filesystem"])
    return {
        "bench": "firm",
        "backend": "postgresql",
        "store": where(url),
        "database": database,
        "postgresql": server,
        "keyed": "HMAC-SHA256, one key for every desk, created in an in-memory keyring and handed over a pipe",
        "window": args.window,
        "seconds_per_phase": args.seconds,
        "latency_samples": args.latency_samples,
        "baseline": baseline,
        "firm": firm,
        "sharing_ratio": round(firm["durable_appends_per_sec"] / baseline["durable_appends_per_sec"], 2),
        "chain": chain,
        "differs": DIFFERS,
        **({"warnings": [warning]} if warning is not None else {}),
    }


def misses(report: dict[str, Any]) -> list[str]:
    found = []
    chain = report["chain"]
    if not chain["ok"]:
        found.append(f"the chain does not verify: broken at {chain['broken_at']} ({chain['reason']})")
    if chain["records"] != chain["expected_records"]:
        found.append(f"the chain holds {chain['records']} records, the desks appended {chain['expected_records']}")
    server = report["postgresql"]
    for setting in ("fsync", "synchronous_commit"):
        if server[setting] == "off":
            found.append(f"the server runs with {setting} off: the appends were not durable")
    if report["sharing_ratio"] < SHARING_RATIO:
        found.append(f"{report['firm']['desks']} desks' appends/s {report['sharing_ratio']}x one desk's < {SHARING_RATIO}x")
    p99 = report["firm"]["single_append_ms"]["p99"]
    if p99 > SINGLE_APPEND_P99_MS:
        found.append(f"single durable append p99 {p99} ms with {report['firm']['desks']} desks > {SINGLE_APPEND_P99_MS} ms")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--db-url", default=None,
                        help="a PostgreSQL server where the bench may CREATE DATABASE, or an empty database "
                             "(default: a throwaway server from tests/pg_server.py)")
    parser.add_argument("--data-folder", type=Path, default=None,
                        help="folder to make the benchmark's folder in, which holds each desk process's log "
                             "(default: the user's cache folder, ~/.cache/Bulwark/bench on Linux)")
    parser.add_argument("--desks", type=int, default=4, help="desk processes sharing the database (at most 26)")
    parser.add_argument("--seconds", type=float, default=10.0, help="the throughput phase's length")
    parser.add_argument("--window", type=int, default=100, help="appends each desk keeps in flight in the throughput phase")
    parser.add_argument("--latency-samples", type=int, default=300, help="single appends each desk awaits durable")
    args = parser.parse_args(argv)
    if not 1 <= args.desks <= 26 or min(args.window, args.latency_samples) < 1 or args.seconds <= 0:
        parser.error("--desks must be 1 to 26, --window and --latency-samples at least 1, --seconds positive")
    with scratch_folder(args.data_folder, "bulwark-bench-firm-") as folder:
        report = measure(args, folder)
        targets = {"chain_verifies": True, "sharing_ratio_at_least": SHARING_RATIO,
                   "single_append_p99_ms_at_most": SINGLE_APPEND_P99_MS, "fsync_and_synchronous_commit": "on"}
        return finish(report, targets, misses(report), as_json=args.json, data_folder=folder)


if __name__ == "__main__":
    sys.exit(main())
