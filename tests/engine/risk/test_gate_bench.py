"""The gate benchmark times what it says it times: real orders on our side, real checks on Nautilus's.

Small flows, no timing asserted. A benchmark whose "ours" step stopped creating orders, or whose
Nautilus engine stopped checking (bypassed, or a cap not configured), would look fast and lie.
"""

from __future__ import annotations

import pytest

from app.domain.orders import Order, Side
from app.domain.rejections import Rejection
from tests.bench import risk_gate
from tests.bench.gate_flow import REFUSED_BY_BOTH, Kind, plan
from tests.bench.risk_gate import OurRig, flow_problems

INSTRUMENTS = 20
ORDERS = 800


@pytest.fixture(scope="module")
def specs() -> list:  # type: ignore[type-arg]
    flow = plan(INSTRUMENTS, ORDERS, seed=7)
    assert {s.kind for s in flow} == set(Kind), "the small flow must hold every kind of planned order"
    return flow


@pytest.mark.parametrize("mode", ["pipeline", "check"])
def test_our_side_turns_every_order_it_passes_into_a_working_order(specs: list, mode: str) -> None:  # type: ignore[type-arg]
    rig = OurRig(INSTRUMENTS, specs)
    getattr(rig, mode)(range(len(specs)), [])
    assert flow_problems(specs, rig.refused(), None) == []
    created = [o for o in rig.outcomes if isinstance(o, Order)]
    assert len(created) == sum(1 for s in specs if s.kind is Kind.PASS)
    assert {o.client_order_id for o in rig.desk.oms.orders()} == {o.client_order_id for o in created}
    for spec, outcome in zip(specs, rig.outcomes, strict=True):
        if isinstance(outcome, Order):
            assert (outcome.quantity, outcome.price, outcome.side) == (spec.quantity, spec.price, Side.BUY if spec.buy else Side.SELL)
    # The gate counted each one, and the book tracks the ones still working.
    assert rig.desk.book.orders_today == len(created)
    assert rig.desk.book.open_orders == sum(1 for o in created if o.status.is_working) > 0


@pytest.mark.parametrize("mode", ["pipeline", "check"])
def test_nautilus_side_refuses_what_ours_refuses_for_the_same_limit(specs: list, mode: str) -> None:  # type: ignore[type-arg]
    from tests.bench.nautilus_risk import NautilusRig

    ours = OurRig(INSTRUMENTS, specs)
    ours.pipeline(range(len(specs)), [])
    theirs = NautilusRig(INSTRUMENTS, specs)
    getattr(theirs, mode)(range(len(specs)), [])
    denied = theirs.denied()
    assert flow_problems(specs, None, denied) == []
    assert theirs.forwarded() == len(specs) - len(denied)
    both = [i for i, s in enumerate(specs) if s.kind in REFUSED_BY_BOTH]
    assert both and all(isinstance(ours.outcomes[i], Rejection) and i in denied for i in both)
    # Each planned refusal came from the check it was planned against, so both caps are configured.
    reasons = {specs[i].kind: theirs.commands[i].order.last_event.reason for i in both}
    assert "maximum trade size" in reasons[Kind.OVERSIZE]
    assert "NOTIONAL_EXCEEDS_MAX_PER_ORDER" in reasons[Kind.OVERVALUE]
    assert not theirs.risk_engine.is_bypassed


def test_a_whole_small_run_replays_the_plan_on_every_rig() -> None:
    _result, misses = risk_gate.run(INSTRUMENTS, 300, seed=7, rounds=2)
    flow_misses = [m for m in misses if "than planned" in m or "neither forwarded" in m]
    assert flow_misses == []
