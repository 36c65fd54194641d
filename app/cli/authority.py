"""An operator's authority for a command that needs one (``rearm``, ``backup restore``), once the desk has operators.

Until the first operator exists, such a command acts as the OS user, as it always has: whoever
can read the data folder already is that user. From then on it names an operator and proves it
with that operator's password: ``--operator NAME`` and the password asked without echo, or read
as the first line of stdin with ``--password-stdin``; with no ``--operator`` both are asked at the
terminal. The password is checked like any sign-in (purpose "authorise": audited, counted toward
the lockout), and the operator's role must hold the permission the command needs.

Imports only the standard library at the top, like every command module.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine as SqlEngine

    from app.domain.actors import Actor, Permission
    from app.security.operators import AuditSink
    from app.store.audit_writer import AuditWriter

STORE_TIMEOUT_S = 8.0


class AuthorityRefused(Exception):
    """No authority: no credentials given where they are needed, wrong ones, or a role without the permission."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """An operator's name and password as given to this command (the password never in a repr)."""

    name: str
    password: str = field(repr=False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--operator", metavar="NAME",
                        help="the operator whose authority this is, once the desk has operators (asked when not given)")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the operator's password from the first line of stdin instead of asking without echo")


def read_secret(prompt: str, *, from_stdin: bool) -> str:
    """One secret: the next line of stdin (without its line ending) or asked at the terminal without echo."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise AuthorityRefused("stdin ended before the password line")
        return line.removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise AuthorityRefused("no terminal to ask for the password: give --password-stdin and the password on stdin")
    try:
        return getpass.getpass(prompt)
    except (EOFError, KeyboardInterrupt):
        raise AuthorityRefused("no password given") from None


def given_credentials(args: argparse.Namespace) -> Credentials | None:
    """The credentials named on the command line (the password read now), or ``None`` without ``--operator``."""
    if args.operator is None:
        if args.password_stdin:
            raise AuthorityRefused("--password-stdin needs --operator NAME")
        return None
    return Credentials(args.operator, read_secret(f"password for {args.operator}: ", from_stdin=args.password_stdin))


def ask_credentials(args: argparse.Namespace) -> Credentials:
    """The command line's credentials, or, without ``--operator``, a name and password asked at the terminal."""
    given = given_credentials(args)
    if given is not None:
        return given
    if not sys.stdin.isatty():
        raise AuthorityRefused("this desk has operators: name one with --operator NAME "
                               "(and --password-stdin to read the password from stdin)")
    try:
        name = input("operator: ").strip()
    except (EOFError, KeyboardInterrupt):
        raise AuthorityRefused("no operator given") from None
    return Credentials(name, read_secret(f"password for {name}: ", from_stdin=False))


def writer_sink(writer: AuditWriter) -> AuditSink:
    """The audit sink of a command: each record appended to the chain, durable before the command goes on."""
    def sink(event: Any, payload: dict[str, Any], actor: str, source: Any) -> None:
        writer.append_blocking(event, payload, actor=actor, source=source, timeout=STORE_TIMEOUT_S)

    return sink


def authenticate(store: SqlEngine, writer: AuditWriter, args: argparse.Namespace,
                 credentials: Credentials | None = None) -> Actor | None:
    """The operator acting, once the desk has operators (``None`` before: the OS user acts).

    ``credentials`` already read (e.g. sent to a desk that did not answer) are used as they are;
    without, they are taken from ``args`` or asked. Raises ``AuthorityRefused``.
    """
    from app.security.accounts import AuthError
    from app.security.operators import OperatorDirectory

    directory = OperatorDirectory(store, writer_sink(writer))
    if not directory.has_operators():
        return None
    given = credentials if credentials is not None else ask_credentials(args)
    try:
        return directory.authenticate(given.name, given.password, purpose="authorise")
    except AuthError as exc:
        raise AuthorityRefused(str(exc)) from None


def lacks(actor: Actor, permission: Permission) -> str | None:
    """Why ``actor`` may not do what needs ``permission``, or ``None`` when it may."""
    if actor.can(permission):
        return None
    role = actor.role.value if actor.role is not None else "no role"
    return f"{actor.name} ({role}) does not have the {permission.value} permission"
