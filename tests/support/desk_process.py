"""A desk as a trader runs it: `main.py simulate` in its own process, which a test may kill."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.store.db import make_engine
from app.store.desk_state import StoredOrder, scope_for_home, working_orders
from app.store.export import rows
from tests.support.calendar import cover_today

ROOT = Path(__file__).resolve().parents[2]


def url_of(home: Path) -> str:
    """The SQLite store of a data folder (the default when no database URL is set)."""
    return f"sqlite:///{home}/bulwark.db"


def states(home: Path) -> list[tuple[str, str, str]]:
    """Every stored trading state of ``home``'s desk, oldest first: (state, reason, actor)."""
    engine = make_engine(url_of(home))
    try:
        with engine.connect() as connection:
            found = connection.exec_driver_sql("SELECT state, reason, actor FROM trading_state ORDER BY id").all()
    finally:
        engine.dispose()
    return [(row[0], row[1], row[2]) for row in found]


def audit_records(home: Path, kind: str) -> list[dict[str, object]]:
    """The audit records of one event type in ``home``'s chain, in order."""
    engine = make_engine(url_of(home))
    try:
        return [r for r in rows(engine) if r["event_type"] == kind]
    finally:
        engine.dispose()


def main_env(home: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(cover_today(home))
    # Any free port for the local API: tests run side by side, and a real desk may hold the default.
    environ["BULWARK_API__PORT"] = "0"
    environ.update(env or {})
    return environ


def run_main(home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], input=stdin, capture_output=True, text=True,
                          env=main_env(home, env), timeout=180, check=False)


@dataclass
class RunningDesk:
    """A `simulate` process and the file its output goes to (a pipe nobody reads would stall its logging)."""

    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
        """Poll ``condition`` until it holds; fail with the desk's output if the desk ends first or it never does."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"the desk ended (exit {self.process.returncode}) before {what}: {self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.output()[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no clean-up runs, as when the desk's machine loses power or the process is killed."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=60)


@contextmanager
def desk(home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> Iterator[RunningDesk]:
    """A `simulate` desk long enough to outlast the test, yielded once its control channel is published.

    Whatever the test did, the process is killed on the way out.
    """
    home.mkdir(parents=True, exist_ok=True)
    log = home.parent / f"{home.name}-desk.out"
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "simulate", "--seconds", "600", *args],
                                   stdin=subprocess.PIPE, stdout=sink, stderr=subprocess.STDOUT, text=True,
                                   env=main_env(home, env))
    running = RunningDesk(process, log)
    try:
        assert process.stdin is not None
        process.stdin.write(stdin)
        process.stdin.close()
        running.wait_until((home / "control.json").exists, "the desk published its control channel")
        yield running
    finally:
        running.kill()


def stored_working(home: Path) -> list[StoredOrder]:
    """What the store in ``home`` shows working for the data folder's desk."""
    engine = make_engine(f"sqlite:///{home}/bulwark.db")
    try:
        return working_orders(engine, scope_for_home(engine, home))
    finally:
        engine.dispose()
