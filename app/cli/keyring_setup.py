"""`main.py keyring status|use-file`: where the desk keeps its secrets, and the encrypted keyring file.

``status`` says in one sentence which keyring the desk uses and whether it protects secrets (exit 0
when it does, 1 when it does not). ``use-file`` makes this data folder keep its secrets in the
passphrase-protected encrypted file ``keyring.cfg`` (``app.security.file_keyring``) and records
``vault = "encrypted-file"`` in ``bulwark.toml``. The passphrase is asked twice without echo, or read as one
line from stdin with ``--passphrase-stdin``; it must be at least 12 characters. When the file is
already there (the setting was lost), the passphrase must open it; nothing is ever overwritten.

Copying: unless ``--no-copy``, the desk's entries in the keyring in use until now (the Breeze API
key, secret, session token and its day, and every audit chain key the store's records name) are
copied into the file, when that keyring protects secrets and can be read. Entries the file already
holds are kept. Nothing is removed from the old keyring: remove them there once the desk runs on
the file. Nothing is copied out of a keyring that does not protect secrets: what such a keyring
held was never safe, so store the credentials again with ``main.py credentials set``.

:func:`prepare` runs before every command (``app.cli._main``): it puts the system's keyring in
place of keyring's chain, or, when the settings say ``vault = "encrypted-file"``, installs the file and
unlocks it with the passphrase, asked on the terminal (three tries) or read from the file
descriptor named by ``BULWARK_KEYRING_PASSPHRASE_FD`` (for scripts and services; the variable holds
a descriptor number, never the passphrase). The desk window asks in its own dialog
(``app.ui.keyring_dialog``). ``panic`` never asks: the running desk is told over its control
channel, whose key is in ``control.json``, not the keyring, and the HALTED flag is written without
its audit record when the chain key cannot be read (the desk audits the halt it sees); only a
passphrase already waiting on the descriptor is used, for the record and a direct cancel at the
broker.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING

from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

    from app.security.file_keyring import EncryptedFileKeyring
    from app.settings import Settings

TRIES = 3
# panic reads a passphrase only when it is already waiting: telling the desk comes first.
PANIC_FD_TIMEOUT_S = 0.5


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("keyring", help="where the desk keeps its secrets; the encrypted keyring file")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("status", help="say which keyring the desk uses and whether it protects secrets")
    use = actions.add_parser(
        "use-file", help="keep this data folder's secrets in an encrypted file protected by a passphrase",
    )
    use.add_argument("--passphrase-stdin", action="store_true",
                     help="read the passphrase as one line from stdin (default: asked twice without echo)")
    use.add_argument("--no-copy", action="store_true",
                     help="do not copy the desk's secrets and audit chain keys from the keyring in use until now")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "status":
        return _status(settings)
    return _use_file(settings, from_stdin=args.passphrase_stdin, copy=not args.no_copy)


def _status(settings: Settings) -> int:
    import keyring

    from app.security.file_keyring import (
        EncryptedFileKeyring,
        keyring_file,
        keyring_status,
    )
    from app.store.chain_key import is_secure_backend

    if settings.vault == "encrypted-file":
        path = keyring_file(settings.home)
        if not path.is_file():
            print(f"keyring: {_missing(settings)}", file=sys.stderr)
            return EXIT_FAILED
        print(keyring_status(EncryptedFileKeyring(path)))
        print("Commands that need the secrets ask for its passphrase (or read it from the file descriptor named by "
              "BULWARK_KEYRING_PASSPHRASE_FD); panic never asks.")
        return EXIT_OK
    backend = keyring.get_keyring()
    print(keyring_status(backend))
    return EXIT_OK if is_secure_backend(backend) else EXIT_FAILED


def _use_file(settings: Settings, *, from_stdin: bool, copy: bool) -> int:
    import keyring

    from app.security.file_keyring import (
        FileKeyringError,
        WrongPassphrase,
        create_file_keyring,
        keyring_file,
        keyring_status,
        open_file_keyring,
        passphrase_problems,
        record_in_settings,
    )

    path = keyring_file(settings.home)
    if settings.vault == "encrypted-file" and path.is_file():
        print(f"this data folder already keeps its secrets in the encrypted keyring file {path}")
        return EXIT_OK
    source = keyring.get_keyring()
    exists = path.is_file()
    try:
        passphrase = _read_new_passphrase(from_stdin, confirm=not exists)
    except ValueError as exc:
        print(f"keyring: {exc}; nothing was created", file=sys.stderr)
        return EXIT_USAGE
    try:
        if exists:
            target = open_file_keyring(settings.home, passphrase)
            print(f"the encrypted keyring file {path} already exists and this passphrase opens it: using it")
        else:
            problems = passphrase_problems(passphrase)
            if problems:
                for problem in problems:
                    print(f"keyring: {problem}", file=sys.stderr)
                print("keyring: nothing was created", file=sys.stderr)
                return EXIT_USAGE
            target = create_file_keyring(settings.home, passphrase)
            print(f"created the encrypted keyring file {path}")
    except WrongPassphrase as exc:
        print(f"keyring: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except FileKeyringError as exc:
        print(f"keyring: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if copy:
        _copy_from(source, target, settings)
    try:
        record_in_settings(settings.settings_file)
    except FileKeyringError as exc:
        print(f"keyring: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f'recorded vault = "encrypted-file" in {settings.settings_file}')
    print(keyring_status(target))
    print("From now on every command that needs the secrets asks for this passphrase (scripts: give it on a file "
          "descriptor named by BULWARK_KEYRING_PASSPHRASE_FD); the desk window asks in a dialog; panic never asks.")
    return EXIT_OK


def _read_new_passphrase(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    try:
        passphrase = getpass.getpass("Passphrase for the encrypted keyring file: ")
        if confirm and getpass.getpass("The same passphrase again: ") != passphrase:
            raise ValueError("the two passphrases differ")
    except (EOFError, KeyboardInterrupt):
        raise ValueError("no passphrase was given") from None
    return passphrase


def _copy_from(source: KeyringBackend, target: EncryptedFileKeyring, settings: Settings) -> None:
    from keyring.errors import KeyringError

    from app.security.file_keyring import EncryptedFileKeyring
    from app.security.vault import BREEZE_SESSION_DAY, SECRET_NAMES, SERVICE
    from app.store.chain_key import backend_label, entry_name, is_secure_backend

    label = backend_label(source)
    if isinstance(source, EncryptedFileKeyring) or not is_secure_backend(source):
        print(f"nothing copied from {label}: it does not protect secrets, so whatever it held was never safe; store "
              "the Breeze credentials again with  python main.py credentials set --broker breeze")
        return
    fingerprints = _chain_fingerprints(settings)
    names = [*SECRET_NAMES, BREEZE_SESSION_DAY, *(entry_name(fp) for fp in fingerprints)]
    copied, kept, missing = [], [], []
    for name in names:
        try:
            value = source.get_password(SERVICE, name)
            if value is None:
                missing.append(name)
                continue
            if target.get_password(SERVICE, name) is not None:
                kept.append(name)
                continue
            target.set_password(SERVICE, name, value)
        except KeyringError as exc:
            print(f"keyring: {name} could not be copied: {type(exc).__name__}", file=sys.stderr)
            continue
        copied.append(name)
    print(f"copied from {label}: {', '.join(copied) or 'nothing'}"
          + (f"; kept what the file already held: {', '.join(kept)}" if kept else ""))
    for fp in fingerprints:
        if entry_name(fp) in missing:
            print(f"keyring: the audit chain's key {fp} is not in {label}: records under it cannot be checked here "
                  "until it is added", file=sys.stderr)
    if copied:
        print(f"the entries are still in {label} too: remove them there once the desk runs on the file")


def _chain_fingerprints(settings: Settings) -> list[str]:
    """Every chain key the store's audit records name, so their keys can be copied."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from app.store.db import make_engine
    from app.store.models import AuditRecord

    from .common import absent_database

    if absent_database(settings.database_url) is not None:
        return []
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                select(AuditRecord.key_fp).where(AuditRecord.key_fp.is_not(None)).distinct()
            ).scalars().all()
    except SQLAlchemyError as exc:
        print(f"keyring: could not read which audit chain keys the store uses ({type(exc).__name__}); none copied",
              file=sys.stderr)
        return []
    finally:
        engine.dispose()
    return sorted(fp for fp in found if fp)


def _missing(settings: Settings) -> str:
    from app.security.file_keyring import keyring_file

    return (f'the settings say vault = "encrypted-file", but there is no encrypted keyring file at '
            f"{keyring_file(settings.home)}: create it with  python main.py keyring use-file  (or take "
            f'vault = "encrypted-file" out of {settings.settings_file})')


# -- before every command ------------------------------------------------------------------------


def prepare(command: str | None, settings: Settings) -> str | None:
    """Put the right keyring in place for ``command`` (``None``: the desk window); a message when it cannot run.

    Called once by ``app.cli._main`` before the command: see the module's docstring.
    """
    if command == "panic" and settings.vault == "system":
        # panic loads keyring only if the chain it writes to is keyed; reading works through any backend.
        return None
    if command is None and settings.vault == "system":
        # The desk window chooses it itself: after its first paint (keyring's discovery of backends costs
        # a fifth of a second or more), or before, in its own dialog, when the Breeze login needs it at once.
        return None
    from app.security.keyring_choice import select_system_keyring

    if settings.vault == "system" or command == "keyring":
        select_system_keyring()
        return None
    import keyring

    from app.security.file_keyring import (
        EncryptedFileKeyring,
        FileKeyringError,
        keyring_file,
        passphrase_fd,
        read_passphrase_fd,
    )

    path = keyring_file(settings.home)
    # Locked until unlocked below: nothing this process stores can land in another keyring meanwhile.
    locked = EncryptedFileKeyring(path)
    keyring.set_keyring(locked)
    try:
        fd = passphrase_fd()
        if command == "panic":
            if fd is not None and path.is_file():
                locked.unlock(read_passphrase_fd(fd, timeout_s=PANIC_FD_TIMEOUT_S))
            return None
        if not path.is_file():
            return _missing(settings)
        if fd is not None:
            locked.unlock(read_passphrase_fd(fd))
            return None
    except FileKeyringError as exc:
        if command == "panic":
            print(f"!! the keyring stays locked: {exc}; carrying on", file=sys.stderr, flush=True)
            return None
        return str(exc)
    if command is None:
        return None  # the desk window asks for the passphrase in its own dialog
    return _ask_on_terminal(locked)


def _ask_on_terminal(locked: EncryptedFileKeyring) -> str | None:
    from app.security.file_keyring import PASSPHRASE_FD_ENV, WrongPassphrase

    if not _terminal_available():
        return (f"the encrypted keyring file {locked.path} is locked and there is no terminal to ask for its "
                f"passphrase: give it on a file descriptor named by {PASSPHRASE_FD_ENV}")
    for attempt in range(1, TRIES + 1):
        try:
            passphrase = getpass.getpass(f"Passphrase of the encrypted keyring file {locked.path}: ")
        except (EOFError, KeyboardInterrupt):
            return "no passphrase was given: the encrypted keyring file stays locked"
        try:
            locked.unlock(passphrase)
        except WrongPassphrase as exc:
            print(f"{exc}" + ("; try again" if attempt < TRIES else ""), file=sys.stderr)
            continue
        return None
    return f"the encrypted keyring file {locked.path} stays locked after {TRIES} wrong passphrases"


def _terminal_available() -> bool:
    """Whether getpass can ask without reading stdin (which may carry a secret of the command's own)."""
    if os.name != "posix":
        return sys.stdin is not None and sys.stdin.isatty()
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True
