"""`main.py panic` against a running `main.py simulate` desk when its control channel is flooded or out of reach.

Both are real processes on a real data folder: the desk (``tests.support.desk_process``), the
panic and rearm commands, and the flood (``tests.support.control_flood``), each in its own process.
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest

from app.engine.control import send_command
from app.store.db import make_engine
from tests.support.control_flood import flooding
from tests.support.desk_process import RunningDesk, desk, run_main, url_of

pytestmark = pytest.mark.slow

# The desk must act on the persisted flag within this long of the flag's row being stamped.
FLAG_TO_HALT_NS = 500_000_000


def rows(home: Path) -> list[tuple[int, int, str, str, str]]:
    """Every trading_state row: (id, ts_ns, state, reason, actor)."""
    engine = make_engine(url_of(home))
    try:
        with engine.connect() as connection:
            found = connection.exec_driver_sql("SELECT id, ts_ns, state, reason, actor FROM trading_state ORDER BY id").all()
    finally:
        engine.dispose()
    return [(row[0], row[1], row[2], row[3], row[4]) for row in found]


def flag_to_halt_ns(home: Path, reason: str) -> int:
    """From the flag's stamp to the desk's own HALTED row for it: both times recorded by the writers, not the test."""
    found = rows(home)
    flag = next(row for row in reversed(found) if row[2] == "HALTED" and row[3] == reason)
    halted = next(row for row in found if row[0] > flag[0] and row[2] == "HALTED" and row[4] == flag[4])
    assert halted[3] == f"kill switch: {reason}"
    return halted[1] - flag[1]


def flag_lines(running: RunningDesk) -> list[str]:
    return [line for line in running.output().splitlines() if "HALTED flag by" in line and "engaging the kill switch" in line]


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rearm(home: Path, running: RunningDesk) -> None:
    """Re-arm over the channel, once the kill switch's sweep is over (a re-arm is refused while it runs)."""
    def done() -> bool:
        proc = run_main(home, "rearm", "--reason", "checked the book")
        return proc.returncode == 0 and "ACTIVE" in proc.stdout

    running.wait_until(done, "a re-arm the desk accepts", timeout=30)


def test_panic_gets_through_a_control_port_flooded_by_a_process_without_the_key(tmp_path: Path) -> None:
    """Found: about 20 idle connections held all 16 places; panic exited 1 and the desk stayed ACTIVE."""
    home = tmp_path / "home"
    with desk(home) as running:
        port = json.loads((home / "control.json").read_text())["port"]
        with flooding(port, "idle", "garbage", "reconnect"):
            started = time.monotonic()
            proc = run_main(home, "panic", "--reason", "flooded")
            took = time.monotonic() - started
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # Through the channel itself, not only through the flag.
        assert "the desk confirmed: trading HALTED" in proc.stdout, proc.stdout
        state = rows(home)[-1]
        assert state[2] == "HALTED" and state[3] == "kill switch: flooded", state
        assert running.process.poll() is None
    # The command's own start-up is most of it; the exchange itself has a 2 s deadline.
    assert took < 30


def test_the_desk_halts_on_the_flag_when_the_channel_is_out_and_not_on_its_own_rows(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with desk(home) as running:
        published = (home / "control.json").read_text()
        out_of_reach = json.dumps({**json.loads(published), "port": dead_port()})

        # 1. The channel points nowhere: the flag alone halts the desk, and panic hears of it through the store.
        (home / "control.json").write_text(out_of_reach)
        proc = run_main(home, "panic", "--reason", "flag one")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "nothing listens" in proc.stdout
        assert "the desk confirmed through the store: trading HALTED (kill switch: flag one)" in proc.stdout
        first = flag_to_halt_ns(home, "flag one")
        assert 0 < first < FLAG_TO_HALT_NS, first
        assert len(flag_lines(running)) == 1

        # 2. The desk's own changes: a re-arm after the flag's halt, a kill switch over the channel alone
        # (no flag: `main.py panic` would write one), and a re-arm.
        (home / "control.json").write_text(published)
        rearm(home, running)
        told = send_command(home, "panic", {"reason": "over the channel", "actor": "panic:test"}, timeout=10)
        assert told["ok"] is True and told["state"] == "HALTED", told
        rearm(home, running)
        assert rows(home)[-1][2] == "ACTIVE"

        # 3. Another flag. The watch reads rows in order, so by the time it acts on this one it has
        # passed every row of step 2: acting on this one alone shows it took none of them for a flag.
        (home / "control.json").write_text(out_of_reach)
        proc = run_main(home, "panic", "--reason", "flag two")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        second = flag_to_halt_ns(home, "flag two")
        assert 0 < second < FLAG_TO_HALT_NS, second
        lines = flag_lines(running)
        assert len(lines) == 2 and "flag one" in lines[0] and "flag two" in lines[1], lines
        assert re.search(r"found in the store \(row \d+, \d+ ms after it was stamped\)", lines[1])
