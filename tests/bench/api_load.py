"""The local API under load: 50 clients on loopback submitting and cancelling against the paper desk,
then the kill switch engaged over the API under the same load.

The desk is the real one (``app.desk.Desk``: SQLite store and audit chain under ``--data-folder``,
the paper broker, the engine) with the real ``ApiServer`` as its service on 127.0.0.1: real
sockets, served on the desk's own loop, as a desk runs it. The load comes from ``--processes``
(2) other processes (``multiprocessing``, spawned), each driving its clients on its own loop, so the
generator shares neither the desk's loop nor its GIL. Each client is one keep-alive connection
speaking plain HTTP/1.1 (``RawClient``): httpx costs more CPU per request than the server here.

- ``--clients`` (50) API clients, each with its own token (scopes read and trade), paced together
  at ``--rate`` (200) requests a second for ``--seconds`` (10): client ``i`` sends every
  ``clients / rate`` seconds, shifted by ``i / rate``, alternately a resting limit buy ~15 % under
  the market (with an ``Idempotency-Key``, as a strategy retrying safely sends it) and the cancel of
  that order. A client late for its slot sends at once (counted as ``late_sends``). Latency is the
  client's: ``perf_counter`` around the whole request, connection kept alive.
- Then the kill phase, ``--kill-seconds`` (10) more of the same load: ``--kills`` (10) kill switches
  over the API (a separate client with the kill scope) spread over it. Each is timed by its client
  (send to response) and by the desk (client's send to the moment the engine published HALTED, both
  ``time.time_ns`` on one machine). The desk re-arms in-process after each sweep, as an operator
  would: re-arm is never offered over the API. Submits answered during a halt are refused
  ``TRADING_HALTED`` (200 with ``accepted: false``); the kill phase's latencies are reported apart,
  so the load phase's figures are those of a trading desk.
- Desk loop lag: ``engine.loop_lag`` (an ``asyncio.sleep`` probe on the desk's loop), per phase.
- CPU seconds of the desk's process and of the load processes, the machine's load average, and a
  probe of one SQLite commit in the data folder (the floor under an accepted submit).

Configured so that the load is not refused by limits the benchmark is not about, and said in the
report (``configured``): the paper broker answers at once with rate limits far above the load (the
governor is shaped from them; this is a load test of the API path, not of Breeze's 10 actions a
second), wide risk limits (open orders, orders per day, no duplicate window), the gate's rate for
source ``api`` at 20 orders a second per client (each client submits about twice a second), and the
API's own per-client limiter left at its defaults (burst 20, 1,200 a minute; each client makes about
240 a minute). Anything but 200 and 429 is an error and is listed.

Prints one JSON object; exit 1 when a target is missed. Run: ``python -m tests.bench.api_load --json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import resource
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from .machine import finish, percentile, scratch_folder

TARGET_SUBMIT_P99_MS = 5.0
TARGET_RATE = 200.0
# The achieved rate may fall this far short of the asked one and still count as "at 200 requests/s".
RATE_TOLERANCE = 0.95
API_RATE_PER_CLIENT = 20
INSTRUMENTS = 10
UNDER_MARKET = Decimal("0.85")
READY_TIMEOUT_S = 120.0
KILL_REASON = "api_load round"
IDLE_RECONNECT_S = 2.0


@dataclass(frozen=True)
class WorkerPlan:
    """What one load process does: its clients' tokens and their place in the common schedule."""

    base_url: str
    tokens: tuple[str, ...]
    first_client: int
    clients: int
    rate: float
    seconds: float
    kill_seconds: float
    orders: tuple[tuple[str, int, str], ...]  # instrument key, quantity, price in rupees
    kill_token: str | None = None
    kills: int = 0


@dataclass
class WorkerResult:
    """What a load process measured; merged by the desk's process."""

    # The load phase's latencies (all submits, the accepted ones alone, cancels), and the kill phase's.
    submit_ms: list[float] = field(default_factory=list)
    accepted_ms: list[float] = field(default_factory=list)
    cancel_ms: list[float] = field(default_factory=list)
    kill_phase_submit_ms: list[float] = field(default_factory=list)
    kill_phase_cancel_ms: list[float] = field(default_factory=list)
    load_requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    late_sends: int = 0
    cpu_s: float = 0.0
    first_send: float = 0.0
    last_answer: float = 0.0
    # (client send, wall ns; round trip ms; status; round)
    kills: list[tuple[int, float, int, int]] = field(default_factory=list)


def stats(values: list[float], digits: int = 3, qs: tuple[int, ...] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles, max and count; 0.0 for no values."""
    out: dict[str, float] = {f"p{q}": round(percentile(values, q), digits) if values else 0.0 for q in qs}
    out["max"] = round(max(values, default=0.0), digits)
    out["samples"] = len(values)
    return out


# -- the load processes ---------------------------------------------------------------------------


def worker_main(plan: WorkerPlan, ready: Any, go: Any, results: Any) -> None:
    """A spawned process: connect every client, say ready, wait for the common start, drive, report.
    A process that fails still reports (its error), so the desk's process never waits for it in vain."""
    try:
        results.put(asyncio.run(_drive(plan, ready, go)))
    except BaseException as exc:
        results.put(WorkerResult(errors=[f"load process failed: {type(exc).__name__}: {exc}"]))
        raise


class RawClient:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for this API's answers
    (every one carries Content-Length). A load generator must cost little per request: httpx's
    AsyncClient spends ~2.5 ms of CPU on each one here, more than the server, which would time the
    generator on a two-core machine rather than the desk."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self._fixed = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._used = 0.0

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """The status and body of one request (``body`` sent as JSON)."""
        if time.perf_counter() - self._used > IDLE_RECONNECT_S:
            # The server closes idle keep-alive connections (uvicorn: after 5 s); a new one is not a race with that.
            await self.aclose()
        reader, writer = await self._connect()
        payload = b"" if body is None else json.dumps(body).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        if body is not None:
            extra += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        writer.write(f"{method} {path} HTTP/1.1\r\n".encode() + self._fixed + extra.encode() + b"\r\n" + payload)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, close = None, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length is None:
            raise RuntimeError(f"{method} {path}: an answer without Content-Length: {head[:200]!r}")
        answer = await reader.readexactly(length)
        self._used = time.perf_counter()
        if close:
            await self.aclose()
        return status, answer

    async def aclose(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _drive(plan: WorkerPlan, ready: Any, go: Any) -> WorkerResult:
    result = WorkerResult()
    host, port = plan.base_url.rsplit("//", 1)[1].rsplit(":", 1)
    clients = [RawClient(host, int(port), token) for token in (*plan.tokens, *((plan.kill_token,) if plan.kill_token else ()))]
    try:
        # One request each first: the connection is open before the clock starts.
        for client in clients:
            status, _ = await client.request("GET", "/v1/health/live")
            if status != 200:
                raise RuntimeError(f"GET /v1/health/live answered {status}")
        ready.put(os.getpid())
        start_wall = await asyncio.to_thread(go.get)
        start = time.perf_counter() + (start_wall - time.time())
        tasks = [_client(client, plan.first_client + i, plan, start, result)
                 for i, client in enumerate(clients[:len(plan.tokens)])]
        if plan.kill_token:
            tasks.append(_killer(clients[-1], plan, start, result))
        cpu0 = time.process_time()
        await asyncio.gather(*tasks)
        result.cpu_s = time.process_time() - cpu0
    finally:
        for client in clients:
            await client.aclose()
    return result


async def _client(client: RawClient, index: int, plan: WorkerPlan, start: float, result: WorkerResult) -> None:
    interval = plan.clients / plan.rate
    offset = index / plan.rate
    instrument, quantity, price = plan.orders[index % len(plan.orders)]
    working: str | None = None
    k = 0
    while True:
        at = start + offset + k * interval
        if at >= start + plan.seconds + plan.kill_seconds:
            return
        loading = at < start + plan.seconds
        k += 1
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.001:
            result.late_sends += 1
        sent = time.perf_counter()
        if result.first_send == 0.0 or sent < result.first_send:
            result.first_send = sent
        kind = "submit" if working is None else "cancel"
        try:
            if working is None:
                order = {"instrument": instrument, "side": "BUY", "quantity": quantity, "price": price}
                status, body = await client.request("POST", "/v1/orders", order, {"Idempotency-Key": uuid.uuid4().hex})
            else:
                status, body = await client.request("DELETE", f"/v1/orders/{working}")
        except (OSError, asyncio.IncompleteReadError) as exc:
            await client.aclose()
            status, body = 0, f"connection failed: {type(exc).__name__}: {exc}".encode()
        took = time.perf_counter()
        if loading:
            result.load_requests += 1
            result.last_answer = max(result.last_answer, took)
            (result.submit_ms if kind == "submit" else result.cancel_ms).append((took - sent) * 1000)
        else:
            (result.kill_phase_submit_ms if kind == "submit" else result.kill_phase_cancel_ms).append((took - sent) * 1000)
        result.statuses[f"{kind} {status}"] += 1
        if status == 200:
            answer = json.loads(body)
            if kind == "submit":
                if answer.get("accepted"):
                    working = answer["client_order_id"]
                    if loading:
                        result.accepted_ms.append((took - sent) * 1000)
                    result.outcomes["submit accepted"] += 1
                else:
                    result.outcomes[f"submit refused {(answer.get('rejection') or {}).get('code')}"] += 1
            else:
                working = None
                result.outcomes[f"cancel ok={answer.get('ok')}"] += 1
        elif status != 429:
            if kind == "cancel":
                working = None
            if len(result.errors) < 20:
                result.errors.append(f"{kind} {status}: {body[:300]!r}")


async def _killer(client: RawClient, plan: WorkerPlan, start: float, result: WorkerResult) -> None:
    for k in range(plan.kills):
        delay = start + plan.seconds + (k + 0.5) * plan.kill_seconds / plan.kills - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_ns = time.time_ns()
        sent = time.perf_counter()
        try:
            status, body = await client.request("POST", "/v1/kill", {"reason": f"{KILL_REASON} {k}"})
        except (OSError, asyncio.IncompleteReadError) as exc:
            await client.aclose()
            status, body = 0, f"connection failed: {type(exc).__name__}: {exc}".encode()
        result.kills.append((sent_ns, (time.perf_counter() - sent) * 1000, status, k))
        if status == 200 and json.loads(body).get("trading_state") != "HALTED":
            result.errors.append(f"kill {k} answered without HALTED: {body[:300]!r}")
        if status != 200 and len(result.errors) < 20:
            result.errors.append(f"kill {status}: {body[:300]!r}")


# -- the desk -------------------------------------------------------------------------------------


def write_limits(home: Path, instruments: list[Any]) -> Path:
    from tests.support.limits import limits_text

    path = home / "limits.toml"
    # Wide limits (open orders 10,000, a million orders a day, no duplicate window, 50 % collar); the gate's
    # per-client rate for the api source well above the ~2 submits a second each client makes.
    path.write_text(limits_text(instruments, rates={"default": 10_000, "api": API_RATE_PER_CLIENT}), encoding="utf-8")
    return path


async def run(home: Path, args: argparse.Namespace) -> dict[str, Any]:
    from app.brokers.base import RateLimits
    from app.brokers.paper import PaperConfig, load_universe
    from app.desk import Desk, DeskOptions
    from app.domain.actors import Actor, Role
    from app.domain.events import TradingStateChanged
    from app.domain.trading_state import TradingState
    from app.engine.risk.calendar_data import load_effective
    from tests.support.calendar import cover_today

    cover_today(home)
    commit_ms = store_commit_ms(home)
    universe = load_universe()
    equities = [e for e in universe if e.instrument.key.startswith("NSE:")][:INSTRUMENTS]
    limits_path = write_limits(home, [e.instrument for e in universe])
    broker_limits = RateLimits(order_actions_per_second=100_000, calls_per_minute=10_000_000, calls_per_day=100_000_000)
    paper = PaperConfig(seed=args.seed, latency_ms=0.0, tick_interval_ms=100.0, rate_limits=broker_limits)
    server = make_server()
    options = DeskOptions(
        command="bench api_load", database_url=f"sqlite:///{home / 'bulwark.db'}", home=home, limits_path=limits_path,
        seed=args.seed, paper=paper, calendar=load_effective(home), services=(server,),
    )
    admin = Actor.with_role("bench", Role.ADMIN)
    # The round named in the reason (the killer's "api_load round K") -> when the engine published HALTED.
    halted_ns: dict[int, int] = {}
    async with Desk(options) as desk:
        engine = desk.running_engine
        if not server_running(server):
            raise SystemExit("the local API did not start: see the desk's alerts")

        def on_state(event: TradingStateChanged) -> None:
            if event.current is TradingState.HALTED and KILL_REASON in event.reason:
                halted_ns[int(event.reason.rsplit(" ", 1)[1])] = time.time_ns()

        engine.bus.subscribe(TradingStateChanged, on_state, critical=False, name="bench.halted")
        tokens = add_clients(server, args.clients, admin)
        kill_token = tokens.pop()
        await asyncio.sleep(0.3)  # the first ticks: every instrument has a last price
        orders = []
        for entry in equities:
            last = engine.market_data.last_price(entry.instrument.key)
            if last is None:
                raise SystemExit(f"no price for {entry.instrument.key} after the paper market's first steps")
            tick = entry.instrument.tick_size
            paise = int(last * UNDER_MARKET) // tick * tick
            orders.append((entry.instrument.key, entry.instrument.lot_size, str(Decimal(paise) / 100)))

        base_url = f"http://127.0.0.1:{server.port}"
        plans = split(base_url, tokens, kill_token, tuple(orders), args)
        spawn = multiprocessing.get_context("spawn")
        ready, results = spawn.Queue(), spawn.Queue()
        gos = [spawn.Queue() for _ in plans]
        processes = [spawn.Process(target=worker_main, args=(plan, ready, go, results), daemon=True)
                     for plan, go in zip(plans, gos, strict=True)]
        for process in processes:
            process.start()
        try:
            for _ in processes:
                await asyncio.to_thread(ready.get, True, READY_TIMEOUT_S)
            lag0 = len(engine.loop_lag.samples_ms)
            cpu0, wall0 = process_cpu_s(), time.perf_counter()
            submitted0, accepted0 = engine.submitted, engine.accepted
            start_wall = time.time() + 0.2
            for go in gos:
                go.put(start_wall)
            rounds: list[dict[str, Any]] = []
            rearming = asyncio.create_task(rearm_rounds(engine, admin, rounds))
            await asyncio.sleep(max(0.0, start_wall + args.seconds - time.time()))
            lag1 = len(engine.loop_lag.samples_ms)
            total = args.seconds + (args.kill_seconds if args.kills else 0.0)
            measured = [await asyncio.to_thread(results.get, True, total + READY_TIMEOUT_S) for _ in processes]
            rearming.cancel()
            desk_side: dict[str, Any] = {
                "lag": list(engine.loop_lag.samples_ms)[lag0:lag1],
                "kill_phase_lag": list(engine.loop_lag.samples_ms)[lag1:],
                "cpu": {"cpu_s": round(process_cpu_s() - cpu0, 2), "wall_s": round(time.perf_counter() - wall0, 2)},
                "rounds": rounds,
                "halted_ns": halted_ns,
                "submitted": engine.submitted - submitted0,
                "accepted": engine.accepted - accepted0,
                "working_at_end": len(engine.oms.working()),
            }
        finally:
            for process in processes:
                process.join(timeout=10)
                if process.is_alive():
                    process.kill()
    return report(args, measured, desk_side, commit_ms)


def process_cpu_s() -> float:
    """User and system CPU seconds of this process, all its threads (the audit writer's too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_server() -> Any:
    from app.api.server import ApiServer
    from app.settings import ApiSettings

    return ApiServer(ApiSettings(host="127.0.0.1", port=0))


def server_running(server: Any) -> bool:
    return bool(getattr(server, "port", None))


def add_clients(server: Any, count: int, admin: Any) -> list[str]:
    """``count`` read+trade clients and one kill client; their tokens (the kill client's last)."""
    from app.domain.actors import ApiScope

    # On the loop, though each add writes the store: the directory audits through the engine's recorder,
    # which lives on this loop. Set-up only, before the clock starts.
    directory = server.context.clients
    tokens = [directory.add(f"load{i:02d}", {ApiScope.READ, ApiScope.TRADE}, by=admin)[1] for i in range(count)]
    tokens.append(directory.add("killer", {ApiScope.KILL}, by=admin)[1])
    return tokens


def split(base_url: str, tokens: list[str], kill_token: str, orders: tuple[tuple[str, int, str], ...],
          args: argparse.Namespace) -> list[WorkerPlan]:
    """The clients dealt out to the processes in contiguous runs; the kill client goes with the last."""
    per = -(-len(tokens) // args.processes)
    plans = []
    for p in range(args.processes):
        mine = tuple(tokens[p * per:(p + 1) * per])
        last = p == args.processes - 1
        plans.append(WorkerPlan(base_url, mine, p * per, len(tokens), args.rate, args.seconds,
                                args.kill_seconds if args.kills else 0.0, orders,
                                kill_token if last else None, args.kills if last else 0))
    return plans


async def rearm_rounds(engine: Any, admin: Any, rounds: list[dict[str, Any]]) -> None:
    """Re-arm after each halt once its sweep is over (in-process: the API never re-arms), until cancelled;
    each engagement's figures into ``rounds``: the engine's own time to HALTED, then the sweep and the re-arm."""
    from app.domain.trading_state import TradingState

    seen: object = None
    while True:
        if engine.trading_state is not TradingState.HALTED:
            await asyncio.sleep(0.002)
            continue
        report = engine.kill_switch.last
        if report is not None and report is not seen:
            seen = report
            rounds.append({"halted_in_us": report.halted_in_us, "working_at_engage": report.working_at_engage})
        await engine.kill_switch.wait()
        if engine.kill_switch.sweeping or not rounds:
            continue  # another kill came in while this one swept: wait for that sweep too
        started = time.perf_counter()
        await engine.rearm(admin, "api_load bench round")
        rounds[-1].update(sweep_ms=engine.kill_switch.last.cleared_in_ms, rearm_ms=(time.perf_counter() - started) * 1000)


def store_commit_ms(folder: Path, commits: int = 30) -> list[float]:
    """One-row SQLite commits in WAL mode with ``synchronous=FULL``, as the desk's store commits, in the data
    folder: the floor under an accepted submit, whose audit record is durable before the order is sent."""
    import sqlite3

    samples = []
    connection = sqlite3.connect(folder / "commit-probe.db", isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE probe (n INTEGER)")
        for n in range(commits):
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO probe VALUES (?)", (n,))
            connection.execute("COMMIT")
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
    return samples


def report(args: argparse.Namespace, measured: list[WorkerResult], desk: dict[str, Any], commit_ms: list[float]) -> dict[str, Any]:
    submit = [x for m in measured for x in m.submit_ms]
    cancel = [x for m in measured for x in m.cancel_ms]
    statuses: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for m in measured:
        statuses.update(m.statuses)
        outcomes.update(m.outcomes)
    kills = sorted(k for m in measured for k in m.kills)
    by_status: Counter[str] = Counter()
    for key, n in statuses.items():
        by_status[key.split()[1]] += n
    for kill in kills:
        by_status[str(kill[2])] += 1
    requests = sum(statuses.values())
    load_requests = sum(m.load_requests for m in measured)
    span = max(m.last_answer for m in measured) - min(m.first_send for m in measured if m.first_send)
    # The desk's view of each kill: the client's send to the engine publishing HALTED for that round. A kill
    # that found the desk still halted from the round before publishes nothing and is counted apart.
    halted_ns = desk["halted_ns"]
    desk_halt_ms = [(halted_ns[k[3]] - k[0]) / 1e6 for k in kills if k[3] in halted_ns]
    rounds = desk["rounds"]
    cpu = desk["cpu"]
    return {
        "bench": "api_load",
        "seconds": args.seconds,
        "clients": args.clients,
        "processes": args.processes,
        "rate_asked": args.rate,
        "kill_seconds": args.kill_seconds if args.kills else 0.0,
        "rate_achieved": round(load_requests / span, 1) if span > 0 else 0.0,
        "requests": requests + len(kills),
        "requests_by_status": dict(sorted(by_status.items())),
        "requests_by_kind_and_status": dict(sorted(statuses.items())),
        "outcomes": dict(sorted(outcomes.items())),
        "errors": sum(n for status, n in by_status.items() if status not in ("200", "429")),
        "error_samples": [e for m in measured for e in m.errors],
        "late_sends": sum(m.late_sends for m in measured),
        "submit_ms": stats(submit),
        "submit_accepted_ms": stats([x for m in measured for x in m.accepted_ms]),
        "cancel_ms": stats(cancel, qs=(50, 99)),
        "kill_phase": {
            "submit_ms": stats([x for m in measured for x in m.kill_phase_submit_ms], qs=(50, 99)),
            "cancel_ms": stats([x for m in measured for x in m.kill_phase_cancel_ms], qs=(50, 99)),
            "desk_loop_lag_ms": stats(desk["kill_phase_lag"], qs=(50, 99)),
        },
        "kills": len(kills),
        "halts_seen": len(halted_ns),
        "kills_on_a_halted_desk": len(kills) - len(desk_halt_ms),
        "kill_answers_not_halted": sum(1 for m in measured for e in m.errors if "without HALTED" in e),
        "kill_call_ms": {"what": "client: send to response (the desk is HALTED before it answers)",
                         **stats([k[1] for k in kills], qs=(50, 99))},
        "kill_to_halted_ms": {"what": "client's send to the engine publishing HALTED (time.time_ns, one machine)",
                              **stats(desk_halt_ms, qs=(50, 99))},
        "engine_halt_us": {"what": "inside engage_kill_switch", **stats([r["halted_in_us"] for r in rounds], 1, (50, 99))},
        "sweep_ms": stats([r["sweep_ms"] for r in rounds if r.get("sweep_ms") is not None], 1, (50, 99)),
        "rearm_ms": stats([r["rearm_ms"] for r in rounds if "rearm_ms" in r], 2, (50, 99)),
        "desk_orders": {"submitted": desk["submitted"], "accepted": desk["accepted"]},
        "working_at_end": desk["working_at_end"],
        "desk_loop_lag_ms": {"probe": "engine.loop_lag: asyncio.sleep(0.01) on the desk's loop", **stats(desk["lag"], qs=(50, 99))},
        "cpu": {
            "desk_process_s": cpu["cpu_s"], "wall_s": cpu["wall_s"],
            "desk_share_of_one_core": round(cpu["cpu_s"] / cpu["wall_s"], 2) if cpu["wall_s"] else None,
            "load_processes_s": round(sum(m.cpu_s for m in measured), 2), "load_avg_1m": round(os.getloadavg()[0], 2),
        },
        "store_commit_ms": {"what": "one-row SQLite WAL commit, synchronous=FULL, in the data folder, before the load",
                            **stats(commit_ms, 2, (50, 99))},
        "configured": {
            "paper_broker": "latency 0 ms; rate limits 100,000 actions/s, 10M calls/min, 100M/day (the governor is "
                            "shaped from these): the API path is measured, not Breeze's 10 actions/s",
            "risk_limits": "tests.support.limits wide limits: 10,000 open orders, 1,000,000 orders/day, no duplicate "
                           f"window, 50 % collar; max_orders_per_second api = {API_RATE_PER_CLIENT} per client "
                           f"(each submits ~{args.rate / args.clients / 2:g}/s)",
            "api_limiter": "ApiSettings defaults: burst 20, 1,200/min per client "
                           f"(each client makes ~{60 * args.rate / args.clients:g}/min)",
            "orders": f"limit buys {int((1 - UNDER_MARKET) * 100)} % under the last price on {INSTRUMENTS} NSE equities, "
                      "one lot, each with an Idempotency-Key",
            "store": "SQLite in the data folder; every accepted order is durable in the audit chain before it is sent",
            "load_client": "raw keep-alive HTTP/1.1 on asyncio streams, one connection per client (see RawClient)",
        },
    }


def misses(result: dict[str, Any]) -> list[str]:
    found = []
    if result["errors"]:
        found.append(f"{result['errors']} requests answered other than 200/429")
    p99 = result["submit_ms"]["p99"]
    if p99 > TARGET_SUBMIT_P99_MS:
        found.append(f"submit p99 {p99} ms > {TARGET_SUBMIT_P99_MS} ms")
    if result["rate_asked"] >= TARGET_RATE and result["rate_achieved"] < RATE_TOLERANCE * result["rate_asked"]:
        found.append(f"achieved {result['rate_achieved']} requests/s < {RATE_TOLERANCE:.0%} of {result['rate_asked']}")
    if result["kill_answers_not_halted"]:
        found.append(f"{result['kill_answers_not_halted']} kill calls answered without HALTED")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="requests a second, all clients together")
    parser.add_argument("--kills", type=int, default=10, help="kill switches over the API, after the load phase")
    parser.add_argument("--kill-seconds", type=float, default=10.0, help="the kill phase: the same load, the kills spread over it")
    parser.add_argument("--processes", type=int, default=2, help="load-generating processes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="cProfile the desk's process; the summary goes to stderr")
    parser.add_argument("--data-folder", type=Path, default=None,
                        help="folder to make the desk's data folder in (default: the user's cache folder, never /tmp)")
    args = parser.parse_args(argv)
    if min(args.clients, args.processes) < 1 or args.kills < 0 or min(args.seconds, args.kill_seconds, args.rate) <= 0:
        parser.error("--clients and --processes must be at least 1, --kills not negative, "
                     "--seconds, --kill-seconds and --rate positive")
    if args.processes > args.clients:
        parser.error("--processes must not exceed --clients")
    with scratch_folder(args.data_folder, "bulwark-bench-api-load-") as folder:
        profile = cProfile.Profile() if args.profile else None
        if profile is not None:
            profile.enable()
        result = asyncio.run(run(folder, args))
        if profile is not None:
            profile.disable()
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(30)
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(r"app/", 40)
            print(out.getvalue(), file=sys.stderr)
        result["profiled"] = args.profile
        targets = {"submit_p99_ms_at_most": TARGET_SUBMIT_P99_MS, "at_requests_per_s": TARGET_RATE,
                   "errors_other_than_429": 0}
        # The target on its own: submit p99 within 5 ms while the asked 200 requests/s were achieved.
        result["target_met"] = (result["submit_ms"]["p99"] <= TARGET_SUBMIT_P99_MS
                                and result["rate_achieved"] >= RATE_TOLERANCE * TARGET_RATE)
        return finish(result, targets, misses(result), as_json=args.json, data_folder=folder)


if __name__ == "__main__":
    sys.exit(main())
