"""Positions, exposure and P&L per instrument, per underlying and in total, kept incrementally."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.domain.fills import Fill
from app.domain.instruments import Instrument
from app.domain.market import Tick
from app.domain.positions import Position


@dataclass(slots=True)
class Exposure:
    """Gross (sum of absolute market values) and net (signed sum) exposure in paise."""

    gross: int = 0
    net: int = 0


@dataclass(slots=True)
class _Contribution:
    """What one instrument currently adds to the totals; kept so a tick only swaps its own share."""

    underlying: str
    group: Exposure
    market_value: int = 0
    unrealized: int = 0


@dataclass(frozen=True, slots=True)
class PositionView:
    """A position with its mark, for reports and the UI."""

    instrument_key: str
    underlying: str
    quantity: int
    average_price: float | None
    mark: int | None
    market_value: int
    realized: int
    unrealized: int


class Portfolio:
    """Net positions from fills, marked to the last tick.

    A tick costs O(1): the instrument's old contribution is swapped for its new one in the global
    and per-underlying totals. Exposure is quantity x mark (premium value for options). Instruments
    with a position but no tick yet are marked at their last fill price.
    """

    def __init__(self, instruments: Mapping[str, Instrument]) -> None:
        self._instruments = instruments
        self._positions: dict[str, Position] = {}
        self._contrib: dict[str, _Contribution] = {}
        self._marks: dict[str, tuple[int, int]] = {}
        self._by_underlying: dict[str, Exposure] = {}
        self.exposure = Exposure()
        self.realized = 0
        self.unrealized = 0
        self.fills = 0

    def on_fill(self, fill: Fill) -> None:
        position = self._positions.get(fill.instrument_key)
        if position is None:
            position = self._positions[fill.instrument_key] = Position(fill.instrument_key)
            instrument = self._instruments.get(fill.instrument_key)
            # A fill in an instrument the desk does not list (an order adopted from the broker's
            # book) still counts: it is grouped under its own key rather than dropped.
            underlying = instrument.underlying if instrument is not None else fill.instrument_key
            group = self._by_underlying.setdefault(underlying, Exposure())
            self._contrib[fill.instrument_key] = _Contribution(underlying, group)
        self.realized += position.apply(fill.signed_quantity, fill.price)
        self.fills += 1
        mark = self._marks.get(fill.instrument_key)
        self._remark(fill.instrument_key, position, mark[0] if mark is not None else fill.price)

    def on_tick(self, tick: Tick) -> None:
        key = tick.instrument_key
        previous = self._marks.get(key)
        if previous is not None and tick.ts_ns < previous[1]:
            return
        self._marks[key] = (tick.price, tick.ts_ns)
        position = self._positions.get(key)
        if position is not None:
            self._remark(key, position, tick.price)

    def _remark(self, key: str, position: Position, mark: int) -> None:
        contrib = self._contrib[key]
        value = position.quantity * mark
        unrealized = value - position.cost
        old_value = contrib.market_value
        exposure = self.exposure
        exposure.net += value - old_value
        exposure.gross += abs(value) - abs(old_value)
        group = contrib.group
        group.net += value - old_value
        group.gross += abs(value) - abs(old_value)
        self.unrealized += unrealized - contrib.unrealized
        contrib.market_value = value
        contrib.unrealized = unrealized

    def snapshot_rows(self) -> list[tuple[str, int, int, int]]:
        """(instrument, quantity, cost, realized) for every instrument ever traded this session."""
        return [(key, p.quantity, p.cost, p.realized) for key, p in sorted(self._positions.items())]

    def position(self, instrument_key: str) -> int:
        """Signed net quantity (0 when none)."""
        position = self._positions.get(instrument_key)
        return position.quantity if position is not None else 0

    def underlying_exposure(self, underlying: str) -> Exposure:
        group = self._by_underlying.get(underlying)
        return Exposure(group.gross, group.net) if group is not None else Exposure()

    def open_instruments(self) -> set[str]:
        """Keys of the instruments with a non-zero position."""
        return {key for key, p in self._positions.items() if p.quantity}

    def underlying_totals(self, underlying: str) -> Exposure | None:
        """The live totals for one underlying (not a copy: the risk gate reads it per order)."""
        return self._by_underlying.get(underlying)

    def underlyings(self) -> dict[str, Exposure]:
        return {name: Exposure(e.gross, e.net) for name, e in self._by_underlying.items()}

    def mark(self, instrument_key: str) -> int | None:
        mark = self._marks.get(instrument_key)
        return mark[0] if mark is not None else None

    def views(self) -> list[PositionView]:
        views = []
        for key, position in sorted(self._positions.items()):
            contrib = self._contrib[key]
            average = position.average_price
            views.append(
                PositionView(
                    instrument_key=key,
                    underlying=contrib.underlying,
                    quantity=position.quantity,
                    average_price=float(average) if average is not None else None,
                    mark=self.mark(key),
                    market_value=contrib.market_value,
                    realized=position.realized,
                    unrealized=contrib.unrealized,
                )
            )
        return views
