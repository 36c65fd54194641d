"""The audit viewer (pytest-qt, offscreen): pages read off the GUI thread, filters with their messages, the
detail pane, verify and export, the blotter's way to an order's story, a million records, screenshots."""

from __future__ import annotations

import asyncio
import csv
import gc
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QDateTime, QModelIndex
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine

from app.domain.audit import AuditSource
from app.domain.orders import OrderStatus
from app.store.audit_query import (
    AuditFilter,
    AuditPage,
    AuditQuery,
    ChainCheck,
    make_filter,
)
from app.store.audit_writer import AuditWriter
from app.ui import theme
from app.ui.audit_model import COL_EVENT, COL_SUMMARY, AuditModel, summary
from app.ui.audit_view import AuditViewer
from app.ui.order_story import OrderStory
from app.ui.orders_table import OrdersView
from tests.store.chain_fixtures import file_keys, fill, tamper
from tests.store.test_audit_query import SECOND, T0_NS, _trade, bulk_store, record_of
from tests.ui.test_tables import snap

OUTPUT = Path(__file__).resolve().parents[1] / "output"
# The synthetic chain's first second (2026-11-02 10:00 IST): the default time range never depends on today.
FROZEN_NS = T0_NS


@pytest.fixture(autouse=True)
def collected_on_the_gui_thread() -> Iterator[None]:
    """Garbage of earlier tests (QObjects in reference cycles) is collected here, on the GUI thread: left to
    the collector, it may be freed on whichever thread allocates next, one of the viewer's readers."""
    gc.collect()
    yield
    gc.collect()


def save(widget: QWidget, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    assert widget.grab().save(str(OUTPUT / name))


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Engine]:
    engine = bulk_store(f"sqlite:///{tmp_path}/bulwark.db", 1_000)
    yield engine
    engine.dispose()


def wait_loaded(qtbot: QtBot, model: AuditModel, timeout_ms: int = 10_000) -> None:
    qtbot.waitUntil(lambda: not model.loading, timeout=timeout_ms)


def seqs(model: AuditModel) -> list[int]:
    return [record.seq for record in model.records()]


def viewer(qtbot: QtBot, store: Engine, **kwargs: Any) -> AuditViewer:
    view = AuditViewer(store, clock_ns=lambda: FROZEN_NS, **kwargs)
    qtbot.addWidget(view)
    wait_loaded(qtbot, view.model)
    return view


# -- the model ---------------------------------------------------------------------------------------


def test_the_model_pages_newest_first_with_no_record_twice_and_none_skipped(qtbot: QtBot, small: Engine) -> None:
    model = AuditModel(AuditQuery(small), page_size=64)
    wait_loaded(qtbot, model)
    assert seqs(model) == list(range(1_000, 936, -1)), "the first page: the newest 64"
    while model.canFetchMore(QModelIndex()):
        model.fetchMore(QModelIndex())
        assert model.loading and not model.canFetchMore(QModelIndex()), "one read at a time"
        wait_loaded(qtbot, model)
    assert seqs(model) == list(range(1_000, 0, -1)) and model.exhausted
    model.close()


ANY = AuditFilter()


class NoBudget(AuditQuery):
    """Every read stops after its first window."""

    def newest(self, flt: AuditFilter = ANY, *, before: int | None = None, limit: int = 200,
               budget_s: float = 0.0) -> AuditPage:
        return super().newest(flt, before=before, limit=limit, budget_s=0.0)


def test_a_sparse_filter_keeps_reading_windows_until_the_page_is_full(qtbot: QtBot, small: Engine) -> None:
    # Windows of 10 records and a zero budget: every read hands back at most a window's worth.
    model = AuditModel(NoBudget(small, window=10), page_size=5, start=False)
    model.set_filter(make_filter(actor="rare"))
    qtbot.waitUntil(lambda: model.rowCount() >= 5 or model.exhausted, timeout=10_000)
    wait_loaded(qtbot, model)
    assert seqs(model) == [970, 873, 776, 679, 582]
    while model.canFetchMore(QModelIndex()):
        model.fetchMore(QModelIndex())
        wait_loaded(qtbot, model)
    assert seqs(model) == [seq for seq in range(1_000, 0, -1) if seq % 97 == 0]
    model.close()


def test_a_page_for_the_previous_filter_is_dropped_when_it_lands(qtbot: QtBot, small: Engine) -> None:
    model = AuditModel(AuditQuery(small), page_size=50)
    model.set_filter(make_filter(event_types=["fill"]))
    model.set_filter(make_filter(event_types=["login.ok"]))
    wait_loaded(qtbot, model)
    qtbot.wait(50)  # any page of the earlier filters has landed by now, and been dropped
    assert model.rowCount() == 50 and {r.event_type for r in model.records()} == {"login.ok"}
    model.close()


def test_cells_show_the_record_and_a_readable_summary(qtbot: QtBot, small: Engine) -> None:
    model = AuditModel(AuditQuery(small), page_size=10)
    wait_loaded(qtbot, model)
    fill_row = next(row for row, r in enumerate(model.records()) if r.event_type == "fill")
    record = model.record(fill_row)
    assert model.data(model.index(fill_row, 0)) == f"{record.seq:,}"
    assert model.data(model.index(fill_row, COL_EVENT)) == "fill"
    assert model.data(model.index(fill_row, COL_SUMMARY)).startswith(f"NSE:SYM{record.seq % 13} · BUY 10 @ 1,500.05")
    assert summary("order.proposed", {"instrument": "NSE:TCS", "side": "SELL", "quantity": "'5'",
                                      "price": "Decimal('3882.50')"}) == "NSE:TCS · SELL 5 @ 3882.50"
    assert summary("gate.rejected", {"reason": "PRICE_COLLAR", "message": "6.1 % from ref"}) == "PRICE_COLLAR: 6.1 % from ref"
    model.close()


# -- the viewer: filters and their messages ----------------------------------------------------------


def test_filters_from_the_fields_narrow_the_table(qtbot: QtBot, small: Engine) -> None:
    view = viewer(qtbot, small)
    view.events.edit.setText("fill, broker.ack")
    view.actor_edit.setText("ravi")
    view.instrument_edit.setText("NSE:SYM5")
    assert view.apply_filters()
    wait_loaded(qtbot, view.model)
    want = [seq for seq in range(1_000, 0, -1) if (r := record_of(seq))[4] in ("fill", "broker.ack")
            and r[2] == "ravi" and '"instrument":"NSE:SYM5"' in r[5]]
    assert want and seqs(view.model) == want
    assert view.status_label.text() == f"{len(want)} shown · all matching"

    view.clear_filters()
    view.time_check.setChecked(True)
    view.since_edit.setDateTime(QDateTime.fromSecsSinceEpoch((T0_NS + 120 * SECOND) // SECOND))
    view.until_edit.setDateTime(QDateTime.fromSecsSinceEpoch((T0_NS + 300 * SECOND) // SECOND))
    assert view.apply_filters()
    wait_loaded(qtbot, view.model)
    assert seqs(view.model) == list(range(299, 119, -1))

    view.show_order("BW-000010")
    wait_loaded(qtbot, view.model)
    assert not view.time_check.isChecked() and seqs(view.model) == list(range(87, 79, -1))


@pytest.mark.parametrize(("field", "text", "message"), [
    ("events", "order.proposd", "Events: unknown event type 'order.proposd'"),
    ("actor", "x" * 10_240, "Actor: too long (10,240 characters; at most 128)"),
    ("instrument", "NSE:\x07BELL", "Instrument: contains control characters"),
    ("order", "BW" * 5_120, "Order id: too long"),
])
def test_bad_filter_text_gets_a_message_and_the_table_keeps_its_rows(
        qtbot: QtBot, small: Engine, field: str, text: str, message: str) -> None:
    view = viewer(qtbot, small)
    before = seqs(view.model)
    edit = {"events": view.events.edit, "actor": view.actor_edit, "instrument": view.instrument_edit,
            "order": view.order_edit}[field]
    edit.setText(text)
    assert edit.text() == text, "a pasted 10 kB line is kept to be refused, not cut"
    assert not view.apply_filters()
    assert view.filter_error.isVisibleTo(view) and view.filter_error.text().startswith(message)
    assert "border" in edit.styleSheet() and edit.toolTip()
    assert seqs(view.model) == before
    edit.clear()
    assert view.apply_filters() and not view.filter_error.isVisibleTo(view) and edit.styleSheet() == ""


def test_a_backwards_time_range_is_refused_beside_the_range(qtbot: QtBot, small: Engine) -> None:
    view = viewer(qtbot, small)
    view.time_check.setChecked(True)
    view.since_edit.setDateTime(QDateTime.fromSecsSinceEpoch(T0_NS // SECOND + 7_200))
    view.until_edit.setDateTime(QDateTime.fromSecsSinceEpoch(T0_NS // SECOND))
    assert not view.apply_filters()
    assert view.filter_error.text() == "Time range: the end of the time range is not after its start"
    assert "border" in view.until_edit.styleSheet()


def test_sql_looking_input_finds_nothing_and_harms_nothing(qtbot: QtBot, small: Engine) -> None:
    view = viewer(qtbot, small)
    view.instrument_edit.setText("%' OR 1=1 --")
    view.actor_edit.setText("'; DROP TABLE audit_log; --")
    assert view.apply_filters()
    wait_loaded(qtbot, view.model)
    assert view.model.rowCount() == 0 and view.status_label.text() == "no matching records"
    assert AuditQuery(small).last_seq() == 1_000


def test_the_event_menu_and_the_text_agree(qtbot: QtBot, small: Engine) -> None:
    view = viewer(qtbot, small)
    view.events.kind_actions["fill"].setChecked(True)
    view.events.kind_actions["broker.ack"].setChecked(True)
    assert {part.strip() for part in view.events.typed()} == {"fill", "broker.ack"}
    view.events.edit.setText("order.*")
    assert view.apply_filters()
    wait_loaded(qtbot, view.model)
    assert {r.event_type for r in view.model.records()} == {"order.proposed", "order.queued", "order.sent",
                                                            "order.update"}


def test_selecting_a_row_shows_its_canonical_payload_and_hashes(qtbot: QtBot, small: Engine) -> None:
    view = viewer(qtbot, small)
    view.select_row(3)
    record = view.model.record(3)
    assert view.detail.record == record
    assert json.loads(view.detail.payload_view.toPlainText()) == json.loads(record.payload)
    assert view.detail.payload_view.toPlainText().startswith('{\n  "client_order_id"')
    assert view.detail.field_text("hash") == record.hash
    assert view.detail.field_text("key_fp") == "none (plain SHA-256 record)"


# -- verify and export -------------------------------------------------------------------------------


@pytest.fixture
def keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any]:
    home, keyring_file = tmp_path / "home", tmp_path / "keyring.json"
    home.mkdir()
    monkeypatch.setenv("BULWARK_TEST_KEYRING_FILE", str(keyring_file))
    keys = file_keys(keyring_file)
    fill(f"sqlite:///{home}/bulwark.db", 6_000, keys).engine.dispose()
    return home, keys


def run_verify(qtbot: QtBot, view: AuditViewer) -> ChainCheck:
    with qtbot.waitSignal(view.verify_finished, timeout=30_000) as signal:
        view.verify()
        assert not view.verify_button.isEnabled() and view.progress.isVisibleTo(view)
    check = signal.args[0]
    assert isinstance(check, ChainCheck)
    assert view.verify_button.isEnabled() and not view.progress.isVisibleTo(view)
    return check


def test_verify_runs_off_the_gui_thread_and_says_ok(qtbot: QtBot, keyed: tuple[Path, Any]) -> None:
    from app.store.migrate import open_store

    home, keys = keyed
    store = open_store(f"sqlite:///{home}/bulwark.db")
    view = viewer(qtbot, store, keys=keys)
    progress: list[int] = []
    view.progress.valueChanged.connect(progress.append)
    check = run_verify(qtbot, view)
    assert check.ok and view.result_label.text().startswith("Chain OK: 6,001 records verified, keyed with key")
    assert progress and max(progress) >= 4_000, "progress arrives while the chain is walked"
    store.dispose()


def test_verify_names_the_first_tampered_record(qtbot: QtBot, keyed: tuple[Path, Any]) -> None:
    from app.store.migrate import open_store

    home, keys = keyed
    tamper(home, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 4321")
    store = open_store(f"sqlite:///{home}/bulwark.db")
    view = viewer(qtbot, store, keys=keys)
    check = run_verify(qtbot, view)
    assert not check.ok and check.broken_at == 4_321
    assert view.result_label.text().startswith("BROKEN at record 4,321: its content does not match its HMAC")
    store.dispose()


def test_export_writes_the_whole_filtered_range_not_only_the_loaded_rows(
        qtbot: QtBot, small: Engine, tmp_path: Path) -> None:
    view = viewer(qtbot, small)
    view.events.edit.setText("fill")
    assert view.apply_filters()
    wait_loaded(qtbot, view.model)
    assert view.model.rowCount() == 125 and view.model.exhausted
    view.events.edit.setText("fill, order.sent")  # not applied: export takes the fields as they stand
    target = tmp_path / "out.csv"
    with qtbot.waitSignal(view.export_finished, timeout=30_000) as signal:
        assert view.export_to(target, "csv")
    assert signal.args[0] == 250
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [int(r["seq"]) for r in rows] == [s for s in range(1, 1_001) if record_of(s)[4] in ("fill", "order.sent")]
    assert rows[0]["payload"] == record_of(int(rows[0]["seq"]))[5]
    assert not (tmp_path / "out.csv.partial").exists()
    jsonl = tmp_path / "out.jsonl"
    with qtbot.waitSignal(view.export_finished, timeout=30_000) as signal:
        assert view.export_to(jsonl, "jsonl")
    assert [json.loads(line)["seq"] for line in jsonl.read_text().splitlines()] == [int(r["seq"]) for r in rows]
    assert view.result_label.text() == f"Exported 250 records to {jsonl}"


def test_an_export_that_cannot_write_says_so_and_leaves_no_file(qtbot: QtBot, small: Engine, tmp_path: Path) -> None:
    view = viewer(qtbot, small)
    target = tmp_path / "missing-folder" / "out.csv"
    with qtbot.waitSignal(view.export_finished, timeout=30_000) as signal:
        assert view.export_to(target, "csv")
    assert isinstance(signal.args[0], str) and signal.args[0].startswith("Export failed: ")
    assert not target.exists() and view.export_button.isEnabled()
    view.actor_edit.setText("x" * 500)
    assert not view.export_to(tmp_path / "never.csv", "csv") and view.filter_error.isVisibleTo(view)


# -- the blotter and an order's story ----------------------------------------------------------------


def test_the_blotter_asks_for_a_story_or_a_modify(qtbot: QtBot) -> None:
    view = OrdersView()
    qtbot.addWidget(view)
    view.model.apply(snap("BW1-000001", OrderStatus.OPEN))
    view.model.apply(snap("BW1-000002", OrderStatus.FILLED, filled=10))
    stories: list[str] = []
    modifies: list[str] = []
    view.story_requested.connect(stories.append)
    view.modify_requested.connect(modifies.append)
    rows = {view.model.client_id(view.proxy.mapToSource(view.proxy.index(r, 0)).row()): r for r in range(2)}

    working = view.context_menu_for(view.proxy.index(rows["BW1-000001"], 0))
    assert working is not None
    story, modify = working.actions()
    assert (story.text(), modify.text()) == ("Order story…", "Modify…") and modify.isEnabled()
    story.trigger()
    modify.trigger()
    done = view.context_menu_for(view.proxy.index(rows["BW1-000002"], 0))
    assert done is not None and not done.actions()[1].isEnabled(), "a finished order cannot be modified"
    assert view.context_menu_for(QModelIndex()) is None
    view.table.doubleClicked.emit(view.proxy.index(rows["BW1-000002"], 3))
    assert stories == ["BW1-000001", "BW1-000002"] and modifies == ["BW1-000001"]


def traded(tmp_path: Path) -> tuple[Engine, str, str]:
    writer, filled, cancelled = asyncio.run(_trade(tmp_path))
    return writer.engine, filled, cancelled


def test_the_story_dialog_lists_a_real_orders_steps_in_order(qtbot: QtBot, tmp_path: Path) -> None:
    store, filled, _ = traded(tmp_path)
    dialog = OrderStory(store, filled)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.loaded, timeout=10_000):
        pass
    steps = dialog.steps()
    assert steps[:4] == ["proposed", "gate: accepted", "queued", "sent to broker"]
    assert "broker ack" in steps and "fill" in steps and steps.index("broker ack") < steps.index("fill")
    assert dialog.table.rowCount() == len(steps) and dialog.detail.record == dialog.records[0]
    assert "filled 1" in dialog.facts.text() and "now FILLED" in dialog.facts.text()
    store.dispose()


def test_a_story_for_an_impossible_id_says_so(qtbot: QtBot, small: Engine) -> None:
    dialog = OrderStory(small, "x" * 10_240)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.error is not None or bool(dialog.records), timeout=10_000)
    assert dialog.error is not None and dialog.error.startswith("not a client order id: client_order_id: too long")
    nothing = OrderStory(small, "BW-999999")
    qtbot.addWidget(nothing)
    with qtbot.waitSignal(nothing.loaded, timeout=10_000):
        pass
    assert nothing.records == [] and nothing.facts.text() == "The audit trail holds no record of this order."


# -- a million records -------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_first_page_of_a_million_records_shows_within_200_ms(qtbot: QtBot, tmp_path: Path) -> None:
    built = time.perf_counter()
    store = bulk_store(f"sqlite:///{tmp_path}/bulwark.db", 1_000_000)
    print(f"\nbuilt 1,000,000 records in {time.perf_counter() - built:.1f} s")
    query = AuditQuery(store)
    timings: dict[str, float] = {}
    for name, flt in (("newest", make_filter()), ("event type", make_filter(event_types=["fill"])),
                      ("actor", make_filter(actor="ravi")), ("rare actor (1 in 97)", make_filter(actor="rare"))):
        first_rows: list[float] = []
        started = time.perf_counter()
        model = AuditModel(query, start=False)
        model.rowsInserted.connect(lambda *_, seen=first_rows: seen.append(time.perf_counter()))
        model.set_filter(flt)
        qtbot.waitUntil(lambda seen=first_rows: bool(seen), timeout=5_000)  # type: ignore[misc]
        timings[name] = (first_rows[0] - started) * 1_000
        assert model.rowCount() > 0 and all(record.seq > 900_000 for record in model.records())
        model.close()
    print("first rows: " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in timings.items()))
    assert timings["newest"] <= 200 and timings["event type"] <= 200 and timings["actor"] <= 200, timings
    store.dispose()


# -- screenshots -------------------------------------------------------------------------------------


def desk_chain(tmp_path: Path) -> tuple[Engine, str]:
    """A chain as a desk writes it: operators signing in, limits, three orders through a real engine."""
    store, filled, _ = traded(tmp_path)
    writer = AuditWriter(store)
    writer.start()
    for event, payload, actor, source in (
        ("login.ok", {"purpose": "sign_in", "role": "trader"}, "asha", AuditSource.OPERATOR),
        ("limit.changed", {"version": 4, "reason": "raise RELIANCE cap for results day"}, "meera", AuditSource.OPERATOR),
        ("alert.raised", {"level": "WARN", "message": "gross 84 % of cap"}, "system", AuditSource.SYSTEM),
        ("login.failed", {"purpose": "unlock"}, "ravi", AuditSource.OPERATOR),
    ):
        writer.append_blocking(event, payload, actor=actor, source=source)
    writer.close()
    return store, filled


@pytest.mark.parametrize("look", ["dark", "light"])
def test_audit_viewer_screenshot(qtbot: QtBot, qapp: QApplication, tmp_path: Path, look: str) -> None:
    store, _ = desk_chain(tmp_path)
    theme.apply(qapp, look == "dark")
    try:
        view = viewer(qtbot, store)
        view.events.edit.setText("order.*, gate.*, broker.*, fill, login.*")
        view.source_combo.setCurrentText("any source")
        assert view.apply_filters()
        wait_loaded(qtbot, view.model)
        view.resize(1500, 640)
        view.show()
        qtbot.waitExposed(view)
        fills = [row for row, r in enumerate(view.model.records()) if r.event_type == "fill"]
        view.select_row(fills[0])
        view.splitter.setSizes([900, 600])
        with qtbot.waitSignal(view.verify_finished, timeout=30_000):
            view.verify()
        assert view.model.rowCount() > 10 and view.detail.record is not None
        save(view, f"audit_viewer_{look}.png")
    finally:
        theme.apply(qapp, True)
    store.dispose()


@pytest.mark.parametrize("look", ["dark", "light"])
def test_order_story_screenshot(qtbot: QtBot, qapp: QApplication, tmp_path: Path, look: str) -> None:
    store, filled = desk_chain(tmp_path)
    theme.apply(qapp, look == "dark")
    try:
        dialog = OrderStory(store, filled)
        qtbot.addWidget(dialog)
        with qtbot.waitSignal(dialog.loaded, timeout=10_000):
            dialog.show()
        qtbot.waitExposed(dialog)
        fill_row = dialog.steps().index("fill")
        dialog.table.selectRow(fill_row)
        save(dialog, f"order_story_{look}.png")
    finally:
        theme.apply(qapp, True)
    store.dispose()

