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

from . import desk_window
from .common import EXIT_USAGE

log = logging.getLogger(__name__)

COMMANDS = ("simulate", "audit", "backup", "panic", "rearm", "limits", "trading_calendar", "credentials")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py", description="Bulwark trading control desk. With no COMMAND: the desk window.",
        # A desk option is given in full: "--quit" must not stand for something the trader did not type.
        allow_abbrev=False,
    )
    desk_window.add_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Only now: settings (pydantic) and logging cost more than parsing, and --help needs neither.
    from app.logs import configure_logging
    from app.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"Bulwark cannot start: invalid settings\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    log_file = configure_logging(settings, console=True)
    log.info("bulwark %s starting; data folder %s; log %s", args.command or "desk", settings.home, log_file)
    if args.command is None:
        return desk_window.run(args, settings)
    result: int = args.run(args, settings)
    return result
