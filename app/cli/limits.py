"""`main.py limits check [FILE]` and `limits history`: the risk limits as the operator sees them."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_FAILED, EXIT_OK, first_line, no_database, positive_int

if TYPE_CHECKING:
    from app.engine.risk.limits import RiskLimits
    from app.settings import Settings

LIMITS_FILE_NAME = "limits.toml"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    limits = commands.add_parser("limits", help="check the risk limits file or list its stored versions")
    limits.set_defaults(run=run)
    actions = limits.add_subparsers(dest="limits_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a limits file; exit 1 listing every problem")
    check.add_argument(
        "file", nargs="?", type=Path, default=None,
        help=f"the file to check (default: {LIMITS_FILE_NAME} in the data folder, else the shipped default)",
    )
    history = actions.add_parser("history", help="list the stored versions of the limits, newest first")
    history.add_argument("--limit", type=positive_int, default=20, help="how many versions to list (default 20)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.limits_command == "check":
        return _check(args.file if args.file is not None else default_limits_file(settings), settings.home)
    return _history(settings, args.limit)


def default_limits_file(settings: Settings) -> Path:
    """The data folder's limits file if there is one, else the default that ships."""
    from app.engine.risk.limits import DEFAULT_LIMITS_PATH

    own = settings.home / LIMITS_FILE_NAME
    return own if own.exists() else DEFAULT_LIMITS_PATH


def _check(path: Path, home: Path) -> int:
    """Reads files only (the limits, the calendar override), so it runs on a read-only copy."""
    from app.brokers.paper import load_universe
    from app.engine.risk.calendar import TradingCalendar
    from app.engine.risk.calendar_data import load_effective
    from app.engine.risk.limits import LimitsError, load_limits_file

    try:
        limits = load_limits_file(path)
    except LimitsError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    # Today's contracts, rolled on the desk's calendar as a starting desk rolls them.
    calendar = TradingCalendar(load_effective(home).calendar)
    universe = [entry.instrument for entry in load_universe(is_session=calendar.is_session_day)]
    coverage = limits.review(universe)
    print(f"{path}: valid")
    print(f"covers {len(coverage.covered)} of {len(universe)} paper instruments")
    for line in _desk_summary(limits):
        print(line)
    for warning in coverage.warnings:
        print(f"warning: {warning}")
    return EXIT_OK


def _desk_summary(limits: RiskLimits) -> list[str]:
    from app.domain.money import format_inr

    desk = limits.desk
    trailing = format_inr(desk.trailing_loss_limit) if desk.trailing_loss_limit is not None else "off"
    return [
        f"gross exposure cap {format_inr(desk.max_gross_exposure)}, net {format_inr(desk.max_net_exposure)}",
        f"daily loss limit {format_inr(desk.daily_loss_limit)}, trailing {trailing}",
        f"at most {desk.max_open_orders} open orders and {desk.max_orders_per_day} orders a day",
        f"order types {', '.join(sorted(desk.allowed_order_types))}; products {', '.join(sorted(desk.allowed_products))}",
    ]


def _history(settings: Settings, limit: int) -> int:
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from app.domain.india_time import IST
    from app.store import limit_versions
    from app.store.db import StoreError, open_read_only
    from app.store.desk_state import scope_for_home

    url = settings.database_url
    if (missing := no_database(url, "no limits have been stored in this data folder")) is not None:
        print(missing, file=sys.stderr)
        return EXIT_FAILED
    # Read as it is, like `audit verify`: listing the history never migrates or writes, and works
    # on a read-only copy of the data folder.
    try:
        engine = open_read_only(url)
    except StoreError as exc:
        print(f"limits: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        tables = inspect(engine).get_table_names()
        columns = {column["name"] for column in inspect(engine).get_columns("limit_versions")} if "limit_versions" in tables else set()
        if "desk_id" not in columns:
            print("limits: this store was written by an older Bulwark, before limits were kept per desk (reading it "
                  "never upgrades it): start the desk on it once, then list the history", file=sys.stderr)
            return EXIT_FAILED
        versions = limit_versions.history(engine, scope_for_home(engine, settings.home).desk_id, limit)
    except SQLAlchemyError as exc:
        print(f"limits: cannot read the stored versions: {first_line(getattr(exc, 'orig', None) or exc)}", file=sys.stderr)
        return EXIT_FAILED
    except StoreError as exc:
        print(f"limits: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        engine.dispose()
    if not versions:
        print("no limits have been stored yet")
        return EXIT_OK
    print("version  time (IST)           actor         reason")
    for stored in versions:
        stamp = dt.datetime.fromtimestamp(stored.ts_ns // 1_000_000_000, IST).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stored.version:>7}  {stamp}  {stored.actor:<12}  {stored.reason}")
    return EXIT_OK
