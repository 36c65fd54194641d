"""An example strategy over the local API: mean reversion on one instrument, one lot at a time.

Run it against a desk (the paper desk: ``python main.py simulate --api``, or the desk window)::

    export BULWARK_API_TOKEN=bwk_...        # from: python main.py api-client add bot --scope read --scope trade
    python -m app.api.example_strategy --instrument NSE:RELIANCE --seconds 60

Each step it reads the quote, compares the last price with its recent mean, and when the price is
below the mean (by ``--band-bps``) buys one lot, above it sells one, never holding more than
``--cap-lots`` either way. Every order goes through the desk's risk gate like a trader's; when the
gate refuses, the strategy prints the decision (code, value, limit) and carries on, except for
TRADING_HALTED: then, as when the status says HALTED, it cancels what it has working and stops.
Orders still working after ``--stale-seconds`` are cancelled. The client is all it imports of the desk.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from app.api.client import ApiError, Bulwark
from app.api.models import SubmitOut
from app.domain.orders import Side
from app.domain.rejections import RejectReason
from app.domain.trading_state import TradingState

HALTED_CODE = RejectReason.TRADING_HALTED.value


@dataclass
class Outcome:
    """What a run did: orders sent, accepted and refused (by code), and why it stopped."""

    submitted: int = 0
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    stopped: str = "time is up"


class MeanReversion:
    """Buys one lot under the recent mean, sells one over it, within a position cap; see the module docstring."""

    def __init__(
        self, desk: Bulwark, instrument: str, *, lots: int = 1, cap_lots: int = 2, window: int = 20,
        band_bps: int = 5, slippage_bps: int = 20, stale_s: float = 5.0, interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] = print,
    ) -> None:
        self.desk = desk
        self.instrument = instrument
        self.band = Decimal(band_bps) / 10_000
        self.slippage = Decimal(slippage_bps) / 10_000
        self.stale_s = stale_s
        self.interval_s = interval_s
        self.prices: deque[Decimal] = deque(maxlen=window)
        self.placed: dict[str, float] = {}  # our working orders: id -> when sent (clock seconds)
        self.clock, self.sleep, self.say = clock, sleep, say
        spec = next((i for i in desk.instruments(q=instrument) if i.key == instrument), None)
        if spec is None:
            raise LookupError(f"the desk has no instrument {instrument!r}")
        self.tick = spec.tick_size
        self.quantity = lots * spec.lot_size
        self.cap = cap_lots * spec.lot_size

    def run(self, seconds: float) -> Outcome:
        """Trade for ``seconds`` or until the desk halts; always leaves nothing of ours working."""
        outcome = Outcome()
        deadline = self.clock() + seconds
        while self.clock() < deadline:
            if self.desk.status().trading_state is TradingState.HALTED:
                outcome.stopped = "the desk is HALTED"
                break
            self.cancel_stale()
            side, price = self.signal()
            if side is not None:
                decision = self.desk.buy(self.instrument, self.quantity, price) if side is Side.BUY \
                    else self.desk.sell(self.instrument, self.quantity, price)
                if self.record(decision, outcome) == HALTED_CODE:
                    outcome.stopped = "the gate refused: the desk is HALTED"
                    break
            self.sleep(self.interval_s)
        self.desk.cancel_all_mine()
        self.say(f"stopped: {outcome.stopped}; {outcome.accepted} of {outcome.submitted} orders accepted")
        return outcome

    def signal(self) -> tuple[Side | None, Decimal | None]:
        """The side to trade now (none to wait) and a marketable limit price ``slippage`` through the last."""
        last = self.desk.quote(self.instrument).last
        if last is None:
            return None, None
        self.prices.append(last)
        mean = sum(self.prices, Decimal(0)) / len(self.prices)
        held = self.exposure()
        if last <= mean * (1 - self.band) and held + self.quantity <= self.cap:
            return Side.BUY, self.on_tick(last * (1 + self.slippage), ROUND_CEILING)
        if last >= mean * (1 + self.band) and held - self.quantity >= -self.cap:
            return Side.SELL, self.on_tick(last * (1 - self.slippage), ROUND_FLOOR)
        return None, None

    def exposure(self) -> int:
        """Units held plus those our working orders would add (signed), so the cap counts both."""
        held = sum(p.quantity for p in self.desk.positions() if p.key == self.instrument)
        working = self.desk.orders(working=True, mine=True)
        return held + sum(o.side.sign * (o.quantity - o.filled_quantity) for o in working if o.instrument == self.instrument)

    def cancel_stale(self) -> None:
        """Cancel our orders working longer than ``stale_s`` (and any we did not place in this run)."""
        now = self.clock()
        for order in self.desk.orders(working=True, mine=True):
            if now - self.placed.get(order.client_order_id, float("-inf")) > self.stale_s:
                self.say(f"cancelling stale order {order.client_order_id}: {self.desk.cancel(order.client_order_id).message}")
                self.placed.pop(order.client_order_id, None)

    def record(self, decision: SubmitOut, outcome: Outcome) -> str | None:
        """Count the gate's decision and say it when refused; returns the refusal's code."""
        outcome.submitted += 1
        if decision.accepted and decision.client_order_id is not None:
            outcome.accepted += 1
            self.placed[decision.client_order_id] = self.clock()
            return None
        rejection = decision.rejection
        code = rejection.code if rejection is not None else "UNKNOWN"
        outcome.refused[code] = outcome.refused.get(code, 0) + 1
        if rejection is not None:
            self.say(f"refused {code}: {rejection.message} (value {rejection.value}, limit {rejection.limit})")
        return code

    def on_tick(self, rupees: Decimal, rounding: str) -> Decimal:
        return (rupees / self.tick).to_integral_value(rounding) * self.tick


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.api.example_strategy", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8740", help="the desk's API (default: %(default)s)")
    parser.add_argument("--token-env", default="BULWARK_API_TOKEN", help="environment variable holding the token")
    parser.add_argument("--instrument", required=True, help="the desk's instrument key, e.g. NSE:RELIANCE")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to trade")
    parser.add_argument("--lots", type=int, default=1)
    parser.add_argument("--cap-lots", type=int, default=2, help="largest position either way, in lots")
    parser.add_argument("--band-bps", type=int, default=5, help="how far from the mean the price must be to trade")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between steps")
    args = parser.parse_args(argv)
    token = os.environ.get(args.token_env)
    if not token:
        print(f"no token: set {args.token_env} (python main.py api-client add NAME --scope read --scope trade)", file=sys.stderr)
        return 2
    try:
        with Bulwark(args.url, token) as desk:
            MeanReversion(
                desk, args.instrument, lots=args.lots, cap_lots=args.cap_lots, band_bps=args.band_bps,
                interval_s=args.interval,
            ).run(args.seconds)
    except ApiError as exc:
        print(f"the desk's API said: {exc}", file=sys.stderr)
        return 1
    except LookupError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
