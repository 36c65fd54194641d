"""What the gate reads about one instrument, resolved once per limits version: one lookup per decision.

Without it a decision merges instrument, underlying and desk sections and looks the book's slots up
by key and by underlying name, several dictionary lookups per order. A record holds the caps from
``RiskLimits`` (its public API only), the underlying's exposure caps, the instant the contract
counts as expired, and the book's live slots (the instrument's working orders and its underlying's
totals: the same objects the book updates, so a record never goes stale while its limits are in
force). Records are built on an instrument's first decision and dropped whole when limits change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.domain.india_time import IST_OFFSET_S
from app.domain.instruments import Instrument

from .book import Pending, PendingTotals, RiskBook
from .limits import InstrumentLimits, RiskLimits, UnderlyingLimits

_NS_PER_S = 1_000_000_000
_SECONDS_PER_DAY = 86_400
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
NEVER_EXPIRES = 1 << 62  # past any epoch-nanosecond instant the desk will see


def expired_from_ns(instrument: Instrument) -> int:
    """The first instant (epoch ns) at which ``instrument`` counts as expired: IST midnight after its expiry day.

    ``expiry < ist_day(now)`` holds exactly when ``now`` is at or past this instant.
    """
    if instrument.expiry is None:
        return NEVER_EXPIRES
    return ((instrument.expiry.toordinal() - _EPOCH_ORDINAL + 1) * _SECONDS_PER_DAY - IST_OFFSET_S) * _NS_PER_S


@dataclass(slots=True)
class InstrumentRecord:
    """One instrument's caps (``limits`` None: no section covers it) and the book's live slots for it."""

    instrument: Instrument
    limits: InstrumentLimits | None
    underlying_caps: UnderlyingLimits | None
    expired_from_ns: int
    pending: Pending
    group: PendingTotals


class InstrumentRecords:
    """The records of one limits version, keyed by instrument key (as ``RiskLimits.for_instrument`` keys them)."""

    __slots__ = ("_book", "_limits", "_records")

    def __init__(self, limits: RiskLimits, book: RiskBook) -> None:
        self._limits = limits
        self._book = book
        self._records: dict[str, InstrumentRecord] = {}

    def get(self, instrument: Instrument) -> InstrumentRecord:
        record = self._records.get(instrument.key)
        if record is None or record.instrument is not instrument:
            record = self._records[instrument.key] = self._build(instrument)
        return record

    def _build(self, instrument: Instrument) -> InstrumentRecord:
        book = self._book
        return InstrumentRecord(
            instrument=instrument,
            limits=self._limits.for_instrument(instrument),
            underlying_caps=self._limits.for_underlying(instrument.underlying),
            expired_from_ns=expired_from_ns(instrument),
            pending=book.pending_slot(instrument.key),
            group=book.group(instrument.underlying),
        )
