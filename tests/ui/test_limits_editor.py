"""The limits view and editor over a real desk (store, paper broker, engine), offscreen.

The desk loads the shipped limits into its data folder's ``limits.toml`` (version 1); the tests edit
them as a risk officer, try as a trader, feed the editor broken documents, and compare versions.
Nothing here reads the wall clock's date: versions are asserted by number, actor and reason.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.brokers.paper import PaperConfig
from app.desk import Desk, DeskOptions
from app.domain.actors import Actor, Role
from app.engine.engine import Engine
from app.engine.risk.calendar_data import load_effective
from app.engine.risk.limits import LimitsError
from app.store import limit_versions
from app.ui import theme
from app.ui.limits_document import (
    field_changes,
    line_index,
    line_of,
    patch_toml,
    problem_path,
    render_toml,
    syntax_error_line,
)
from app.ui.limits_view import LimitsPanel, reason_problem
from app.ui.session import OperatorSession
from tests.support.calendar import cover_today
from tests.ui.conftest import await_in_qt

OUTPUT = Path(__file__).resolve().parents[1] / "output"
RISK = Actor.with_role("meera", Role.RISK_OFFICER)
TRADER = Actor.with_role("asha", Role.TRADER)


@dataclass
class Running:
    desk: Desk
    engine: Engine
    home: Path

    @property
    def limits_file(self) -> Path:
        return self.home / "limits.toml"


@pytest.fixture
def running(tmp_path: Path, qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[Running]:
    home = cover_today(tmp_path / "home")
    desk = Desk(DeskOptions(
        command="desk", database_url=f"sqlite:///{home}/bulwark.db", home=home, limits_path=home / "limits.toml",
        paper=PaperConfig(seed=11, tick_interval_ms=None, latency_ms=5, reject_rate=0.0), calendar=load_effective(home),
    ))
    engine = await_in_qt(qtbot, desk.start())
    yield Running(desk, engine, home)
    await_in_qt(qtbot, desk.stop())
    await_in_qt(qtbot, desk.close())


def _panel(qtbot: QtBot, run: Running, actor: Actor | None, *, size: tuple[int, int] = (1200, 860)) -> LimitsPanel:
    session = OperatorSession()
    if actor is not None:
        session.sign_in(actor)
    panel = LimitsPanel(run.engine, session, limits_path=run.limits_file)
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    await_in_qt(qtbot, panel.wait_idle())
    return panel


def _type(qtbot: QtBot, panel: LimitsPanel, path: tuple[str, ...], text: str) -> None:
    edit = panel.form.editor(*path)
    edit.selectAll()
    qtbot.keyClicks(edit, text)


def _set_cell(panel: LimitsPanel, table: str, name: str, column: int, text: str) -> None:
    view = (panel.form.underlyings if table == "underlyings" else panel.form.instruments).view
    row = next(r for r in range(view.rowCount()) if view.item(r, 0).text() == name)
    view.item(row, column).setText(text)  # itemChanged: the same signal an edit in the cell sends


def _screenshot(widget: QWidget, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    # Layouts settle on posted events (a problem label just shown): let them run before the grab.
    QApplication.sendPostedEvents()
    QApplication.processEvents()
    assert widget.grab().save(str(OUTPUT / name))


@pytest.fixture(params=[True, False], ids=["dark", "light"])
def themed(request: pytest.FixtureRequest, qapp: QApplication) -> Iterator[bool]:
    previous_palette, previous_sheet = qapp.palette(), qapp.styleSheet()
    theme.apply(qapp, request.param)
    try:
        yield bool(request.param)
    finally:
        qapp.setPalette(previous_palette)
        qapp.setStyleSheet(previous_sheet)


# -- the document helpers (no desk) ------------------------------------------------------------------


def test_problem_paths_are_read_from_every_kind_of_message() -> None:
    assert problem_path('instruments."NSE:RELIANCE".max_order_lots = -1: must be more than zero') == (
        "instruments", "NSE:RELIANCE", "max_order_lots")
    assert problem_path("desk.restricted[2] = 'x': 'x' is not an instrument key") == ("desk", "restricted")
    assert problem_path("underlyings.NIFTY.max_order_lots: missing; set it here") == ("underlyings", "NIFTY", "max_order_lots")
    assert problem_path("defaults: max_position_lots = 10 (from [defaults]) is below") == ("defaults",)
    assert problem_path("not valid TOML: Expected ']' (at line 3, column 6); see https://toml.io") == ()
    assert syntax_error_line("not valid TOML: Expected ']' (at line 3, column 6); see https://toml.io") == 3


def test_line_index_places_tables_keys_and_inline_tables() -> None:
    text = '[desk]\nmax_open_orders = 20\n\n[underlyings]\nTCS = { max_gross_exposure_inr = 500000 }\n[instruments."NSE:SBIN"]\nmax_order_lots = 1\n'
    index = line_index(text)
    assert index[("desk", "max_open_orders")] == 2
    assert index[("underlyings", "TCS", "max_gross_exposure_inr")] == 5
    assert index[("instruments", "NSE:SBIN", "max_order_lots")] == 7
    assert line_of(("instruments", "NSE:SBIN", "max_order_value_inr"), index) == 6  # not written: its section
    assert line_of(("breakers", "stale_data_seconds"), index) == 1


def test_render_reads_back_the_same_limits_and_patch_keeps_the_comments() -> None:
    from app.engine.risk.limits import DEFAULT_LIMITS_PATH, parse_limits

    text = DEFAULT_LIMITS_PATH.read_text(encoding="utf-8")
    document = parse_limits(text, "shipped").document()
    assert parse_limits(render_toml(document), "rendered").document() == document
    import tomllib

    old = tomllib.loads(text)
    new = tomllib.loads(text)
    new["desk"]["daily_loss_limit_inr"] = 30000
    patched = patch_toml(text, old, new)
    assert patched is not None and tomllib.loads(patched) == new
    assert "daily_loss_limit_inr = 30000          # today's P&L" in patched
    assert patched.count("\n") == text.count("\n") and "# DEFAULT DENY" in patched
    changes = field_changes(document, parse_limits(patched, "patched").document())
    assert [(c.path, c.before, c.after) for c in changes] == [("desk.daily_loss_limit_inr", "₹25,000", "₹30,000")]


@pytest.mark.parametrize(("reason", "problem"), [
    ("", "a reason is required"),
    ("   \t ", "a reason is required"),
    ("raise\x07 the cap", "control character (U+0007)"),
    ("nul\x00", "control character (U+0000)"),
    ("x" * 501, "501 characters long"),
])
def test_unusable_reasons_are_named(reason: str, problem: str) -> None:
    found = reason_problem(reason)
    assert found is not None and problem in found


def test_a_unicode_reason_is_fine() -> None:
    assert reason_problem("NIFTY सीमा बढ़ाई — expiry week ✓") is None


def test_the_history_is_read_off_the_gui_thread(qtbot: QtBot, qloop: qasync.QEventLoop) -> None:
    import threading

    from app.store.document_versions import StoredDocument
    from app.ui.limits_history import LimitsHistory

    readers: list[threading.Thread] = []

    def reader() -> list[StoredDocument]:
        readers.append(threading.current_thread())
        return [StoredDocument(1, 0, "system", "first limits", '{"desk": {"max_open_orders": 20}}'),
                StoredDocument(2, 1, "meera", "more", '{"desk": {"max_open_orders": 30}}')]

    history = LimitsHistory(reader)
    qtbot.addWidget(history)
    await_in_qt(qtbot, history.reload())
    assert readers and readers[0] is not threading.main_thread()
    assert history.table.item(0, 0).text() == "2" and history.table.item(1, 1).text() == "1970-01-01 05:30:00 IST"
    history.compare(1, 2)
    assert history.diff.rows() == [("desk.max_open_orders", "20", "30")]


def test_a_history_that_cannot_be_read_says_so(qtbot: QtBot, qloop: qasync.QEventLoop) -> None:
    from app.store.document_versions import StoredDocument
    from app.ui.limits_history import LimitsHistory

    def reader() -> list[StoredDocument]:
        raise OSError("disk I/O error")

    history = LimitsHistory(reader)
    qtbot.addWidget(history)
    await_in_qt(qtbot, history.reload())
    assert history.status.text() == "Cannot read the stored versions: disk I/O error"


# -- the panel over a running desk ------------------------------------------------------------------------


def test_everyone_sees_the_limits_in_force_in_lakh_and_crore(qtbot: QtBot, running: Running) -> None:
    panel = _panel(qtbot, running, None)
    shown = panel.in_force_view.toPlainText()
    assert "₹25,00,000 (₹25.00 L)" in shown  # the desk's gross cap
    assert "underlying NIFTY" in shown and "instrument NSE:RELIANCE" in shown
    assert "80 %, 90 %" in shown
    assert "version 1 in force" in panel.header.text()
    assert "by system: first limits" in panel.header.text()  # the history, read off the GUI thread
    assert not panel.editable and not panel.save_button.isEnabled()


def test_a_risk_officer_edits_the_form_sees_exactly_the_changed_fields_and_saves_a_new_version(
    qtbot: QtBot, running: Running,
) -> None:
    panel = _panel(qtbot, running, RISK)
    assert panel.editable and running.engine.limits.version == 1
    _type(qtbot, panel, ("desk", "daily_loss_limit_inr"), "30000")
    _set_cell(panel, "underlyings", "NIFTY", 1, "2")
    _type(qtbot, panel, ("breakers", "stale_data_seconds"), "20")
    panel.check_now()
    assert panel.diff.rows() == [
        ("desk.daily_loss_limit_inr", "₹25,000", "₹30,000"),
        ("breakers.stale_data_seconds", "30 s", "20 s"),
        ("underlyings.NIFTY.max_order_lots", "1", "2"),
    ]
    # The TOML tab followed the form, line by line: the file's comments are still there.
    text = panel.toml.toPlainText()
    assert "daily_loss_limit_inr = 30000" in text and "# DEFAULT DENY" in text
    assert not panel.save_button.isEnabled()  # no reason yet
    assert "a reason" in panel.save_button.toolTip()
    qtbot.keyClicks(panel.reason, "NIFTY expiry week: two lots")
    assert panel.save_button.isEnabled()

    qtbot.mouseClick(panel.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: running.engine.limits.version == 2, timeout=10_000)
    await_in_qt(qtbot, panel.wait_idle())
    assert running.engine.gate.limits.desk.daily_loss_limit == 30_000_00
    assert "Version 2 in force" in panel.save_status.text()
    assert panel.toml.toPlainText() == text  # the saved text stays in the editor
    assert not panel.save_button.isEnabled() and panel.diff.rows() == []  # no change from the version now in force
    # The desk's file holds the new limits, comments kept, so the next start loads the same.
    on_disk = running.limits_file.read_text(encoding="utf-8")
    assert on_disk == text
    # History: newest first, with who and why.
    row = [panel.history.table.item(0, column).text() for column in range(4)]
    assert (row[0], row[2], row[3]) == ("2", "meera", "NIFTY expiry week: two lots")
    assert row[1].endswith(" IST")
    assert "version 2 in force" in panel.header.text() and "by meera" in panel.header.text()
    stored = limit_versions.latest(running.engine.recorder.engine, running.engine.desk_id)  # type: ignore[union-attr]
    assert stored is not None and (stored.version, stored.actor) == (2, "meera")


def test_editing_the_toml_fills_the_form(qtbot: QtBot, running: Running) -> None:
    panel = _panel(qtbot, running, RISK)
    text = panel.toml.toPlainText().replace("max_open_orders = 20", "max_open_orders = 35")
    panel.toml.setPlainText(text)
    panel.check_now()
    assert panel.form.editor("desk", "max_open_orders").text() == "35"
    assert [row[0] for row in panel.diff.rows()] == ["desk.max_open_orders"]


def test_a_trader_sees_the_editor_greyed_and_the_engine_refuses_a_direct_change(qtbot: QtBot, running: Running) -> None:
    panel = _panel(qtbot, running, TRADER)
    assert not panel.editable
    assert panel.form.editor("desk", "daily_loss_limit_inr").isReadOnly()
    assert panel.toml.isReadOnly() and not panel.reason.isEnabled() and not panel.save_button.isEnabled()
    assert "asha (trader) may not change the limits" in panel.access.text()
    changed = running.limits_file.read_text(encoding="utf-8").replace("max_open_orders = 20", "max_open_orders = 99")
    with pytest.raises(PermissionError, match="asha may not change the risk limits"):
        await_in_qt(qtbot, running.engine.set_limits(changed, actor=TRADER, reason="more orders"))
    # The panel's own save, forced past the greyed button, is refused by the engine and loses nothing.
    panel.toml.setPlainText(changed)
    panel.reason.setText("more orders")
    panel.check_now()
    assert await_in_qt(qtbot, panel.save()) is None
    assert "Refused: asha may not change the risk limits" in panel.save_status.text()
    assert panel.toml.toPlainText() == changed
    assert running.engine.limits.version == 1
    # Signing in a risk officer at the same window lifts the greying.
    panel.session.sign_in(RISK)
    assert panel.editable and not panel.toml.isReadOnly() and panel.save_button.isEnabled()


def test_an_invalid_document_is_refused_with_each_problem_at_its_field_and_its_line(
    qtbot: QtBot, running: Running,
) -> None:
    panel = _panel(qtbot, running, RISK)
    shipped = running.limits_file.read_text(encoding="utf-8")
    text = (shipped
            .replace("max_open_orders = 20", 'max_open_orders = "twenty"')  # wrong type
            .replace("daily_loss_limit_inr = 25000 ", "daily_loss_limit_inr = -5000 "))  # negative cap
    panel.toml.setPlainText(text)
    panel.reason.setText("tidy up")
    panel.check_now()
    assert len(panel.problems) == 2
    assert "not a whole number" in panel.form.field_problem("desk", "max_open_orders")
    assert "must be more than zero" in panel.form.field_problem("desk", "daily_loss_limit_inr")
    assert panel.form.field_problem("desk", "max_gross_exposure_inr") == ""
    lines = text.splitlines()
    assert {lines[n - 1].split("=")[0].strip() for n in panel.problem_lines()} == {"max_open_orders", "daily_loss_limit_inr"}
    assert panel.edit_tabs.tabText(0) == "Form (2 problems)"
    assert not panel.save_button.isEnabled() and "a valid document (2 problems)" in panel.save_button.toolTip()
    with pytest.raises(LimitsError):
        await_in_qt(qtbot, running.engine.set_limits(text, actor=RISK, reason="tidy up", path=running.limits_file))

    # Caps that contradict each other once every field reads: a position cap below the order cap,
    # an underlying's net cap above its gross cap. Each goes to its section, and to its line.
    text = (shipped
            .replace("max_position_lots = 3000\nmax_position_value_inr = 500000\n\n# Cash",
                     "max_position_lots = 10\nmax_position_value_inr = 500000\n\n# Cash")
            .replace("max_gross_exposure_inr = 2000000\nmax_net_exposure_inr = 2000000",
                     "max_gross_exposure_inr = 2000000\nmax_net_exposure_inr = 2500000"))
    panel.toml.setPlainText(text)
    panel.check_now()
    assert len(panel.problems) == 2
    assert "max_position_lots = 10" in panel.form.section_problem("defaults")
    assert "underlyings.NIFTY.max_net_exposure_inr" in panel.form.section_problem("underlyings")
    lines = text.splitlines()
    assert sorted(lines[n - 1] for n in panel.problem_lines()) == ["[defaults]", "max_net_exposure_inr = 2500000"]
    assert not panel.save_button.isEnabled()
    with pytest.raises(LimitsError):
        await_in_qt(qtbot, running.engine.set_limits(text, actor=RISK, reason="tidy up", path=running.limits_file))
    assert running.engine.limits.version == 1
    assert running.limits_file.read_text(encoding="utf-8") == shipped


@pytest.mark.parametrize(("path", "typed", "problem"), [
    (("desk", "max_gross_exposure_inr"), "25 lakh", "desk.max_gross_exposure_inr = '25 lakh'"),
    (("desk", "max_gross_exposure_inr"), "NaN", "desk.max_gross_exposure_inr = 'NaN'"),
    (("desk", "max_open_orders"), "-3", "desk.max_open_orders = -3: out of range"),
    (("desk", "max_open_orders"), "", "desk.max_open_orders: missing"),
    (("breakers", "warn_fractions"), "0.9, 0.8", "not strictly increasing"),
])
def test_bad_values_typed_in_the_form_are_named_under_their_field(
    qtbot: QtBot, running: Running, path: tuple[str, str], typed: str, problem: str,
) -> None:
    panel = _panel(qtbot, running, RISK)
    edit = panel.form.editor(*path)
    edit.selectAll()
    if typed:
        qtbot.keyClicks(edit, typed)
    else:
        qtbot.keyClick(edit, Qt.Key.Key_Delete)
    panel.reason.setText("try")
    panel.check_now()
    assert problem in panel.form.field_problem(*path)
    assert len(panel.problems) == 1 and not panel.save_button.isEnabled()
    assert edit.text() == typed  # what was typed stays for the operator to correct


def test_a_syntax_error_names_its_line_and_greys_the_form_without_losing_the_text(qtbot: QtBot, running: Running) -> None:
    panel = _panel(qtbot, running, RISK)
    text = "[desk]\nmax_open_orders = 20\n[breakers\nstale_data_seconds = 30\n"
    panel.toml.setPlainText(text)
    panel.check_now()
    assert len(panel.problems) == 1 and "not valid TOML" in panel.problems[0]
    assert list(panel.problem_lines()) == [3]
    assert not panel.form.isEnabled() and "does not parse" in panel.form_banner.text()
    assert panel.toml.toPlainText() == text and not panel.save_button.isEnabled()


@pytest.mark.parametrize("garbage", ["binary", "unicode", "control"])
def test_ten_kilobytes_of_garbage_is_one_clear_problem(qtbot: QtBot, running: Running, garbage: str) -> None:
    panel = _panel(qtbot, running, RISK)
    rng = random.Random(7)
    alphabet = {
        "binary": [chr(c) for c in range(32, 127)] + ["\n"],
        "unicode": list("अआइईउऊ₹—“”😀中文ا") + ["\n", " ", "="],
        "control": [chr(c) for c in range(32)] + ["a", "=", "["],
    }[garbage]
    text = "".join(rng.choice(alphabet) for _ in range(10_240))
    panel.toml.setPlainText(text)
    panel.reason.setText("garbage")
    panel.check_now()
    assert panel.problems and all(len(problem) < 400 for problem in panel.problems)
    assert not panel.save_button.isEnabled()
    # Nothing typed is lost: Qt's editor keeps every character, only reading CR LF and CR as line ends.
    assert panel.toml.toPlainText() == text.replace("\r\n", "\n").replace("\r", "\n")
    assert running.engine.limits.version == 1


def test_the_reason_is_required_and_clean(qtbot: QtBot, running: Running) -> None:
    panel = _panel(qtbot, running, RISK)
    _type(qtbot, panel, ("desk", "max_open_orders"), "25")
    panel.check_now()
    assert not panel.save_button.isEnabled()
    panel.reason.setText("raise\x07 open orders")
    assert not panel.save_button.isEnabled() and "control character" in panel.reason_problem.text()
    panel.reason.setText("   ")
    assert not panel.save_button.isEnabled() and "reason is required" in panel.reason_problem.text()
    # The engine refuses an empty reason too, and the panel says so plainly.
    assert await_in_qt(qtbot, panel.save()) is None
    assert "a reason is required" in panel.save_status.text() and running.engine.limits.version == 1
    panel.reason.setText("खुले ऑर्डर 25 — desk review")
    assert panel.save_button.isEnabled()
    assert await_in_qt(qtbot, panel.save()) == 2


def test_two_versions_from_the_history_are_compared(qtbot: QtBot, running: Running) -> None:
    base = running.limits_file.read_text(encoding="utf-8")
    second = base.replace("max_open_orders = 20", "max_open_orders = 30")
    third = second.replace("max_orders_per_day = 500", "max_orders_per_day = 800")
    assert await_in_qt(qtbot, running.engine.set_limits(second, actor=RISK, reason="more open orders")) == 2
    assert await_in_qt(qtbot, running.engine.set_limits(third, actor=RISK, reason="more orders a day")) == 3
    panel = _panel(qtbot, running, TRADER)  # reading the history needs no permission
    history = panel.history
    assert [history.table.item(r, 0).text() for r in range(history.table.rowCount())] == ["3", "2", "1"]
    assert history.table.item(0, 3).text() == "more orders a day"
    selection = history.table.selectionModel()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    selection.select(history.table.model().index(0, 0), flags)
    assert [row[0] for row in history.diff.rows()] == ["desk.max_orders_per_day"]  # one version: what it changed
    selection.select(history.table.model().index(2, 0), flags)
    assert history.diff.rows() == [
        ("desk.max_open_orders", "20", "30"),
        ("desk.max_orders_per_day", "500", "800"),
    ]
    assert "version 1 → version 3" in history.diff.title.text()


# -- screenshots ------------------------------------------------------------------------------------------


def test_screenshots(qtbot: QtBot, running: Running, themed: bool) -> None:
    suffix = "dark" if themed else "light"
    base = running.limits_file.read_text(encoding="utf-8")
    await_in_qt(qtbot, running.engine.set_limits(base.replace("max_open_orders = 20", "max_open_orders = 30"),
                                                 actor=RISK, reason="more open orders for the expiry roll"))
    panel = _panel(qtbot, running, RISK)
    panel.tabs.setCurrentIndex(1)
    _type(qtbot, panel, ("desk", "daily_loss_limit_inr"), "30000")
    _type(qtbot, panel, ("desk", "max_gross_exposure_inr"), "3000000")
    _set_cell(panel, "underlyings", "NIFTY", 1, "2")
    panel.check_now()
    # Set, not typed: QTest cannot type a character outside Latin-1 (₹) and aborts.
    panel.reason.setText("NIFTY expiry week: two lots, desk loss limit ₹30,000 (approved by CRO)")
    assert panel.save_button.isEnabled() and len(panel.diff.rows()) == 3
    _screenshot(panel, f"limits_diff_{suffix}.png")

    broken = panel.toml.toPlainText().replace("max_open_orders = 30", 'max_open_orders = "thirty"').replace(
        "daily_loss_limit_inr = 30000", "daily_loss_limit_inr = -5")
    panel.toml.setPlainText(broken)
    panel.check_now()
    _screenshot(panel, f"limits_invalid_form_{suffix}.png")
    panel.edit_tabs.setCurrentIndex(1)
    _screenshot(panel, f"limits_invalid_toml_{suffix}.png")
    contradicting = base.replace("max_gross_exposure_inr = 2000000\nmax_net_exposure_inr = 2000000",
                                 "max_gross_exposure_inr = 2000000\nmax_net_exposure_inr = 2500000")
    panel.toml.setPlainText(contradicting.replace("[underlyings.SENSEX]\nmax_order_lots = 1\nmax_position_lots = 1",
                                                  "[underlyings.SENSEX]\nmax_order_lots = 3\nmax_position_lots = 1"))
    panel.check_now()
    assert len(panel.problems) == 2
    panel.edit_tabs.setCurrentIndex(0)
    panel.form.ensureWidgetVisible(panel.form.underlyings.problem)
    _screenshot(panel, f"limits_invalid_sections_{suffix}.png")

    panel.tabs.setCurrentIndex(2)
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    panel.history.table.selectionModel().select(panel.history.table.model().index(0, 0), flags)
    panel.history.table.selectionModel().select(panel.history.table.model().index(1, 0), flags)
    _screenshot(panel, f"limits_history_{suffix}.png")
    panel.tabs.setCurrentIndex(0)
    _screenshot(panel, f"limits_in_force_{suffix}.png")
