"""The `main.py` sub-commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from app.brokers.paper import PaperConfig
from app.engine.config import EngineConfig
from app.engine.engine import EngineStartError
from app.logs import configure_logging
from app.settings import Settings, SettingsError, load_settings
from app.simulation import SimulationError, SimulationOptions, run_simulation

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive finite number")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="Bulwark trading control desk")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    sim = commands.add_parser("simulate", help="headless engine + paper broker + generated order flow")
    sim.add_argument("--seconds", type=_positive_float, default=10.0, help="how long to run (default 10)")
    sim.add_argument("--seed", type=int, default=None, help="random seed (default: paper.seed setting)")
    sim.add_argument("--json", action="store_true", help="print one JSON object with the report")
    sim.add_argument(
        "--orders-per-sec",
        type=_positive_float,
        default=1.5,
        # Breeze allows 100 calls a minute: a faster flow meets the broker's own refusals.
        help="order-flow actions per second (default 1.5, inside the broker's 100 calls/min)",
    )
    sim.add_argument("--instruments", type=_positive_int, default=10, help="instruments from the paper universe (default 10)")
    sim.add_argument("--broker", choices=("paper", "breeze"), default=None, help="broker profile (default: settings)")
    return parser


def _engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(market_protection_bps=round(settings.market_protection_pct * 100))


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    broker = args.broker or settings.broker
    if broker != "paper":
        print(
            f"simulate --broker {broker}: the Breeze adapter is not part of this build yet; use --broker paper",
            file=sys.stderr,
        )
        return EXIT_USAGE
    seed = args.seed if args.seed is not None else settings.paper.seed
    paper = PaperConfig(
        seed=seed,
        latency_ms=settings.paper.latency_ms,
        reject_rate=settings.paper.reject_rate,
        tick_interval_ms=settings.paper.tick_interval_ms,
        partial_fill=settings.paper.partial_fill,
    )
    try:
        options = SimulationOptions(
            seconds=args.seconds,
            seed=seed,
            orders_per_sec=args.orders_per_sec,
            instruments=args.instruments,
            paper=paper,
            engine=_engine_config(settings),
        )
        result = asyncio.run(run_simulation(options))
    except SimulationError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EngineStartError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(result, sort_keys=False))
    else:
        _print_summary(result)
    return EXIT_OK


def _print_summary(result: dict[str, Any]) -> None:
    from app.domain.money import format_inr

    orders = result["orders"]
    print(f"ran {result['seconds']} s: {result['ticks']} ticks, trading state {result['trading_state']}")
    print(
        "orders: {submitted} submitted, {accepted} accepted, {rejected} rejected, "
        "{filled} filled, {cancelled} cancelled, {working} working".format(**orders)
    )
    for reason, count in result["rejections"].items():
        print(f"  rejected {count} x {reason}")
    print(f"fills: {result['fills']}, open positions: {sum(1 for p in result['positions'].values() if p['quantity'])}")
    print(f"exposure: gross {format_inr(result['exposure']['gross'])}, net {format_inr(result['exposure']['net'])}")
    print(f"P&L: realized {format_inr(result['pnl']['realized'])}, unrealized {format_inr(result['pnl']['unrealized'])}")
    lag = result["loop_lag_ms"]
    print(f"event-loop lag: p50 {lag['p50']} ms, p99 {lag['p99']} ms")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"Bulwark cannot start: invalid settings\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command is None:
        print(
            "The desk GUI is not part of this build yet. Run the headless desk with:\n"
            "  python main.py simulate --seconds 30",
            file=sys.stderr,
        )
        return EXIT_USAGE
    log_file = configure_logging(settings, console=True)
    log.info("bulwark %s starting; data folder %s; log %s", args.command, settings.home, log_file)
    if args.command == "simulate":
        return _simulate(args, settings)
    raise AssertionError(f"unhandled command {args.command}")
