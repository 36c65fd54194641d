"""`main.py credentials set|status|delete --broker breeze`: the broker's API key and secret in the OS keyring.

Values are read without echo (or, with ``--stdin``, as two lines: key, then secret) and go to the
keyring only; nothing here prints, logs or stores them anywhere else.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from app.settings import Settings

MAX_LENGTH = 256


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    creds = commands.add_parser("credentials", help="store the broker's API key and secret in the OS keyring")
    actions = creds.add_subparsers(dest="action", metavar="ACTION", required=True)
    setter = actions.add_parser("set", help="store the API key and secret (asked without echo)")
    setter.add_argument("--stdin", action="store_true", help="read the key and the secret as two lines from stdin")
    actions.add_parser("status", help="say what is stored (never the values)")
    actions.add_parser("delete", help="remove the key, the secret and today's session token")
    for parser in (creds, *actions.choices.values()):
        parser.add_argument("--broker", choices=("breeze",), default="breeze", help="broker profile (breeze)")
    creds.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from app.security.vault import VaultError

    try:
        if args.action == "set":
            return _set(args.stdin)
        if args.action == "status":
            return _status()
        return _delete()
    except VaultError as exc:
        print(f"credentials: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _checked(name: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"the {name} is empty")
    if len(value) > MAX_LENGTH or any(ch.isspace() for ch in value):
        raise ValueError(f"the {name} has spaces in it or is longer than {MAX_LENGTH} characters")
    return value


def _set(from_stdin: bool) -> int:
    from app.security.vault import (
        BREEZE_API_KEY,
        BREEZE_API_SECRET,
        BREEZE_SESSION_DAY,
        BREEZE_SESSION_TOKEN,
        backend_name,
        delete_secret,
        require_secure_store,
        set_secret,
    )

    # Asking first and refusing after would waste the trader's typing; say it now.
    require_secure_store()
    try:
        if from_stdin:
            key = _checked("API key", sys.stdin.readline())
            secret = _checked("API secret", sys.stdin.readline())
        else:
            key = _checked("API key", getpass.getpass("Breeze API key: "))
            secret = _checked("API secret", getpass.getpass("Breeze API secret: "))
    except ValueError as exc:
        print(f"credentials: {exc}; nothing was stored", file=sys.stderr)
        return EXIT_USAGE
    set_secret(BREEZE_API_KEY, key)
    set_secret(BREEZE_API_SECRET, secret)
    # A session token belongs to the key it was issued for.
    delete_secret(BREEZE_SESSION_TOKEN)
    delete_secret(BREEZE_SESSION_DAY)
    print(f"stored the Breeze API key and secret in the keyring ({backend_name()})")
    return EXIT_OK


def _status() -> int:
    from app.security.vault import (
        BREEZE_API_KEY,
        BREEZE_API_SECRET,
        BREEZE_SESSION_DAY,
        BREEZE_SESSION_TOKEN,
        backend_name,
        get_secret,
        has_secure_store,
    )

    secure = "secure" if has_secure_store() else "NOT secure: secrets cannot be stored"
    print(f"keyring backend: {backend_name()} ({secure})")
    for label, name in (("API key", BREEZE_API_KEY), ("API secret", BREEZE_API_SECRET)):
        print(f"Breeze {label}: {'stored' if get_secret(name) else 'not stored'}")
    day = get_secret(BREEZE_SESSION_DAY)
    print(f"Breeze session token: {'stored for ' + day if day and get_secret(BREEZE_SESSION_TOKEN) else 'none'}")
    return EXIT_OK


def _delete() -> int:
    from app.security.vault import (
        BREEZE_API_KEY,
        BREEZE_API_SECRET,
        BREEZE_SESSION_DAY,
        BREEZE_SESSION_TOKEN,
        delete_secret,
    )

    removed = [name for name in (BREEZE_API_KEY, BREEZE_API_SECRET, BREEZE_SESSION_TOKEN, BREEZE_SESSION_DAY)
               if delete_secret(name)]
    print(f"removed {len(removed)} Breeze entries from the keyring")
    return EXIT_OK
