"""The firm: every desk on one database. ``main.py firm status`` and ``firm rearm``, and the two
halts ``main.py panic`` gives beyond its own desk: ``panic --firm`` and ``panic --desk ID``.

``panic --firm --reason R`` halts every desk on the database: once the desk has operators, a risk
officer or an administrator names themselves (``--operator``, ``app.cli.authority``). It writes the
firm flag (``app.store.firm_flag``), which each running desk reads within a poll, then waits up to
``--timeout`` for the running desks to confirm, printing each as it does. Exit 0 once the flag is
durable (a warning names every running desk that did not confirm in time); 1 when it was refused
(no database, no authority); 3 when the store did not take it (``EXIT_NOT_WRITTEN``).

``panic --desk ID --reason R`` halts one desk on the database by its id, from any workstation: it
writes that desk's HALTED flag, which the desk's own halt watch acts on, and waits for the desk to
record its halt. Exit 0 once the desk halted or is stopped (its next start is HALTED); 1 when the
desk runs and did not confirm, or is silent, so the operator must act; 3 when the flag was not written.

``firm status`` shows the firm state in force and every registered desk: alive, stopped or silent,
its trading state, its confirmation of the firm halt and what it still shows working. ``firm rearm``
lifts the firm halt (the re-arm permission and a reason); every desk then stays HALTED until it is
re-armed on its own. Refusals are audited as ``rearm``'s are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
import time
from typing import TYPE_CHECKING

from .authority import AuthorityRefused, add_arguments
from .common import EXIT_FAILED, EXIT_OK, first_line, no_database, reason_text

if TYPE_CHECKING:
    from sqlalchemy import Engine as SqlEngine

    from app.domain.actors import Permission
    from app.domain.audit import AuditEventType
    from app.settings import Settings
    from app.store.audit_writer import AuditWriter
    from app.store.firm_flag import DeskStatus, FirmState, FirmView

# The flag was not written (the store failed or did not confirm in time): distinct from a refusal.
EXIT_NOT_WRITTEN = 3
STORE_TIMEOUT_S = 8.0
POLL_S = 0.05


class _Refused(Exception):
    """A one-line refusal; nothing was written (beyond the refusal's own record)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    firm = commands.add_parser("firm", help="every desk on the database: the firm view, and lifting a firm halt")
    actions = firm.add_subparsers(dest="firm_command", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="the firm state and every desk: alive, trading state, confirmation, working")
    status.set_defaults(run=run_status)
    rearm = actions.add_parser("rearm", help="lift the firm halt, giving a reason (audited); each desk then re-arms on its own")
    rearm.add_argument("--reason", type=reason_text, required=True, help="why every desk may trade again")
    add_arguments(rearm)
    rearm.set_defaults(run=run_rearm)


def _say(text: str) -> None:
    print(text, flush=True)


def _shout(text: str) -> None:
    print(f"!! {text}", file=sys.stderr, flush=True)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the password database
        return "unknown"


def _when(ts_ns: int) -> str:
    from app.domain.india_time import IST

    return dt.datetime.fromtimestamp(ts_ns / 1e9, IST).strftime("%Y-%m-%d %H:%M:%S IST")


def _store_problem(exc: BaseException) -> str:
    """One line naming what failed: the driver's own first line, without SQLAlchemy's statement and link."""
    orig = getattr(exc, "orig", None)
    return f"{type(orig if orig is not None else exc).__name__}: {first_line(orig if orig is not None else exc)}"


def _origin_desk(settings: Settings) -> str | None:
    """The desk of the data folder the command runs in, if one has started there (a label only)."""
    from app.store.desk_identity import DeskIdentityError, read_identity

    try:
        identity = read_identity(settings.home)
    except DeskIdentityError:
        return None
    return None if identity is None else identity.desk_id


def _authorised(store: SqlEngine, writer: AuditWriter, args: argparse.Namespace, permission: Permission,
                event: AuditEventType, reason: str, fallback: str, needs: str) -> str:
    """The actor: the operator with ``permission`` once the desk has operators, else ``fallback``.

    Raises ``_Refused`` (a refusal for want of the permission is audited first).
    """
    from app.store.firm_flag import record_refused

    from .authority import authenticate, lacks

    try:
        operator = authenticate(store, writer, args)
    except AuthorityRefused as exc:
        raise _Refused(str(exc)) from None
    if operator is None:
        return fallback
    if (missing := lacks(operator, permission)) is not None:
        record_refused(writer, event, f"no {permission.value} permission", reason, operator.name, timeout=STORE_TIMEOUT_S)
        raise _Refused(f"{missing}: {needs}")
    _say(f"authorised: {operator.name} ({operator.role})")
    return operator.name


def halt_firm(args: argparse.Namespace, settings: Settings) -> int:
    """``panic --firm``: write the firm flag, then wait for the running desks to confirm."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.domain.actors import Permission
    from app.domain.audit import AuditEventType
    from app.store.audit_writer import AuditWriter
    from app.store.db import StoreError
    from app.store.firm_flag import persist_firm_halt
    from app.store.migrate import open_store

    def refused(text: str) -> int:
        _shout(f"panic --firm refused: {text}")
        return EXIT_FAILED

    url = settings.database_url
    if (missing := no_database(url, "no desk has run on this database, so there is none to halt")) is not None:
        return refused(missing)
    _say(f"FIRM PANIC: halting every desk on the database: {args.reason}")
    origin = _origin_desk(settings)
    try:
        store = open_store(url)
    except (StoreError, SQLAlchemyError) as exc:
        _shout(f"the firm flag was NOT written: the store cannot be opened ({_store_problem(exc)})")
        return EXIT_NOT_WRITTEN
    try:
        writer = AuditWriter(store, desk_id=origin)
        writer.start()
        try:
            actor = _authorised(store, writer, args, Permission.FIRM_HALT, AuditEventType.FIRM_HALTED, args.reason,
                                f"panic:{_os_user()}", "a risk officer or an administrator halts the firm")
            halt = persist_firm_halt(writer, args.reason, actor, origin_desk=origin, timeout=STORE_TIMEOUT_S)
        finally:
            writer.close(timeout=1.0)
        _say(f"written: firm halt {halt.id} by {actor}; every desk on the database halts, and starts HALTED until the "
             "firm is re-armed")
        _await_confirmations(store, halt, args.timeout)
    except _Refused as exc:
        return refused(str(exc))
    except TimeoutError:
        _shout(f"the firm flag was NOT confirmed written within {STORE_TIMEOUT_S:g}s: it may still land; "
               "run main.py firm status, and halt each desk from its own window or data folder")
        return EXIT_NOT_WRITTEN
    except (StoreError, SQLAlchemyError) as exc:
        _shout(f"the firm flag was NOT written ({_store_problem(exc)}): halt each desk from its own window or data folder")
        return EXIT_NOT_WRITTEN
    finally:
        store.dispose()
    return EXIT_OK


def _await_confirmations(store: SqlEngine, halt: FirmState, timeout: float) -> None:
    """Print each running desk as it confirms, for up to ``timeout`` seconds; warn about the rest.

    The flag is durable already: a failed read here is reported, not fatal.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from app.store.firm_flag import firm_view

    _say(f"waiting up to {timeout:g}s for the running desks to confirm ...")
    deadline = time.monotonic() + timeout
    shown: set[str] = set()
    try:
        while True:
            view = firm_view(store)
            running = [status for status in view.desks if status.alive]
            for status in running:
                if status.ack is not None and status.desk.desk_id not in shown:
                    shown.add(status.desk.desk_id)
                    _say(f"      confirmed: {_label(status)} halted {(status.ack.halted_ns - halt.ts_ns) / 1e6:.0f} ms after the flag")
            waiting = [status for status in running if status.desk.desk_id not in shown]
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
    except SQLAlchemyError as exc:
        _shout(f"cannot read the desks' confirmations ({_store_problem(exc)}): see main.py firm status")
        return
    _say(f"{len(shown)} of {len(running)} running desks confirmed")
    for status in waiting:
        _shout(f"not confirmed: {_label(status)}, running (heard from {status.seen_age_s:.1f}s ago): check that desk now")
    for status in view.desks:
        if status.liveness == "silent":
            _shout(f"silent: {_label(status)}, not heard from in {status.seen_age_s:.0f}s: if it is still trading, "
                   "halt it at the broker; it starts HALTED")


def _label(status: DeskStatus) -> str:
    return f"{status.desk.name} ({status.desk.desk_id}) on {status.desk.host}"


def halt_desk(args: argparse.Namespace, settings: Settings, actor: str) -> int:
    """``panic --desk ID``: write that desk's HALTED flag; its halt watch acts on it."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.engine.halt_watch import halted_after, newest_flag_id
    from app.store.audit_writer import AuditWriter
    from app.store.db import StoreError
    from app.store.firm_flag import firm_view
    from app.store.halt_flag import persist_halt
    from app.store.migrate import open_store

    desk_id = args.desk.strip().upper()
    url = settings.database_url
    if (missing := no_database(url, "no desk has run on this database, so there is none to halt")) is not None:
        _shout(f"panic --desk refused: {missing}")
        return EXIT_FAILED
    _say(f"PANIC for desk {desk_id} by {actor}: {args.reason}")
    try:
        store = open_store(url)
    except (StoreError, SQLAlchemyError) as exc:
        _shout(f"the HALTED flag was NOT written: the store cannot be opened ({_store_problem(exc)})")
        return EXIT_NOT_WRITTEN
    try:
        found = {status.desk.desk_id: status for status in firm_view(store).desks}
        status = found.get(desk_id)
        if status is None:
            _shout(f"panic --desk refused: no desk {desk_id} is registered on this database (main.py firm status lists them)")
            return EXIT_FAILED
        writer = AuditWriter(store, desk_id=desk_id)
        writer.start()
        try:
            persist_halt(writer, desk_id, args.reason, actor, timeout=STORE_TIMEOUT_S)
        finally:
            writer.close(timeout=1.0)
        _say(f"written: the HALTED flag of {_label(status)}; its next start is HALTED")
        if status.liveness == "stopped":
            _say("done: that desk is not running")
            return EXIT_OK
        flag_id = newest_flag_id(store, desk_id, args.reason, actor)
        _say(f"waiting up to {args.timeout:g}s for it to halt ...")
        deadline = time.monotonic() + args.timeout
        while flag_id is not None and time.monotonic() < deadline:
            row = halted_after(store, desk_id, flag_id, actor)
            if row is not None:
                _say(f"done: the desk halted ({row.reason})")
                return EXIT_OK
            time.sleep(POLL_S)
    except TimeoutError:
        _shout(f"the HALTED flag was NOT confirmed written within {STORE_TIMEOUT_S:g}s: halt the desk from its own window")
        return EXIT_NOT_WRITTEN
    except (StoreError, SQLAlchemyError) as exc:
        _shout(f"the HALTED flag was NOT written or cannot be checked ({_store_problem(exc)}): halt the desk from its own window")
        return EXIT_NOT_WRITTEN
    finally:
        store.dispose()
    state = "silent (not heard from for a while: dead or hung)" if status.liveness == "silent" else "running"
    _shout(f"ACTION NEEDED: {_label(status)} is {state} and did not record a halt: halt it at its workstation, "
           "or cancel its orders at the broker")
    return EXIT_FAILED


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.store.db import StoreError, make_engine
    from app.store.firm_flag import firm_view

    url = settings.database_url
    if (missing := no_database(url, "no desk has run on this database")) is not None:
        _shout(f"firm status: {missing}")
        return EXIT_FAILED
    try:
        store = make_engine(url)
        try:
            view = firm_view(store)
        finally:
            store.dispose()
    except (StoreError, SQLAlchemyError) as exc:
        _shout(f"firm status: the store cannot be read ({_store_problem(exc)})")
        return EXIT_FAILED
    for line in status_lines(view):
        _say(line)
    return EXIT_OK


def status_lines(view: FirmView) -> list[str]:
    """The firm view as text: the firm state, then one row per desk."""
    state = view.state
    if state is None:
        head = "firm: ACTIVE (never halted)"
    else:
        head = f"firm: {state.state} since {_when(state.ts_ns)} by {state.actor} (firm state {state.id}): {state.reason}"
    if not view.desks:
        return [head, "no desk is registered on this database"]
    table = [("DESK", "NAME", "HOST", "LIVENESS", "TRADING", "FIRM HALT", "SWEEP", "WORKING")]
    for status in view.desks:
        table.append((status.desk.desk_id, status.desk.name, status.desk.host, _liveness(status),
                      str(status.trading.state) if status.trading is not None else "ACTIVE",
                      _confirmed(status, view), _swept(status, view), str(status.working)))
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    return [head, *("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table)]


def _liveness(status: DeskStatus) -> str:
    return status.liveness if status.seen_age_s is None else f"{status.liveness} {status.seen_age_s:.1f}s"


def _confirmed(status: DeskStatus, view: FirmView) -> str:
    if not view.halted or view.state is None:
        return "-"
    if status.ack is None:
        return "NOT CONFIRMED"
    return f"halted +{max(status.ack.halted_ns - view.state.ts_ns, 0) / 1e6:.0f} ms"


def _swept(status: DeskStatus, view: FirmView) -> str:
    if not view.halted or status.ack is None:
        return "-"
    if status.ack.swept_ns is None:
        return "sweeping"
    return f"done, {status.ack.still_working} still working"


def run_rearm(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.domain.actors import Permission
    from app.domain.audit import AuditEventType
    from app.store.audit_writer import AuditWriter
    from app.store.db import StoreError
    from app.store.firm_flag import firm_in_force, persist_firm_rearm, record_refused
    from app.store.migrate import open_store

    def refused(text: str) -> int:
        _shout(f"firm rearm refused: {text}")
        return EXIT_FAILED

    url = settings.database_url
    if (missing := no_database(url, "no desk has run on this database, so the firm is not halted")) is not None:
        return refused(missing)
    try:
        store = open_store(url)
        try:
            writer = AuditWriter(store, desk_id=_origin_desk(settings))
            writer.start()
            try:
                actor = _authorised(store, writer, args, Permission.REARM, AuditEventType.FIRM_REARMED, args.reason,
                                    _os_user(), "a risk officer or an administrator re-arms the firm")
                halt = firm_in_force(store)
                if halt is None or not halt.halted:
                    why = "the firm is not halted"
                    record_refused(writer, AuditEventType.FIRM_REARMED, why, args.reason, actor, timeout=STORE_TIMEOUT_S)
                    return refused(f"{why}: nothing to re-arm (main.py firm status shows it)")
                persist_firm_rearm(writer, halt, args.reason, actor, origin_desk=_origin_desk(settings), timeout=STORE_TIMEOUT_S)
            finally:
                writer.close(timeout=1.0)
        finally:
            store.dispose()
    except _Refused as exc:
        return refused(str(exc))
    except TimeoutError:
        return refused(f"the store did not confirm the re-arm within {STORE_TIMEOUT_S:g}s: it may still land; "
                       "see main.py firm status before trying again")
    except (StoreError, SQLAlchemyError) as exc:
        return refused(f"the store cannot be used ({_store_problem(exc)}): nothing was changed")
    _say(f"done: firm halt {halt.id} lifted by {actor}: {args.reason}")
    _say("every desk stays HALTED until it is re-armed on its own (its window, or main.py rearm in its data folder)")
    return EXIT_OK
