"""`python main.py simulate` as a user runs it: a subprocess, a fresh data folder, one JSON object."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.calendar import cover_today

ROOT = Path(__file__).resolve().parents[1]


def run_main(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(cover_today(home))
    environ.update(env or {})
    workdir = home.parent / f"{home.name}-cwd"
    workdir.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=environ, timeout=120, cwd=workdir,
        check=False,
    )


def test_simulate_json_report(tmp_path: Path) -> None:
    proc = run_main(
        tmp_path, "simulate", "--seconds", "3", "--seed", "5", "--json", "--orders-per-sec", "8", "--instruments", "6"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for key in ("ticks", "orders", "rejections", "fills", "positions", "exposure", "pnl", "loop_lag_ms", "trading_state"):
        assert key in report
    orders = report["orders"]
    assert set(orders) >= {"submitted", "accepted", "rejected", "filled", "cancelled", "working"}
    # Every order the flow submitted was either accepted or refused with a code; how many a run
    # of three seconds submits is the machine's speed, not the report's correctness.
    assert orders["submitted"] == orders["accepted"] + orders["rejected"]
    assert orders["accepted"] > 0 and orders["filled"] > 0
    # An accepted order needed a last price, and every market step prices all six instruments.
    # (How many steps a run of N seconds gets is the loop's timing, not the report's correctness.)
    assert report["ticks"] >= 6
    assert report["trading_state"] == "ACTIVE"
    assert report["kill_switch"] is None
    assert sum(report["rejections"].values()) == orders["rejected"]
    assert report["bad_orders_sent"] <= orders["rejected"]
    assert report["exposure"]["gross"] >= abs(report["exposure"]["net"])
    assert report["loop_lag_ms"]["p99"] >= report["loop_lag_ms"]["p50"] >= 0
    assert report["oms"]["malformed_updates"] == 0
    # the log lands in the data folder; nothing is written to the working directory
    log_file = tmp_path / "logs" / "bulwark.log"
    assert log_file.is_file() and "engine running" in log_file.read_text()
    assert list((tmp_path.parent / f"{tmp_path.name}-cwd").iterdir()) == []


def test_bad_orders_in_the_flow_are_all_rejected(tmp_path: Path) -> None:
    proc = run_main(tmp_path, "simulate", "--seconds", "4", "--seed", "11", "--json", "--orders-per-sec", "9", "--instruments", "27")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["bad_orders_sent"] > 0
    local = {"INVALID_QUANTITY", "NOT_LOT_MULTIPLE", "PRICE_OFF_TICK", "INVALID_PRICE", "UNKNOWN_INSTRUMENT"}
    assert sum(n for r, n in report["rejections"].items() if r in local) == report["bad_orders_sent"]
    # Well-formed orders the gate must refuse are in the flow too.
    assert set(report["rejections"]) & {"ORDER_QUANTITY_LIMIT", "PRICE_COLLAR", "DUPLICATE_ORDER"}
    assert report["audit"]["verified"] is True


def test_kill_at_engages_the_kill_switch_mid_run(tmp_path: Path) -> None:
    proc = run_main(tmp_path, "simulate", "--seconds", "5", "--seed", "3", "--json", "--orders-per-sec", "6", "--kill-at", "2.5")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    kill = report["kill_switch"]
    assert set(kill) >= {"engaged_at", "halted_in_us", "cancels", "cleared_in_ms", "working_after"}
    # Mid-run by cause, not by the clock: after the desk started and took orders (none is accepted
    # once HALTED, which simulate never lifts), and before orders it then refused (below). How
    # fast the halt is belongs to tests/bench/kill_switch.py.
    assert kill["engaged_at"] > 0 and report["orders"]["accepted"] > 0
    assert kill["halted_in_us"] > 0
    assert kill["working_after"] == 0 and report["orders"]["working"] == 0
    # Each order working at the switch is accounted for: cancelled, or filled before its cancel landed.
    assert sum(kill["outcomes"].values()) >= kill["working_at_engage"]
    assert set(kill["outcomes"]) <= {"CANCELLED", "FILLED", "ENDED"}
    assert report["trading_state"] == "HALTED"
    # Orders after the switch are refused, with their reason counted.
    assert report["rejections"].get("TRADING_HALTED", 0) > 0
    assert report["audit"]["verified"] is True


def test_simulate_past_the_universe_file_trades_synthetic_instruments(tmp_path: Path) -> None:
    proc = run_main(
        tmp_path, "simulate", "--seconds", "2", "--seed", "7", "--json", "--orders-per-sec", "8", "--instruments", "250"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    universe = report["universe"]
    assert universe["instruments"] == 250 and universe["synthetic_underlyings"] > 0
    # Every instrument, the 223 past the file included, had a price before the flow started, and
    # limits cover each one: none of the run's orders can be refused for want of them.
    assert universe["priced"] == 250
    assert universe["without_limits"] == 0 and "NO_LIMIT" not in report["rejections"]
    assert "[defaults]" in universe["limits"]
    assert report["orders"]["accepted"] > 0
    assert report["audit"]["verified"] is True


def test_synthetic_limits_cover_only_the_synthetic_underlyings() -> None:
    from app.brokers.paper import UniverseEntry
    from app.desk import DEFAULT_LIMITS, synthetic_limits
    from app.domain.instruments import Exchange, Instrument, Segment
    from app.engine.risk.limits import load_limits_file

    def cash(symbol: str) -> Instrument:
        return Instrument(f"NSE:{symbol}", Exchange.NSE, symbol, symbol, Segment.CASH, 1, 5, 100_000)

    shipped = load_limits_file(DEFAULT_LIMITS)
    extended = synthetic_limits(["SYN0001", "SYN0002"])
    # Default deny still holds for a real name the file does not list...
    assert extended.for_instrument(cash("YESBANK")) is None
    # ... every real instrument keeps exactly the file's limits ...
    assert extended.for_instrument(cash("TCS")) == shipped.for_instrument(cash("TCS"))
    assert extended.for_underlying("TCS") == shipped.for_underlying("TCS")
    document = extended.document()
    assert {k: v for k, v in document["underlyings"].items() if not k.startswith("SYN")} == shipped.document()["underlyings"]
    # ... and a synthetic underlying gets the file's [defaults], written out in its own section.
    assert document["underlyings"]["SYN0001"] == shipped.document()["defaults"]
    covered = extended.for_instrument(cash("SYN0001"))
    assert covered is not None and covered.max_order_value == 200_000_00
    assert extended.for_instrument(cash("SYN0003")) is None
    # A synthetic future gets a section sized for one lot (the defaults' ₹2 lakh would refuse every lot).
    future = Instrument("NFO:SYN0001:2027-01-26:FUT", Exchange.NFO, "SYN0001", "SYN0001", Segment.FUTURES, 500, 5, 10_000,
                        expiry=dt.date(2027, 1, 26))
    with_future = synthetic_limits(["SYN0001"], [UniverseEntry(future, 150_000)])
    caps = with_future.for_instrument(future)
    assert caps is not None and caps.max_order_quantity == 500 and caps.max_order_value == 938_000_00
    assert with_future.for_instrument(cash("SYN0001")) == extended.for_instrument(cash("SYN0001"))


def test_synthetic_instruments_are_refused_for_a_broker_other_than_paper(tmp_path: Path) -> None:
    import asyncio
    from collections.abc import Callable

    from app.brokers.base import Broker
    from app.brokers.paper.universe import UniverseEntry
    from app.desk import DeskError
    from app.engine.risk.calendar_data import load_effective
    from app.simulation import SimulationOptions, run_simulation

    built: list[int] = []

    async def broker(entries: list[UniverseEntry], _clock: Callable[[], int]) -> tuple[Broker, list[UniverseEntry]]:
        built.append(len(entries))
        raise AssertionError("no broker may be built for synthetic instruments")

    options = SimulationOptions(seconds=1, instruments=28, broker_factory=broker, calendar=load_effective(cover_today(tmp_path)))
    with pytest.raises(DeskError, match="at most 27 with a broker other than paper"):
        asyncio.run(run_simulation(options))
    assert built == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seconds", "0"], "--seconds"),
        (["--seconds", "abc"], "--seconds"),
        (["--instruments", "0"], "--instruments"),
        (["--instruments", "-4"], "--instruments"),
        (["--instruments", "many"], "--instruments: 'many' is not a whole number"),
        (["--instruments", "2001"], "--instruments must be at most 2000, got 2001"),
        (["--orders-per-sec", "-3"], "--orders-per-sec"),
        (["--broker", "zerodha"], "--broker"),
        (["--kill-at", "-1"], "--kill-at"),
        (["--seconds", "2", "--kill-at", "9"], "--kill-at must be between"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_main(tmp_path, "simulate", *args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_invalid_settings_stop_the_start_naming_key_value_and_range(tmp_path: Path) -> None:
    proc = run_main(tmp_path, "simulate", "--seconds", "1", env={"BULWARK_PAPER__LATENCY_MS": "-5"})
    assert proc.returncode == 2
    assert "paper.latency_ms" in proc.stderr and "-5" in proc.stderr and ">= 0" in proc.stderr


def test_an_emptied_store_refuses_to_trade_with_exit_1(tmp_path: Path) -> None:
    home = cover_today(tmp_path / "home")
    home.mkdir(exist_ok=True)
    (home / "bulwark.db").touch()
    proc = run_main(home, "simulate", "--seconds", "1")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "Bulwark refuses to trade: the store is unusable: " in proc.stderr and "is empty (0 bytes)" in proc.stderr
    assert (home / "bulwark.db").stat().st_size == 0


def test_breeze_off_a_loopback_address_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_main(tmp_path, "simulate", "--seconds", "1", "--broker", "breeze",
                    env={"BULWARK_BREEZE__API_URL": "https://api.icicidirect.com/breezeapi/api/v1/"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "simulate: simulate --broker breeze sends a random order flow, so it runs only against a local" in proc.stderr
