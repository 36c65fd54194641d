"""`main.py simulate`: the headless desk on the paper broker under generated order flow."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .common import (
    BROKERS,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    non_negative_float,
    positive_float,
    positive_int,
)

if TYPE_CHECKING:
    from app.brokers.base import Broker
    from app.brokers.breeze import BreezeCredentials
    from app.brokers.paper import PaperConfig
    from app.brokers.paper.universe import UniverseEntry
    from app.desk import BrokerFactory, DeskService
    from app.engine.config import EngineConfig
    from app.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = commands.add_parser("simulate", help="headless engine + paper broker + generated order flow")
    sim.add_argument("--seconds", type=positive_float, default=10.0, help="how long to run (default 10)")
    sim.add_argument("--seed", type=int, default=None, help="random seed (default: paper.seed setting)")
    sim.add_argument("--json", action="store_true", help="print one JSON object with the report")
    sim.add_argument(
        "--orders-per-sec",
        type=positive_float,
        default=1.5,
        # Breeze allows 100 calls a minute: a faster flow meets the broker's own refusals.
        help="order-flow actions per second (default 1.5, inside the broker's 100 calls/min)",
    )
    sim.add_argument("--instruments", type=positive_int, default=10, help="instruments from the paper universe (default 10)")
    sim.add_argument("--broker", choices=BROKERS, default=None, help="broker profile (default: settings)")
    sim.add_argument(
        "--kill-at", type=non_negative_float, default=None, metavar="SECONDS",
        help="engage the kill switch this many seconds into the run",
    )
    sim.add_argument(
        "--session-token-stdin", action="store_true",
        help="Breeze: print the login URL, then read today's session token from stdin (default: the one stored today)",
    )
    sim.add_argument("--api", action="store_true", help="serve the local API during the run (its URL goes to stderr)")
    sim.add_argument(
        "--api-port", type=port_number, default=None, metavar="N",
        help="with --api: listen on this port instead of the api.port setting (0: any free port)",
    )
    sim.set_defaults(run=run)


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {port}")
    return port


def engine_config(settings: Settings) -> EngineConfig:
    from app.engine.config import EngineConfig

    return EngineConfig(market_protection_bps=round(settings.market_protection_pct * 100))


def paper_config(settings: Settings, seed: int) -> PaperConfig:
    from app.brokers.paper import PaperConfig

    return PaperConfig(
        seed=seed,
        latency_ms=settings.paper.latency_ms,
        reject_rate=settings.paper.reject_rate,
        tick_interval_ms=settings.paper.tick_interval_ms,
        partial_fill=settings.paper.partial_fill,
        journal_path=settings.home / "paper-journal.jsonl" if settings.paper.journal else None,
        account=settings.paper.account,
        call_log=settings.home / "paper-calls.jsonl" if settings.paper.call_log else None,
    )


def breeze_factory(settings: Settings, creds: BreezeCredentials, token: str) -> BrokerFactory:
    """The Breeze broker for a desk: the master defines the contracts, the paper universe only supplies reference prices."""
    import asyncio

    from app.brokers.paper.universe import UniverseEntry

    from .breeze_profile import load_master, open_breeze

    async def make(entries: list[UniverseEntry], clock_ns: Callable[[], int]) -> tuple[Broker, list[UniverseEntry]]:
        loaded = await asyncio.to_thread(load_master, settings)
        broker = open_breeze(settings, [e.instrument.key for e in entries], token, creds, loaded, clock_ns=clock_ns)
        by_key = {e.instrument.key: e for e in entries}
        return broker, [UniverseEntry(c.instrument, by_key[c.instrument.key].start_price) for c in broker.contracts]

    return make


@dataclass(frozen=True)
class _Refusal:
    """How ``simulate`` reports one kind of error: its exit code and the words before the message."""

    kind: type[Exception]
    exit_code: int
    prefix: str = "simulate: "


def _refusals() -> tuple[_Refusal, ...]:
    # Imported here, not at the top: the command line must start without the engine, store and brokers.
    from app.brokers.breeze import MasterError
    from app.desk import DeskError
    from app.engine.engine import EngineStartError
    from app.engine.risk.calendar_data import CalendarError
    from app.security.vault import VaultError
    from app.store.db import StoreError

    from .breeze_profile import ProfileError

    return (
        # The operator's setup or arguments (no Breeze profile, a flow the desk refuses): usage.
        _Refusal(ProfileError, EXIT_USAGE),
        _Refusal(VaultError, EXIT_USAGE),
        _Refusal(DeskError, EXIT_USAGE),
        _Refusal(MasterError, EXIT_FAILED),
        _Refusal(StoreError, EXIT_FAILED, "Bulwark refuses to trade: the store is unusable: "),
        _Refusal(EngineStartError, EXIT_FAILED),
        _Refusal(CalendarError, EXIT_FAILED, "simulate: the trading calendar is unusable: "),
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    refusals = _refusals()
    try:
        result = _simulate(args, settings)
    except tuple(refusal.kind for refusal in refusals) as exc:
        refusal = next(refusal for refusal in refusals if isinstance(exc, refusal.kind))
        print(f"{refusal.prefix}{exc}", file=sys.stderr)
        return refusal.exit_code
    if args.json:
        print(json.dumps(result, sort_keys=False))
    else:
        _print_summary(result)
    return EXIT_OK


def _simulate(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    import asyncio

    from app.engine.risk.calendar_data import load_effective
    from app.logs import redact_in_logs
    from app.security.vault import stored_secrets
    from app.simulation import SimulationOptions, run_simulation

    from .breeze_profile import credentials, require_loopback, session_token

    broker = args.broker or settings.broker
    secrets = stored_secrets()
    factory = None
    if broker == "breeze":
        require_loopback(settings)
        creds = credentials()
        token = session_token(args.session_token_stdin, creds.api_key)
        factory = breeze_factory(settings, creds, token)
        secrets.append(token)
    seed = args.seed if args.seed is not None else settings.paper.seed
    redact_in_logs(secrets)
    services = _api_services(args, settings)
    options = SimulationOptions(
        seconds=args.seconds,
        seed=seed,
        orders_per_sec=args.orders_per_sec,
        instruments=args.instruments,
        paper=paper_config(settings, seed),
        engine=engine_config(settings),
        database_url=settings.database_url,
        secrets=tuple(secrets),
        settings_summary=settings.summary(),
        backups_dir=settings.backups_dir,
        backup_time=settings.backup_time,
        kill_at=args.kill_at,
        limits_path=settings.home / "limits.toml",
        control_home=settings.home,
        broker_factory=factory,
        calendar=load_effective(settings.home),
        services=services,
        desks_per_account=settings.firm.desks_per_account,
    )
    return asyncio.run(run_simulation(options))


def _api_services(args: argparse.Namespace, settings: Settings) -> tuple[DeskService, ...]:
    from app.desk import DeskError

    if args.api_port is not None and not args.api:
        raise DeskError("--api-port goes with --api")
    if not args.api:
        return ()
    if not settings.api.enabled:
        raise DeskError("the local API is disabled in the settings (api.enabled = false): enable it to serve it")
    from app.api.server import ApiServer
    from app.settings import ApiSettings

    api = settings.api
    if args.api_port is not None:
        api = ApiSettings.model_validate({**api.model_dump(), "port": args.api_port})
    return (ApiServer(api, announce=lambda url: print(f"simulate: the local API is serving at {url}", file=sys.stderr)),)


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
    kill = result.get("kill_switch")
    if kill:
        print(
            f"kill switch at {kill['engaged_at']} s: halted in {kill['halted_in_us']} µs, {kill['cancels']} cancels, "
            f"cleared in {kill['cleared_in_ms']} ms (expected {kill['expected_clear_s']} s), {kill['working_after']} still working"
        )
    lag = result["loop_lag_ms"]
    print(f"event-loop lag: p50 {lag['p50']} ms, p99 {lag['p99']} ms")
    if "audit" in result:
        audit = result["audit"]
        print(f"audit: {audit['records']} records, {'verified' if audit['verified'] else 'NOT VERIFIED'}")
