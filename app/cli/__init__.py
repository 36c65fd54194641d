"""The `main.py` sub-commands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from app.logs import configure_logging
from app.settings import SettingsError, load_settings

from . import audit, backup, credentials, limits, panic, simulate
from .common import EXIT_USAGE

log = logging.getLogger(__name__)

COMMANDS = (simulate, audit, backup, panic, limits, credentials)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="Bulwark trading control desk")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"Bulwark cannot start: invalid settings\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command is None:
        print(
            "The desk GUI is not part of this build yet. Run the headless desk with:\n"
            "  python main.py simulate --seconds 30",
            file=sys.stderr,
        )
        return EXIT_USAGE
    log_file = configure_logging(settings, console=True)
    log.info("bulwark %s starting; data folder %s; log %s", args.command, settings.home, log_file)
    result: int = args.run(args, settings)
    return result
