"""`main.py rearm --reason R`: lift a HALT (after ``panic``, a breaker, the kill switch) from the command line.

With a desk running, it asks that desk over its control channel, so the engine's own re-arm checks
apply (a sweep or flatten still running, today's loss at the daily loss limit, a reason). With none
running, it applies the checks the store can answer (see ``app.engine.offline_rearm`` for which it
can and cannot make) and writes the re-arm to the store, so the next start is ACTIVE (or REDUCING);
a refusal by those checks is audited as the engine audits one (``rearmed`` with ``refused``).

The actor is the OS user until the desk has operators: whoever can read the data folder's control
key or write its store already acts as that user. Once operators exist, an operator with the re-arm
permission must name themselves and give their password (``app.cli.authority``): a running desk
checks it itself (it answers ``operator_required`` to a request without one, and the command then
asks); with none running, the command checks it against the store. Exit 0 once re-armed, 1 when refused.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
import time
from typing import TYPE_CHECKING

from .authority import (
    AuthorityRefused,
    Credentials,
    add_arguments,
    ask_credentials,
    given_credentials,
)
from .common import EXIT_FAILED, EXIT_OK, no_database, positive_float, reason_text

if TYPE_CHECKING:
    from app.settings import Settings

STORE_TIMEOUT_S = 8.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rearm = commands.add_parser("rearm", help="lift a HALT: re-arm the desk, giving a reason (audited)")
    rearm.add_argument("--reason", type=reason_text, required=True, help="why trading is safe again")
    rearm.add_argument(
        "--to", choices=("ACTIVE", "REDUCING"), default="ACTIVE",
        help="ACTIVE (default), or REDUCING: only orders that shrink a position pass",
    )
    rearm.add_argument(
        "--timeout", type=positive_float, default=5.0, help="seconds to wait for a running desk to answer (default 5)"
    )
    add_arguments(rearm)
    rearm.set_defaults(run=run)


def _fail(text: str) -> int:
    print(f"rearm refused: {text}", file=sys.stderr, flush=True)
    return EXIT_FAILED


def run(args: argparse.Namespace, settings: Settings) -> int:
    from app.engine.control import ControlUnavailable, send_command

    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the password database
        return _fail("cannot tell who you are (no OS login name): a re-arm must name who did it")
    try:
        credentials = given_credentials(args)
    except AuthorityRefused as exc:
        return _fail(str(exc))
    # An operator's name is echoed only once the desk or the store has accepted it (a password typed
    # into the name prompt must not land in the terminal's scrollback).
    print(f"RE-ARM to {args.to}" + ("" if credentials is not None else f" by {user}") + f": {args.reason}", flush=True)
    request: dict[str, str] = {"reason": args.reason, "actor": user, "to": args.to}
    try:
        reply = send_command(settings.home, "rearm", {**request, **_signed(credentials)}, timeout=args.timeout)
        if reply.get("operator_required") is True and credentials is None:
            # The desk has operators: ask who, then ask again with their password.
            credentials = ask_credentials(args)
            reply = send_command(settings.home, "rearm", {**request, **_signed(credentials)}, timeout=args.timeout)
    except AuthorityRefused as exc:
        return _fail(str(exc))
    except ControlUnavailable as exc:
        print(f"no desk answered ({exc.reason}): checking the store", flush=True)
        return _offline(settings, args, user, credentials)
    if reply.get("ok") is True:
        print(f"done: the running desk re-armed; trading is {reply.get('state')}", flush=True)
        return EXIT_OK
    return _fail(f"the running desk refused: {reply.get('error') or reply}")


def _signed(credentials: Credentials | None) -> dict[str, str]:
    """The operator's name and password for the desk to check (over the authenticated local channel)."""
    return {} if credentials is None else {"operator": credentials.name, "password": credentials.password}


def _offline(settings: Settings, args: argparse.Namespace, user: str, credentials: Credentials | None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.domain.actors import Permission
    from app.domain.money import format_inr
    from app.domain.trading_state import TradingState
    from app.engine.offline_rearm import RearmRefused, check_offline_rearm
    from app.store.audit_writer import AuditWriter
    from app.store.db import StoreError, sqlite_path
    from app.store.desk_identity import DeskIdentityError, read_identity
    from app.store.desk_lock import DeskLock, desk_running
    from app.store.desk_state import scope_for_home
    from app.store.firm_flag import firm_in_force
    from app.store.halt_flag import persist_rearm, record_refused_rearm
    from app.store.migrate import open_store

    from .authority import authenticate, lacks
    from .limits import default_limits_file

    reason, to = args.reason, args.to
    url = settings.database_url
    if (missing := no_database(url, "no desk has run in this data folder, so nothing is halted")) is not None:
        return _fail(missing)
    target = TradingState(to)
    not_answering = "this folder's desk is running but did not answer on its control channel: re-arm it from that desk"
    try:
        identity = read_identity(settings.home)
    except DeskIdentityError as exc:
        return _fail(str(exc))
    with contextlib.ExitStack() as held:
        try:
            # The desk lock, held from the check to the write, keeps this folder's desk from starting
            # in between and resuming the state the re-arm replaces: on SQLite the file's lock, on
            # PostgreSQL the desk's own advisory lock (other desks on the database run on).
            held.enter_context(DeskLock(url, identity.desk_id if identity is not None else None))
        except StoreError:  # the lock is taken: a desk holds it
            return _fail(not_answering)
        except SQLAlchemyError as exc:
            return _fail(f"the store cannot be used ({_store_problem(exc)}): nothing was changed")
        except OSError as exc:
            return _fail(f"cannot lock the database against a desk starting: {exc}")
        try:
            # A folder that never started a desk has no desk lock on PostgreSQL: any desk connected may be its.
            if sqlite_path(url) is None and identity is None and desk_running(url):
                return _fail(not_answering)
            store = open_store(url)
            held.callback(store.dispose)
            scope = scope_for_home(store, settings.home)
            writer = AuditWriter(store, desk_id=scope.desk_id)
            writer.start()
            held.callback(writer.close, timeout=1.0)
            try:
                operator = authenticate(store, writer, args, credentials)
            except AuthorityRefused as exc:
                return _fail(str(exc))
            if operator is not None:
                user = operator.name
                if (missing := lacks(operator, Permission.REARM)) is not None:
                    # Audited as the engine audits a re-arm by someone without the permission.
                    record_refused_rearm(writer, target, "no rearm permission", reason, user, timeout=STORE_TIMEOUT_S)
                    return _fail(f"{missing}: a risk officer or an administrator re-arms the desk")
                print(f"authorised: {operator.name} ({operator.role})", flush=True)
            firm = firm_in_force(store)
            if firm is not None and firm.halted:
                # The running desk refuses the same (its halt watch holds re-arms while the firm is halted).
                why = f"the firm is halted ({firm.describe()}): the firm must be re-armed first (main.py firm rearm)"
                record_refused_rearm(writer, target, why, reason, user, timeout=STORE_TIMEOUT_S)
                return _fail(why)
            try:
                found = check_offline_rearm(store, scope, target, now_ns=time.time_ns(), limits_file=default_limits_file(settings))
            except RearmRefused as exc:
                # Audited like the engine's refusals: who tried to lift the halt, and why not.
                try:
                    record_refused_rearm(writer, target, str(exc), reason, user, timeout=STORE_TIMEOUT_S)
                except (StoreError, SQLAlchemyError, TimeoutError) as problem:
                    print(f"the refusal could not be audited: {_store_problem(problem)}", file=sys.stderr, flush=True)
                return _fail(str(exc))
            print(f"checked: the store says {found.previous}; today's realised P&L {format_inr(found.today_realized)}, "
                  f"daily loss limit {format_inr(found.daily_loss_limit)} ({found.limits_origin})", flush=True)
            persist_rearm(writer, scope.desk_id, found.previous, target, reason, user, timeout=STORE_TIMEOUT_S)
        except TimeoutError:
            return _fail(f"the store did not confirm the re-arm within {STORE_TIMEOUT_S:g}s: it may still land; "
                         "see `main.py audit export` before trying again")
        except (StoreError, SQLAlchemyError) as exc:
            return _fail(f"the store cannot be used ({_store_problem(exc)}): nothing was changed")
    print(f"done: re-armed from {found.previous} to {to} in the store; the next start of the desk is {to}", flush=True)
    return EXIT_OK


def _store_problem(exc: Exception) -> str:
    """One line naming what failed: the driver's own first line, without SQLAlchemy's statement and link."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig if orig is not None else exc).__name__}: {lines[0] if lines else 'no detail'}"
