"""Type-ahead over the instrument master: symbol, underlying, expiry, strike and right, tokens in any order.

``InstrumentIndex`` is built once from the engine's instruments (the paper universe or the
Breeze security master, about 100,000 contracts) and answers a query in a few milliseconds:
each instrument is known by a handful of upper-case tokens (``NIFTY``, ``29-DEC-2026``, ``DEC``,
``2026-12-29``, ``24000``, ``CE``, ``CALL``, ``NFO``...), the distinct tokens are kept sorted, and
a query token matches every instrument holding a token that starts with it. A query's tokens
all have to match (in any order): "NIFTY 24000 CE", "ce 24000 nifty" and "29-Dec nifty" work.

``InstrumentSearch`` is the ticket's field over it: a line edit with a completer popup that shows
the index's answers unfiltered (the index has already filtered them).
"""

from __future__ import annotations

import bisect
import heapq
import re
import threading
import weakref
from collections.abc import Iterable, Mapping
from datetime import date

import shiboken6
from PySide6.QtCore import QObject, QStringListModel, Qt, Signal
from PySide6.QtWidgets import QCompleter, QLineEdit, QWidget

from app.domain.instruments import Instrument, OptionRight, Segment

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_RIGHT_WORDS = {OptionRight.CALL: ("CE", "CALL"), OptionRight.PUT: ("PE", "PUT")}
_SEGMENT_WORDS = {Segment.CASH: ("EQ", "CASH"), Segment.FUTURES: ("FUT", "FUTURES"), Segment.OPTIONS: ("OPT", "OPTIONS")}
_SEGMENT_ORDER = {Segment.CASH: 0, Segment.FUTURES: 1, Segment.OPTIONS: 2}
# Spaces, commas, colons (a pasted desk key) and slashes separate tokens; a hyphen does not ("29-Dec").
_SEPARATORS = re.compile(r"[\s,:/·]+")
# Prefix answers kept for the next keystroke (typing "NIF" after "NI" asks for new prefixes only).
_CACHE_SIZE = 256
DEFAULT_LIMIT = 50
_LABEL_CANDIDATES = 8
# Above this many instruments the index is built on a worker thread (100,000 take about half a second).
SYNC_BUILD_LIMIT = 20_000


def expiry_label(expiry: date) -> str:
    """'29-Dec-2026', as the Breeze master and traders write it."""
    return f"{expiry.day:02d}-{_MONTHS[expiry.month - 1].title()}-{expiry.year}"


def strike_label(strike_paise: int) -> str:
    """A strike in rupees, with paise only when there are any: '24000', '102.50'."""
    rupees, paise = divmod(strike_paise, 100)
    return str(rupees) if paise == 0 else f"{rupees}.{paise:02d}"


def instrument_label(instrument: Instrument) -> str:
    """How the ticket names a contract: 'NIFTY 29-Dec-2026 24000 CE · NFO', 'RELIANCE · NSE'."""
    parts = [instrument.symbol]
    if instrument.expiry is not None:
        parts.append(expiry_label(instrument.expiry))
    if instrument.segment is Segment.FUTURES:
        parts.append("FUT")
    if instrument.strike is not None and instrument.right is not None:
        parts.append(strike_label(instrument.strike))
        parts.append(_RIGHT_WORDS[instrument.right][0])
    return " ".join(parts) + f" · {instrument.exchange}"


def _expiry_words(expiry: date) -> tuple[str, ...]:
    day, month, year = expiry.day, _MONTHS[expiry.month - 1], expiry.year
    # "29-DEC-2026" also answers "29-Dec" and "29"; "DEC26" and "DEC" the month; the ISO date the desk key's form.
    return tuple({f"{day:02d}-{month}-{year}", f"{day}-{month}-{year}", f"{day:02d}{month}{year % 100:02d}",
                  f"{month}{year % 100:02d}", month, expiry.isoformat()})


def _tokens(instrument: Instrument, expiries: dict[date, tuple[str, ...]]) -> list[str]:
    # Not the desk key itself: a pasted key splits into these same tokens (and ``exact`` knows keys).
    words = [instrument.symbol.upper(), str(instrument.exchange), *_SEGMENT_WORDS[instrument.segment]]
    if instrument.underlying != instrument.symbol:
        words.append(instrument.underlying.upper())
    if instrument.expiry is not None:
        known = expiries.get(instrument.expiry)
        if known is None:
            known = expiries[instrument.expiry] = _expiry_words(instrument.expiry)
        words.extend(known)
    if instrument.strike is not None:
        words.append(strike_label(instrument.strike))
    if instrument.right is not None:
        words.extend(_RIGHT_WORDS[instrument.right])
    return words


def query_tokens(text: str) -> list[str]:
    """A query's tokens, upper-case, in the order typed; duplicates dropped."""
    seen: dict[str, None] = {}
    for token in _SEPARATORS.split(text.upper()):
        if token:
            seen.setdefault(token, None)
    return list(seen)


class InstrumentIndex:
    """Every instrument's tokens, sorted once; ``search`` intersects the prefix matches of a query's tokens.

    Answers come in a fixed order: instruments one of whose tokens equals the last query token
    exactly first (typing "NIFTY" puts NIFTY before NIFTYNXT50), then cash, futures, options;
    nearer expiry first; then strike and right.
    """

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        ordered = sorted(instruments, key=lambda i: (i.underlying, _SEGMENT_ORDER[i.segment], i.expiry or date.min,
                                                     i.strike or 0, str(i.right or ""), str(i.exchange), i.key))
        self._instruments: tuple[Instrument, ...] = tuple(ordered)
        # Labels are made for the answers shown, not for 100,000 contracts up front.
        self._labels: dict[int, str] = {}
        self._by_key: dict[str, int] = {i.key.upper(): n for n, i in enumerate(ordered)}
        postings: dict[str, list[int]] = {}
        expiries: dict[date, tuple[str, ...]] = {}
        for n, instrument in enumerate(ordered):
            for token in _tokens(instrument, expiries):
                found = postings.get(token)
                if found is None:
                    postings[token] = [n]
                elif found[-1] != n:
                    found.append(n)
        self._words: list[str] = sorted(postings)
        self._postings: list[frozenset[int]] = [frozenset(postings[w]) for w in self._words]
        self._cache: dict[str, frozenset[int]] = {}

    def __len__(self) -> int:
        return len(self._instruments)

    def label(self, instrument: Instrument) -> str:
        n = self._by_key.get(instrument.key.upper())
        return instrument_label(instrument) if n is None else self._label(n)

    def _label(self, n: int) -> str:
        label = self._labels.get(n)
        if label is None:
            label = self._labels[n] = instrument_label(self._instruments[n])
        return label

    def exact(self, text: str) -> Instrument | None:
        """The instrument whose desk key or label is ``text`` (any case), if there is one."""
        wanted = text.strip().upper()
        n = self._by_key.get(wanted)
        if n is not None:
            return self._instruments[n]
        # A label's tokens match its own instrument and, at most, a few others (the same contract on two exchanges).
        found = self._matches(query_tokens(wanted))
        if len(found) > _LABEL_CANDIDATES:
            return None
        for n in sorted(found):
            if self._label(n).upper() == wanted:
                return self._instruments[n]
        return None

    def _exact_ids(self, token: str) -> frozenset[int]:
        at = bisect.bisect_left(self._words, token)
        return self._postings[at] if at < len(self._words) and self._words[at] == token else frozenset()

    def _prefix_ids(self, token: str) -> frozenset[int]:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        low = bisect.bisect_left(self._words, token)
        # Every word starting with ``token`` sorts before ``token`` followed by the highest code point.
        high = bisect.bisect_left(self._words, token + "\U0010ffff", low)
        if high - low == 1:
            found = self._postings[low]
        else:
            merged: set[int] = set()
            for postings in self._postings[low:high]:
                merged.update(postings)
            found = frozenset(merged)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[token] = found
        return found

    def count(self, text: str) -> int:
        """How many instruments match ``text`` (0 for an empty query)."""
        return len(self._matches(query_tokens(text)))

    def _matches(self, tokens: list[str]) -> frozenset[int] | set[int]:
        if not tokens:
            return frozenset()
        sets = sorted((self._prefix_ids(t) for t in tokens), key=len)
        if len(sets) == 1:
            return sets[0]
        found = set(sets[0])
        for other in sets[1:]:
            found.intersection_update(other)
            if not found:
                break
        return found

    def search(self, text: str, limit: int = DEFAULT_LIMIT) -> list[Instrument]:
        """Up to ``limit`` instruments matching every token of ``text``, best first; ``[]`` for an empty query."""
        if limit <= 0:
            return []
        exact = self.exact(text)
        tokens = query_tokens(text)
        found = self._matches(tokens)
        if not found:
            return [exact] if exact is not None else []
        whole = found & self._exact_ids(tokens[-1])
        picked = heapq.nsmallest(limit, whole) if whole else []
        if len(picked) < limit:
            rest = found - whole if whole else found
            picked += heapq.nsmallest(limit - len(picked), rest)
        result = [self._instruments[n] for n in picked]
        if exact is not None and exact in result:
            result.remove(exact)
        if exact is not None:
            result = [exact, *result[: limit - 1]]
        return result


class _Relay(QObject):
    """Carries indexes built on worker threads to the GUI thread (a queued signal). One for the process, made
    on the GUI thread and never deleted: a worker never emits on a QObject the GUI thread may be deleting
    (a ticket closed before its index is ready)."""

    built = Signal(object, object)


_relay: _Relay | None = None


def _the_relay() -> _Relay:
    global _relay
    if _relay is None:
        _relay = _Relay()
        _relay.built.connect(_deliver)
    return _relay


def _deliver(field_ref: weakref.ref[InstrumentSearch], index: InstrumentIndex) -> None:
    # The field may have been deleted while its index was built: then the index is dropped.
    field = field_ref()
    if field is not None and shiboken6.isValid(field):
        field._indexed(index)


class InstrumentSearch(QLineEdit):
    """The ticket's instrument field: type-ahead over an ``InstrumentIndex``; ``chosen`` carries the picked instrument.

    A unique match is chosen as the text is typed; among several, the popup (arrows, Enter or a
    click) or ``choose`` picks one. ``instrument`` is ``None`` while the text names none. A master
    of more than ``SYNC_BUILD_LIMIT`` instruments is indexed on a worker thread; until ``ready``,
    typing is kept and answered the moment the index arrives.
    """

    chosen = Signal(object)  # Instrument | None
    ready_changed = Signal()

    def __init__(self, instruments: Mapping[str, Instrument], parent: QWidget | None = None, *, limit: int = DEFAULT_LIMIT) -> None:
        super().__init__(parent)
        self.index: InstrumentIndex | None = None
        self._limit = limit
        self._shown: dict[str, Instrument] = {}
        self._results: list[Instrument] = []
        self._instrument: Instrument | None = None
        self._placeholder = "instrument: NIFTY 24000 CE, RELIANCE, 29-Dec BANKNIFTY FUT…"
        self.setClearButtonEnabled(True)
        self._model = QStringListModel(self)
        self.completer_ = QCompleter(self._model, self)
        # The index already filtered: the popup shows its answers as they are.
        self.completer_.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        self.completer_.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer_.setMaxVisibleItems(12)
        self.setCompleter(self.completer_)
        self.completer_.activated.connect(self._activated)
        self.textEdited.connect(self._edited)
        values = list(instruments.values())
        if len(values) <= SYNC_BUILD_LIMIT:
            self._indexed(InstrumentIndex(values))
        else:
            self.setPlaceholderText(f"indexing {len(values):,} instruments…")
            relay, field_ref = _the_relay(), weakref.ref(self)
            # The thread holds the relay and a weak reference, never the field: the field is neither touched
            # nor kept alive there, so it can only ever be deleted on the GUI thread.
            threading.Thread(target=lambda: relay.built.emit(field_ref, InstrumentIndex(values)), name="instrument-index",
                             daemon=True).start()

    @property
    def ready(self) -> bool:
        return self.index is not None

    def _indexed(self, index: InstrumentIndex) -> None:
        self.index = index
        self.setPlaceholderText(self._placeholder)
        if self.text() and self._instrument is None:
            self._edited(self.text())
        self.ready_changed.emit()

    @property
    def instrument(self) -> Instrument | None:
        return self._instrument

    @property
    def results(self) -> list[Instrument]:
        """The answers to the text as last typed, best first."""
        return list(self._results)

    def choose(self, instrument: Instrument | None) -> None:
        """Pick ``instrument`` (``None``: clear the field)."""
        label = "" if instrument is None else self.index.label(instrument) if self.index is not None else instrument_label(instrument)
        self._results = [] if instrument is None else [instrument]
        self._shown = {} if instrument is None else {label: instrument}
        self.setText(label)
        self._set(instrument)

    def choose_first(self) -> bool:
        """Pick the best answer to the text as typed (Enter on the field); whether there was one."""
        if self._instrument is None and self._results:
            self.choose(self._results[0])
            popup = self.completer_.popup()
            if popup is not None:
                popup.hide()
            return True
        return False

    def problem(self) -> str:
        """Why the text names no instrument, for the message under the field ("" when one is chosen)."""
        if self._instrument is not None:
            return ""
        text = self.text().strip()
        if not text:
            return "choose an instrument: type a symbol, expiry, strike or right"
        if self.index is None:
            return "indexing the instrument master…"
        if not self._results:
            return f"no instrument matches “{_cut(text)}”"
        return f"{len(self._results)}{'+' if len(self._results) >= self._limit else ''} instruments match: pick one from the list"

    def _edited(self, text: str) -> None:
        index = self.index
        if index is None:
            self._set(None)
            return
        self._results = index.search(text, self._limit)
        self._shown = {}
        for instrument in self._results:
            self._shown.setdefault(index.label(instrument), instrument)
        self._model.setStringList(list(self._shown))
        exact = index.exact(text)
        if exact is not None:
            self._set(exact)
        elif len(self._results) == 1 and text.strip():
            self._set(self._results[0])
        else:
            self._set(None)
        if self._results and self._instrument is None and self.hasFocus():
            self.completer_.complete()

    def _activated(self, label: str) -> None:
        instrument = self._shown.get(label) or (self.index.exact(label) if self.index is not None else None)
        if instrument is not None:
            self.choose(instrument)

    def _set(self, instrument: Instrument | None) -> None:
        if instrument is self._instrument:
            return
        self._instrument = instrument
        self.chosen.emit(instrument)


def _cut(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
