"""`main.py panic`: the emergency stop from outside the GUI.

In order, printing each step as it happens:

1. write the persisted HALTED flag (audit record + trading-state row), so the next start is
   halted whatever happens next; a store failure is reported and the command carries on,
   because telling the desk matters more;
2. tell the running desk over its authenticated local control channel and wait for it to
   confirm HALTED, trying again within ``--timeout`` when a flood of connections made the desk
   drop this one; when the channel fails and a desk holds the database, wait a moment for that
   desk to record in the store that it acted on the flag (it watches it: ``app.engine.halt_watch``);
3. if no desk confirmed: say whether one holds the database, and cancel working orders directly at
   the broker the last desk in this data folder used (``last-desk.json``, written as a desk starts;
   ``--broker`` overrides it, the settings stand in when no desk recorded one) where that broker
   allows it from another process. When nothing could be cancelled, list what the store last
   showed working. A damaged ``last-desk.json`` means a desk ran on a broker this cannot know:
   then only ``--broker`` lets the command report success.

Exit 0 when trading is stopped and the flag is written; 1 when the operator must act.

``panic --firm`` halts every desk on the database and ``panic --desk ID`` one other desk by its id,
each through the flag the running desks watch: see ``app.cli.firm``. Only the
standard library is imported up front: the store, the control client and the broker's SDK load
inside ``run``, so the flag is written within a second of the command starting.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .authority import add_arguments
from .common import (
    BROKERS,
    EXIT_FAILED,
    EXIT_OK,
    absent_database,
    positive_float,
    reason_text,
)

if TYPE_CHECKING:
    from app.settings import Settings
    from app.store.desk_state import StoredOrder

DEFAULT_REASON = "panic from the command line"
# How many of the orders the store shows working are listed one by one.
LIST_AT_MOST = 20
# The flag comes first, but a store that hangs must not keep the desk from hearing about the panic.
STORE_TIMEOUT_S = 8.0
# With the control channel out, how long to wait for the desk to record that it acted on the flag
# (it reads the flag every 0.1 s and halts at once), and how often to look.
STORE_CONFIRM_S = 1.5
STORE_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class DirectCancel:
    """How ``panic`` cancels at a broker without the desk.

    ``cancel(settings, token_stdin)`` cancels every working order with the stored credentials (and
    a session token read from stdin when ``token_stdin``) and returns one line saying what it did,
    or raises. ``None`` when the profile cannot do this; ``why_not`` says why.
    ``orders_end_with_desk``: the broker lives inside the desk process, so once no desk runs
    nothing of it is working anywhere.
    """

    cancel: Callable[[Settings, bool], str] | None
    why_not: str = ""
    orders_end_with_desk: bool = False


def _cancel_at_breeze(settings: Settings, token_stdin: bool) -> str:
    # The adapter and the SDK are imported only when a cancel at Breeze is really under way.
    from .breeze_cancel import cancel_all_at_breeze

    return cancel_all_at_breeze(settings, token_stdin)


# Keyed by broker profile name; a broker adapter that can cancel out of process registers here.
DIRECT_CANCEL: dict[str, DirectCancel] = {
    "paper": DirectCancel(
        None,
        "the paper broker lives inside the desk process; with no desk there is no paper order book to cancel",
        orders_end_with_desk=True,
    ),
    "breeze": DirectCancel(_cancel_at_breeze),
}


@dataclass(frozen=True, slots=True)
class _Profile:
    """The broker to cancel at; ``known`` when ``--broker`` or the last desk's record named it, not the settings.

    ``damaged``: ``last-desk.json`` is there but unreadable, so a desk did record a broker that may
    not be the settings' guess: nothing this command does can confirm trading stopped.
    """

    broker: str
    known: bool
    damaged: bool = False


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    panic = commands.add_parser("panic", help="emergency stop: halt the running desk, or cancel at the broker")
    panic.add_argument("--reason", type=reason_text, default=DEFAULT_REASON, help=f"why (default: {DEFAULT_REASON!r})")
    panic.add_argument(
        "--timeout", type=positive_float, default=2.0, help="seconds to wait for the desk to confirm (default 2)"
    )
    panic.add_argument(
        "--session-token-stdin", action="store_true",
        help="Breeze: read today's session token from stdin for a direct cancel (default: the one stored today)",
    )
    panic.add_argument(
        "--broker", choices=BROKERS, default=None,
        help="where to cancel directly if no desk answers (default: the broker the last desk in this data folder "
             "used, else the settings')",
    )
    beyond = panic.add_mutually_exclusive_group()
    beyond.add_argument("--firm", action="store_true",
                        help="halt every desk on the database (a risk officer or an administrator, once operators exist)")
    beyond.add_argument("--desk", metavar="ID", help="halt the desk with this id on the database (main.py firm status lists them)")
    add_arguments(panic)
    panic.set_defaults(run=run)


def _say(text: str) -> None:
    print(text, flush=True)


def _shout(text: str) -> None:
    print(f"!! {text}", file=sys.stderr, flush=True)


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the password database
        user = "unknown"
    return f"panic:{user}"


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.firm:
        from .firm import halt_firm

        return halt_firm(args, settings)
    actor = _actor()
    if args.desk is not None:
        from .firm import halt_desk

        return halt_desk(args, settings, actor)
    _say(f"PANIC by {actor}: {args.reason}")
    flag_problem, flag_id, desk_id = _write_flag(settings, args.reason, actor)
    reply, desk_pid = _tell_desk(settings, args.reason, actor, args.timeout)
    if reply is None and flag_id is not None and desk_id is not None and _confirmed_in_store(settings, desk_id, flag_id, actor):
        _say("done: the desk is HALTED and will start HALTED")
        return EXIT_OK
    if reply is not None:
        if flag_problem is not None:
            _shout(f"the desk is halted, but the HALTED flag was NOT written ({flag_problem}): a restart would "
                   "not be halted; keep the desk running and fix the store")
            return EXIT_FAILED
        _say("done: the desk is HALTED and will start HALTED")
        return EXIT_OK
    return _without_desk(settings, flag_problem, desk_pid, args.session_token_stdin, args.broker)


def _write_flag(settings: Settings, reason: str, actor: str) -> tuple[str | None, int | None, str | None]:
    """Step 1. Returns what went wrong (``None`` once the flag is durable), and the flag's row id and desk when known."""
    _say("[1/3] writing the HALTED flag to the store ...")
    try:
        # Imported here, inside the guard: even a store package that cannot load must not stop step 2.
        from app.engine.halt_watch import newest_flag_id
        from app.store.audit_writer import AuditWriter
        from app.store.desk_state import scope_for_home
        from app.store.halt_flag import persist_halt
        from app.store.migrate import open_store

        engine = open_store(settings.database_url)
        try:
            desk_id = scope_for_home(engine, settings.home).desk_id
            writer = AuditWriter(engine, desk_id=desk_id)
            writer.start()
            try:
                persist_halt(writer, desk_id, reason, actor, timeout=STORE_TIMEOUT_S)
            finally:
                writer.close(timeout=1.0)
            flag_id = _quietly(lambda: newest_flag_id(engine, desk_id, reason, actor))
        finally:
            engine.dispose()
    except TimeoutError:
        problem = f"the store did not confirm the write within {STORE_TIMEOUT_S:g}s"
    except Exception as exc:  # noqa: BLE001 - whatever broke, the desk must still be told
        problem = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}"
    else:
        _say("      written: the next start of the desk is HALTED")
        return None, flag_id, desk_id
    _shout(f"could not write the HALTED flag: {problem}")
    _shout("carrying on to tell the desk")
    return problem, None, None


def _quietly(read: Callable[[], int | None]) -> int | None:
    # Only what the desk confirms through the store hangs on this; the flag itself is written.
    try:
        return read()
    except Exception:  # noqa: BLE001 - without the id, panic relies on the control channel alone
        return None


def _confirmed_in_store(settings: Settings, desk_id: str, flag_id: int, actor: str) -> bool:
    """The control channel failed: a running desk watches the flag, so wait a moment for it to record its halt."""
    from app.engine.halt_watch import halted_after
    from app.store.db import make_engine
    from app.store.desk_lock import desk_running

    try:
        if not desk_running(settings.database_url):
            return False
        _say(f"      a desk runs on this database: waiting up to {STORE_CONFIRM_S:g}s for it to act on the HALTED flag ...")
        engine = make_engine(settings.database_url)
        try:
            deadline = time.monotonic() + STORE_CONFIRM_S
            while (row := halted_after(engine, desk_id, flag_id, actor)) is None:
                if time.monotonic() >= deadline:
                    _say("      it did not record a halt in time")
                    return False
                time.sleep(STORE_POLL_S)
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - step 3 still runs and says what to do
        _shout(f"cannot read the desk's trading state from the store: {type(exc).__name__}")
        return False
    _say(f"      the desk confirmed through the store: trading HALTED ({row.reason})")
    return True


def _tell_desk(settings: Settings, reason: str, actor: str, timeout: float) -> tuple[dict[str, Any] | None, int | None]:
    """Step 2. Returns the desk's reply if it confirmed HALTED, and the desk's pid if known."""
    _say(f"[2/3] telling the running desk (waiting up to {timeout:g}s) ...")
    from app.engine.control import ControlUnavailable, send_command

    try:
        # A second panic is harmless, so a connection dropped at any point is retried within the timeout.
        reply = send_command(settings.home, "panic", {"reason": reason, "actor": actor}, timeout=timeout, idempotent=True)
    except ControlUnavailable as exc:
        _say(f"      no desk answered: {exc.reason}")
        return None, exc.pid
    if reply.get("ok") is True and reply.get("state") == "HALTED":
        working = reply.get("working")
        clear = reply.get("expected_clear_s")
        detail = [f"{working} working orders being cancelled" if isinstance(working, int) else None,
                  f"expected clear in about {clear}s" if isinstance(clear, (int, float)) else None]
        _say("      the desk confirmed: trading HALTED" + "".join(f"; {part}" for part in detail if part))
        return reply, None
    _shout(f"the desk answered but did not confirm HALTED: {reply.get('error') or reply}")
    return None, None


def _without_desk(
    settings: Settings, flag_problem: str | None, desk_pid: int | None, token_stdin: bool, chosen: str | None
) -> int:
    """Step 3: nothing confirmed the halt. Find out whether a desk runs, and cancel at the broker if possible."""
    from app.store.desk_lock import desk_running

    _say("[3/3] no desk confirmed the halt")
    try:
        running: bool | None = desk_running(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - not knowing is treated as a desk that may be trading
        _shout(f"cannot tell whether a desk is running on this database ({type(exc).__name__}): assuming one is")
        running = None
    pid = f" (pid {desk_pid})" if desk_pid is not None else ""
    if running:
        _shout(f"a desk{pid} is running on this database but is not answering")
    elif running is False:
        _say("      no desk is running on this database: nothing is trading from this desk")
    profile = _broker_profile(settings, chosen)
    route = DIRECT_CANCEL.get(profile.broker)
    cancelled = _cancel_at_broker(settings, profile.broker, route, token_stdin)
    working = _working_in_store(settings) if cancelled is not True else []
    gone_with_desk = route is not None and route.orders_end_with_desk and running is False
    # A guessed in-process broker clears the store's working orders only if it shows none: they
    # may be at a real broker that a desk started before last-desk.json existed.
    stopped = cancelled is True or (cancelled is None and gone_with_desk and (profile.known or working == []))
    if flag_problem is not None:
        _shout(f"the HALTED flag was NOT written ({flag_problem}): the next start will not be halted")
    if profile.damaged:
        # The desk that wrote the record may have traded anywhere: nothing done at the guess proves it stopped.
        if cancelled is not True:
            _list_working(working, profile.broker)
        _shout(f"ACTION NEEDED: which broker the last desk traded on is unknown ({profile.broker} was only the "
               "settings' guess); run panic again naming it: "
               + " or ".join(f".venv/bin/python main.py panic --broker {name}" for name in BROKERS)
               + (f"; and end the desk process{pid}" if running is not False else ""))
        return EXIT_FAILED
    if stopped and working:
        _say(f"      the store still shows {len(working)} orders working at {profile.broker}: "
             "they ended with the desk process that held them")
    if not stopped:
        _list_working(working, profile.broker)
        _shout("ACTION NEEDED: cancel the working orders on the broker's own site or terminal now"
               + (f", then end the desk process{pid}" if running is not False else ""))
        if not profile.known:
            _shout(f"if the last desk traded at another broker than {profile.broker}, run panic again with --broker NAME")
        return EXIT_FAILED
    if flag_problem is not None:
        return EXIT_FAILED
    _say("done: " + ("working orders cancelled at the broker; " if cancelled else "")
         + "the next start of the desk is HALTED")
    return EXIT_OK


def _broker_profile(settings: Settings, chosen: str | None) -> _Profile:
    """``--broker``, else the broker the last desk in this data folder started with, else the settings' guess."""
    from app.domain.india_time import IST
    from app.store.last_desk import LastDeskError, read_last_desk

    if chosen is not None:
        _say(f"      broker {chosen}: given with --broker")
        return _Profile(chosen, known=True)
    try:
        last = read_last_desk(settings.home)
    except LastDeskError as exc:
        _shout(f"cannot tell which broker the last desk used: {exc}")
        _say(f"      broker {settings.broker}: from the settings, a guess")
        return _Profile(settings.broker, known=False, damaged=True)
    if last is None:
        _say(f"      broker {settings.broker}: from the settings (no desk has recorded its broker in this data folder)")
        return _Profile(settings.broker, known=False)
    when = (dt.datetime.fromtimestamp(last.started_ns / 1e9, IST).strftime(" %Y-%m-%d %H:%M:%S IST")
            if last.started_ns is not None else "")
    who = f", pid {last.pid}" if last.pid is not None else ""
    differs = f"; the settings say {settings.broker}" if last.broker != settings.broker else ""
    _say(f"      broker {last.broker}: the last desk in this data folder started on it (at{when}{who}){differs}")
    return _Profile(last.broker, known=True)


def _cancel_at_broker(settings: Settings, broker: str, route: DirectCancel | None, token_stdin: bool) -> bool | None:
    """Cancel every working order at the broker directly: True done, False failed, None not possible here."""
    if route is None or route.cancel is None:
        why = route.why_not if route is not None else f"no direct cancel for broker {broker!r} in this build"
        _say(f"      cancelling at the broker directly is not possible: {why}")
        return None
    _say(f"      cancelling working orders at {broker} directly ...")
    try:
        summary = route.cancel(settings, token_stdin)
    except Exception as exc:  # noqa: BLE001 - the operator must hear of any failure and act
        _shout(f"cancelling at {broker} failed: {type(exc).__name__}: {exc}")
        return False
    _say(f"      {summary}")
    return True


def _working_in_store(settings: Settings) -> list[StoredOrder] | None:
    """What the store last showed working (``None`` when it cannot be read); never creates a database."""
    from app.store.db import make_engine
    from app.store.desk_state import scope_for_home, working_orders

    if absent_database(settings.database_url) is not None:
        return []
    try:
        engine = make_engine(settings.database_url)
        try:
            return working_orders(engine, scope_for_home(engine, settings.home))
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - reported; the operator is told to act either way
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
        _shout(f"cannot read the desk's orders from the store: {type(exc).__name__}: {detail}")
        return None


def _list_working(working: list[StoredOrder] | None, broker: str) -> None:
    if working is None:
        _shout(f"what is still working at {broker} is unknown: the store could not be read")
        return
    if not working:
        _shout(f"the store shows no order working from this desk; orders placed at {broker} any other way are not known here")
        return
    _shout(f"still working at {broker} as the store last showed ({len(working)}):")
    for order in working[:LIST_AT_MOST]:
        _shout(f"  {order.describe()}")
    if len(working) > LIST_AT_MOST:
        _shout(f"  ... and {len(working) - LIST_AT_MOST} more (main.py audit export has them all)")
