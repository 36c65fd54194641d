"""End to end: the example strategy trades the paper desk through the client, and a kill call stops it.

The desk is ``conftest``'s: a real engine on the paper broker at a frozen instant, served on loopback.
The paper market (seeded) moves only when the strategy sleeps: its ``sleep`` steps the market one
step on the server's loop, and its clock counts those steps, so a run is the same every time and no
test races a timer. Nothing asserts on a price the walk sets; only on what the desk did with the orders.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

from app.api.client import Bulwark
from app.api.example_strategy import MeanReversion, Outcome, main
from app.api.models import OrderIn, SubmitOut
from app.domain.orders import OrderSource, OrderStatus
from app.domain.trading_state import TradingState
from app.engine.engine import Engine
from app.store.audit_writer import AuditWriter
from tests.api.conftest import committed, until
from tests.engine.ticket_desk import REL

ROOT = Path(__file__).resolve().parents[2]


class Market:
    """The strategy's clock and sleep: each sleep steps the paper market once on the server's loop."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = engine
        self.loop = loop
        self.steps = 0

    def clock(self) -> float:
        return float(self.steps)

    def sleep(self, _seconds: float) -> None:
        asyncio.run_coroutine_threadsafe(self._step(), self.loop).result(timeout=10)

    async def _step(self) -> None:
        await self._settle()  # the governor hands the last order to the broker, and the ack comes back
        self.engine.broker.step()  # type: ignore[attr-defined]
        self.steps += 1
        await self._settle()  # ticks and fills reach the OMS and the portfolio

    async def _settle(self) -> None:
        await until(lambda: not any(o.status in IN_FLIGHT for o in self.engine.oms.orders()))
        await asyncio.sleep(0.002)


IN_FLIGHT = frozenset({OrderStatus.NEW, OrderStatus.SENT})


class KillsBeforeSubmit(Bulwark):
    """The strategy's own client; just before its ``kill_at``-th submit, the stop button is pressed."""

    def __init__(self, url: str, token: str, stopper: Bulwark, kill_at: int) -> None:
        super().__init__(url, token)
        self.stopper = stopper
        self.kill_at = kill_at
        self.submits = 0

    def submit(self, order: OrderIn, *, idempotency_key: str | None = None) -> SubmitOut:
        self.submits += 1
        if self.submits == self.kill_at:
            assert self.stopper.kill("stop button in the test").trading_state is TradingState.HALTED
        return super().submit(order, idempotency_key=idempotency_key)


def strategy(desk: Bulwark, market: Market, said: list[str]) -> MeanReversion:
    # A band of 0 trades on every step (at or under the mean buys, at or over sells) within the cap.
    return MeanReversion(
        desk, REL, lots=1, cap_lots=2, window=5, band_bps=0, slippage_bps=20, stale_s=3, interval_s=1,
        clock=market.clock, sleep=market.sleep, say=said.append,
    )


async def test_the_strategy_trades_the_paper_desk_and_a_kill_stops_it(
    base_url: str, tokens: dict[str, str], engine: Engine, writer: AuditWriter,
) -> None:
    market = Market(engine, asyncio.get_running_loop())
    said: list[str] = []
    with Bulwark(base_url, tokens["stopper"]) as stopper, \
            KillsBeforeSubmit(base_url, tokens["bot"], stopper, kill_at=9) as desk:
        outcome: Outcome = await asyncio.to_thread(lambda: strategy(desk, market, said).run(100))

    # It traded: orders accepted by the gate and filled by the paper broker, in the OMS as the API client's.
    mine = [o for o in engine.oms.orders() if o.actor == "api:bot"]
    assert outcome.accepted == len(mine) == 8 and outcome.submitted == 9
    assert {o.source for o in mine} == {OrderSource.API}
    filled = [o for o in mine if o.status is OrderStatus.FILLED]
    assert len(filled) >= 2
    await until(lambda: not any(o.status.is_working for o in mine))  # the kill's sweep leaves nothing working

    # The kill halted the desk, and the strategy's next submit was refused with the HALTED code.
    assert engine.trading_state is TradingState.HALTED
    assert outcome.refused == {"TRADING_HALTED": 1}
    assert outcome.stopped == "the gate refused: the desk is HALTED"
    assert any(line.startswith("refused TRADING_HALTED") for line in said)
    assert said[-1].startswith("stopped: the gate refused")
    assert market.steps < 100  # it stopped there, not when its time ran out

    # The audit trail names the client as the actor and the API as the source.
    accepted = await committed(writer, "gate.accepted")
    assert Counter((r["actor"], r["source"]) for r in accepted) == {("api:bot", "api"): 8}
    fills = await committed(writer, "fill")
    assert len([r for r in fills if r.get("client_order_id") in {o.client_order_id for o in filled}]) >= len(filled)
    rejected = await committed(writer, "gate.rejected")
    assert [(r["actor"], r["source"]) for r in rejected] == [("api:bot", "api")]
    kills = await committed(writer, "kill_switch.engaged")
    assert [(r["actor"], r["source"]) for r in kills] == [("api:stopper", "api")]


async def test_the_strategy_stops_at_once_on_a_halted_desk(
    base_url: str, tokens: dict[str, str], engine: Engine,
) -> None:
    engine.engage_kill_switch("halted before the strategy starts", actor="rita")
    market = Market(engine, asyncio.get_running_loop())
    said: list[str] = []
    with Bulwark(base_url, tokens["bot"]) as desk:
        outcome = await asyncio.to_thread(lambda: strategy(desk, market, said).run(100))
    assert (outcome.submitted, outcome.stopped, market.steps) == (0, "the desk is HALTED", 0)


async def run_module(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.api.example_strategy", *args, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_command_line_refuses_clearly(
    base_url: str, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    assert main(["--url", base_url, "--token-env", "BOT_TOKEN", "--instrument", REL]) == 2
    assert "set BOT_TOKEN" in capsys.readouterr().err

    monkeypatch.setenv("BOT_TOKEN", tokens["bot"])
    assert await asyncio.to_thread(main, ["--url", base_url, "--token-env", "BOT_TOKEN", "--instrument", "NSE:NOPE"]) == 2
    assert "NSE:NOPE" in capsys.readouterr().err

    monkeypatch.setenv("BOT_TOKEN", "bwk_not-a-token")
    assert await asyncio.to_thread(main, ["--url", base_url, "--token-env", "BOT_TOKEN", "--instrument", REL]) == 1
    err = capsys.readouterr().err
    assert "401 UNAUTHENTICATED" in err and "bwk_not-a-token" not in err


async def test_the_module_runs_from_the_command_line(base_url: str, tokens: dict[str, str], engine: Engine) -> None:
    engine.engage_kill_switch("the desk is halted", actor="rita")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.api.example_strategy", "--url", base_url, "--token-env", "BOT_TOKEN",
        "--instrument", REL, "--seconds", "30", cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "BOT_TOKEN": tokens["bot"]},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert "stopped: the desk is HALTED; 0 of 0 orders accepted" in out.decode()
    assert tokens["bot"] not in (out + err).decode()
