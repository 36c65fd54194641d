"""The desk's local control channel: a real engine on the paper broker behind real loopback sockets."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.brokers.base import Broker, BrokerError, BrokerErrorCode
from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.brokers.paper.universe import UniverseEntry
from app.domain.orders import Side
from app.domain.rejections import RejectReason
from app.domain.requests import OrderRequest
from app.domain.trading_state import TradingState
from app.engine.config import EngineConfig
from app.engine.control import (
    MAX_UNAUTHENTICATED,
    ControlServer,
    ControlUnavailable,
    send_command,
)
from app.engine.engine import Engine
from app.engine.risk.calendar_data import load_effective
from app.simulation import SimulationOptions, run_simulation
from tests.support.book_faults import BookReadFails
from tests.support.calendar import cover_today
from tests.support.control_flood import flooding
from tests.support.limits import wide_limits

RELIANCE = next(e for e in load_universe() if e.instrument.key == "NSE:RELIANCE")
LIMITS = wide_limits([RELIANCE.instrument])


@dataclass
class Desk:
    engine: Engine
    broker: PaperBroker
    server: ControlServer
    home: Path
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def key(self) -> bytes:
        return bytes.fromhex(json.loads((self.home / "control.json").read_text())["key"])


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    broker = PaperBroker(PaperConfig(seed=7, tick_interval_ms=None), universe=[RELIANCE])
    engine = Engine(broker, [RELIANCE.instrument], limits=LIMITS)
    await engine.start()
    calls: list[dict[str, Any]] = []

    async def panic(args: dict[str, Any]) -> dict[str, Any]:
        calls.append(args)
        engine.halt(args["reason"], args["actor"])
        return {"ok": True, "state": str(engine.trading_state), "working": len(engine.oms.working())}

    async def broken(args: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("handler bug")

    server = ControlServer(tmp_path, {"panic": panic, "broken": broken}, read_timeout=0.5)
    await server.start()
    yield Desk(engine, broker, server, tmp_path, calls)
    await server.close()
    await engine.stop()


def mac(key: bytes, nonce: bytes, command: str, args: dict[str, Any]) -> str:
    # Written out here, from the protocol description, rather than borrowed from the module.
    body = json.dumps({"command": command, "args": args}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, nonce + body.encode(), hashlib.sha256).hexdigest()


def exchange(port: int, make_line: Callable[[bytes], bytes]) -> dict[str, Any]:
    """One raw connection: read the challenge, send ``make_line(nonce)``, return the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        stream = sock.makefile("rb")
        challenge = json.loads(stream.readline())
        sock.sendall(make_line(bytes.fromhex(challenge["nonce"])))
        reply: dict[str, Any] = json.loads(stream.readline())
        return reply


def signed(key: bytes, command: str, args: dict[str, Any]) -> Callable[[bytes], bytes]:
    def line(nonce: bytes) -> bytes:
        return json.dumps({"command": command, "args": args, "mac": mac(key, nonce, command, args)}).encode() + b"\n"

    return line


async def resting_order(engine: Engine, broker: PaperBroker) -> None:
    broker.step()  # one tick, so the gate has a reference price
    for _ in range(5):
        await asyncio.sleep(0)
    last = engine.market_data.last_price("NSE:RELIANCE")
    assert last is not None
    tick = RELIANCE.instrument.tick_size
    result = await engine.submit(OrderRequest("NSE:RELIANCE", Side.BUY, 1, Decimal(last * 9 // 10 // tick * tick) / 100, actor="carol"))
    assert result.accepted, result.rejection


async def test_panic_over_the_channel_halts_the_engine(desk: Desk) -> None:
    await resting_order(desk.engine, desk.broker)
    assert desk.engine.trading_state is TradingState.ACTIVE
    reply = await asyncio.to_thread(send_command, desk.home, "panic", {"reason": "runaway algo", "actor": "panic:alice"})
    assert reply == {"ok": True, "state": "HALTED", "working": 1}
    assert desk.calls == [{"reason": "runaway algo", "actor": "panic:alice"}]
    # Read afresh: the type checker would keep the ACTIVE narrowing from before the panic.
    assert TradingState(desk.engine.trading_state) is TradingState.HALTED
    assert desk.engine.halt_reason == "runaway algo"
    refused = await desk.engine.submit(OrderRequest("NSE:RELIANCE", Side.BUY, 1, Decimal("100.00"), actor="carol"))
    assert not refused.accepted and refused.rejection is not None
    assert refused.rejection.reason is RejectReason.TRADING_HALTED


async def test_wrong_key_is_refused_and_never_reaches_the_handler(desk: Desk) -> None:
    reply = await asyncio.to_thread(exchange, desk.port, signed(os.urandom(32), "panic", {"reason": "x", "actor": "mallory"}))
    assert reply["ok"] is False and "authentication failed" in reply["error"]
    assert desk.calls == [] and desk.engine.trading_state is TradingState.ACTIVE


async def test_a_client_with_a_wrong_key_file_cannot_trust_the_answer(desk: Desk) -> None:
    path = desk.home / "control.json"
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "key": os.urandom(32).hex()}))
    with pytest.raises(ControlUnavailable, match="not from the desk"):
        await asyncio.to_thread(send_command, desk.home, "panic", {"reason": "x", "actor": "a"})
    assert desk.calls == []


async def test_a_replayed_request_is_refused_because_the_nonce_differs(desk: Desk) -> None:
    captured: list[bytes] = []
    good = signed(desk.key, "panic", {"reason": "first", "actor": "panic:alice"})

    def record(nonce: bytes) -> bytes:
        captured.append(good(nonce))
        return captured[-1]

    first = await asyncio.to_thread(exchange, desk.port, record)
    assert first["ok"] is True
    replay = await asyncio.to_thread(exchange, desk.port, lambda nonce: captured[0])
    assert replay["ok"] is False and "authentication failed" in replay["error"]
    assert len(desk.calls) == 1


def _no_mac(nonce: bytes) -> bytes:
    return b'{"command":"panic","args":{"reason":"x","actor":"a"}}\n'


@pytest.mark.parametrize(
    "line, error",
    [
        (b"this is not json\n", "not JSON"),
        (b"[1, 2, 3]\n", "not a JSON object"),
        (b'{"command": "panic"}\n', "'command' and an object 'args'"),
        (b'{"command": 7, "args": {}, "mac": "00"}\n', "'command' and an object 'args'"),
        (_no_mac(b""), "not authenticated"),
        (b'{"command":"panic","args":{"reason":"x"},"mac":"zz\xc3\xa9"}\n', "authentication failed"),
        (b'{"command":"panic","args":{"n":NaN},"mac":"00"}\n', "no canonical JSON form"),
        (b"x" * (100 * 1024) + b"\n", "longer than 65536 bytes"),
        (b"[" * 60_000 + b"\n", "nested too deep"),
        (b'{"command":"panic","args":{"a":' + b"[" * 60_000 + b']}, "mac":"00"}\n', "nested too deep"),
    ],
    ids=["text", "array", "no-args", "command-not-string", "no-mac", "bad-mac", "nan", "oversized", "deep", "deep-args"],
)
async def test_malformed_requests_are_refused(desk: Desk, line: bytes, error: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="app.engine.control")
    reply = await asyncio.to_thread(exchange, desk.port, lambda nonce: line)
    assert reply["ok"] is False and error in reply["error"]
    assert desk.calls == [] and desk.engine.trading_state is TradingState.ACTIVE
    assert any("refused" in record.getMessage() for record in caplog.records)
    # the server is still there for the real thing
    assert (await asyncio.to_thread(send_command, desk.home, "panic", {"reason": "r", "actor": "a"}))["ok"] is True


async def test_unknown_command_is_refused_even_when_signed(desk: Desk) -> None:
    reply = await asyncio.to_thread(exchange, desk.port, signed(desk.key, "flatten_everything", {}))
    assert reply == {"ok": False, "error": "unknown command 'flatten_everything'", "mac": reply["mac"]}
    assert desk.calls == []


async def test_a_silent_client_is_dropped_after_the_read_timeout(desk: Desk) -> None:
    def silent() -> dict[str, Any]:
        # The client's own timeout is ten times the server's: only the server's can end this.
        with socket.create_connection(("127.0.0.1", desk.port), timeout=5) as sock:
            stream = sock.makefile("rb")
            stream.readline()
            reply: dict[str, Any] = json.loads(stream.readline())
            return reply

    reply = await asyncio.to_thread(silent)
    assert reply["ok"] is False and reply["error"] == "no request within 0.5s"


async def test_a_failing_handler_answers_with_an_error(desk: Desk) -> None:
    reply = await asyncio.to_thread(send_command, desk.home, "broken", {})
    assert reply == {"ok": False, "error": "command 'broken' failed: RuntimeError"}


async def test_the_key_never_reaches_the_log_or_an_error(desk: Desk, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key_hex = desk.key.hex()
    await asyncio.to_thread(exchange, desk.port, signed(os.urandom(32), "panic", {}))
    await asyncio.to_thread(exchange, desk.port, lambda nonce: b"garbage\n")
    await asyncio.to_thread(send_command, desk.home, "broken", {})
    path = desk.home / "control.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "key": "ab" * 32}))
    with pytest.raises(ControlUnavailable) as caught:
        await asyncio.to_thread(send_command, desk.home, "panic", {})
    assert key_hex not in caught.value.reason and "ab" * 32 not in caught.value.reason
    assert all(key_hex not in record.getMessage() and key_hex not in (record.exc_text or "") for record in caplog.records)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX mode bits; on Windows the profile folder's ACL protects the file")
async def test_control_file_is_readable_only_by_the_user(desk: Desk) -> None:
    path = desk.home / "control.json"
    assert path.stat().st_mode & 0o777 == 0o600
    document = json.loads(path.read_text())
    assert set(document) == {"pid", "port", "key", "started_ns"}
    assert document["pid"] == os.getpid() and document["port"] == desk.port and len(bytes.fromhex(document["key"])) == 32
    assert [p.name for p in desk.home.iterdir()] == ["control.json"]  # no temporary file left behind


async def test_close_removes_the_file_and_stops_listening(tmp_path: Path) -> None:
    server = ControlServer(tmp_path, {})
    await server.start()
    port = server.port
    await server.close()
    assert not (tmp_path / "control.json").exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_close_leaves_a_newer_desks_file_alone(tmp_path: Path) -> None:
    server = ControlServer(tmp_path, {})
    await server.start()
    newer = {"pid": os.getpid() + 1, "port": 1, "key": "00" * 32, "started_ns": 1}
    (tmp_path / "control.json").write_text(json.dumps(newer))
    await server.close()
    assert json.loads((tmp_path / "control.json").read_text()) == newer


async def test_each_start_gets_a_fresh_key(tmp_path: Path) -> None:
    keys = []
    for _ in range(2):
        server = ControlServer(tmp_path, {})
        await server.start()
        keys.append(json.loads((tmp_path / "control.json").read_text())["key"])
        await server.close()
    assert keys[0] != keys[1]


# -- the client when there is no desk ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_control(home: Path, **document: Any) -> None:
    (home / "control.json").write_text(json.dumps({"pid": 999_999, "port": free_port(), "key": "11" * 32,
                                                   "started_ns": 1, **document}))


def test_stale_control_file_with_nothing_listening_fails_fast(tmp_path: Path) -> None:
    write_control(tmp_path)
    # Fast by cause: the refusal itself ends it ("nothing listens"), not the 2 s timeout running out.
    with pytest.raises(ControlUnavailable, match="nothing listens") as caught:
        send_command(tmp_path, "panic", {})
    assert caught.value.pid == 999_999


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("{not json", "not valid JSON"),
        ("[]", "does not hold a control description"),
        ('{"pid": 1, "port": "80", "key": "' + "11" * 32 + '"}', "no valid port"),
        ('{"pid": 1, "port": 70000, "key": "' + "11" * 32 + '"}', "no valid port"),
        ('{"pid": 1, "port": 8080, "key": "short"}', "no valid key"),
        ('{"pid": 1, "port": 8080, "key": "' + "zz" * 32 + '"}', "no valid key"),
    ],
)
def test_missing_or_garbage_control_file(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "control.json").write_text(content)
    with pytest.raises(ControlUnavailable, match=message):
        send_command(tmp_path, "panic", {})


@contextmanager
def listener(behaviour: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback server that is not the desk: accepts one connection and does ``behaviour`` with it."""
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            behaviour(connection)
            done.wait(5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        done.set()
        thread.join(5)
        server.close()


def test_a_listener_that_never_answers_times_out(tmp_path: Path) -> None:
    with listener(lambda connection: None) as port:
        write_control(tmp_path, port=port)
        # The listener's thread holds the connection for 5 s: only the client's 0.3 s can end this.
        with pytest.raises(ControlUnavailable, match="did not answer within 0.3s"):
            send_command(tmp_path, "panic", {}, timeout=0.3)


def test_a_listener_that_is_not_the_desk_is_not_trusted(tmp_path: Path) -> None:
    def impostor(connection: socket.socket) -> None:
        connection.sendall(b'{"nonce": "' + b"22" * 32 + b'", "v": 1}\n')
        connection.recv(65536)
        connection.sendall(b'{"ok": true, "state": "HALTED", "mac": "' + b"00" * 32 + b'"}\n')

    with listener(impostor) as port:
        write_control(tmp_path, port=port)
        with pytest.raises(ControlUnavailable, match="not from the desk"):
            send_command(tmp_path, "panic", {})


def test_a_listener_speaking_another_protocol(tmp_path: Path) -> None:
    with listener(lambda connection: connection.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")) as port:
        write_control(tmp_path, port=port)
        with pytest.raises(ControlUnavailable, match="does not speak the control protocol"):
            send_command(tmp_path, "panic", {})


# -- floods: no local process without the key can keep the operator's panic out ----------------------


@pytest.fixture
async def patient_desk(desk: Desk) -> AsyncIterator[Desk]:
    """``desk`` with a server that would wait 30 s for a request line: only dropping the oldest can let a newcomer in."""
    await desk.server.close()
    server = ControlServer(desk.home, {"panic": desk.server._handlers["panic"]}, read_timeout=30)
    await server.start()
    yield Desk(desk.engine, desk.broker, server, desk.home, desk.calls)
    await server.close()


def connect_idle(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that read their nonce and then say nothing."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    for sock in sockets:
        assert sock.recv(65536).startswith(b'{"nonce":')
    return sockets


def closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


async def test_a_flood_of_idle_connections_cannot_keep_the_operator_out(patient_desk: Desk) -> None:
    """Found: 20 idle connections held the 16 places, and panic was refused while they waited out the timeout."""
    desk = patient_desk
    flood = await asyncio.to_thread(connect_idle, desk.port, MAX_UNAUTHENTICATED + 20)
    try:
        started = time.monotonic()
        reply = await asyncio.to_thread(send_command, desk.home, "panic", {"reason": "r", "actor": "a"}, 2.0)
        took = time.monotonic() - started
        assert reply["ok"] is True and desk.calls == [{"reason": "r", "actor": "a"}]
        assert took < 1.0
        # The oldest were reset to make room, the newest of the flood are still open.
        assert await asyncio.to_thread(closed_by_peer, flood[0])
        assert desk.server.dropped >= 21
    finally:
        for sock in flood:
            sock.close()


async def test_the_oldest_unauthenticated_connection_makes_room_for_a_new_one(patient_desk: Desk) -> None:
    desk = patient_desk
    flood = await asyncio.to_thread(connect_idle, desk.port, MAX_UNAUTHENTICATED + 1)
    try:
        assert await asyncio.to_thread(closed_by_peer, flood[0])
        assert desk.server.dropped == 1
        # The newest one is still served, all the way to its (refused) answer.
        newest = flood[-1]
        newest.sendall(b"garbage\n")
        reply = await asyncio.to_thread(newest.recv, 65536)
        assert b"request is not JSON" in reply
    finally:
        for sock in flood:
            sock.close()


async def test_panic_gets_through_idle_garbage_and_reconnect_floods_at_once(
    patient_desk: Desk, caplog: pytest.LogCaptureFixture,
) -> None:
    desk = patient_desk
    caplog.set_level(logging.WARNING, logger="app.engine.control")
    with ExitStack() as stack:
        # Started off the loop: the floods' first connections wait for this server to accept them.
        await asyncio.to_thread(stack.enter_context, flooding(desk.port, "idle", "garbage", "reconnect"))
        for attempt in range(3):
            started = time.monotonic()
            reply = await asyncio.to_thread(send_command, desk.home, "panic", {"reason": f"r{attempt}", "actor": "a"}, 2.0, idempotent=True)
            assert reply["ok"] is True, reply
            assert time.monotonic() - started < 2.0
    assert [call["reason"] for call in desk.calls] == ["r0", "r1", "r2"]
    # Thousands of refusals and drops, summarised: the flood does not write a line per connection.
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) < 10


# -- the client retries what a flood dropped ---------------------------------------------------------


def reset(connection: socket.socket) -> None:
    """Close with a reset (RST), as the desk drops a connection to make room."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def fake_desk(key: bytes, connection: socket.socket, *, reset_after_request: bool = False) -> None:
    """Speaks the protocol as written in the module's description, with ``key``."""
    nonce = os.urandom(32)
    connection.sendall(json.dumps({"nonce": nonce.hex(), "v": 1}).encode() + b"\n")
    stream = connection.makefile("rb")
    request = json.loads(stream.readline())
    if reset_after_request:
        reset(connection)
        return
    reply = {"ok": True, "state": "HALTED", "seen": request["command"]}
    body = json.dumps({"reply": reply}, sort_keys=True, separators=(",", ":")).encode()
    reply["mac"] = hmac.new(key, nonce + body, hashlib.sha256).hexdigest()
    connection.sendall(json.dumps(reply).encode() + b"\n")
    stream.readline()  # until the client hangs up


@contextmanager
def listener_serving(*behaviours: Callable[[socket.socket], None]) -> Iterator[tuple[int, list[int]]]:
    """A loopback server that is not the desk: the n-th connection gets the n-th behaviour; yields the port and the count served."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    served: list[int] = []
    done = threading.Event()

    def serve() -> None:
        for behaviour in behaviours:
            while not done.is_set():
                try:
                    connection, _ = server.accept()
                    break
                except TimeoutError:
                    continue
            else:
                return
            with connection:
                behaviour(connection)
            served.append(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], served
    finally:
        done.set()
        thread.join(10)
        server.close()


def test_a_connection_dropped_before_the_request_is_tried_again(tmp_path: Path) -> None:
    key = os.urandom(32)

    def drop_after_nonce(connection: socket.socket) -> None:
        connection.sendall(b'{"nonce":"' + b"22" * 32 + b'","v":1}\n')
        reset(connection)

    with listener_serving(reset, drop_after_nonce, lambda c: fake_desk(key, c)) as (port, served):
        write_control(tmp_path, port=port, key=key.hex())
        reply = send_command(tmp_path, "rearm", {}, timeout=5)
    assert reply == {"ok": True, "state": "HALTED", "seen": "rearm"} and len(served) == 3


def test_a_connection_dropped_after_the_request_is_tried_again_only_if_idempotent(tmp_path: Path) -> None:
    key = os.urandom(32)

    def dropped(connection: socket.socket) -> None:
        fake_desk(key, connection, reset_after_request=True)

    with listener_serving(dropped, lambda c: fake_desk(key, c)) as (port, served):
        write_control(tmp_path, port=port, key=key.hex())
        with pytest.raises(ControlUnavailable, match="may or may not have run"):
            send_command(tmp_path, "rearm", {}, timeout=5)
    assert len(served) == 1
    with listener_serving(dropped, lambda c: fake_desk(key, c)) as (port, served):
        write_control(tmp_path, port=port, key=key.hex())
        assert send_command(tmp_path, "panic", {}, timeout=5, idempotent=True)["ok"] is True
    assert len(served) == 2


def test_a_desk_that_keeps_dropping_the_client_ends_in_its_timeout(tmp_path: Path) -> None:
    with listener_serving(*[reset] * 10_000) as (port, served):
        write_control(tmp_path, port=port)
        started = time.monotonic()
        with pytest.raises(ControlUnavailable, match=r"did not answer within 0.5s"):
            send_command(tmp_path, "panic", {}, timeout=0.5, idempotent=True)
        assert time.monotonic() - started < 2
    assert len(served) > 1  # tried again, and again, until the time was up


# -- the control channel of a desk that is still starting ----------------------------------------------


async def test_a_panic_while_the_start_retries_the_brokers_book_halts_the_desk(tmp_path: Path) -> None:
    """Found: the channel opened only once the start was over, so a panic while it retried the
    broker's order book found no desk to tell, and the desk went on to trade ACTIVE."""
    made: list[BookReadFails] = []
    built = asyncio.Event()

    async def failing_book(entries: list[UniverseEntry], clock_ns: Callable[[], int]) -> tuple[Broker, list[UniverseEntry]]:
        made.append(BookReadFails(PaperConfig(seed=7, wall_clock_ns=clock_ns), entries,
                                  BrokerError(BrokerErrorCode.UNAVAILABLE, "HTTP 502")))
        built.set()
        return made[0], entries

    home = cover_today(tmp_path)
    options = SimulationOptions(
        seconds=0.5, instruments=2, control_home=home, broker_factory=failing_book, calendar=load_effective(home),
        # Retried far longer than the test takes: the start is over only once the book heals.
        engine=EngineConfig(start_book_retry_s=3_600, start_book_backoff_s=0.01),
    )
    run = asyncio.create_task(run_simulation(options))
    await built.wait()
    await made[0].failed.wait()
    reply = await asyncio.to_thread(send_command, home, "panic", {"reason": "panic at start", "actor": "panic:ops"})
    assert reply["ok"] is True and reply["state"] == "HALTED", reply
    rearm = await asyncio.to_thread(send_command, home, "rearm", {"reason": "too soon", "actor": "ops", "to": "ACTIVE"})
    assert rearm["ok"] is False and "still starting" in rearm["error"], rearm
    assert not run.done()
    made[0].heal()
    result = await run
    # The start finished after the panic and left the desk HALTED; nothing was traded.
    assert result["trading_state"] == "HALTED"
    assert result["orders"]["accepted"] == 0
    assert result["kill_switch"]["reason"] == "panic at start"
    assert result["kill_switch"]["working_after"] == 0
