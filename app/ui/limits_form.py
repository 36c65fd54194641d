"""The limits document as a form: one typed field per value, each with its problems right under it.

The form holds what the operator typed, not a checked document: :meth:`LimitsForm.document` gives
the raw tables (as ``tomllib`` would read them) for the schema to judge, and keys the form does not
know (a typo in the TOML text) are carried through untouched, so the schema still names them and
nothing typed in either tab is lost.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.domain.orders import OrderSource, OrderType, Product
from app.ui import theme
from app.ui.limits_document import form_value, money_text, problem_path

Path = tuple[str, ...]

_EDIT_WIDTH = 150
_LIST_WIDTH = 260


@dataclass(frozen=True, slots=True)
class _Spec:
    key: str
    label: str
    kind: str  # money | count | number | fractions | keys | bool | choices
    tip: str = ""


_DESK = (
    _Spec("max_gross_exposure_inr", "Gross exposure cap", "money", "sum of |position value| plus working orders"),
    _Spec("max_net_exposure_inr", "Net exposure cap", "money", "|long - short|; at most the gross cap"),
    _Spec("daily_loss_limit_inr", "Daily loss limit", "money", "at this loss only risk-reducing orders pass"),
    _Spec("trailing_loss_limit_inr", "Trailing loss limit", "money", "drop from the day's best P&L; empty: off"),
    _Spec("max_open_orders", "Open orders", "count"),
    _Spec("max_orders_per_day", "Orders a day", "count"),
    _Spec("duplicate_window_seconds", "Duplicate window (s)", "number", "0 turns the duplicate check off"),
    _Spec("reference_max_age_seconds", "Price max age (s)", "number", "older reference price: refuse"),
    _Spec("allowed_order_types", "Order types", "choices"),
    _Spec("allowed_products", "Products", "choices"),
    _Spec("enforce_trading_hours", "Trading hours", "bool"),
    _Spec("restricted", "Restricted", "keys", "instrument keys, comma separated: covered but refused"),
)
_BREAKERS = (
    _Spec("broker_disconnect_seconds", "Broker disconnect (s)", "number"),
    _Spec("stale_data_seconds", "Stale data (s)", "number"),
    _Spec("error_storm_count", "Error storm: errors", "count"),
    _Spec("error_storm_seconds", "Error storm: within (s)", "number"),
    _Spec("warn_fractions", "Warn at fractions", "fractions", "e.g. 0.8, 0.9: alerts at 80 % and 90 % of each limit"),
)
TERMS = (
    _Spec("max_order_lots", "Order lots", "count"),
    _Spec("max_order_value_inr", "Order value", "money"),
    _Spec("price_collar_pct", "Price collar %", "number"),
    _Spec("max_position_lots", "Position lots", "count"),
    _Spec("max_position_value_inr", "Position value", "money"),
)
_EXPOSURE = (
    _Spec("max_gross_exposure_inr", "Gross cap", "money"),
    _Spec("max_net_exposure_inr", "Net cap", "money"),
)
_RATE_KEYS = ("default", *(source.value for source in OrderSource))
_CHOICES: dict[str, tuple[str, ...]] = {
    "allowed_order_types": tuple(OrderType.__members__),
    "allowed_products": tuple(Product.__members__),
}


def cell_text(value: Any) -> str:
    """A raw document value as the operator would type it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(item) for item in value)
    return str(value)


def _hint(kind: str, text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    if kind == "money":
        shown = money_text(text)
        return shown if shown != text else ""
    return ""


class _Field:
    """One value of the form: its editor, a hint (₹ in lakh/crore) and the label for its problems."""

    def __init__(self, spec: _Spec, owner: LimitsForm) -> None:
        self.spec = spec
        self.label = QLabel(spec.label)
        self.hint = QLabel()
        self.hint.setObjectName("limitsHint")
        self.problem = owner.problem_label()
        self.edit: QLineEdit | None = None
        self.check: QCheckBox | None = None
        self.choices: dict[str, QCheckBox] = {}
        # The list as the TOML wrote it: its order and spelling are kept, and an item no checkbox
        # holds (a typo) stays for the schema to name.
        self.loaded: list[Any] = []
        self.widget: QWidget
        if spec.kind == "bool":
            self.check = QCheckBox("enforced")
            self.check.clicked.connect(owner.user_edit)
            self.widget = self.check
        elif spec.kind == "choices":
            self.widget = QWidget()
            row = QHBoxLayout(self.widget)
            row.setContentsMargins(0, 0, 0, 0)
            row.setSpacing(10)
            for name in _CHOICES[spec.key]:
                box = QCheckBox(name)
                box.clicked.connect(owner.user_edit)
                self.choices[name] = box
                row.addWidget(box)
            row.addStretch(1)
        else:
            self.edit = QLineEdit()
            self.edit.setObjectName(spec.key)
            # One width for every figure, so the columns line up; lists get room for several items.
            self.edit.setFixedWidth(_LIST_WIDTH if spec.kind in ("keys", "fractions") else _EDIT_WIDTH)
            self.edit.textEdited.connect(owner.user_edit)
            self.edit.textChanged.connect(self._show_hint)
            # The ₹ reading right beside the figure it reads.
            self.widget = QWidget()
            row = QHBoxLayout(self.widget)
            row.setContentsMargins(0, 0, 0, 0)
            row.setSpacing(8)
            row.addWidget(self.edit)
            row.addWidget(self.hint)
            row.addStretch(1)
        if spec.tip:
            self.widget.setToolTip(spec.tip)
            self.label.setToolTip(spec.tip)

    def _show_hint(self, text: str) -> None:
        self.hint.setText(_hint(self.spec.kind, text))

    def load(self, section: Mapping[str, Any]) -> None:
        value = section.get(self.spec.key)
        if self.check is not None:
            self.check.setChecked(value is not False)  # the schema's default is True
        elif self.choices:
            items = value if isinstance(value, list) else []
            names = {item.strip().upper() for item in items if isinstance(item, str)}
            for name, box in self.choices.items():
                box.setChecked(name in names)
            self.loaded = list(items)
        elif self.edit is not None:
            self.edit.setText("" if value is None else cell_text(value))

    def store(self, section: dict[str, Any]) -> None:
        key, kind = self.spec.key, self.spec.kind
        if self.check is not None:
            # Left out when the document leaves it out and it is the schema's default: the text stays as written.
            if key in section or not self.check.isChecked():
                section[key] = self.check.isChecked()
            return
        if self.choices:
            chosen: list[Any] = []
            seen: set[str] = set()
            for item in self.loaded:
                name = item.strip().upper() if isinstance(item, str) else None
                if name is None or name not in self.choices:
                    chosen.append(item)
                elif self.choices[name].isChecked() and name not in seen:
                    chosen.append(item)
                    seen.add(name)
            chosen += [name for name, box in self.choices.items() if box.isChecked() and name not in seen]
            section[key] = chosen
            return
        text = self.edit.text().strip() if self.edit is not None else ""
        if kind == "keys":
            if key in section or text:
                section[key] = [part.strip() for part in text.split(",") if part.strip()]
        elif not text:
            section.pop(key, None)
        elif kind == "fractions":
            section[key] = [form_value("fraction", part) for part in text.split(",") if part.strip()]
        else:
            section[key] = form_value(kind, text)

    def set_editable(self, editable: bool) -> None:
        if self.edit is not None:
            self.edit.setReadOnly(not editable)
        for box in ([self.check] if self.check is not None else []) + list(self.choices.values()):
            box.setEnabled(editable)


class _SectionsTable(QWidget):
    """``[underlyings.NAME]`` or ``[instruments."KEY"]`` sections: one row each, an empty cell leaves the value to a wider section."""

    def __init__(self, table: str, first: str, specs: tuple[_Spec, ...], owner: LimitsForm) -> None:
        super().__init__()
        self.table_name = table
        self.specs = specs
        self._owner = owner
        self._base: dict[str, Any] = {}
        self.view = QTableWidget(0, 1 + len(specs))
        self.view.setObjectName(table)
        self.view.setHorizontalHeaderLabels([first, *(spec.label for spec in specs)])
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(22)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.itemChanged.connect(lambda _item: owner.user_edit())
        self.add_button = QPushButton("Add section")
        self.remove_button = QPushButton("Remove selected")
        self.add_button.clicked.connect(self._add)
        self.remove_button.clicked.connect(self._remove)
        self.problem = owner.problem_label()
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.view)
        layout.addLayout(buttons)
        layout.addWidget(self.problem)

    def load(self, sections: Any) -> None:
        self._base = dict(sections) if isinstance(sections, Mapping) else {}
        self.view.blockSignals(True)
        self.view.setRowCount(0)
        for name, section in self._base.items():
            self._append(str(name), section if isinstance(section, Mapping) else {})
        self.view.blockSignals(False)
        self._fit()

    def _append(self, name: str, section: Mapping[str, Any]) -> None:
        row = self.view.rowCount()
        self.view.insertRow(row)
        self.view.setItem(row, 0, QTableWidgetItem(name))
        for column, spec in enumerate(self.specs, start=1):
            value = section.get(spec.key)
            item = QTableWidgetItem("" if value is None else cell_text(value))
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.view.setItem(row, column, item)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._fit()  # the header's height is known only once the style sheet has polished it

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.StyleChange, QEvent.Type.FontChange):
            self._fit()

    def _fit(self) -> None:
        # Every row shown: the form scrolls as a whole, a table scrolling inside it would hide rows.
        rows = self.view.rowCount()
        body = self.view.verticalHeader().length() if rows else self.view.verticalHeader().defaultSectionSize()
        frame = 2 * self.view.frameWidth()
        self.view.setFixedHeight(self.view.horizontalHeader().sizeHint().height() + body + frame + 2)

    def _add(self) -> None:
        self.view.blockSignals(True)
        self._append("", {})
        self.view.blockSignals(False)
        self._fit()
        name = self.view.item(self.view.rowCount() - 1, 0)
        if name is not None:
            self.view.editItem(name)
        self._owner.user_edit()

    def _remove(self) -> None:
        rows = sorted({index.row() for index in self.view.selectionModel().selectedRows()}, reverse=True)
        if not rows:
            return
        for row in rows:
            self.view.removeRow(row)
        self._fit()
        self._owner.user_edit()

    def names(self) -> list[str]:
        return [self._text(row, 0) for row in range(self.view.rowCount())]

    def _text(self, row: int, column: int) -> str:
        item = self.view.item(row, column)
        return item.text().strip() if item is not None else ""

    def document(self) -> dict[str, Any]:
        sections: dict[str, Any] = {}
        for row, name in enumerate(self.names()):
            base = self._base.get(name)
            section = copy.deepcopy(dict(base)) if isinstance(base, Mapping) else {}
            for column, spec in enumerate(self.specs, start=1):
                text = self._text(row, column)
                if text:
                    section[spec.key] = form_value(spec.kind, text)
                else:
                    section.pop(spec.key, None)
            sections[name] = section
        return sections

    def clear_marks(self) -> None:
        self.problem.clear()
        self.problem.hide()
        self.view.blockSignals(True)
        for row in range(self.view.rowCount()):
            for column in range(self.view.columnCount()):
                item = self.view.item(row, column)
                if item is not None:
                    item.setBackground(QBrush())
                    item.setToolTip("")
        self.view.blockSignals(False)

    def mark(self, path: Path, problem: str, colour: QColor) -> None:
        """Colour the cell (or the name, for the whole section) and list the problem under the table."""
        name = path[1] if len(path) > 1 else None
        rows = [row for row, text in enumerate(self.names()) if text == name]
        column = 0
        if len(path) > 2:
            column = next((i for i, spec in enumerate(self.specs, start=1) if spec.key == path[2]), 0)
        self.view.blockSignals(True)
        for row in rows:
            item = self.view.item(row, column)
            if item is not None:
                item.setBackground(QBrush(colour))
                item.setToolTip(problem)
        self.view.blockSignals(False)
        self._owner.add_problem(self.problem, problem)

    def set_editable(self, editable: bool) -> None:
        triggers = (QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
                    | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.view.setEditTriggers(triggers if editable else QAbstractItemView.EditTrigger.NoEditTriggers)
        self.add_button.setEnabled(editable)
        self.remove_button.setEnabled(editable)


class LimitsForm(QScrollArea):
    """Every value of a limits document in a typed field; ``edited`` fires on each change the operator makes."""

    edited = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self._base: dict[str, Any] = {}
        self._loading = False
        self._fields: dict[Path, _Field] = {}
        self._group_problems: dict[Path, QLabel] = {}
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(8)
        layout.addWidget(self._group("Desk", ("desk",), _DESK, columns=2))
        layout.addWidget(self._group("Orders per second, by source (empty: the default)", ("desk", "max_orders_per_second"),
                                     tuple(_Spec(key, key, "count") for key in _RATE_KEYS), columns=4))
        layout.addWidget(self._group("Breakers", ("breakers",), _BREAKERS, columns=2))
        layout.addWidget(self._group("Defaults: values only, they cover nothing", ("defaults",), TERMS, columns=2))
        self.underlyings = _SectionsTable("underlyings", "Underlying", TERMS + _EXPOSURE, self)
        self.instruments = _SectionsTable("instruments", "Instrument", TERMS, self)
        for title, table in (("Underlyings: each covers every contract of its underlying", self.underlyings),
                             ("Instruments: each covers one instrument, over its underlying", self.instruments)):
            box = QGroupBox(title)
            inner = QVBoxLayout(box)
            inner.setContentsMargins(6, 4, 6, 6)
            inner.addWidget(table)
            layout.addWidget(box)
        self.other_problems = self.problem_label()
        layout.addWidget(self.other_problems)
        layout.addStretch(1)
        self.setWidget(body)
        self._problem_colour = QColor(theme.colours(theme.is_dark(self.palette())).bad)

    # -- building ----------------------------------------------------------------------------------

    def problem_label(self) -> QLabel:
        """A label for problems: red, wrapped, hidden while empty."""
        label = QLabel()
        label.setObjectName("limitsProblem")
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.hide()
        return label

    def _group(self, title: str, path: Path, specs: tuple[_Spec, ...], *, columns: int) -> QGroupBox:
        box = QGroupBox(title)
        grid = QGridLayout(box)
        grid.setContentsMargins(6, 4, 6, 6)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(2)
        problem = self.problem_label()
        self._group_problems[path] = problem
        grid.addWidget(problem, 0, 0, 1, 3 * columns)
        for index, spec in enumerate(specs):
            row, column = 1 + 2 * (index // columns), 3 * (index % columns)
            field = _Field(spec, self)
            self._fields[(*path, spec.key)] = field
            grid.addWidget(field.label, row, column)
            grid.addWidget(field.widget, row, column + 1)
            grid.addWidget(field.problem, row + 1, column + 1)
            # A gap between the columns of fields, so each label sits with its own value.
            grid.setColumnMinimumWidth(column + 2, 16)
        for column in range(columns):
            grid.setColumnStretch(3 * column + 1, 1)
        return box

    # -- data ---------------------------------------------------------------------------------------

    def user_edit(self) -> None:
        if not self._loading:
            self.edited.emit()

    def set_document(self, data: Mapping[str, Any]) -> None:
        """Show a raw document (TOML tables); emits nothing."""
        self._loading = True
        try:
            self._base = copy.deepcopy(dict(data))
            for path, field in self._fields.items():
                field.load(_section(self._base, path[:-1]))
            self.underlyings.load(self._base.get("underlyings"))
            self.instruments.load(self._base.get("instruments"))
        finally:
            self._loading = False

    def document(self) -> dict[str, Any]:
        """The raw document the fields hold, over the last one shown (keys the form has no field for stay)."""
        data = copy.deepcopy(self._base)
        for path, field in self._fields.items():
            field.store(_make_section(data, path[:-1]))
        rates = _section(data, ("desk", "max_orders_per_second"))
        if isinstance(data.get("desk"), dict) and not rates and "max_orders_per_second" in data["desk"]:
            del data["desk"]["max_orders_per_second"]  # every source empty: missing, and the schema says so
        for name, table in (("underlyings", self.underlyings), ("instruments", self.instruments)):
            sections = table.document()
            if sections or name in data:
                data[name] = sections
        return data

    def set_editable(self, editable: bool) -> None:
        for field in self._fields.values():
            field.set_editable(editable)
        self.underlyings.set_editable(editable)
        self.instruments.set_editable(editable)

    # -- problems -----------------------------------------------------------------------------------

    def add_problem(self, label: QLabel, problem: str) -> None:
        text = label.text()
        label.setText(f"{text}\n{problem}" if text else problem)
        label.setStyleSheet(f"color: {self._problem_colour.name()};")
        label.show()

    def show_problems(self, problems: list[str]) -> None:
        """Put each problem next to its field (or its section, or at the end when it names neither)."""
        self._problem_colour = QColor(theme.colours(theme.is_dark(self.palette())).bad)
        for field in self._fields.values():
            field.problem.clear()
            field.problem.hide()
            if field.edit is not None:
                field.edit.setStyleSheet("")
        for label in (*self._group_problems.values(), self.other_problems):
            label.clear()
            label.hide()
        self.underlyings.clear_marks()
        self.instruments.clear_marks()
        tint = QColor(self._problem_colour)
        tint.setAlpha(70)
        for problem in problems:
            self._place(problem_path(problem), problem, tint)

    def _place(self, path: Path, problem: str, tint: QColor) -> None:
        if path and path[0] in ("underlyings", "instruments"):
            (self.underlyings if path[0] == "underlyings" else self.instruments).mark(path, problem, tint)
            return
        for end in range(len(path), 0, -1):
            field = self._fields.get(path[:end])
            if field is not None:
                self.add_problem(field.problem, problem)
                if field.edit is not None:
                    field.edit.setStyleSheet(f"border: 1px solid {self._problem_colour.name()};")
                return
            label = self._group_problems.get(path[:end])
            if label is not None:
                self.add_problem(label, problem)
                return
        self.add_problem(self.other_problems, problem)

    def field_problem(self, *path: str) -> str:
        """The problems shown under a field (for tests and screen readers)."""
        field = self._fields[path]
        return field.problem.text() if field.problem.isVisibleTo(self) else ""

    def section_problem(self, *path: str) -> str:
        """The problems shown at the head of a section (``"defaults"``), or of the underlyings' or instruments' table."""
        if path in (("underlyings",), ("instruments",)):
            label = self.underlyings.problem if path[0] == "underlyings" else self.instruments.problem
        else:
            label = self._group_problems[path]
        return label.text() if label.isVisibleTo(self) else ""

    def editor(self, *path: str) -> QLineEdit:
        """The line edit of a field, such as ``editor("desk", "daily_loss_limit_inr")``."""
        field = self._fields[path]
        if field.edit is None:
            raise KeyError(f"{'.'.join(path)} has no text field")
        return field.edit


def _section(data: Mapping[str, Any], path: Path) -> Mapping[str, Any]:
    node: Any = data
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _make_section(data: dict[str, Any], path: Path) -> dict[str, Any]:
    node = data
    for key in path:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    return node

