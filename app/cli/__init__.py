"""The `main.py` sub-commands.

Each command is a module here with ``register(commands)``, which adds its argparse parser, and a
``run(args, settings)`` it sets as the parser's default. ``main.py --help`` and ``panic`` must
start fast, so a command module imports only the standard library and ``.common`` at the top:
the engine, the store, pandas, SQLAlchemy, pydantic and the broker SDKs are imported inside
``run`` (tests/test_cli_startup.py holds every module to this). Adding a command is adding its
module name to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import desk_window
from .common import EXIT_FAILED, EXIT_USAGE

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger(__name__)

COMMANDS = ("simulate", "audit", "backup", "panic", "rearm", "limits", "trading_calendar", "credentials",
            "keyring_setup", "operator", "api_client", "firm")
# Commands that must run on a data folder they cannot write to: an auditor's read-only copy (audit,
# limits), and panic, which must still reach the desk when the store refuses the HALTED flag. They
# write no log file into a folder marked read-only, and change no file modes.
READ_ONLY_COMMANDS = frozenset({"audit", "limits", "panic"})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py", description="Bulwark trading control desk. With no COMMAND: the desk window.",
        # A desk option is given in full: "--quit" must not stand for something the trader did not type.
        allow_abbrev=False,
    )
    desk_window.add_arguments(parser)
    parser.add_argument("--version", action=_Version, help="say the version, and the build when packaged, then exit")
    parser.add_argument(
        "--self-test", action="store_true",
        help="check this installation: a desk in a temporary data folder, offscreen, on the paper broker "
             "(places and cancels an order, presses KILL, verifies the audit chain); exit 0 only if all of it worked",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(commands)
    return parser


class _Version(argparse.Action):
    """``--version``: the line as it is (argparse's own action rewraps it to the terminal's width)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=str(kwargs.get("help", "")))

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        # Only when asked: every start of main.py parses these options, --version or not.
        from app.version import version_line

        print(version_line(), flush=True)
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    from app.file_modes import owner_only_umask, restore_umask

    # First: every file this process creates, whichever part of it does, is for this user only.
    previous = owner_only_umask()
    try:
        return _main(argv)
    finally:
        restore_umask(previous)  # for a caller in the same process (the tests)


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.self_test:
        return _self_test(parser, args)
    # Only now: settings (pydantic) and logging cost more than parsing, and --help needs neither.
    from app.file_modes import may_write
    from app.logs import configure_logging
    from app.settings import SettingsError, load_settings

    read_only = args.command in READ_ONLY_COMMANDS
    try:
        settings = load_settings(read_only=read_only)
    except SettingsError as exc:
        # One problem, one line ("invalid setting: ..."); several, one line each below a count.
        print(f"Bulwark cannot start: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log_file = configure_logging(settings, console=True, to_file=not read_only or may_write(settings.home))
    log.info("bulwark %s starting; data folder %s; log %s", args.command or "desk", settings.home,
             log_file or "on the console only")
    if not read_only:
        _tighten_file_modes(settings)
    from .keyring_setup import prepare

    # The one place the keyring is chosen and, for an encrypted keyring file, unlocked (panic never asks).
    problem = prepare(args.command, settings)
    if problem is not None:
        print(f"Bulwark: {problem}", file=sys.stderr)
        return EXIT_FAILED
    if args.command is None:
        return desk_window.run(args, settings)
    result: int = args.run(args, settings)
    return result


def _self_test(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``--self-test`` runs alone: it has its own data folder and broker, so any other option would be ignored."""
    given = sorted(f"--{name.replace('_', '-')}" for name, value in vars(args).items()
                   if name not in ("self_test", "command") and value != parser.get_default(name))
    if args.command is not None or given:
        what = f"the {args.command} command" if args.command is not None else ", ".join(given)
        print(f"main.py: --self-test runs alone, on its own paper desk; not with {what}", file=sys.stderr)
        return EXIT_USAGE
    from .self_test import run

    return run()


def _tighten_file_modes(settings: Settings) -> None:
    from app.file_modes import tighten

    database = settings.sqlite_file
    extra = []
    if database is not None and settings.home not in database.parents:
        extra = [database.with_name(database.name + suffix) for suffix in ("", "-wal", "-shm", ".desk-lock")]
    changed = tighten(settings.home, extra)
    done = [change.describe(settings.home) for change in changed if change.error is None]
    failed = [change.describe(settings.home) for change in changed if change.error is not None]
    if done:
        log.warning("other users could read the desk's files; made owner-only: %s", _listed(done))
    if failed:
        log.warning("other users can still read these files of the desk: %s", _listed(failed))


def _listed(items: list[str], most: int = 10) -> str:
    shown = ", ".join(items[:most])
    return shown if len(items) <= most else f"{shown} and {len(items) - most} more"
