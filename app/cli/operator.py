"""`main.py operator add|list|disable|enable|reset-password`: the desk's operator accounts, headless.

There is no default account and no default password. The first operator is added with no
authority and must be an administrator (``operator add NAME --role admin``); from then on every
command but ``list`` needs an administrator's authority: ``--as NAME`` and that administrator's
password, asked without echo or, with ``--password-stdin``, read as the first line of stdin. A new
password is asked twice without echo, or read as the next line of stdin (after the administrator's).

A running desk does not stop these commands: the operators table is not the desk's working state,
so no desk lock is taken. Each change is one short transaction under the store's write lock, and
its audit record goes straight into the audit chain through this command's own writer, which
appends beside a running desk's as ``panic``'s does (the chain is extended under the same lock).
The desk reads the table at every sign-in, so it sees the change at once. Exit 0 done, 1 refused
(and for ``list``, 1 when an account's stored entry is damaged: it is listed as such).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .admin_change import refuse, run_admin_change
from .authority import AuthorityRefused, read_secret
from .common import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from sqlalchemy import Engine as SqlEngine

    from app.domain.actors import Actor
    from app.security.accounts import Operator
    from app.security.operators import OperatorDirectory
    from app.settings import Settings
    from app.store.audit_writer import AuditWriter

ROLES = ("viewer", "trader", "risk_officer", "admin")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    operator = commands.add_parser("operator", help="add, list, disable, enable operators and reset their passwords")
    actions = operator.add_subparsers(dest="operator_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add an operator (the first one must be an admin)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    actions.add_parser("list", help="every operator: role, enabled, locked until, last password change")
    for action, text in (("disable", "stop an operator from signing in (never the last enabled admin)"),
                         ("enable", "let a disabled operator sign in again (also lifts a lockout)"),
                         ("reset-password", "set a new password for an operator (also lifts a lockout)")):
        actions.add_parser(action, help=text).add_argument("name")
    for name, parser in actions.choices.items():
        if name == "list":
            continue
        parser.add_argument("--as", dest="as_admin", metavar="ADMIN",
                            help="the administrator authorising this, once operators exist (password asked)")
        parser.add_argument("--password-stdin", action="store_true",
                            help="read passwords from stdin, one a line: the administrator's (with --as), then the new one")
    operator.set_defaults(run=run)


def _fail(command: str, text: str) -> int:
    return refuse(f"operator {command}", text)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from app.security.accounts import OperatorInputError

    command = args.operator_command
    return run_admin_change(
        f"operator {command}", settings, listing=_list if command == "list" else None,
        change=lambda store, writer: _change(args, store, writer),
        refusals=(OperatorInputError, PermissionError), what="operator",
    )


def _change(args: argparse.Namespace, store: SqlEngine, writer: AuditWriter) -> int:
    from app.domain.actors import Role
    from app.security.operators import OperatorDirectory

    from .authority import writer_sink

    command = args.operator_command
    directory = OperatorDirectory(store, writer_sink(writer))
    by = _authority(args, directory)
    if command == "add":
        password = _new_password(args, args.name)
        added = directory.add(args.name, Role(args.role), password, by=by)
        print(f"added {added.name} as {added.role}" + (" (the first administrator)" if by is None else f" by {by.name}"))
        return EXIT_OK
    if by is None:
        return _fail(command, "there are no operators yet: add the first administrator with "
                              "`main.py operator add NAME --role admin`")
    if command == "disable":
        directory.disable(args.name, by=by)
        print(f"disabled {args.name}: it can no longer sign in")
    elif command == "enable":
        directory.enable(args.name, by=by)
        print(f"enabled {args.name}: it can sign in again")
    else:
        if directory.operator(args.name) is None:
            return _fail(command, f"name: no operator named {args.name}")
        directory.reset_password(args.name, _new_password(args, args.name), by=by)
        print(f"reset the password of {args.name}; any lockout is lifted")
    return EXIT_OK


def _authority(args: argparse.Namespace, directory: OperatorDirectory) -> Actor | None:
    """The administrator acting, or ``None`` before the first operator exists."""
    if not directory.has_operators():
        if args.as_admin is not None:
            # Refused rather than ignored: with --password-stdin the first line would otherwise be
            # taken as the new operator's password when it was meant as the administrator's.
            raise AuthorityRefused("there are no operators yet, so no --as: the first operator is added without authority")
        return None
    if args.as_admin is None:
        raise AuthorityRefused("operators exist: an administrator must authorise this with --as NAME")
    password = read_secret(f"password for {args.as_admin}: ", from_stdin=args.password_stdin)
    return directory.authenticate(args.as_admin, password, purpose="authorise")


def _new_password(args: argparse.Namespace, name: str) -> str:
    """The new password: the next stdin line, or asked twice without echo; refused early if the policy refuses it."""
    from app.security.accounts import OperatorInputError
    from app.security.passwords import password_problems

    password = read_secret(f"new password for {name}: ", from_stdin=args.password_stdin)
    if problems := password_problems(password, name):
        raise OperatorInputError("password", problems)
    if not args.password_stdin and read_secret(f"new password for {name} again: ", from_stdin=False) != password:
        raise AuthorityRefused("the two passwords differ: nothing was changed")
    return password


def _list(store: SqlEngine) -> int:
    import time

    from app.security.operators import OperatorDirectory

    # Reading only: nothing goes to the audit chain.
    directory = OperatorDirectory(store, lambda *_: None)
    operators = directory.operators()
    if not operators:
        print("no operators yet: add the first administrator with `main.py operator add NAME --role admin`")
        return EXIT_OK
    now = time.time_ns()
    rows = [("NAME", "ROLE", "ENABLED", "LOCKED UNTIL", "PASSWORD CHANGED")]
    rows += [_row(account, now) for account in operators]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if unknown := directory.unknown_name_attempts():
        print(f"sign-in attempts with a name no account has, so far: {unknown}")
    damaged = [account for account in operators if account.damaged is not None]
    for account in damaged:
        print(f"operator list: the stored entry of {account.name} is damaged ({account.damaged}): it cannot sign in; "
              "restore a backup made before the damage", file=sys.stderr)
    # Exit 1 with a damaged entry, so a script checking the desk notices.
    return EXIT_FAILED if damaged else EXIT_OK


def _row(account: Operator, now_ns: int) -> tuple[str, str, str, str, str]:
    from app.security.accounts import format_until

    if account.damaged is not None:
        return (account.name, "DAMAGED", "no", "-", "-")
    locked = format_until(account.locked_until_ns) if account.locked_until_ns is not None and account.locked_at(now_ns) else "-"
    return (account.name, account.role.value, "yes" if account.enabled else "no", locked,
            format_until(account.password_changed_ns))
