"""`main.py calendar show|check|import|accept-weekdays`: the trading calendar the gate uses.

The calendar in force is the shipped ``resources/calendar.toml`` with the data folder's
``calendar.toml`` over it, year by year. ``import`` and ``accept-weekdays`` change that override;
each change is validated first, written atomically, and stored as a new calendar version with its
audit record. A running desk reads the calendar at start: the change applies from the next start,
and the command says so.

Whether a day is a session decides whether the gate lets new risk through, so a change needs the
authority limits need: the OS user acts until the desk has operators; from then on an operator with
the set-limits permission (a risk officer or an administrator) names themselves with ``--operator
NAME`` and gives their password (asked without echo, or with ``--password-stdin`` the first line of
stdin; see ``app.cli.authority``). That operator is the change's actor.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .authority import AuthorityRefused, add_arguments
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, reason_text

if TYPE_CHECKING:
    from sqlalchemy import Engine as SqlEngine

    from app.engine.risk.calendar_data import CalendarSet
    from app.settings import Settings
    from app.store.audit_writer import AuditWriter

STORE_TIMEOUT_S = 8.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    calendar = commands.add_parser("calendar", help="show, check or change the trading calendar the risk gate uses")
    calendar.set_defaults(run=run)
    actions = calendar.add_subparsers(dest="calendar_command", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="the calendar in force: cover, hours, a year's holidays and special sessions")
    show.add_argument("--year", type=int, default=None, help="the year to list (default: this year in India)")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    check = actions.add_parser("check", help="validate a calendar file (or the one in force); exit 1 listing every problem")
    check.add_argument("file", nargs="?", type=Path, default=None, help="the file to check (default: the calendar in force)")
    imported = actions.add_parser("import", help="validate FILE and put its years over the calendar in force (audited)")
    imported.add_argument("file", type=Path, help="a calendar file, for example with the newly published year")
    imported.add_argument("--reason", type=reason_text, required=True, help="why (recorded in the audit trail)")
    add_arguments(imported)
    accept = actions.add_parser(
        "accept-weekdays",
        help="treat every weekday of YEAR as a session until its holiday list is published (audited)",
    )
    accept.add_argument("year", type=int, help="this year or the next")
    accept.add_argument("--reason", type=reason_text, required=True, help="why (recorded in the audit trail)")
    add_arguments(accept)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from app.engine.risk.calendar_data import CalendarError

    try:
        if args.calendar_command == "show":
            return _show(settings, args.year, as_json=args.json)
        if args.calendar_command == "check":
            return _check(settings, args.file)
        if args.calendar_command == "import":
            return _import(settings, args)
        return _accept(settings, args)
    except CalendarError as exc:
        print(f"calendar: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except AuthorityRefused as exc:
        print(f"calendar {args.calendar_command} refused: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED


def _today() -> dt.date:
    from app.domain.india_time import IST

    return dt.datetime.now(IST).date()


def _show(settings: Settings, year: int | None, *, as_json: bool) -> int:
    from app.domain.india_time import IST
    from app.domain.instruments import Exchange
    from app.engine.risk.calendar import TradingCalendar
    from app.engine.risk.calendar_data import load_effective

    load = load_effective(settings.home)
    calendar = TradingCalendar(load.calendar)
    now = dt.datetime.now(IST)
    year = year if year is not None else now.date().year
    next_open = calendar.next_open_ns(Exchange.NSE, int(now.timestamp() * 1e9))
    report: dict[str, Any] = {
        "label": load.calendar.label,
        "source": load.calendar.source,
        "override": str(load.override) if load.override is not None else None,
        "override_problems": load.problems,
        "notice": load.calendar.cover_notice(now.date()),
        "next_session_open": (
            dt.datetime.fromtimestamp(next_open / 1e9, IST).isoformat(timespec="minutes") if next_open is not None else None
        ),
        "calendars": {},
    }
    for name, cal in sorted(load.calendar.calendars.items()):
        data = cal.years.get(year)
        report["calendars"][name] = {
            "exchanges": list(cal.exchanges),
            "hours": f"{cal.open:%H:%M}-{cal.close:%H:%M} IST",
            "years": f"{min(cal.years)}-{max(cal.years)}",
            "published_through": cal.published_through,
            "assumed_years": {
                str(y): {"by": d.assumed.by, "at": d.assumed.at.isoformat(), "reason": d.assumed.reason}
                for y, d in cal.years.items() if d.assumed is not None
            },
            "year": year,
            "covered": data is not None,
            "holidays": [d.isoformat() for d in sorted(data.holidays)] if data is not None else [],
            "special_sessions": [
                {"date": s.day.isoformat(), "hours": f"{s.open:%H:%M}-{s.close:%H:%M}", "name": s.name}
                for s in data.special_sessions
            ] if data is not None else [],
        }
    if as_json:
        print(json.dumps(report))
        return EXIT_OK
    print(f"trading calendar {report['label']} ({report['source']})")
    print(f"override: {report['override'] or 'none'}")
    for problem in load.problems:
        print(f"warning: the override is refused, the shipped calendar is in force: {problem}")
    for name, entry in report["calendars"].items():
        print(f"[{name}] {', '.join(entry['exchanges'])}: {entry['hours']}, years {entry['years']}, "
              f"holidays published through {entry['published_through']}")
        for assumed_year, who in entry["assumed_years"].items():
            print(f"  {assumed_year}: weekdays assumed as sessions (accepted by {who['by']} at {who['at']}: {who['reason']})")
        if not entry["covered"]:
            print(f"  {year}: not covered (no holiday list): new risk is refused on its days")
            continue
        if str(year) in entry["assumed_years"]:
            continue
        print(f"  {year} holidays ({len(entry['holidays'])}): {', '.join(entry['holidays']) or 'none'}")
        for special in entry["special_sessions"]:
            print(f"  {year} special session {special['date']} {special['hours']} IST: {special['name']}")
    print(f"next session opens: {report['next_session_open'] or 'unknown (no covered session ahead)'}")
    if report["notice"]:
        print(f"warning: {report['notice']}")
    return EXIT_OK if not load.problems else EXIT_FAILED


def _check(settings: Settings, file: Path | None) -> int:
    from app.engine.risk.calendar_data import load_calendar_file, load_effective, merge

    if file is None:
        load = load_effective(settings.home)
        for problem in load.problems:
            print(f"calendar: {problem}", file=sys.stderr)
        if load.problems:
            return EXIT_FAILED
        merged = load.calendar
        print(f"the calendar in force is valid ({merged.label}{', override ' + str(load.override) if load.override else ''})")
    else:
        checked = load_calendar_file(file, partial=True)
        merged = merge(load_effective(None).calendar, checked)
        years = sorted({y for cal in checked.calendars.values() for y in cal.years})
        print(f"{file}: valid ({checked.label}); years {', '.join(map(str, years))}")
    _print_cover(merged)
    return EXIT_OK


def _print_cover(calendars: CalendarSet) -> None:
    notice = calendars.cover_notice(_today())
    for name, cal in sorted(calendars.calendars.items()):
        print(f"[{name}] covers {min(cal.years)}-{max(cal.years)}; holidays published through {cal.published_through}")
    if notice:
        print(f"warning: {notice}")


def _import(settings: Settings, args: argparse.Namespace) -> int:
    from app.engine.risk.calendar_data import load_calendar_file

    file: Path = args.file
    incoming = load_calendar_file(file, partial=True)
    years = sorted({f"{name}/{year}" for name, cal in incoming.calendars.items() for year in cal.years})
    return _change(settings, args, lambda _actor: incoming, f"imported {file}: {', '.join(years)}")


def _accept(settings: Settings, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from app.domain.india_time import IST
    from app.engine.risk.calendar_data import (
        Assumption,
        CalendarSet,
        ExchangeCalendar,
        YearData,
        load_effective,
    )

    year: int = args.year
    today = _today()
    if year not in (today.year, today.year + 1):
        print(f"calendar: weekdays can be accepted for this year or the next ({today.year} or {today.year + 1}), not {year}",
              file=sys.stderr)
        return EXIT_USAGE
    effective = load_effective(settings.home).calendar
    for name, cal in effective.calendars.items():
        data = cal.years.get(year)
        if data is not None and data.assumed is None:
            print(f"calendar: {year}'s holidays are already in calendars.{name}: nothing to assume", file=sys.stderr)
            return EXIT_FAILED
        if data is not None and data.assumed is not None:
            print(f"calendar: {year} is already assumed in calendars.{name} (accepted by {data.assumed.by})", file=sys.stderr)
            return EXIT_FAILED

    def accepted_by(actor: str) -> CalendarSet:
        assumed = YearData(year, assumed=Assumption(actor, dt.datetime.now(IST).replace(microsecond=0), args.reason))
        calendars: dict[str, ExchangeCalendar] = {
            name: replace(cal, years={year: assumed}) for name, cal in effective.calendars.items()}
        return CalendarSet("override", f"weekdays of {year} accepted by {actor}", calendars)

    return _change(settings, args, accepted_by, f"weekdays of {year} accepted as sessions until the holidays are published")


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown-os-user"


def _write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` whole: a staged copy, fsynced, renamed over it."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with staged.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def _authorised(store: SqlEngine, writer: AuditWriter, args: argparse.Namespace) -> str:
    """Who changes the calendar: the OS user before the desk has operators, then an operator who may set limits."""
    from app.domain.actors import Permission

    from .authority import authenticate, lacks

    operator = authenticate(store, writer, args)
    if operator is None:
        return _os_user()
    if (missing := lacks(operator, Permission.SET_LIMITS)) is not None:
        raise AuthorityRefused(f"{missing}: a risk officer or an administrator changes the trading calendar")
    print(f"authorised: {operator.name} ({operator.role})", flush=True)
    return operator.name


def _change(settings: Settings, args: argparse.Namespace, build: Callable[[str], CalendarSet], what: str) -> int:
    """Authorise, then merge ``build(actor)`` over the data folder's override, write it, and store it as an
    audited version.

    The file is written first and the version recorded second; if recording fails the previous file
    is put back, so a calendar is never in force without its audit record (a start records it anyway).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from app.domain.audit import AuditSource
    from app.engine.risk.calendar_data import (
        OVERRIDE_NAME,
        CalendarSet,
        load_calendar_file,
        load_effective,
        merge,
        overlay,
        parse_calendar_text,
        render,
    )
    from app.engine.risk.calendar_registry import record_version
    from app.store.audit_writer import AuditWriter
    from app.store.db import StoreError
    from app.store.migrate import open_store

    reason: str = args.reason
    try:
        store = open_store(settings.database_url)
    except StoreError as exc:
        print(f"calendar: the store is unusable, nothing changed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    writer = AuditWriter(store)
    writer.start()
    try:
        try:
            actor = _authorised(store, writer, args)
        except (StoreError, SQLAlchemyError, TimeoutError) as exc:
            print(f"calendar: the operator accounts cannot be read, nothing changed: {exc}", file=sys.stderr)
            return EXIT_FAILED
        path = settings.home / OVERRIDE_NAME
        current = load_calendar_file(path, partial=True) if path.exists() else CalendarSet("override", "operator override", {})
        override = overlay(current, build(actor), complete=False)
        text = render(override, header=[
            "Bulwark trading calendar override: its years replace the shipped calendar's, year by year.",
            "Change it with main.py calendar import FILE or calendar accept-weekdays YEAR (both audited).",
        ])
        # What is audited must be exactly what the next start reads: the text as written, read back.
        written = parse_calendar_text(text, str(path), partial=True)
        if written.document() != override.document():
            print("calendar: the override would not read back as written; nothing changed", file=sys.stderr)
            return EXIT_FAILED
        merged = merge(load_effective(None).calendar, written)
        previous = path.read_bytes() if path.exists() else None
        _write_durably(path, text.encode("utf-8"))
        try:
            version = record_version(writer, merged, actor=actor, source=AuditSource.OPERATOR, reason=f"{what}: {reason}")
        except Exception as exc:  # noqa: BLE001 - whatever failed, the file must not stay in force unaudited
            if previous is None:
                path.unlink(missing_ok=True)
            else:
                _write_durably(path, previous)
            print(f"calendar: the change could not be recorded, the previous calendar stays in force: {exc}", file=sys.stderr)
            return EXIT_FAILED
    finally:
        writer.close()
        store.dispose()
    print(f"{what}")
    print(f"calendar version {version.version} stored{'' if version.changed else ' (unchanged)'}; written to {path}")
    print("a running desk reads the calendar at start: restart it for the change to apply")
    _print_cover(merged)
    return EXIT_OK
