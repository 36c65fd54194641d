"""`main.py` with no command: the desk window (paper broker unless configured or asked otherwise)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .common import BROKERS, EXIT_FAILED, EXIT_USAGE, positive_float, positive_int

if TYPE_CHECKING:
    from app.desk import DeskOptions, DeskService
    from app.settings import Settings
    from app.ui.desk_app import BreezeLogin


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The window's options, on ``main.py`` itself (before any command)."""
    parser.add_argument("--demo", action="store_true", help="also run simulate's generated order flow inside the desk")
    parser.add_argument("--broker", choices=BROKERS, default=None, help="broker profile (default: settings, else paper)")
    parser.add_argument("--light", action="store_true", help="start with the light theme (default: dark, or as last chosen)")
    parser.add_argument(
        "--instruments", type=positive_int, default=None,
        help="paper market size; past the universe file it is synthetic (default: the file's instruments)",
    )
    parser.add_argument("--quit-after", type=positive_float, default=None, metavar="SECONDS", help=argparse.SUPPRESS)
    parser.add_argument("--no-global-hotkey", action="store_true", help="do not register the OS-wide kill-switch hotkey")


def _breeze_login(settings: Settings) -> BreezeLogin:
    from app.brokers.breeze import login_url
    from app.ui.desk_app import BreezeLogin

    from .breeze_profile import credentials, stored_session_token
    from .simulate import breeze_factory

    creds = credentials()
    return BreezeLogin(login_url(creds.api_key), lambda token: breeze_factory(settings, creds, token), stored_session_token())


def run(args: argparse.Namespace, settings: Settings) -> int:
    from app.store.desk_lock import desk_running

    if desk_running(settings.database_url):
        # Before any window: a second desk on this data folder must not even look like it started.
        _say(f"a desk is already running on {settings.home}: use its window (or `main.py panic` to stop it)")
        return EXIT_FAILED
    broker = args.broker or settings.broker
    if args.demo and broker != "paper":
        # The demo sends a random order flow: never to a real account.
        _say(f"--demo runs only on the paper broker, not {broker}: start with --broker paper --demo")
        return EXIT_USAGE
    if broker == "breeze" or settings.vault == "encrypted-file":
        # The Breeze login reads the credentials before the window exists, and an encrypted keyring file is
        # unlocked before anything reads it: the dialogs run here, before the loop starts.
        from app.security.keyring_choice import select_system_keyring
        from app.ui.keyring_dialog import prepare_keyring

        if settings.vault == "system":
            select_system_keyring()
        if not prepare_keyring(settings, dark=not args.light):
            return EXIT_FAILED
    breeze = None
    if broker == "breeze":
        from app.security.vault import VaultError

        from .breeze_profile import ProfileError

        try:
            breeze = _breeze_login(settings)
        except (ProfileError, VaultError) as exc:
            _say(str(exc))
            return EXIT_USAGE

    from app.ui.desk_app import GuiOptions, run_desk_window

    gui = GuiOptions(
        demo=args.demo, dark=not args.light, settings_path=settings.home / "desk-window.ini",
        global_hotkey=not args.no_global_hotkey, quit_after_s=args.quit_after, idle_lock_minutes=settings.idle_lock_minutes,
    )
    command = "desk --demo" if args.demo else "desk"
    return run_desk_window(
        lambda: desk_options(settings, command=command, instruments=args.instruments, real_broker=breeze is not None),
        gui, breeze,
    )


def desk_options(settings: Settings, *, command: str, instruments: int | None, real_broker: bool) -> DeskOptions:
    """What the window's desk runs with; built after the window's first paint (the keyring, the calendar,
    the engine and the store take a while)."""
    from app.desk import DeskOptions
    from app.engine.risk.calendar_data import load_effective
    from app.logs import redact_in_logs
    from app.security.keyring_choice import select_system_keyring
    from app.security.vault import stored_secrets

    from .simulate import engine_config, paper_config

    if settings.vault == "system":
        # Chosen here, after the first paint, unless the Breeze login needed it before; a machine with no
        # secure keyring gets the desk's warning that the audit chain is not keyed, naming the remedy.
        select_system_keyring()
    secrets = stored_secrets()
    redact_in_logs(secrets)

    return DeskOptions(
        command=command,
        database_url=settings.database_url, home=settings.home, limits_path=settings.home / "limits.toml",
        instruments=instruments, seed=settings.paper.seed, paper=paper_config(settings, settings.paper.seed),
        engine=engine_config(settings), secrets=tuple(secrets), backups_dir=settings.backups_dir,
        backup_time=settings.backup_time, settings_summary=settings.summary(), calendar=load_effective(settings.home),
        # A real broker trades in real time; the paper market runs from the next open when closed now.
        session_horizon_s=None if real_broker else 0.0,
        services=_services(settings),
        desks_per_account=settings.firm.desks_per_account,
    )


def _services(settings: Settings) -> tuple[DeskService, ...]:
    if not settings.api.enabled:
        return ()
    # Here, after the window's first paint: FastAPI, pydantic's schemas and uvicorn cost more than half a second.
    from app.api.server import ApiServer

    return (ApiServer(settings.api),)


def _say(message: str) -> None:
    """Say it on stderr and, where there is a screen, in a message box: a desk started from a launcher has no terminal."""
    print(f"Bulwark: {message}", file=sys.stderr)
    import os

    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return
    try:
        from PySide6.QtWidgets import QApplication, QMessageBox
    except ImportError:
        return
    app = QApplication.instance() or QApplication(sys.argv[:1])
    QMessageBox.critical(None, "Bulwark", message)
    del app
