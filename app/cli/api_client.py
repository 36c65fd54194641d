"""`main.py api-client add|list|disable|enable|rotate`: the local API's clients and their tokens, headless.

An API client is always created by a named person: these commands (but ``list``) need an operator
holding the manage_api_clients permission (an administrator), ``--as NAME`` and that operator's
password, asked without echo or, with ``--password-stdin``, read as the first line of stdin. Before
the desk has any operator they refuse: create the first administrator first (``operator add``).

``add`` and ``rotate`` print the new token once, alone on stdout (so a script can capture it), with
a warning on stderr that it will not be shown again; only its SHA-256 is stored. ``list`` shows each
client's scopes, state, creator and the token's last four characters, never a token or a hash.

Like ``operator``, these take no desk lock: each change is one short transaction, audited through
this command's own writer beside a running desk's, and the running desk's API server re-reads the
clients every few seconds. Exit 0 done, 1 refused (and for ``list``, 1 when a stored entry is damaged).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .admin_change import run_admin_change
from .authority import AuthorityRefused, read_secret
from .common import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from sqlalchemy import Engine as SqlEngine

    from app.domain.actors import Actor
    from app.security.api_clients import ApiClientDirectory
    from app.settings import Settings
    from app.store.audit_writer import AuditWriter

SCOPES = ("read", "trade", "kill")
NO_OPERATORS = ("there are no operators yet: create the first administrator first (`main.py operator add NAME "
                "--role admin`); an API client is always created by a named person")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("api-client", help="add, list, disable, enable API clients and rotate their tokens")
    actions = parser.add_subparsers(dest="api_client_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a client with its scopes; prints its token once")
    add.add_argument("name")
    add.add_argument("--scope", dest="scopes", action="append", choices=SCOPES, required=True,
                     help="what the token may do (repeat for several): read, trade, kill")
    actions.add_parser("list", help="every client: scopes, enabled, created by and when, the token's last characters")
    for action, text in (("disable", "refuse a client's token from now on"),
                         ("enable", "accept a disabled client's token again"),
                         ("rotate", "give a client a new token (printed once); the old one is refused from now on")):
        actions.add_parser(action, help=text).add_argument("name")
    for name, sub in actions.choices.items():
        if name == "list":
            continue
        sub.add_argument("--as", dest="as_admin", metavar="ADMIN",
                         help="the administrator authorising this (password asked)")
        sub.add_argument("--password-stdin", action="store_true",
                         help="read the administrator's password from the first line of stdin")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from app.security.api_clients import ApiClientError

    command = args.api_client_command
    return run_admin_change(
        f"api-client {command}", settings, listing=_list if command == "list" else None,
        change=lambda store, writer: _change(args, store, writer), refusals=(ApiClientError,), what="API client",
    )


def _change(args: argparse.Namespace, store: SqlEngine, writer: AuditWriter) -> int:
    from app.security.api_clients import ApiClientDirectory

    from .authority import writer_sink

    command = args.api_client_command
    by = _authority(args, store, writer)
    clients = ApiClientDirectory(store, writer_sink(writer))
    if command == "add":
        client, token = clients.add(args.name, args.scopes, by=by)
        _show_token(f"added API client {client.name} with scopes {client.scope_text()} by {by.name}", token)
    elif command == "rotate":
        token = clients.rotate(args.name, by=by)
        _show_token(f"rotated the token of API client {_named(clients, args.name)} by {by.name}; the old token is refused "
                    "from now on (a running desk within a few seconds)", token)
    elif command == "disable":
        clients.disable(args.name, by=by)
        print(f"disabled API client {_named(clients, args.name)}: its token is refused from now on "
              "(a running desk within a few seconds)")
    else:
        clients.enable(args.name, by=by)
        print(f"enabled API client {_named(clients, args.name)}: its token is accepted again")
    return EXIT_OK


def _named(clients: ApiClientDirectory, name: str) -> str:
    """The client's name as it was created (names ignore case)."""
    client = clients.client(name)
    return client.name if client is not None else name


def _show_token(done: str, token: str) -> None:
    print(done, file=sys.stderr)
    print("the token is printed below ONCE and will not be shown again: store it now (only its hash is kept)",
          file=sys.stderr, flush=True)
    print(token, flush=True)


def _authority(args: argparse.Namespace, store: SqlEngine, writer: AuditWriter) -> Actor:
    """The operator acting, authenticated (audited like any authorisation); refused before any operator exists."""
    from app.security.operators import OperatorDirectory

    from .authority import writer_sink

    operators = OperatorDirectory(store, writer_sink(writer))
    if not operators.has_operators():
        raise AuthorityRefused(NO_OPERATORS)
    if args.as_admin is None:
        raise AuthorityRefused("an administrator must authorise this with --as NAME")
    password = read_secret(f"password for {args.as_admin}: ", from_stdin=args.password_stdin)
    return operators.authenticate(args.as_admin, password, purpose="authorise")


def _list(store: SqlEngine) -> int:
    from app.security.accounts import format_until
    from app.security.api_clients import ApiClientDirectory

    # Reading only: nothing goes to the audit chain.
    clients = ApiClientDirectory(store, lambda *_: None)
    listed = clients.list()
    if not listed and not clients.damaged:
        print("no API clients yet: add one with `main.py api-client add NAME --scope read --as ADMIN`")
        return EXIT_OK
    rows = [("NAME", "SCOPES", "ENABLED", "CREATED BY", "CREATED", "TOKEN")]
    rows += [(c.name, c.scope_text().replace(" ", ""), "yes" if c.enabled else "no",
              c.created_by, format_until(c.created_ns), f"…{c.token_hint}") for c in listed]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    for name in clients.damaged:
        print(f"api-client list: the stored entry of {name} is damaged: it cannot authenticate; "
              "restore a backup made before the damage", file=sys.stderr)
    # Exit 1 with a damaged entry, so a script checking the desk notices.
    return EXIT_FAILED if clients.damaged else EXIT_OK
