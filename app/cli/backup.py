"""`main.py backup create|list|verify PATH|restore PATH`.

``restore`` replaces the whole store: once the desk has operators it needs an administrator's
authority (``--operator NAME`` and the password, see ``app.cli.authority``), checked against the
store being replaced; the restore's audit record then names that operator.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .authority import AuthorityRefused, add_arguments
from .common import EXIT_FAILED, EXIT_OK, EXIT_UNVERIFIED, no_database

if TYPE_CHECKING:
    from app.domain.audit import AuditEventType
    from app.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = commands.add_parser("backup", help="create, list, verify and restore backups of the store")
    backup.set_defaults(run=run)
    actions = backup.add_subparsers(dest="backup_command", metavar="ACTION", required=True)
    actions.add_parser("create", help="back up the store now (safe while the desk runs)")
    actions.add_parser("list", help="the backups in the data folder, newest first")
    verify = actions.add_parser("verify", help="restore a backup into a temporary folder and check its audit chain")
    verify.add_argument("path", type=Path)
    restore = actions.add_parser("restore", help="replace the store with a backup (the current one is kept first)")
    restore.add_argument("path", type=Path)
    restore.add_argument("--force", action="store_true", help="restore even though the backup's audit chain is broken")
    add_arguments(restore)


def _audit(settings: Settings, event: AuditEventType, payload: dict[str, object], actor: str = "operator") -> None:
    from app.domain.audit import AuditSource
    from app.store.audit_writer import AuditWriter
    from app.store.migrate import open_store

    writer = AuditWriter(open_store(settings.database_url))
    writer.start()
    try:
        writer.append_blocking(event, payload, actor=actor, source=AuditSource.OPERATOR)
    finally:
        writer.close()


def _restorer(args: argparse.Namespace, settings: Settings) -> str | None:
    """The administrator authorising the restore, checked against the current store; ``None`` when that
    store has no operators (or there is none: a lost store must still be restorable). Raises ``AuthorityRefused``."""
    from app.domain.actors import Permission
    from app.store.audit_writer import AuditWriter
    from app.store.migrate import open_store

    from .authority import authenticate, lacks

    if no_database(settings.database_url, "") is not None:
        return None
    store = open_store(settings.database_url)
    writer = AuditWriter(store)
    writer.start()
    try:
        operator = authenticate(store, writer, args)
    finally:
        writer.close()
        store.dispose()
    if operator is None:
        return None
    if (missing := lacks(operator, Permission.RESTORE_BACKUP)) is not None:
        raise AuthorityRefused(f"{missing}: only an administrator restores a backup")
    return operator.name


def run(args: argparse.Namespace, settings: Settings) -> int:
    from app.domain.audit import AuditEventType
    from app.store.backup import (
        BackupError,
        create_backup,
        list_backups,
        restore_backup,
        verify_backup,
    )
    from app.store.backup.postgres import VERIFY_PG_URL_ENV
    from app.store.checkpoints import checkpoint_file, set_aside_after_restore
    from app.store.db import StoreError
    from app.store.desk_lock import desk_running

    url = settings.database_url
    try:
        if args.backup_command == "create":
            if (missing := no_database(url, "nothing to back up")) is not None:
                print(missing, file=sys.stderr)
                return EXIT_FAILED
            info = create_backup(url, settings.backups_dir, checkpoints=checkpoint_file(settings.home))
            _audit(settings, AuditEventType.BACKUP_CREATED, info.audit_payload())
            print(f"created {info.path} ({info.size} bytes, {info.records} audit records, chain {'verified' if info.verified else 'BROKEN'})")
            if not info.verified:
                print(f"PROBLEM: {info.reason}")
            return EXIT_OK if info.verified else EXIT_FAILED
        if args.backup_command == "list":
            backups = list_backups(settings.backups_dir)
            if not backups:
                print(f"no backups in {settings.backups_dir}")
            for info in backups:
                state = "ok" if info.ok else "PROBLEM: " + "; ".join(info.problems)
                print(f"{info.created_at.isoformat()}  {info.path.name}  {info.size} bytes  {info.records} records  {state}")
            return EXIT_OK
        if args.backup_command == "verify":
            check = verify_backup(args.path)
            for note in check.notes:
                print(f"note: {note}")
            if not check.ok:
                for problem in check.problems:
                    print(f"PROBLEM: {problem}")
                return EXIT_FAILED
            if not check.chain_checked:
                print(f"NOT VERIFIED: only the checksum of {args.path} was checked (it matches its manifest); its audit "
                      f"chain was not, so tampering before the backup was made would go unseen. Set {VERIFY_PG_URL_ENV} "
                      "to a scratch PostgreSQL server to check the chain too", file=sys.stderr)
                return EXIT_UNVERIFIED
            print(f"verified backup {args.path}: {check.records} audit records intact")
            return EXIT_OK
        restorer = _restorer(args, settings)
        result = restore_backup(args.path, url, desk_running=lambda: desk_running(url), force=args.force)
        aside = set_aside_after_restore(settings.home, result.restored_at)
        _audit(settings, AuditEventType.BACKUP_RESTORED,
               {**result.audit_payload(), "checkpoints_set_aside": None if aside is None else str(aside)},
               actor=restorer or "operator")
        print(f"restored {args.path} ({result.records} audit records); the previous database is kept at {result.safety_copy}")
        if aside is not None:
            print(f"the checkpoints of the previous chain are kept at {aside}")
        return EXIT_OK
    except AuthorityRefused as exc:
        print(f"backup {args.backup_command} refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (BackupError, StoreError, OSError) as exc:
        print(f"backup {args.backup_command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
