"""``BreezeEmulator``: Breeze's REST API, security master, live stream and live feeds on loopback.

One daemon thread runs an asyncio loop with three aiohttp sites on ephemeral 127.0.0.1 ports:
REST + security master, the socket.io stream server (``stock``) and the socket.io feeds server
(``order``). The test thread drives the market through methods that marshal onto that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

from tests.breeze_emulator.contracts import Contract, default_contracts
from tests.breeze_emulator.faults import Faults
from tests.breeze_emulator.market import Market, MarketError, Order
from tests.breeze_emulator.master import build_master_zip
from tests.breeze_emulator.rest import Call, RestApi, Sessions
from tests.breeze_emulator.streams import SocketServer, order_payload, tick_payload

T = TypeVar("T")

HOST = "127.0.0.1"
START_TIMEOUT_S = 15.0
CALL_TIMEOUT_S = 10.0


class BreezeEmulator:
    """A local Breeze that the unmodified ``breeze-connect`` SDK talks to end to end, with fault injection.

    Construct, ``start()`` (or use as a context manager), point the SDK's URLs at ``api_url``,
    ``stream_url``, ``feeds_url`` and ``master_url`` (``env()`` gives them as ``BULWARK_BREEZE_*``
    variables), then drive the market (``set_price``, ``fill``, ``reject_next_orders``), break
    things (``faults``, ``expire_session``, ``silence``, ``disconnect_streams``, raw or garbled events) and
    inspect what the client did (``calls``, ``orders()``, ``positions()``).

    ``tick_interval_s`` paces a seeded random walk of every contract (``None``: prices move only on
    ``set_price``); ``freeze_walk`` pauses it, so a test can set a price and read it back without the
    walk moving it in between. ``price_noise`` is the share of ``stock`` prices sent one unit in the
    last place off their value (``1000.4000000000001`` for 1000.40), as Breeze's floats arrive.
    ``rate_clock`` is the clock of the REST rate limits (a test can stop it to put calls in one second).
    Market control methods are thread-safe; they raise ``KeyError`` for an unknown contract or order
    and ``ValueError`` for an action the exchange refuses.
    """

    def __init__(
        self,
        *,
        api_key: str = "emu-app-key-7Q2",
        api_secret: str = "emu-secret-K9x4-not-real",
        session_token: str = "48213577",
        user_id: str = "EMUUSER1",
        contracts: list[Contract] | None = None,
        tick_interval_s: float | None = 0.05,
        seed: int = 1,
        enforce_rate_limits: bool = True,
        price_noise: float = 0.5,
        rate_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 <= price_noise <= 1.0:
            raise ValueError(f"price_noise is a share between 0 and 1, got {price_noise}")
        self.api_key = api_key
        self.api_secret = api_secret
        self.user_id = user_id
        self.contracts: list[Contract] = list(contracts) if contracts is not None else default_contracts()
        self.tick_interval_s = tick_interval_s
        self.faults = Faults()
        self._sessions = Sessions(
            api_key=api_key, api_secret=api_secret, user_id=user_id, session_token=session_token
        )
        self._seed = seed
        self._enforce = enforce_rate_limits
        self._rate_clock = rate_clock
        self._master_zip = build_master_zip(self.contracts)
        self._silent = False
        self._walk_frozen = False
        self._stock_events = 0
        self._price_noise = price_noise
        self._noise = random.Random(seed)
        self._sequence = 0
        self._garbled_orders = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stopped = False
        self._ports: tuple[int, int, int] | None = None
        # Built on the loop thread, so their asyncio objects belong to it.
        self._market: Market | None = None
        self._rest: RestApi | None = None
        self._stream: SocketServer | None = None
        self._feeds: SocketServer | None = None

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the three ports and return once all are listening."""
        if self._thread is not None:
            raise RuntimeError("BreezeEmulator.start() was already called")
        self._thread = threading.Thread(target=self._run, name="breeze-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError("Breeze emulator did not start in time")
        if self._failure is not None:
            self._thread.join(START_TIMEOUT_S)
            raise RuntimeError("Breeze emulator failed to start") from self._failure
        return self

    def stop(self) -> None:
        """Disconnect every client, close the sites and join the thread; safe to call twice."""
        if self._stopped or self._thread is None:
            self._stopped = True
            return
        self._stopped = True
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stopping.set)
        self._thread.join(START_TIMEOUT_S)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            # asyncio.run also cancels what socket.io leaves behind (ping tasks of dropped clients).
            asyncio.run(self._serve())
        except Exception as exc:  # noqa: BLE001 - start() re-raises it; later there is no one to tell
            self._failure = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._market = Market(
            self.contracts, seed=self._seed, on_order=self._order_changed, on_tick=self._ticked
        )
        self._rest = RestApi(
            market=self._market,
            sessions=self._sessions,
            faults=self.faults,
            master=lambda: self._master_zip,
            enforce_rate_limits=self._enforce,
            rate_clock=self._rate_clock,
        )
        self._stream = SocketServer("stream", self._sessions.socket_error)
        self._feeds = SocketServer("feeds", self._sessions.socket_error)
        runners: list[web.AppRunner] = []
        walker: asyncio.Task[None] | None = None
        try:
            ports = []
            for app in (self._rest.app, self._stream.app, self._feeds.app):
                # A short shutdown timeout: a request held by a timeout fault must not stall stop().
                runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
                await runner.setup()
                runners.append(runner)
                site = web.TCPSite(runner, HOST, 0)
                await site.start()
                ports.append(runner.addresses[0][1])
            self._ports = (ports[0], ports[1], ports[2])
            self._stream.start()
            self._feeds.start()
            if self.tick_interval_s is not None:
                walker = asyncio.create_task(self._walk(self.tick_interval_s))
            self._ready.set()
            await self._stopping.wait()
        finally:
            if walker is not None:
                walker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await walker
            for server in (self._stream, self._feeds):
                await server.close()
            for runner in reversed(runners):
                await runner.cleanup()

    async def _walk(self, interval: float) -> None:
        assert self._market is not None
        while True:
            await asyncio.sleep(interval)
            if not self._walk_frozen:
                self._market.walk()

    def _await_on_loop(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run the coroutine ``fn()`` on the emulator's loop (all its state lives there), wait for its result."""
        loop = self._loop
        if loop is None or self._ports is None or self._stopped:
            raise RuntimeError("Breeze emulator is not running")
        if threading.current_thread() is self._thread:
            raise RuntimeError("called from the emulator's own loop thread: it would wait for itself")

        return asyncio.run_coroutine_threadsafe(fn(), loop).result(CALL_TIMEOUT_S)

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the emulator's loop and return its result."""

        async def call() -> T:
            return fn()

        return self._await_on_loop(call)

    # ---- event sources ------------------------------------------------------------------------

    def _order_changed(self, order: Order) -> None:
        assert self._feeds is not None
        self._sequence += 1
        payload = order_payload(order, user_id=self.user_id, sequence=self._sequence)
        if self._garbled_orders:
            self._garbled_orders -= 1
            # Cut after the message type: the SDK's parse_data fails on the stock code it reads next.
            payload = payload[:12]
        self._feeds.send("order", payload)

    def _ticked(self, contract: Contract) -> None:
        assert self._stream is not None and self._market is not None
        room = contract.stream_symbol
        if not self._silent and self._stream.has_listeners(room):
            self._stock_events += 1
            self._stream.send("stock", tick_payload(contract, self._market.quotes[contract.token], self._rupees), room)

    def _rupees(self, paise: int) -> float:
        value = paise / 100
        if self._noise.random() < self._price_noise:
            value = math.nextafter(value, math.inf if self._noise.random() < 0.5 else -math.inf)
        return value

    # ---- addresses ----------------------------------------------------------------------------

    def _port(self, index: int) -> int:
        if self._ports is None:
            raise RuntimeError("Breeze emulator is not started")
        return self._ports[index]

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self._port(0)}/breezeapi/api/v1/"

    @property
    def api_v2_url(self) -> str:
        return f"http://{HOST}:{self._port(0)}/api/v2/"

    @property
    def stream_url(self) -> str:
        return f"http://{HOST}:{self._port(1)}"

    @property
    def feeds_url(self) -> str:
        return f"http://{HOST}:{self._port(2)}"

    @property
    def ohlc_url(self) -> str:
        return self.stream_url

    @property
    def master_url(self) -> str:
        return f"http://{HOST}:{self._port(0)}/SecurityMaster.zip"

    def env(self) -> dict[str, str]:
        """The URLs as the ``BULWARK_BREEZE_*`` environment variables the desk reads."""
        return {
            "BULWARK_BREEZE_API_URL": self.api_url,
            "BULWARK_BREEZE_API_V2_URL": self.api_v2_url,
            "BULWARK_BREEZE_STREAM_URL": self.stream_url,
            "BULWARK_BREEZE_FEEDS_URL": self.feeds_url,
            "BULWARK_BREEZE_OHLC_URL": self.ohlc_url,
            "BULWARK_BREEZE_MASTER_URL": self.master_url,
        }

    def master_bytes(self) -> bytes:
        return self._master_zip

    # ---- market control -----------------------------------------------------------------------

    def _market_now(self) -> Market:
        assert self._market is not None
        return self._market

    def freeze_walk(self, frozen: bool = True) -> None:
        """Pause (or resume) the random walk; once this returns no walk step runs until it is resumed."""

        def freeze() -> None:
            self._walk_frozen = frozen

        self._on_loop(freeze)

    @property
    def stock_events_sent(self) -> int:
        """How many ``stock`` events the market has sent so far (raw ones not included)."""
        return self._on_loop(lambda: self._stock_events)

    def set_price(self, token_or_key: str, price_paise: int) -> None:
        """Move the last price, emit a ``stock`` tick and fill the resting orders it crosses (at their limit)."""

        def move() -> None:
            market = self._market_now()
            market.set_price(market.contract(token_or_key), price_paise)

        self._on_loop(move)

    def fill(self, order_id: str, quantity: int | None = None, price_paise: int | None = None) -> None:
        """Execute ``quantity`` (default: all pending) of a working order at ``price_paise`` (default: its limit)."""

        def execute() -> None:
            market = self._market_now()
            order = market.orders.get(order_id)
            if order is None:
                raise KeyError(f"no order {order_id!r}")
            market.fill(
                order,
                order.pending if quantity is None else quantity,
                order.price_paise if price_paise is None else price_paise,
            )

        try:
            self._on_loop(execute)
        except MarketError as exc:
            raise ValueError(str(exc)) from None

    def add_order(self, token_or_key: str, action: str, quantity: int, price_paise: int) -> str:
        """An order placed outside the API (the broker's website, another app): no REST call, no rate
        limit; it rests or fills like any other. Returns its order id."""

        def place() -> str:
            market = self._market_now()
            return market.place(market.contract(token_or_key), action, quantity, price_paise, "day", "").order_id

        return self._on_loop(place)

    def reject_next_orders(self, n: int, reason: str = "Insufficient margin") -> None:
        """The next ``n`` placed orders get an order id, then an ``order`` event with status Rejected."""
        self._on_loop(lambda: self._market_now().reject_next_orders(n, reason))

    def orders(self) -> list[dict[str, Any]]:
        """Every order, oldest first, in the REST order-list row shape."""
        return self._on_loop(
            lambda: [self._market_now().order_row(o) for o in self._market_now().orders.values()]
        )

    def positions(self) -> list[dict[str, Any]]:
        """Every open position in the REST portfolio-positions row shape."""
        return self._on_loop(
            lambda: [self._market_now().position_row(p) for p in self._market_now().open_positions()]
        )

    def working_count(self) -> int:
        return self._on_loop(lambda: len(self._market_now().working_orders()))

    def last_price(self, token_or_key: str) -> int:
        """The contract's last price in paise."""
        return self._on_loop(
            lambda: self._market_now().quotes[self._market_now().contract(token_or_key).token].last
        )

    def contract(self, token_or_key: str) -> Contract:
        for c in self.contracts:
            if token_or_key in (c.token, c.key):
                return c
        raise KeyError(f"no contract with token or key {token_or_key!r}")

    # ---- calls --------------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """A snapshot of every REST call so far, refused ones included."""
        return self._rest.snapshot_calls() if self._rest is not None else []

    def call_count(self, endpoint: str | None = None, method: str | None = None) -> int:
        return sum(
            1
            for call in self.calls
            if (endpoint is None or call.endpoint == endpoint)
            and (method is None or call.method == method.upper())
        )

    @property
    def rate_limit_breaches(self) -> int:
        """Calls refused by the emulator's own rate limits (injected ``rate_limit`` faults not included)."""
        return self._rest.rate_limit_breaches if self._rest is not None else 0

    # ---- sessions and streams -----------------------------------------------------------------

    def expire_session(self) -> None:
        """From now on every REST call and socket connect answers as an expired session."""
        self._sessions.expire()

    def new_session(self, session_token: str) -> None:
        """The trader logged in again: ``session_token`` is now the valid one, the old one is not."""
        self._sessions.renew(session_token)

    def silence(self, on: bool = True) -> None:
        """Keep the sockets connected but emit no ``stock`` events (prices and fills carry on); from
        the moment this returns (it takes effect on the loop, between two walk steps)."""

        def hush() -> None:
            self._silent = on

        self._on_loop(hush)

    def disconnect_streams(self, abrupt: bool = False) -> None:
        """Server-side disconnect of every socket.io client, on both servers.

        By default a socket.io disconnect, which python-socketio clients (the SDK's) take as final:
        they do not reconnect. ``abrupt=True`` resets the TCP connections instead, like a network
        failure: the clients' own reconnection kicks in (and the SDK re-joins its rooms).
        """

        async def drop() -> None:
            assert self._stream is not None and self._feeds is not None
            for server in (self._stream, self._feeds):
                if abrupt:
                    server.drop_transports()
                else:
                    await server.disconnect_all()

        self._await_on_loop(drop)

    def emit_raw_stock(self, payload: list[Any]) -> None:
        """Emit exactly ``payload`` as a ``stock`` event to every stream client (for malformed ticks)."""
        self._on_loop(lambda: self._stream.send("stock", payload) if self._stream else None)

    def garble_order_events(self, count: int) -> None:
        """The next ``count`` ``order`` events go out cut short, so the SDK's own handler fails on them
        (``IndexError in parse_data``): the changes they carried reach the client only through the order list."""

        def garble() -> None:
            self._garbled_orders = count

        self._on_loop(garble)

    def emit_raw_order(self, payload: list[Any]) -> None:
        """Emit exactly ``payload`` as an ``order`` event to every feeds client."""
        self._on_loop(lambda: self._feeds.send("order", payload) if self._feeds else None)

    @property
    def connected_clients(self) -> dict[str, int]:
        """How many socket.io clients each server has: ``{"stream": n, "feeds": n}``."""
        return self._on_loop(
            lambda: {
                "stream": len(self._stream.clients) if self._stream else 0,
                "feeds": len(self._feeds.clients) if self._feeds else 0,
            }
        )
