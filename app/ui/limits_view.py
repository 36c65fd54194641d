"""The risk limits: in force for everyone to read, an editor for the risk officer, and their history.

:class:`LimitsPanel` is one widget (the desk window puts it in a dock or a dialog) with three tabs:

* **In force**: the desk caps, the breakers and every section's per-instrument terms, ₹ in lakh/crore.
* **Edit**: the document as a form or as TOML (kept in step), checked on every keystroke with each
  problem placed next to its field (form) or its line (TOML), the field-by-field difference from the
  version in force, a required reason, and Save, enabled only for a valid, changed document with a
  reason, and only for an operator who may set limits (the engine refuses anyone else anyway).
* **History**: the stored versions (who, when, why), any two compared.

Saving goes through ``engine.set_limits`` with the desk's limits file, so the next start loads
what is in force now. A refusal is shown; the edited text is never thrown away.
"""

from __future__ import annotations

import asyncio
import html
import logging
import tomllib
import unicodedata
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QTextCursor, QTextFormat
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.domain.actors import Permission
from app.engine.risk.limits import LimitsError, RiskLimits, parse_limits
from app.store import limit_versions
from app.store.canonical import canonical_json
from app.ui import theme
from app.ui.limits_diff import LimitsDiffView
from app.ui.limits_document import (
    field_changes,
    line_index,
    line_of,
    patch_toml,
    problem_path,
    render_toml,
    show_value,
    syntax_error_line,
)
from app.ui.limits_form import TERMS, LimitsForm
from app.ui.limits_history import LimitsHistory, ist_stamp
from app.ui.session import OperatorSession, not_held_text

if TYPE_CHECKING:
    from app.engine.engine import Engine

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500
HISTORY_LIMIT = 200
_CHECK_DELAY_MS = 150  # typing settles before the document is checked again
_WATCH_MS = 500  # how often the panel looks for limits changed elsewhere (a cheap identity check)
_FORM_HEADER = "# Bulwark risk limits, written by the desk's limits form. Check with: python main.py limits check FILE\n"


def fold_reason(text: str) -> str:
    """The reason as audited: stripped, every run of whitespace folded to one space."""
    return " ".join(text.split())


def reason_problem(text: str) -> str | None:
    """What is wrong with a reason for a limits change, or None when it can be used."""
    folded = fold_reason(text)
    if not folded:
        return "a reason is required: say why the limits change (it is stored with the version and audited)"
    for char in folded:
        if unicodedata.category(char).startswith("C"):
            return f"the reason holds a control character (U+{ord(char):04X}); remove it"
    if len(folded) > MAX_REASON_CHARS:
        return f"the reason is {len(folded)} characters long; at most {MAX_REASON_CHARS}"
    return None


class LimitsPanel(QWidget):
    """The limits in force, their editor and their history, over a running engine.

    ``limits_path`` is the file the desk loaded its limits from (``DeskOptions.limits_path``); a
    save writes it too, so the next start puts the same limits in force. None: the engine's store
    alone keeps the change.
    """

    def __init__(self, engine: Engine, session: OperatorSession, *, limits_path: Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.session = session
        self.limits_path = limits_path
        self._shown: RiskLimits | None = None
        self._in_force: dict[str, Any] = {}
        self._baseline = ""  # the text of the version in force, as the editor first showed it
        self._candidate: RiskLimits | None = None
        self.problems: list[str] = []
        self._saving = False
        self._tasks: set[asyncio.Task[Any]] = set()

        self.header = QLabel()
        self.header.setObjectName("limitsHeader")
        self.header.setWordWrap(True)
        self.access = QLabel()
        self.access.setObjectName("limitsAccess")
        self.access.setWordWrap(True)

        self.in_force_view = QTextBrowser()
        self.in_force_view.setObjectName("limitsInForce")
        self.in_force_view.setOpenLinks(False)

        self.form = LimitsForm()
        self.form.edited.connect(self._form_edited)
        self.form_banner = QLabel()
        self.form_banner.setWordWrap(True)
        self.form_banner.hide()
        form_page = QWidget()
        form_layout = QVBoxLayout(form_page)
        form_layout.setContentsMargins(0, 0, 0, 0)
        form_layout.addWidget(self.form_banner)
        form_layout.addWidget(self.form, 1)

        self.toml = QPlainTextEdit()
        self.toml.setObjectName("limitsToml")
        self.toml.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.toml.setFont(mono)
        self.toml.textChanged.connect(self._toml_edited)
        self.toml_problems = QListWidget()
        self.toml_problems.setObjectName("limitsTomlProblems")
        self.toml_problems.setWordWrap(True)
        self.toml_problems.itemActivated.connect(self._go_to_line)
        self.toml_problems.itemClicked.connect(self._go_to_line)
        toml_page = QSplitter(Qt.Orientation.Vertical)
        toml_page.addWidget(self.toml)
        toml_page.addWidget(self.toml_problems)
        toml_page.setStretchFactor(0, 4)
        toml_page.setStretchFactor(1, 1)
        toml_page.setChildrenCollapsible(False)

        self.edit_tabs = QTabWidget()
        self.edit_tabs.addTab(form_page, "Form")
        self.edit_tabs.addTab(toml_page, "TOML")

        self.diff = LimitsDiffView()
        self.reason = QLineEdit()
        self.reason.setObjectName("limitsReason")
        self.reason.setPlaceholderText("Why do the limits change? (required; stored with the version and audited)")
        self.reason.setMaxLength(MAX_REASON_CHARS * 2)  # a longer paste is kept, and refused with its length
        self.reason.textChanged.connect(lambda _text: self._update_save())
        self.reason_problem = QLabel()
        self.reason_problem.setWordWrap(True)
        self.reason_problem.hide()
        self.revert_button = QPushButton("Revert")
        self.revert_button.setToolTip("Throw the edits away and show the version in force again")
        self.revert_button.clicked.connect(self.revert)
        self.save_button = QPushButton("Save new version")
        self.save_button.setObjectName("limitsSave")
        self.save_button.clicked.connect(self._save_clicked)
        self.save_status = QLabel()
        self.save_status.setObjectName("limitsSaveStatus")
        self.save_status.setWordWrap(True)

        reason_row = QHBoxLayout()
        reason_row.addWidget(QLabel("Reason"))
        reason_row.addWidget(self.reason, 1)
        reason_row.addWidget(self.revert_button)
        reason_row.addWidget(self.save_button)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.setSpacing(3)
        bottom_layout.addWidget(self.diff, 1)
        bottom_layout.addLayout(reason_row)
        bottom_layout.addWidget(self.reason_problem)
        bottom_layout.addWidget(self.save_status)
        edit_split = QSplitter(Qt.Orientation.Vertical)
        edit_split.addWidget(self.edit_tabs)
        edit_split.addWidget(bottom)
        edit_split.setStretchFactor(0, 3)
        edit_split.setStretchFactor(1, 2)
        edit_split.setChildrenCollapsible(False)
        edit_split.setSizes([560, 240])  # room for a few changed fields under the editor
        edit_page = QWidget()
        edit_layout = QVBoxLayout(edit_page)
        edit_layout.setContentsMargins(6, 6, 6, 6)
        edit_layout.addWidget(edit_split)

        store = engine.recorder.engine if engine.recorder is not None else None
        desk = engine.desk_id
        self.history = LimitsHistory((lambda: limit_versions.history(store, desk, HISTORY_LIMIT)) if store is not None else None)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.in_force_view, "In force")
        self.tabs.addTab(edit_page, "Edit")
        self.tabs.addTab(self.history, "History")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.header)
        layout.addWidget(self.access)
        layout.addWidget(self.tabs, 1)

        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(_CHECK_DELAY_MS)
        self._check_timer.timeout.connect(self.check_now)
        self._pending_from_toml = False
        self._watch = QTimer(self)
        self._watch.setInterval(_WATCH_MS)
        self._watch.timeout.connect(self._watch_limits)
        self._watch.start()
        session.changed.connect(self._apply_access)

        self._show_in_force(reset_editor=True)
        self._apply_access()
        self.reload_history()

    # -- the limits in force ------------------------------------------------------------------------

    @property
    def version(self) -> int | None:
        """The version in force (None: limits that were never stored, such as a demo desk's)."""
        return self.engine.limits.version

    def _watch_limits(self) -> None:
        if self.engine.gate.limits is not self._shown:
            # Changed elsewhere (another window, the CLI's file at a restart): the edits stay, the diff follows.
            self._show_in_force(reset_editor=not self.modified)
            self.reload_history()

    @property
    def modified(self) -> bool:
        """Whether the editor holds anything other than the version in force as first shown."""
        return self.toml.toPlainText() != self._baseline

    def _show_in_force(self, *, reset_editor: bool) -> None:
        limits = self.engine.gate.limits
        self._shown = limits
        self._in_force = limits.document()
        self.in_force_view.setHtml(self._in_force_html())
        self._show_header()
        if reset_editor:
            self._baseline = self._text_in_force()
            self._set_toml(self._baseline)
            self._fill_form_from_toml()
        self.check_now()

    def _text_in_force(self) -> str:
        """The desk's file when it holds the limits in force (its comments kept), else the document written out."""
        if self.limits_path is not None:
            try:
                text = self.limits_path.read_text(encoding="utf-8")
                if canonical_json(parse_limits(text, str(self.limits_path)).document()) == canonical_json(self._in_force):
                    return text
            except (OSError, UnicodeDecodeError, LimitsError):
                log.info("limits file %s does not hold the limits in force; the editor starts from the version in force", self.limits_path)
        return render_toml(self._in_force, header=_FORM_HEADER)

    def _show_header(self) -> None:
        version = self.version
        if version is None:
            text = "<b>Risk limits</b> in force were not stored as a version (a demo or in-memory desk): they cannot be edited here."
        else:
            text = f"<b>Risk limits</b> · version {version} in force"
            newest = self.history.versions[0] if self.history.versions else None
            if newest is not None and newest.version == version:
                text += f" · set {html.escape(ist_stamp(newest.ts_ns))} by {html.escape(newest.actor)}: {html.escape(newest.reason)}"
            if self.limits_path is not None:
                text += f" · file {html.escape(str(self.limits_path))}"
        self.header.setText(text)

    def _in_force_html(self) -> str:
        c = theme.colours(theme.is_dark(self.palette()))
        doc = self._in_force
        if not doc:
            return f"<p style='color:{c.bad}'>No limits are in force: every order is refused (default deny).</p>"
        desk = doc.get("desk", {})
        parts = [
            (f"<style>td, th {{ padding: 2px 10px 2px 0; }} th {{ text-align: left; color: {c.dim}; font-weight: normal; }}"
             f" h3 {{ margin: 8px 0 2px 0; }} .dim {{ color: {c.dim}; }}</style>"),
            "<h3>Desk</h3><table>",
        ]
        rows: list[tuple[str, str]] = [
            ("Gross exposure cap", show_value("max_gross_exposure_inr", desk.get("max_gross_exposure_inr"))),
            ("Net exposure cap", show_value("max_net_exposure_inr", desk.get("max_net_exposure_inr"))),
            ("Daily loss limit", show_value("daily_loss_limit_inr", desk.get("daily_loss_limit_inr"))),
            ("Trailing loss limit", show_value("trailing_loss_limit_inr", desk["trailing_loss_limit_inr"])
             if "trailing_loss_limit_inr" in desk else "off"),
            ("Open orders", str(desk.get("max_open_orders"))),
            ("Orders a day", str(desk.get("max_orders_per_day"))),
            ("Duplicate window", show_value("duplicate_window_seconds", desk.get("duplicate_window_seconds"))),
            ("Reference price max age", show_value("reference_max_age_seconds", desk.get("reference_max_age_seconds"))),
            ("Order types", show_value("allowed_order_types", desk.get("allowed_order_types", []))),
            ("Products", show_value("allowed_products", desk.get("allowed_products", []))),
            ("Trading hours enforced", show_value("enforce_trading_hours", desk.get("enforce_trading_hours", True))),
            ("Restricted", show_value("restricted", desk.get("restricted", []))),
            ("Orders per second", " · ".join(f"{k} {v}" for k, v in desk.get("max_orders_per_second", {}).items())),
        ]
        parts += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows]
        parts.append("</table><h3>Breakers</h3><table>")
        breakers = doc.get("breakers", {})
        fractions = ", ".join(f"{round(f * 100, 2):g} %" for f in breakers.get("warn_fractions", []))
        for label, key in (("Broker disconnect", "broker_disconnect_seconds"), ("Stale data", "stale_data_seconds"),
                           ("Error storm window", "error_storm_seconds")):
            parts.append(f"<tr><th>{label}</th><td>{html.escape(show_value(key, breakers.get(key)))}</td></tr>")
        parts.append(f"<tr><th>Error storm</th><td>{breakers.get('error_storm_count')} errors</td></tr>")
        parts.append(f"<tr><th>Early warnings at</th><td>{html.escape(fractions)}</td></tr></table>")
        parts.append("<h3>Per underlying and per instrument</h3>"
                     "<p class='dim'>A section covers its instruments; an empty cell takes the value from the wider section "
                     "(instrument, then underlying, then [defaults]). Anything not listed is refused (default deny).</p>")
        columns = [*(spec.label for spec in TERMS), "Gross cap", "Net cap"]
        keys = [*(spec.key for spec in TERMS), "max_gross_exposure_inr", "max_net_exposure_inr"]
        parts.append("<table><tr><th>Section</th>" + "".join(f"<th>{html.escape(col)}</th>" for col in columns) + "</tr>")
        sections: list[tuple[str, dict[str, Any]]] = [("[defaults]", doc.get("defaults", {}))]
        sections += [(f"underlying {name}", section) for name, section in doc.get("underlyings", {}).items()]
        sections += [(f"instrument {key}", section) for key, section in doc.get("instruments", {}).items()]
        for title, section in sections:
            cells = "".join(
                f"<td>{html.escape(show_value(key, section[key]))}</td>" if key in section else "<td class='dim'>·</td>"
                for key in keys
            )
            parts.append(f"<tr><th>{html.escape(title)}</th>{cells}</tr>")
        parts.append("</table>")
        return "".join(parts)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self._shown is not None:
            # The theme changed: the colours written into the view and the labels follow it.
            self.in_force_view.setHtml(self._in_force_html())
            self._apply_access()
            self.check_now()

    # -- who may edit --------------------------------------------------------------------------------

    @property
    def editable(self) -> bool:
        """Whether the signed-in operator may change the limits here (the engine decides again on save)."""
        return self.session.can(Permission.SET_LIMITS) and self.version is not None

    def _apply_access(self) -> None:
        editable = self.editable
        self.form.set_editable(editable)
        self.toml.setReadOnly(not editable)
        self.reason.setEnabled(editable)
        self.revert_button.setEnabled(editable)
        actor = self.session.actor
        if self.version is None:
            note = "View only: these limits were never stored as a version, so they cannot be changed here."
        elif editable:
            note = f"{actor.name if actor is not None else ''} may change the limits: every change needs a reason and is audited."
        elif actor is None or self.session.locked:
            note = "View only: sign in as a risk officer to change the limits."
        else:
            note = (f"View only: {actor.name} ({actor.role.value if actor.role is not None else 'no role'}) may not change "
                    f"the limits; that needs the risk officer's {Permission.SET_LIMITS} permission.")
        self.access.setText(note)
        self.access.setStyleSheet(f"color: {theme.colours(theme.is_dark(self.palette())).dim};")
        self._update_save()

    # -- editing ---------------------------------------------------------------------------------------

    def _set_toml(self, text: str) -> None:
        self.toml.blockSignals(True)
        self.toml.setPlainText(text)
        self.toml.blockSignals(False)

    def _fill_form_from_toml(self) -> bool:
        """Show the TOML text's tables in the form; False (and the form greyed) when the text does not parse."""
        try:
            tables = tomllib.loads(self.toml.toPlainText())
        except tomllib.TOMLDecodeError:
            self.form.setEnabled(False)
            c = theme.colours(theme.is_dark(self.palette()))
            self.form_banner.setText("The TOML text does not parse, so the form shows the last text that did. Fix the "
                                     "syntax in the TOML tab; nothing typed is lost.")
            self.form_banner.setStyleSheet(f"color: {c.bad};")
            self.form_banner.show()
            return False
        self.form.setEnabled(True)
        self.form_banner.hide()
        self.form.set_document(tables)
        return True

    def _toml_edited(self) -> None:
        self._pending_from_toml = True
        self._check_timer.start()

    def _form_edited(self) -> None:
        document = self.form.document()
        text = self.toml.toPlainText()
        # Patched line by line when it can be (the operator's comments stay), else written out whole.
        try:
            patched = patch_toml(text, tomllib.loads(text), document)
        except tomllib.TOMLDecodeError:
            patched = None  # the form is greyed while the text does not parse; this is only a safeguard
        self._set_toml(patched if patched is not None else render_toml(document, header=_FORM_HEADER))
        self._pending_from_toml = False
        self._check_timer.start()

    def check_now(self) -> None:
        """Check the edited document now (typing checks it after a short pause) and show every problem."""
        self._check_timer.stop()
        if self._pending_from_toml:
            self._pending_from_toml = False
            self._fill_form_from_toml()
        text = self.toml.toPlainText()
        origin = self.limits_path.name if self.limits_path is not None else "edited limits"
        try:
            self._candidate = parse_limits(text, origin)
            self.problems = []
        except LimitsError as exc:
            self._candidate = None
            self.problems = list(exc.problems)
        self._show_problems(text)
        self._show_diff()
        self._update_save()

    def _show_problems(self, text: str) -> None:
        c = theme.colours(theme.is_dark(self.palette()))
        # A syntax error belongs to the text alone: the form, greyed, holds the last text that parsed.
        syntax = any(syntax_error_line(problem) is not None for problem in self.problems)
        self.form.show_problems([] if syntax else self.problems)
        index = line_index(text)
        self.toml_problems.clear()
        selections = []
        tint = QColor(c.bad)
        tint.setAlpha(60)
        for problem in self.problems:
            line = syntax_error_line(problem) or line_of(problem_path(problem), index)
            item = QListWidgetItem(f"line {line}: {problem}")
            item.setData(Qt.ItemDataRole.UserRole, line)
            item.setForeground(QColor(c.bad))
            self.toml_problems.addItem(item)
            block = self.toml.document().findBlockByNumber(line - 1)
            selection = QTextEdit.ExtraSelection()
            selection.format.setBackground(tint)
            selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            selection.format.setToolTip(problem)
            selection.cursor = QTextCursor(block)
            selections.append(selection)
        self.toml.setExtraSelections(selections)
        self.toml_problems.setVisible(bool(self.problems))
        count = len(self.problems)
        suffix = f" ({count} problem{'s' if count != 1 else ''})" if count else ""
        self.edit_tabs.setTabText(0, "Form" + suffix)
        self.edit_tabs.setTabText(1, "TOML" + suffix)

    def problem_lines(self) -> dict[int, list[str]]:
        """The TOML tab's problems by the line they are placed on."""
        placed: dict[int, list[str]] = {}
        for row in range(self.toml_problems.count()):
            item = self.toml_problems.item(row)
            placed.setdefault(int(item.data(Qt.ItemDataRole.UserRole)), []).append(item.text().split(": ", 1)[1])
        return placed

    def _go_to_line(self, item: QListWidgetItem) -> None:
        block = self.toml.document().findBlockByNumber(int(item.data(Qt.ItemDataRole.UserRole)) - 1)
        self.edit_tabs.setCurrentIndex(1)
        self.toml.setTextCursor(QTextCursor(block))
        self.toml.setFocus()

    def _show_diff(self) -> None:
        version = self.version
        in_force = f"Version {version} (in force)" if version is not None else "In force"
        if self._candidate is None:
            count = len(self.problems)
            self.diff.clear(f"{count} problem{'s' if count != 1 else ''}: fix {'them' if count != 1 else 'it'} to see "
                            f"the changes against {in_force.lower()}.")
            return
        changes = field_changes(self._in_force, self._candidate.document())
        if not changes:
            self.diff.clear(f"No change from {in_force.lower()}.")
            return
        count = len(changes)
        self.diff.show_changes(changes, in_force, "Edited", title=f"{count} field{'s' if count != 1 else ''} differ from "
                                                                   f"{in_force.lower()}:")

    @property
    def changed(self) -> bool:
        """Whether the edited document is valid and differs from the limits in force."""
        return self._candidate is not None and canonical_json(self._candidate.document()) != canonical_json(self._in_force)

    def _update_save(self) -> None:
        c = theme.colours(theme.is_dark(self.palette()))
        reason = self.reason.text()
        trouble = reason_problem(reason) if reason.strip() or self.changed else None
        self.reason_problem.setText(trouble or "")
        self.reason_problem.setStyleSheet(f"color: {c.bad};")
        self.reason_problem.setVisible(trouble is not None and self.editable)
        needs = []
        if self._candidate is None:
            needs.append(f"a valid document ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''})")
        elif not self.changed:
            needs.append("a change")
        if reason_problem(reason) is not None:
            needs.append("a reason")
        ready = self.editable and not needs and not self._saving
        self.save_button.setEnabled(ready)
        self.save_button.setToolTip("Put the edited limits in force as a new version" if ready
                                    else "Save needs " + " and ".join(needs) if needs else "")

    def revert(self) -> None:
        """Back to the version in force; the reason stays (it is the operator's own typing)."""
        self._show_in_force(reset_editor=True)
        self.save_status.clear()

    # -- saving ----------------------------------------------------------------------------------------

    def _save_clicked(self) -> None:
        self._spawn(self.save())

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()  # no event loop (a panel built outside the desk): nothing to run it on
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def save(self) -> int | None:
        """Put the edited document in force through the engine; the version, or None when refused (shown)."""
        actor, seat = self.session.actor, self.session.seat
        text = self.toml.toPlainText()
        reason = fold_reason(self.reason.text())
        c = theme.colours(theme.is_dark(self.palette()))
        if actor is None or self.session.locked:
            self._say("Nobody is signed in at an unlocked window: sign in as a risk officer to change the limits.", c.bad)
            return None
        self._saving = True
        self._update_save()
        self._say("Saving…", c.dim)
        try:
            # The account as it is now (disabled or demoted since sign-in: refused), not as it was at sign-in.
            if not await self.session.confirm(seat):
                self._say(not_held_text(actor.name), c.bad)
                return None
            version = await self.engine.set_limits(text, actor=actor, reason=reason, path=self.limits_path)
        except PermissionError as exc:
            self._say(f"Refused: {exc}. Nothing changed.", c.bad)
            return None
        except LimitsError as exc:
            self.problems = list(exc.problems)
            self._candidate = None
            self._show_problems(text)
            self._say(f"Refused: {len(exc.problems)} problem(s) in the document; nothing changed. {exc.problems[0]}", c.bad)
            return None
        except ValueError as exc:
            self._say(f"Refused: {exc}. Nothing changed.", c.bad)
            return None
        except OSError as exc:
            # The store may hold the new version already; the panel shows what is in force either way.
            self._say(f"The limits file {self.limits_path} could not be written: {exc.strerror or exc}", c.bad)
            self._show_in_force(reset_editor=False)
            return None
        finally:
            self._saving = False
            self._update_save()
        self._baseline = text
        self.reason.clear()
        self._show_in_force(reset_editor=False)
        self._say(f"Version {version} in force: set by {actor.name}, reason: {reason}", c.good)
        self.reload_history()
        return version

    def _say(self, text: str, colour: str) -> None:
        self.save_status.setText(text)
        self.save_status.setStyleSheet(f"color: {colour};")

    # -- history ---------------------------------------------------------------------------------------

    def reload_history(self) -> None:
        """Read the stored versions again (off the GUI thread), then name who set the version in force."""
        async def reload() -> None:
            await self.history.reload()
            self._show_header()

        self._spawn(reload())

    async def wait_idle(self) -> None:
        """Until the history reads and saves under way have finished (for an orderly close, and the tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def dispose(self) -> None:
        """Stop watching the engine; the integrator calls it before the engine goes away."""
        self._watch.stop()
        self._check_timer.stop()
        for task in self._tasks:
            task.cancel()
