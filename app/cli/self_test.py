"""`main.py --self-test`: proves that this installation of the desk works, without touching the trader's data.

In a new temporary data folder, with a keyring that lives only in this process and Qt offscreen, it
opens the desk window on the paper broker (with the local API on a free port), then:

- places a buy order below the market and waits for the paper broker to acknowledge it,
  then cancels it;
- places another and presses the window's KILL button, expecting HALTED before the click returns
  and the sweep to cancel the order;
- checks that the halted desk refuses a new order, and that the API says it is not ready;
- closes the desk and verifies the audit chain: intact, keyed, holding the records each step must
  have left, and matching the desk's checkpoints.

Before the desk it checks that every module of the desk imports and that the Breeze SDK loads and makes
a client offline (a packaged build that left something out fails there, not at a trader's first click).

It prints one line per check as it goes and exits 0 only if every check passed. The folder is
removed after a pass and kept after a failure (the line naming its log says where), for whoever
supports the desk. Nothing is read from or written to the trader's data folder, settings or database,
and nothing is written to the trader's keyring (the one in force is put back after); ``BULWARK_*``
variables are ignored.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from app.api.server import ApiServer
    from app.desk import DeskOptions
    from app.engine.engine import Engine
    from app.engine.results import SubmitResult
    from app.settings import Settings
    from app.ui.main_window import DeskWindow

ACTOR = "self-test"
REASON = "self-test in a temporary data folder"
# Generous for a loaded machine: a step that takes this long has failed, not stalled.
STEP_TIMEOUT_S = 20.0
# Far enough below the market that the paper market's walk does not fill it in a few seconds.
BELOW_MARKET = 0.98
MIGRATIONS_PACKAGE = "app.store.migrations"
# Records the chain must hold after the steps above, and how many of each at least.
EXPECTED_RECORDS = {
    "app.start": 1, "order.sent": 2, "cancel.requested": 2, "order.cancelled": 2, "kill_switch.engaged": 1,
    "kill_switch.sweep_done": 1, "gate.rejected": 1, "app.stop": 1,
}


@dataclass(frozen=True, slots=True)
class Check:
    """One thing the self-test checked, whether it held, and what it saw."""

    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.passed else 'FAIL'}  {self.name}: {self.detail}"


class Checks:
    """The checks so far, each printed as it is made (a hang shows where it stopped)."""

    def __init__(self) -> None:
        self.made: list[Check] = []

    def add(self, name: str, passed: bool, detail: str) -> bool:
        check = Check(name, passed, detail)
        self.made.append(check)
        print(check.line(), flush=True)
        return passed

    @property
    def passed(self) -> bool:
        return bool(self.made) and all(check.passed for check in self.made)


class StepFailed(Exception):
    """A step could not go on; its check has been printed."""


def run() -> int:
    """Run the self-test; the exit code."""
    started = time.monotonic()
    checks = Checks()
    print("Bulwark self-test: a desk on the paper broker in a temporary data folder, offscreen", flush=True)
    try:
        home = Path(tempfile.mkdtemp(prefix="bulwark-self-test-"))
    except OSError as exc:
        checks.add("data folder", False, f"no temporary folder could be made in {tempfile.gettempdir()}: {exc}")
        print("self-test FAILED: set TMPDIR to a folder this user can write to", flush=True)
        return EXIT_FAILED
    from app.logs import unconfigure_logging

    try:
        with _isolated(home):
            _run(home, checks, started)
    except Exception as exc:  # noqa: BLE001 - whatever broke, the answer is a failed check and the kept folder
        checks.add("self-test", False, f"stopped by {type(exc).__name__}: {exc}")
    finally:
        # The log file is the folder's: let go of it (Windows cannot remove an open file).
        unconfigure_logging()
    if checks.passed:
        try:
            shutil.rmtree(home)
        except OSError as exc:
            print(f"note: the temporary data folder {home} could not be removed: {exc}", flush=True)
        print(f"self-test passed: {len(checks.made)} checks in {time.monotonic() - started:.1f} s", flush=True)
        return EXIT_OK
    failed = sum(not check.passed for check in checks.made)
    print(f"self-test FAILED: {failed} of {len(checks.made)} checks; the data folder and its log are kept in {home}",
          flush=True)
    return EXIT_FAILED


@contextmanager
def _isolated(home: Path) -> Iterator[None]:
    """This process sees only ``home``: no ``BULWARK_*`` from outside, an in-memory keyring, Qt offscreen."""
    import keyring

    from app.security.memory_keyring import MemoryKeyring

    saved_env = dict(os.environ)
    saved_keyring = keyring.get_keyring()
    for name in [name for name in os.environ if name.startswith("BULWARK_")]:
        del os.environ[name]
    os.environ.update({
        "BULWARK_HOME": str(home),
        # Any free port: the trader's own desk may be serving on the usual one.
        "BULWARK_API__PORT": "0",
        "QT_QPA_PLATFORM": "offscreen",
    })
    keyring.set_keyring(MemoryKeyring())
    try:
        yield
    finally:
        keyring.set_keyring(saved_keyring)
        os.environ.clear()
        os.environ.update(saved_env)


def _run(home: Path, checks: Checks, started: float) -> None:
    from app.logs import configure_logging
    from app.settings import load_settings

    settings = load_settings()
    log_file = configure_logging(settings, console=False)
    checks.add("data folder", settings.home == home, f"{home} (log {log_file})")
    _check_imports(checks)
    _check_breeze_sdk(home, checks)
    if not _cover_calendar(settings, checks):
        return
    options: list[DeskOptions] = []

    def make_options() -> DeskOptions:
        from .desk_window import desk_options

        made = desk_options(settings, command="self-test", instruments=None, real_broker=False)
        options.append(made)
        return made

    async def steps(window: DeskWindow) -> None:
        await _steps(window, options[0] if options else None, checks, started)

    code = _run_window(settings, make_options, steps)
    checks.add("desk closed", code == EXIT_OK, f"the window's run ended with exit code {code}")
    _verify_chain(settings, checks)


def _check_imports(checks: Checks) -> None:
    """Every module of the desk imports: a packaged build that left one out fails here, not at a trader's click."""
    import importlib
    import pkgutil

    import app

    # Alembic runs the migration scripts from their files (the store check proves they are there): not modules.
    names = sorted(info.name for info in pkgutil.walk_packages(app.__path__, "app.")
                   if not info.name.startswith(MIGRATIONS_PACKAGE))
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - each failure is named below
            failed.append(f"{name} ({type(exc).__name__}: {_last_line(exc)})")
    from PySide6 import __version__ as pyside

    detail = f"{len(names) - len(failed)} of {len(names)} desk modules import; Python {platform.python_version()}, PySide6 {pyside}"
    checks.add("modules", not failed and len(names) > 0, detail + ("; failed: " + "; ".join(failed) if failed else ""))


def _check_breeze_sdk(home: Path, checks: Checks) -> None:
    """The Breeze SDK loads as the adapter loads it (its settings file, pandas, its socket.io client) and makes a
    client, offline: the desk modules import it only when a desk starts on Breeze, so the import check misses it."""
    import importlib.util
    import zipfile
    from importlib.metadata import version

    from app.brokers.breeze.master import MASTER_FILE
    from app.brokers.breeze.sdk import Endpoints, load_sdk

    # The SDK opens the security master as it is imported: an empty one will do, the internet never.
    master = home / "breeze" / MASTER_FILE
    master.parent.mkdir(parents=True, exist_ok=True)
    zipfile.ZipFile(master, "w").close()
    try:
        module = load_sdk(Endpoints(), master, home / "breeze" / "sdk")
        client = module.BreezeConnect(api_key="self-test")
    except Exception as exc:  # noqa: BLE001 - a desk that cannot load its broker's SDK fails this check, whatever broke
        checks.add("Breeze SDK", False, f"does not load: {type(exc).__name__}: {_last_line(exc)}")
        return
    transports = [name for name in ("socketio", "engineio", "websocket") if importlib.util.find_spec(name) is None]
    checks.add("Breeze SDK", client.api_key == "self-test" and not transports,
               f"breeze-connect {version('breeze-connect')} loads with pandas {version('pandas')} and python-socketio "
               f"{version('python-socketio')}; a client is made offline"
               + (f"; missing: {', '.join(transports)}" if transports else ""))


def _last_line(exc: BaseException) -> str:
    """An import error's cause in one line: numpy's, for one, is a page of advice ending in the real reason."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _cover_calendar(settings: Settings, checks: Checks) -> bool:
    """The shipped calendar, with this year and the next assumed as weekdays where it lacks them (audited, as
    ``calendar accept-weekdays`` does it): the self-test must run on any day an installer is tried."""
    import contextlib
    import datetime as dt
    import io

    from app.domain.india_time import IST
    from app.engine.risk.calendar_data import load_effective

    from . import _parser

    shipped = load_effective(None).calendar
    today = dt.datetime.now(IST).date()
    missing = shipped.uncovered_years(today)
    for year in missing:
        args = _parser().parse_args(["calendar", "accept-weekdays", str(year), "--reason", REASON])
        said = io.StringIO()
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            code = args.run(args, settings)
        if code != EXIT_OK:
            return checks.add("calendar", False, f"accepting the weekdays of {year} failed: {said.getvalue().strip()}")
    cover = f"{min(min(cal.years) for cal in shipped.calendars.values())}-{max(max(cal.years) for cal in shipped.calendars.values())}"
    assumed = f"; weekdays of {', '.join(map(str, missing))} assumed for this test" if missing else ""
    return checks.add("calendar", True, f"shipped {shipped.label} covers {cover}{assumed}")


def _run_window(settings: Settings, make_options: Callable[[], DeskOptions],
                steps: Callable[[DeskWindow], Awaitable[None]]) -> int:
    from app.ui.desk_app import GuiOptions, run_desk_window

    gui = GuiOptions(dark=True, settings_path=settings.home / "desk-window.ini", global_hotkey=False, on_running=steps,
                     idle_lock_minutes=0)
    return run_desk_window(make_options, gui)


async def _steps(window: DeskWindow, options: DeskOptions | None, checks: Checks, started: float) -> None:
    from PySide6.QtGui import QGuiApplication

    from app.ui.close_dialog import CloseChoice

    try:
        painted = window.first_paint_ns is not None
        checks.add("window", painted, f"painted on Qt's {QGuiApplication.platformName()} platform "
                   f"{time.monotonic() - started:.1f} s after the self-test began")
        engine = window.engine
        if engine is None:
            checks.add("desk", False, "no engine attached to the window")
            return
        checks.add("desk", True, _describe(engine))
        api = _api(options)
        if api is not None:
            await _check_ready(api, checks, expect_ready=True)
        await _place_and_cancel(engine, checks)
        await _kill(window, engine, checks)
        if api is not None:
            await _check_ready(api, checks, expect_ready=False)
    except StepFailed:
        pass
    except Exception as exc:  # noqa: BLE001 - the window must still close, so the desk stops and the chain can be read
        checks.add("desk", False, f"stopped by {type(exc).__name__}: {exc}")
    finally:
        window.close_with(CloseChoice.LEAVE)


def _describe(engine: Engine) -> str:
    return (f"running on the {engine.broker.capabilities.name} broker, {len(engine.instruments)} instruments, "
            f"trading state {engine.trading_state}")


def _api(options: DeskOptions | None) -> ApiServer | None:
    from app.api.server import ApiServer

    services = options.services if options is not None else ()
    return next((service for service in services if isinstance(service, ApiServer)), None)


async def _check_ready(api: ApiServer, checks: Checks, *, expect_ready: bool) -> None:
    import httpx

    url = f"{api.url}/v1/health/ready"
    async with httpx.AsyncClient(timeout=STEP_TIMEOUT_S) as client:
        answer = await client.get(url)
    body = answer.json()
    expected = 200 if expect_ready else 503
    detail = (f"GET {url}: {answer.status_code}, ready={body.get('ready')}, trading_state={body.get('trading_state')}")
    if not checks.add("local API", answer.status_code == expected and body.get("ready") is expect_ready, detail):
        raise StepFailed


async def _waited(what: str, done: Callable[[], bool], checks: Checks) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            checks.add(what, False, f"not done after {STEP_TIMEOUT_S:.0f} s")
            raise StepFailed
        await asyncio.sleep(0.02)


async def _resting_order(engine: Engine, checks: Checks, what: str, ticks_lower: int) -> str:
    """A buy order below the market, acknowledged by the broker and working; its client order id."""
    from decimal import Decimal

    from app.domain.orders import OrderStatus

    key = _instrument(engine)
    await _waited(f"{what}: a market price for {key}", lambda: engine.market_data.last_price(key) is not None, checks)
    result = await _order_below_market(engine, ACTOR, ticks_lower)
    if not result.accepted or result.client_order_id is None:
        checks.add(what, False, f"refused: {result.rejection}")
        raise StepFailed
    client_id = result.client_order_id

    def working() -> bool:
        order = engine.oms.get(client_id)
        return order is not None and order.status is OrderStatus.OPEN

    await _waited(f"{what}: {client_id} acknowledged", working, checks)
    order = engine.oms.get(client_id)
    price = f"{order.quantity} {key} at {Decimal(order.price) / 100}" if order is not None and order.price else key
    checks.add(what, True, f"BUY {price} passed the risk gate; {client_id} is working at the paper broker")
    return client_id


def _instrument(engine: Engine) -> str:
    return "NSE:RELIANCE" if "NSE:RELIANCE" in engine.instruments else next(iter(engine.instruments))


async def _order_below_market(engine: Engine, actor: str, ticks_lower: int) -> SubmitResult:
    """A one-lot limit buy a little below the last price (rounded down to the tick), through the risk gate.

    ``ticks_lower`` sets each order apart: the gate refuses a copy of an order sent moments ago."""
    from decimal import Decimal

    from app.domain.orders import Side
    from app.domain.requests import OrderRequest

    key = _instrument(engine)
    instrument = engine.instruments[key]
    last = engine.market_data.last_price(key) or 0
    paise = (int(last * BELOW_MARKET) // instrument.tick_size - ticks_lower) * instrument.tick_size
    return await engine.submit(OrderRequest(key, Side.BUY, instrument.lot_size, Decimal(paise) / 100, actor=actor,
                                            tag="self-test"))


async def _place_and_cancel(engine: Engine, checks: Checks) -> None:
    from app.domain.audit import AuditSource
    from app.domain.orders import OrderStatus

    client_id = await _resting_order(engine, checks, "order placed", 0)
    result = await engine.cancel(client_id, actor=ACTOR, source=AuditSource.OPERATOR)
    if not result.ok:
        checks.add("order cancelled", False, f"the cancel was refused: {result.message}")
        raise StepFailed

    def cancelled() -> bool:
        order = engine.oms.get(client_id)
        return order is not None and order.status is OrderStatus.CANCELLED

    await _waited(f"order cancelled: {client_id}", cancelled, checks)
    checks.add("order cancelled", True, f"{client_id} cancelled at the paper broker")


async def _kill(window: DeskWindow, engine: Engine, checks: Checks) -> None:
    from app.domain.orders import OrderStatus
    from app.domain.rejections import RejectReason
    from app.domain.trading_state import TradingState

    client_id = await _resting_order(engine, checks, "order placed", 1)
    window.kill_bar.kill_button.click()
    state = engine.trading_state
    checks.add("kill switch", state is TradingState.HALTED, f"the KILL button left the desk {state} as the click returned")
    report = await asyncio.wait_for(engine.kill_switch.wait(), STEP_TIMEOUT_S)
    order = engine.oms.get(client_id)
    swept = order is not None and order.status is OrderStatus.CANCELLED and not engine.oms.working()
    cleared = f"in {report.cleared_in_ms:.0f} ms" if report is not None and report.cleared_in_ms is not None else "(no time)"
    checks.add("cancel sweep", swept and report is not None,
               f"{client_id} {order.status if order is not None else 'missing'} {cleared}; "
               f"{len(engine.oms.working())} orders still working")
    model = window.orders.model
    bar = window.kill_bar

    def shown() -> bool:
        counts = model.counts()
        return counts.get("working") == 0 and counts.get("done", 0) >= 2 and bar.sweep_label.text().startswith("sweep done")

    await _waited("kill bar", shown, checks)
    checks.add("kill bar", bar.state_banner.text() == "HALTED",
               f"the kill bar says {bar.state_banner.text()}, {bar.sweep_label.text()}; the orders table "
               f"{model.counts().get('working')} working, {model.counts().get('done')} done")
    refused = await _order_below_market(engine, ACTOR, 2)
    reason = refused.rejection.reason if refused.rejection is not None else None
    checks.add("halted desk refuses orders", not refused.accepted and reason is RejectReason.TRADING_HALTED,
               f"a new order was {'refused: ' + refused.rejection.message if refused.rejection else 'ACCEPTED'}")


def _verify_chain(settings: Settings, checks: Checks) -> None:
    from sqlalchemy import text

    from app.store.audit_query import check_chain
    from app.store.checkpoints import checkpoint_file
    from app.store.db import open_read_only

    store = open_read_only(settings.database_url)
    try:
        path = checkpoint_file(settings.home)
        chain = check_chain(store, checkpoint_files=(path,) if path.is_file() else ())
        keyed = f"keyed with {', '.join(chain.keys)}" if chain.keys else "NOT keyed"
        checks.add("audit chain", chain.ok and bool(chain.keys) and chain.records > 0,
                   f"{chain.records} records verified, {keyed}, {chain.checkpoints} checkpoints match"
                   if chain.ok else "; ".join(chain.problems))
        with store.connect() as connection:
            counts: dict[str, int] = dict(connection.execute(text(
                "SELECT event_type, COUNT(*) FROM audit_log GROUP BY event_type")).tuples().all())
    finally:
        store.dispose()
    short = {kind: counts.get(kind, 0) for kind, least in EXPECTED_RECORDS.items() if counts.get(kind, 0) < least}
    checks.add("audit records", not short,
               "every step is recorded: " + ", ".join(f"{kind} x{counts.get(kind, 0)}" for kind in EXPECTED_RECORDS)
               if not short else f"missing or too few: {short}")
