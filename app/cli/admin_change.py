"""The frame of a command that changes who may act on the desk (``operator``, ``api-client``).

Open the store; ``list`` reads only; any change first proves this machine can append to the audit
chain (a change written but not audited must not happen), then runs with its own audit writer,
which appends beside a running desk's as ``panic``'s does. Every refusal is one line on stderr and
exit 1; a password typed into a name is never printed back.

Imports only the standard library at the top, like every command module.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from .authority import AuthorityRefused
from .common import EXIT_FAILED, first_line

if TYPE_CHECKING:
    from sqlalchemy import Engine as SqlEngine

    from app.settings import Settings
    from app.store.audit_writer import AuditWriter


def refuse(command: str, text: str) -> int:
    """Say why ``command`` (e.g. "operator add") did nothing; the exit code for it."""
    print(f"{command} refused: {text}", file=sys.stderr, flush=True)
    return EXIT_FAILED


def run_admin_change(
    command: str, settings: Settings, *, listing: Callable[[SqlEngine], int] | None,
    change: Callable[[SqlEngine, AuditWriter], int], refusals: tuple[type[Exception], ...], what: str,
) -> int:
    """Run ``listing(store)`` when given (a read), else ``change(store, writer)``; ``refusals`` are the
    command's own input errors, said as they are. ``what`` names the change for the unkeyed-chain refusal."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.security.accounts import AuthError
    from app.store.audit_writer import AuditWriter
    from app.store.db import StoreError
    from app.store.migrate import open_store

    try:
        store = open_store(settings.database_url)
    except StoreError as exc:
        return refuse(command, f"the store cannot be used: {exc}")
    writer: AuditWriter | None = None
    try:
        if listing is not None:
            return listing(store)
        writer = AuditWriter(store)
        if (problem := _unkeyed(store, writer)) is not None:
            return refuse(command, f"{problem}: nothing was changed (an {what} change must be audited)")
        writer.start()
        return change(store, writer)
    except AuthorityRefused as exc:
        return refuse(command, str(exc))
    except AuthError as exc:
        # Not the name as typed: a password typed into it would be printed back (and kept in scrollback).
        return refuse(command, f"the administrator's authority (--as): {exc}")
    except refusals as exc:
        return refuse(command, str(exc))
    except (StoreError, SQLAlchemyError, TimeoutError) as exc:
        return refuse(command, f"the store cannot be used: {first_line(exc)}")
    finally:
        if writer is not None:
            writer.close(timeout=5.0)
        store.dispose()


def _unkeyed(store: SqlEngine, writer: AuditWriter) -> str | None:
    """Why this command could not append to the chain, checked before changing anything: a keyed chain whose key this
    machine's keyring lacks refuses every append."""
    from app.store.chain_key import missing_key_message
    from app.store.checkpoints import chain_tail

    fingerprint = chain_tail(store)[2]
    if fingerprint is not None and writer.keys.get(fingerprint) is None:
        return missing_key_message(fingerprint, writer.keys.describe())
    return None
