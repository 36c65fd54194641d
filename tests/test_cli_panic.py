"""`python main.py panic` as an operator runs it: a subprocess on a real data folder, with and without a desk."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest

from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.cli import main
from app.cli.panic import DIRECT_CANCEL, DirectCancel
from app.domain.trading_state import TradingState
from app.engine.control import ControlServer
from app.engine.engine import Engine
from app.logs import unconfigure_logging
from app.settings import Settings
from app.store.audit_writer import AuditWriter
from app.store.desk_identity import UNFOLDERED_DESK_ID, load_or_create, register
from app.store.desk_lock import DeskLock
from app.store.last_desk import record_last_desk
from app.store.migrate import open_store
from tests.support.calendar import cover_today
from tests.support.desk_process import (
    audit_records,
    desk,
    states,
    stored_working,
    url_of,
)
from tests.support.limits import wide_limits

ROOT = Path(__file__).resolve().parents[1]
RELIANCE = next(e for e in load_universe() if e.instrument.key == "NSE:RELIANCE")


def run_main(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(cover_today(home))
    environ.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          env=environ, timeout=120, check=False)


def last_state(home: Path) -> tuple[str, str, str] | None:
    stored = states(home)
    return stored[-1] if stored else None


def panic_records(home: Path) -> list[dict[str, object]]:
    return audit_records(home, "kill_switch.engaged")


@dataclass
class DeskThread:
    """A desk in this process: a real engine on the paper broker with the store and the control server.

    Runs on its own asyncio loop in a thread, as the GUI's loop would, so the panic subprocess
    talks to it over the real channel while the test waits.
    """

    home: Path
    store: bool = True
    ready: threading.Event = field(default_factory=threading.Event)
    started_as: TradingState | None = None
    state: TradingState | None = None
    halt_reason: str = ""
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread, which raises it
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        writer = None
        desk_id = UNFOLDERED_DESK_ID
        if self.store:
            # The data folder's desk, registered as the real desk registers (adopting a flag written before it).
            identity = load_or_create(self.home)
            store = open_store(url_of(self.home))
            register(store, identity)
            desk_id = identity.desk_id
            writer = AuditWriter(store, desk_id=desk_id)
            writer.start()
        broker = PaperBroker(PaperConfig(seed=7, tick_interval_ms=None), universe=[RELIANCE])
        engine = Engine(broker, [RELIANCE.instrument], audit=writer, limits=wide_limits([RELIANCE.instrument]), desk_id=desk_id)
        await engine.start()

        async def panic(args: dict[str, Any]) -> dict[str, Any]:
            engine.halt(args["reason"], args["actor"])
            return {"ok": True, "state": str(engine.trading_state), "working": len(engine.oms.working()),
                    "expected_clear_s": 0.0}

        server = ControlServer(self.home, {"panic": panic})
        await server.start()
        self.started_as = engine.trading_state
        self.ready.set()
        await self._stop.wait()
        self.state, self.halt_reason = engine.trading_state, engine.halt_reason
        await server.close()
        await engine.stop()
        if writer is not None:
            writer.close()
            writer.engine.dispose()

    def __enter__(self) -> Self:
        self._thread.start()
        assert self.ready.wait(30), "desk did not start"
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error


def test_no_desk_running_writes_the_flag_and_exits_0(tmp_path: Path) -> None:
    proc = run_main(tmp_path, "panic", "--reason", "runaway strategy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "written: the next start of the desk is HALTED" in out
    assert "no desk answered" in out and "does not exist" in out
    assert "no desk is running on this database" in out
    assert "paper broker lives inside the desk process" in out
    # each step is printed in order
    assert out.index("[1/3]") < out.index("[2/3]") < out.index("[3/3]")
    state = last_state(tmp_path)
    assert state is not None and state[:2] == ("HALTED", "runaway strategy") and state[2].startswith("panic:")
    [record] = panic_records(tmp_path)
    assert record["source"] == "panic" and str(record["actor"]).startswith("panic:")
    verify = run_main(tmp_path, "audit", "verify")
    assert verify.returncode == 0 and "verified 1 records" in verify.stdout, verify.stdout + verify.stderr


def test_the_next_desk_start_is_halted(tmp_path: Path) -> None:
    assert run_main(tmp_path, "panic").returncode == 0
    with DeskThread(tmp_path) as desk:
        pass
    assert desk.state is TradingState.HALTED
    assert "panic from the command line" in desk.halt_reason


def test_stale_control_file_from_a_crashed_desk(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "control.json").write_text(json.dumps({"pid": 4242, "port": port, "key": "11" * 32, "started_ns": 1}))
    proc = run_main(tmp_path, "panic")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The refused connection ends the wait at once ("nothing listens"), not the timeout running out.
    assert "nothing listens" in proc.stdout


def test_desk_holds_the_lock_but_does_not_answer_exits_1(tmp_path: Path) -> None:
    open_store(url_of(tmp_path)).dispose()
    with DeskLock(url_of(tmp_path)):
        proc = run_main(tmp_path, "panic", "--timeout", "0.5")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "is running on this database but is not answering" in proc.stderr
    assert "ACTION NEEDED: cancel the working orders on the broker's own site" in proc.stderr
    assert "end the desk process" in proc.stderr
    # the flag was still written: whenever that desk restarts, it is halted
    state = last_state(tmp_path)
    assert state is not None and state[0] == "HALTED"


def test_running_desk_confirms_halted_exit_0(tmp_path: Path) -> None:
    with DeskThread(tmp_path) as desk, DeskLock(url_of(tmp_path)):
        proc = run_main(tmp_path, "panic", "--reason", "market gone mad")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the desk confirmed: trading HALTED; 0 working orders being cancelled; expected clear in about 0.0s" in proc.stdout
    assert "done: the desk is HALTED and will start HALTED" in proc.stdout
    assert "[3/3]" not in proc.stdout
    assert desk.started_as is TradingState.ACTIVE
    assert desk.state is TradingState.HALTED and desk.halt_reason == "market gone mad"
    # the panic process and the desk appended to one chain; it still verifies
    verify = run_main(tmp_path, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert len(panic_records(tmp_path)) == 1
    state = last_state(tmp_path)
    assert state is not None and state[0] == "HALTED"


def test_store_unusable_still_tells_the_desk_but_exits_1(tmp_path: Path) -> None:
    # a database folder that does not exist: the flag cannot be written
    broken = {"BULWARK_DB_URL": f"sqlite:///{tmp_path}/missing/bulwark.db"}
    with DeskThread(tmp_path, store=False) as desk:
        proc = run_main(tmp_path, "panic", env=broken)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "could not write the HALTED flag" in proc.stderr and "carrying on to tell the desk" in proc.stderr
    assert "the desk confirmed: trading HALTED" in proc.stdout
    assert "the HALTED flag was NOT written" in proc.stderr
    assert desk.started_as is TradingState.ACTIVE and desk.state is TradingState.HALTED


def test_store_unusable_and_no_desk_exits_1(tmp_path: Path) -> None:
    proc = run_main(tmp_path, "panic", env={"BULWARK_DB_URL": f"sqlite:///{tmp_path}/missing/bulwark.db"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the HALTED flag was NOT written" in proc.stderr and "the next start will not be halted" in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--timeout", "0"], "--timeout"),
        (["--timeout", "soon"], "--timeout"),
        (["--reason", ""], "must not be empty"),
        (["--reason", "   "], "must not be empty"),
        (["--reason", "x" * 501], "at most 500"),
        (["--force"], "unrecognized arguments"),
        (["--broker", "zerodha"], "argument --broker: invalid choice: 'zerodha'"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_main(tmp_path, "panic", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "bulwark.db").exists()


# -- the direct-cancel branch, in process (no broker registers one in this build yet) ------------------


@contextmanager
def in_process(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [k for k in os.environ if k.startswith("BULWARK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BULWARK_HOME", str(cover_today(home)))
    try:
        yield
    finally:
        unconfigure_logging()


def test_direct_cancel_at_the_broker_when_the_desk_is_silent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    def cancel(settings: Settings, token_stdin: bool) -> str:
        seen.append(settings.broker)
        return "cancelled 3 working orders at paper"

    monkeypatch.setitem(DIRECT_CANCEL, "paper", DirectCancel(cancel))
    open_store(url_of(tmp_path)).dispose()
    with in_process(tmp_path, monkeypatch), DeskLock(url_of(tmp_path)):
        code = main(["panic", "--timeout", "0.2"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert seen == ["paper"]
    assert "cancelled 3 working orders at paper" in out
    assert "is running on this database but is not answering" in err


def test_a_failed_direct_cancel_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    def cancel(settings: Settings, token_stdin: bool) -> str:
        raise ConnectionError("broker unreachable")

    monkeypatch.setitem(DIRECT_CANCEL, "paper", DirectCancel(cancel))
    with in_process(tmp_path, monkeypatch):
        code = main(["panic", "--timeout", "0.2"])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "cancelling at paper failed: ConnectionError: broker unreachable" in err
    assert "ACTION NEEDED" in err


def test_panic_halts_a_running_simulate_desk(tmp_path: Path) -> None:
    """End to end: the desk and the panic command are both `main.py` processes, as on a workstation."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(cover_today(tmp_path))
    desk = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "simulate", "--seconds", "8", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "control.json").exists():
            assert desk.poll() is None, desk.communicate()
            assert time.monotonic() < deadline, "the desk never published its control channel"
            time.sleep(0.05)
        proc = run_main(tmp_path, "panic", "--reason", "end to end")
        out, err = desk.communicate(timeout=120)
    finally:
        if desk.poll() is None:
            desk.kill()
            desk.wait()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the desk confirmed: trading HALTED" in proc.stdout
    assert desk.returncode == 0, err
    report = json.loads(out)
    assert report["trading_state"] == "HALTED"
    # The panic engaged the desk's own kill switch, with its reason, and the sweep cleared the book.
    assert report["kill_switch"]["reason"] == "end to end"
    assert report["kill_switch"]["working_after"] == 0 and report["orders"]["working"] == 0
    assert not (tmp_path / "control.json").exists()  # the desk removed it on the way out
    state = last_state(tmp_path)
    assert state is not None and state[0] == "HALTED"
    verify = run_main(tmp_path, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


# -- which broker panic cancels at when no desk answers --------------------------------------------------


@pytest.fixture(scope="module")
def killed_paper_desk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder of a paper desk killed (SIGKILL) while the store showed orders working."""
    home = tmp_path_factory.mktemp("killed") / "home"
    with desk(home, "--orders-per-sec", "8") as running:
        running.wait_until(lambda: bool(stored_working(home)), "orders working in the store")
        running.kill()
    return home


@pytest.fixture
def after_a_killed_desk(killed_paper_desk: Path, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(killed_paper_desk, home)
    return home


def test_panic_after_a_killed_desk_cancels_at_the_broker_that_desk_used(after_a_killed_desk: Path) -> None:
    home = after_a_killed_desk
    working = stored_working(home)
    # The settings now name another broker than the one the desk ran on.
    proc = run_main(home, "panic", "--timeout", "0.3", env={"BULWARK_BROKER": "breeze"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nothing listens" in proc.stdout  # the killed desk's control.json is stale
    assert "broker paper: the last desk in this data folder started on it" in proc.stdout
    assert "the settings say breeze" in proc.stdout
    assert "paper broker lives inside the desk process" in proc.stdout
    assert f"the store still shows {len(working)} orders working at paper: they ended with the desk process" in proc.stdout
    state = last_state(home)
    assert state is not None and state[0] == "HALTED"


def test_panic_that_can_cancel_nothing_lists_what_is_working_and_exits_1(after_a_killed_desk: Path) -> None:
    home = after_a_killed_desk
    # A data folder from before desks recorded their broker: paper is only the settings' guess.
    (home / "last-desk.json").unlink()
    working = stored_working(home)
    proc = run_main(home, "panic", "--timeout", "0.3")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "broker paper: from the settings (no desk has recorded its broker in this data folder)" in proc.stdout
    assert f"still working at paper as the store last showed ({len(working)}):" in proc.stderr
    for order in working[:20]:
        assert order.client_order_id in proc.stderr
    assert "ACTION NEEDED" in proc.stderr and "run panic again with --broker NAME" in proc.stderr
    # Told where the desk traded, panic knows those orders ended with it.
    confirmed = run_main(home, "panic", "--timeout", "0.3", "--broker", "paper")
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    assert "broker paper: given with --broker" in confirmed.stdout


def test_broker_flag_overrides_the_recorded_broker(tmp_path: Path) -> None:
    record_last_desk(tmp_path, "breeze")
    proc = run_main(tmp_path, "panic", "--timeout", "0.3", "--broker", "paper")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broker paper: given with --broker" in proc.stdout
    assert "breeze" not in proc.stdout + proc.stderr


def test_a_recorded_broker_without_a_direct_cancel_exits_1(tmp_path: Path) -> None:
    (tmp_path / "last-desk.json").write_text(json.dumps({"broker": "zerodha", "pid": 1, "started_ns": 1}))
    proc = run_main(tmp_path, "panic", "--timeout", "0.3")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no direct cancel for broker 'zerodha' in this build" in proc.stdout
    assert "the store shows no order working from this desk" in proc.stderr
    assert "ACTION NEEDED" in proc.stderr


def test_a_damaged_last_desk_record_is_reported_not_taken_for_no_desk(tmp_path: Path) -> None:
    (tmp_path / "last-desk.json").write_text("{half a file")
    proc = run_main(tmp_path, "panic", "--timeout", "0.3")
    assert "cannot tell which broker the last desk used" in proc.stderr and "not valid JSON" in proc.stderr
    assert "broker paper: from the settings, a guess" in proc.stdout
    # The store shows nothing working, but it never sees orders at Breeze: the desk that wrote the
    # record may have traded there, so an empty store proves nothing.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ACTION NEEDED: which broker the last desk traded on is unknown (paper was only the settings' guess)" in proc.stderr
    assert ".venv/bin/python main.py panic --broker breeze" in proc.stderr
    assert "done:" not in proc.stdout
    state = last_state(tmp_path)
    assert state is not None and state[0] == "HALTED"
    told = run_main(tmp_path, "panic", "--timeout", "0.3", "--broker", "paper")
    assert told.returncode == 0, told.stdout + told.stderr
    assert "broker paper: given with --broker" in told.stdout
