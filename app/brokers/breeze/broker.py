"""BreezeBroker: the Broker protocol over ICICI Direct's official breeze-connect SDK.

The SDK is blocking and hazardous (see ``sdk``): every call runs on a small bounded thread pool
with a connect and read timeout on the HTTP request itself, so a hung request fails as TIMEOUT and
frees its thread, and the event loop never waits on the SDK. Socket.io callbacks arrive on the SDK's
own threads; they are mapped there and handed to the loop with ``call_soon_threadsafe``.

Session: the API key and secret come from the caller (the keyring, via the CLI); the session token
is the day's login. Any session or credential error from any call latches the session as lost,
tells the ``on_session_lost`` listener once, and every later call fails fast with SESSION_EXPIRED
until ``renew_session``.

Streams: a watchdog reconnects the quote and order sockets with exponential backoff when they drop,
and also when the quote socket says it is connected but has not delivered a readable message for
``silence_s`` while subscribed, or delivers a storm of unreadable ones (``storm_messages`` within
``storm_window_s``): that many the desk cannot read make a broken feed, whatever readable ones
come in between. An exception inside the SDK's own socket handlers (see ``sdk``) is contained,
counted by kind and logged once per kind per ``error_log_interval_s``. Prices that stay stale are
the engine's business: its breaker halts on them. An order notification lost that way, or one the
desk cannot read, is told to the ``on_order_feed_gap`` listeners (the ``LossyOrderFeed`` protocol):
only the order book has it now.

Order book: a row the desk cannot read is reported as an ``UnreadableOrder`` (with whatever id,
status and executed quantity could still be read) and the other rows still count; an order listed
under several exchanges' books is one order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from app.brokers.account import breeze_account
from app.brokers.base import (
    BREEZE_RATE_LIMITS,
    BrokerCall,
    BrokerCapabilities,
    BrokerError,
    BrokerErrorCode,
    PlaceAck,
    PlaceRequest,
)
from app.brokers.stream import Stream
from app.domain.broker_messages import (
    BookRow,
    BrokerOrder,
    BrokerOrderUpdate,
    BrokerPosition,
    BrokerTrade,
    Funds,
    UnreadableOrder,
)
from app.domain.india_time import ist_day
from app.domain.instruments import Exchange
from app.domain.market import Tick
from app.domain.orders import OrderStatus

from . import mapping
from .contracts import BreezeContract, rupees_text
from .errors import from_exception, unwrap
from .master import SecurityMaster
from .sdk import (
    ERROR_HOOK,
    ORDER_HANDLER,
    CallScope,
    Endpoints,
    error_kind,
    error_text,
    load_sdk,
    run_scoped,
    scrub,
)

log = logging.getLogger(__name__)

LOGIN_URL = "https://api.icicidirect.com/apiuser/login?api_key="
_SESSION_CODES = (BrokerErrorCode.SESSION_EXPIRED, BrokerErrorCode.AUTH_FAILED)


@dataclass(frozen=True, slots=True)
class BreezeCredentials:
    """The app's API key and secret (from the keyring). Never printed: ``repr`` hides both."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.api_key.strip() or not self.api_secret.strip():
            raise ValueError("the Breeze API key and secret must not be empty")


@dataclass(frozen=True, slots=True)
class BreezeConfig:
    """Where Breeze is and how patient to be with it.

    ``connect_timeout_s``/``read_timeout_s`` bound every HTTP request the SDK makes. ``silence_s``
    is how long a subscribed quote socket may say nothing readable before it is reconnected;
    ``storm_messages`` unreadable messages within ``storm_window_s`` get it reconnected at once.
    ``error_log_interval_s`` spaces the log lines about one kind of unreadable message.
    """

    cache_dir: Path
    endpoints: Endpoints = field(default_factory=Endpoints)
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 4.0
    workers: int = 4
    silence_s: float = 15.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    watchdog_interval_s: float = 0.5
    tick_queue_size: int = 10_000
    storm_messages: int = 200
    storm_window_s: float = 5.0
    error_log_interval_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "read_timeout_s", "silence_s", "reconnect_min_s", "watchdog_interval_s",
                     "storm_window_s", "error_log_interval_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"BreezeConfig.{name} must be positive, got {getattr(self, name)}")
        if self.workers < 2:
            # One stuck call must not leave cancels without a thread.
            raise ValueError(f"BreezeConfig.workers must be at least 2, got {self.workers}")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("BreezeConfig.reconnect_max_s must not be below reconnect_min_s")
        if self.storm_messages < 2:
            raise ValueError(f"BreezeConfig.storm_messages must be at least 2, got {self.storm_messages}")


def login_url(api_key: str) -> str:
    """Where the trader logs in each day for a session token (ICICI's page; shows the API key)."""
    return LOGIN_URL + urllib.parse.quote_plus(api_key)


@dataclass(slots=True)
class BreezeStats:
    """What the adapter has seen: HTTP requests by method and endpoint, reconnects, unreadable messages.

    ``malformed_messages`` counts every stream message the desk could not use; of those,
    ``refused_prices`` carried a price that is not one (NaN, infinite, negative, between paise) and
    ``handler_errors`` (by kind, ``IndexError in parse_data``) made the SDK's own handler raise.
    ``unreadable_orders`` counts order-book rows the desk could not read.
    """

    requests: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    malformed_messages: int = 0
    refused_prices: int = 0
    handler_errors: dict[str, int] = field(default_factory=dict)
    unreadable_orders: int = 0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


class BreezeBroker:
    """The Broker (and SessionBroker, LossyOrderFeed) protocol over breeze-connect; see the module docstring."""

    def __init__(
        self,
        config: BreezeConfig,
        credentials: BreezeCredentials,
        master: SecurityMaster,
        contracts: Sequence[BreezeContract],
        *,
        session_token: str | None = None,
        on_session_token: Callable[[str], None] | None = None,
        book_exchanges: Sequence[str] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._config = config
        self._credentials = credentials
        self._master = master
        self._contracts = {contract.instrument.key: contract for contract in contracts}
        self._token = session_token.strip() if session_token else None
        self._on_session_token = on_session_token
        self._clock_ns = clock_ns
        # One order-book call per exchange: only those the desk trades, unless told otherwise.
        exchanges = book_exchanges if book_exchanges is not None else {c.exchange_code for c in contracts}
        self._book_exchanges = sorted(str(Exchange(code)) for code in exchanges) or [str(Exchange.NSE)]
        self._capabilities = BrokerCapabilities(
            name="breeze",
            rate_limits=BREEZE_RATE_LIMITS,
            exchanges=frozenset(Exchange(code) for code in self._book_exchanges),
            market_orders=False,
            modify=True,
            bulk_cancel=False,
            # The SDK's modify reads the order first (a hidden call); the order book is one call per
            # exchange; a subscription is a socket message, not an API call.
            call_costs={BrokerCall.MODIFY: 2, BrokerCall.ORDER_BOOK: len(self._book_exchanges), BrokerCall.SUBSCRIBE: 0},
            # Breeze counts its limits per API key: every desk on this key shares them.
            account=breeze_account(credentials.api_key),
        )
        self._scope = CallScope((config.connect_timeout_s, config.read_timeout_s), self._count_request)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sdk: ModuleType | None = None
        self._breeze: Any = None
        self._session_listeners: list[Callable[[str], None]] = []
        self._gap_listeners: list[Callable[[str], None]] = []
        self._session_lost: str | None = None
        self._ticks: Stream[Tick] = Stream(config.tick_queue_size)
        self._updates: Stream[BrokerOrderUpdate] = Stream()
        self._subscribed: list[BreezeContract] = []
        self._exchange_of: dict[str, str] = {}
        self._last_quote_ns = 0
        self._watchdog: asyncio.Task[None] | None = None
        self.stats = BreezeStats()
        # Stream messages arrive on several SDK threads at once (one per message).
        self._stats_lock = threading.Lock()
        self._unreadable_ns: deque[int] = deque(maxlen=config.storm_messages)
        self._log_gate = _LogGate(int(config.error_log_interval_s * 1e9))

    # -- protocol surface ---------------------------------------------------------------------------

    @property
    def capabilities(self) -> BrokerCapabilities:
        return self._capabilities

    @property
    def contracts(self) -> list[BreezeContract]:
        """The contracts this adapter trades, in the order given."""
        return list(self._contracts.values())

    @property
    def session_lost(self) -> str | None:
        """Why the session ended, or ``None`` while it is good."""
        return self._session_lost

    def login_url(self) -> str:
        return login_url(self._credentials.api_key)

    def on_session_lost(self, callback: Callable[[str], None]) -> None:
        self._session_listeners.append(callback)

    def on_order_feed_gap(self, callback: Callable[[str], None]) -> None:
        """``callback(reason)`` hears, on an SDK socket thread, of every order notification lost."""
        self._gap_listeners.append(callback)

    def ticks(self) -> AsyncIterator[Tick]:
        return self._ticks.iterate()

    def order_updates(self) -> AsyncIterator[BrokerOrderUpdate]:
        return self._updates.iterate()

    # -- connection ---------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Import the SDK (off this thread), open today's session and both sockets."""
        await self.open(sockets=True)

    async def open(self, *, sockets: bool) -> None:
        """``connect``; without ``sockets`` only the REST session (``panic`` needs nothing more)."""
        if self._breeze is not None:
            return
        self._start_pool()
        if self._ticks.closed:
            self._ticks = Stream(self._config.tick_queue_size)
            self._updates = Stream()
        if not self._token:
            raise self._lose(BrokerError(BrokerErrorCode.SESSION_EXPIRED, "no session token for today: log in and paste one"))
        await self._open_session(self._token)
        if sockets:
            await self._open_sockets()
            self._watchdog = asyncio.create_task(self._watch(), name="breeze-watchdog")

    async def renew_session(self, session_token: str) -> None:
        """Start a new session with a freshly pasted token and reopen the sockets with it."""
        token = session_token.strip()
        if not token:
            raise BrokerError(BrokerErrorCode.AUTH_FAILED, "the session token is empty")
        self._start_pool()
        old = self._breeze
        await self._open_session(token)
        if old is not None:
            await self._blocking("close sockets", _close_sockets, old)
        await self._open_sockets()
        if self._subscribed:
            await self._join(self._subscribed)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch(), name="breeze-watchdog")

    def _start_pool(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self._config.workers, thread_name_prefix="breeze-sdk")

    async def _open_session(self, token: str) -> None:
        sdk = await self._blocking("load the SDK", self._load_sdk)
        breeze = sdk.BreezeConnect(api_key=self._credentials.api_key)
        try:
            await self._blocking("generate_session", breeze.generate_session, self._credentials.api_secret, token)
        except BrokerError as exc:
            if exc.code in (BrokerErrorCode.SESSION_EXPIRED, BrokerErrorCode.AUTH_FAILED):
                raise self._lose(exc) from None
            raise
        breeze.on_ticks = self._on_message
        setattr(breeze, ERROR_HOOK, self._on_handler_error)
        self._sdk, self._breeze, self._token = sdk, breeze, token
        self._session_lost = None
        if self._on_session_token is not None:
            self._on_session_token(token)
        log.info("Breeze session open")

    def _load_sdk(self) -> ModuleType:
        master_file = self._config.cache_dir / "SecurityMaster.zip"
        return load_sdk(self._config.endpoints, master_file, self._config.cache_dir / "sdk")

    async def _open_sockets(self) -> None:
        breeze = self._breeze
        await self._blocking("ws_connect", breeze.ws_connect)
        answer = await self._blocking("subscribe order notifications", breeze.subscribe_feeds, get_order_notification=True)
        _check_socket_answer(answer, "order notifications")
        self._last_quote_ns = self._clock_ns()

    async def disconnect(self) -> None:
        """Close both sockets (bounded), stop the watchdog and end both streams."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            await asyncio.wait({watchdog})
        breeze, self._breeze = self._breeze, None
        if breeze is not None and self._pool is not None:
            try:
                await self._blocking("close sockets", _close_sockets, breeze)
            except BrokerError as exc:
                log.warning("Breeze sockets did not close cleanly: %s", exc.message)
        if self._pool is not None:
            # A thread stuck in a request ends at its HTTP timeout; nobody waits for it here.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._ticks.close()
        self._updates.close()

    async def subscribe(self, instrument_keys: list[str]) -> None:
        unknown = [key for key in instrument_keys if key not in self._contracts]
        if unknown:
            raise BrokerError(BrokerErrorCode.REJECTED, f"not mapped to Breeze: {', '.join(unknown)}")
        contracts = [self._contracts[key] for key in instrument_keys]
        await self._join(contracts)
        self._subscribed.extend(c for c in contracts if c not in self._subscribed)

    async def _join(self, contracts: Iterable[BreezeContract]) -> None:
        breeze = self._require()
        for contract in contracts:
            answer = await self._blocking("subscribe_feeds", breeze.subscribe_feeds, stock_token=contract.stream_symbol)
            _check_socket_answer(answer, contract.instrument.key)

    # -- orders -------------------------------------------------------------------------------------

    async def place(self, request: PlaceRequest) -> PlaceAck:
        contract = self._contract(request.instrument.key)
        kwargs = mapping.place_kwargs(request, contract)
        payload = await self._rest("place_order", lambda b: b.place_order(**kwargs))
        order_id = payload.get("order_id") if isinstance(payload, Mapping) else None
        if not isinstance(order_id, str) or not order_id.strip():
            raise mapping.malformed("place_order.order_id", order_id)
        self._exchange_of[order_id] = contract.exchange_code
        return PlaceAck(order_id, self._clock_ns())

    async def modify(self, broker_order_id: str, *, quantity: int | None = None, price: int | None = None) -> None:
        exchange = self._exchange(broker_order_id)
        await self._rest("modify_order", lambda b: b.modify_order(
            order_id=broker_order_id, exchange_code=exchange, order_type="limit", stoploss="",
            quantity=str(quantity) if quantity is not None else "", price=rupees_text(price) if price is not None else "",
            validity="day", disclosed_quantity="", validity_date="",
        ))

    async def cancel(self, broker_order_id: str) -> None:
        exchange = self._exchange(broker_order_id)
        await self._rest("cancel_order", lambda b: b.cancel_order(exchange_code=exchange, order_id=broker_order_id))

    async def order_book(self) -> list[BookRow]:
        """Today's orders on every exchange the desk trades (one API call per exchange), one row per
        order however many exchanges' books list it; a row the desk cannot read is an ``UnreadableOrder``
        and costs only itself."""
        day = _day_text(self._clock_ns())
        rows: dict[str, BookRow] = {}
        for exchange in self._book_exchanges:
            for raw in await self._day_list("get_order_list", exchange, day):
                # Cancels go to the order's own exchange, whichever book listed it.
                own = _own_exchange(raw) or exchange
                try:
                    order: BookRow = mapping.order_row(raw, self._master)
                except BrokerError as exc:
                    order = _unreadable_order(raw, self._scrub(exc.message))
                key = order.broker_order_id
                if key is None:
                    rows[f"?{len(rows)}"] = order
                    continue
                if isinstance(rows.get(key), BrokerOrder):
                    continue
                self._exchange_of[key] = own
                rows[key] = order
        unreadable = [row for row in rows.values() if isinstance(row, UnreadableOrder)]
        for row in unreadable:
            log.warning("unreadable Breeze order-book row for order %s: %s", row.broker_order_id or "?", row.problem)
        with self._stats_lock:
            self.stats.unreadable_orders += len(unreadable)
        return list(rows.values())

    async def trade_book(self) -> list[BrokerTrade]:
        """Today's executions on every exchange the desk trades; a row listed under another exchange
        the desk also reads is taken from that exchange's list only, so no execution counts twice."""
        day = _day_text(self._clock_ns())
        trades: list[BrokerTrade] = []
        for exchange in self._book_exchanges:
            rows = await self._day_list("get_trade_list", exchange, day, product_type="", action="", stock_code="")
            trades.extend(mapping.trade_row(row, self._master) for row in rows if self._listed_here(row, exchange))
        return trades

    def _listed_here(self, row: object, exchange: str) -> bool:
        own = _own_exchange(row)
        return own is None or own == exchange or own not in self._book_exchanges

    async def _day_list(self, call: str, exchange: str, day: str, **extra: str) -> list[Mapping[str, Any]]:
        """A list call for one exchange and one day; Breeze's "No Data Found" is an empty list."""
        payload = await self._rest(
            call, lambda b: getattr(b, call)(exchange_code=exchange, from_date=day, to_date=day, **extra), empty_ok=True
        )
        return _rows(payload, call)

    async def positions(self) -> list[BrokerPosition]:
        payload = await self._rest("get_portfolio_positions", lambda b: b.get_portfolio_positions(), empty_ok=True)
        held = (mapping.position_row(row, self._master) for row in _rows(payload, "get_portfolio_positions"))
        return [position for position in held if position is not None]

    async def funds(self) -> Funds:
        return mapping.funds(await self._rest("get_funds", lambda b: b.get_funds()))

    async def quote(self, instrument_key: str) -> Tick:
        """The last price and touch now, from a REST quote (one API call)."""
        contract = self._contract(instrument_key)
        fields = contract.contract_fields()
        payload = await self._rest("get_quotes", lambda b: b.get_quotes(
            stock_code=contract.stock_code, exchange_code=contract.exchange_code,
            expiry_date=fields.get("expiry_date", ""), product_type=str(contract.product_type),
            right=fields.get("right", ""), strike_price=fields.get("strike_price", ""),
        ))
        return mapping.quote_tick(payload, contract, self._clock_ns())

    # -- calls --------------------------------------------------------------------------------------

    async def _rest(self, call: str, fn: Callable[[Any], object], *, empty_ok: bool = False) -> Any:
        """One SDK REST call: fail fast without a session, run it on the pool, unwrap Breeze's answer."""
        breeze = self._require()
        answer = await self._blocking(call, fn, breeze)
        try:
            return unwrap(answer, call, empty_ok=empty_ok)
        except BrokerError as exc:
            raise self._fail(exc) from None

    async def _blocking(self, call: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking SDK function on the pool, under this broker's HTTP timeouts."""
        if self._pool is None or self._loop is None:
            raise BrokerError(BrokerErrorCode.NOT_CONNECTED, f"{call}: Breeze is not connected")
        # Long enough for the SDK's two-request calls (modify) to time out in HTTP first.
        limit = 2 * (self._config.connect_timeout_s + self._config.read_timeout_s) + 1.0
        future = self._loop.run_in_executor(self._pool, lambda: run_scoped(self._scope, fn, *args, **kwargs))
        try:
            return await asyncio.wait_for(future, limit)
        except TimeoutError:
            raise self._fail(BrokerError(BrokerErrorCode.TIMEOUT, f"{call}: no answer from Breeze within {limit:g}s")) from None
        except BrokerError as exc:
            raise self._fail(exc) from None
        except Exception as exc:  # noqa: BLE001 - the SDK raises bare Exceptions; each becomes a typed error
            raise self._fail(from_exception(exc, call)) from None

    def _require(self) -> Any:
        if self._session_lost is not None:
            raise BrokerError(BrokerErrorCode.SESSION_EXPIRED, f"Breeze session ended ({self._session_lost}); log in again")
        if self._breeze is None:
            raise BrokerError(BrokerErrorCode.NOT_CONNECTED, "Breeze is not connected")
        return self._breeze

    def _fail(self, error: BrokerError) -> BrokerError:
        """The error to raise: secrets scrubbed, and a session error latches the session as lost."""
        clean = BrokerError(error.code, self._scrub(error.message), error.body)
        return self._lose(clean) if clean.code in _SESSION_CODES else clean

    def _lose(self, error: BrokerError) -> BrokerError:
        if self._session_lost is None:
            self._session_lost = error.message
            log.error("Breeze session lost: %s", error.message)
            for listener in self._session_listeners:
                try:
                    listener(error.message)
                except Exception:
                    log.exception("a session-lost listener failed")
        return error

    def _scrub(self, text: str) -> str:
        """``text`` without the key, the secret, the token or the session the SDK derived from it."""
        return scrub(text, self._breeze, *self._secrets())

    def _secrets(self) -> tuple[str, ...]:
        return self._credentials.api_secret, self._credentials.api_key, self._token or ""

    def _count_request(self, method: str, url: str) -> None:
        endpoint = url.rstrip("/").rsplit("/", 1)[-1]
        key = f"{method} {endpoint}"
        self.stats.requests[key] = self.stats.requests.get(key, 0) + 1

    def _contract(self, key: str) -> BreezeContract:
        contract = self._contracts.get(key)
        if contract is None:
            raise BrokerError(BrokerErrorCode.REJECTED, f"{key} is not mapped to a Breeze contract")
        return contract

    def _exchange(self, broker_order_id: str) -> str:
        exchange = self._exchange_of.get(broker_order_id)
        if exchange is None:
            raise BrokerError(
                BrokerErrorCode.UNKNOWN_ORDER,
                f"order {broker_order_id} is not in the order book read so far; read the book first",
            )
        return exchange

    # -- socket messages (on the SDK's socket threads) ------------------------------------------------

    def _on_message(self, data: object) -> None:
        now = self._clock_ns()
        if not isinstance(data, Mapping):
            self._unreadable("message not an object", repr(data)[:80], now)
            return
        order = mapping.is_order_message(data)
        try:
            if order:
                self._post(self._updates, mapping.order_update(data, now))
                return
            tick = mapping.stream_tick(data, self._master, now)
        except mapping.RefusedPrice as exc:
            with self._stats_lock:
                self.stats.refused_prices += 1
            self._unreadable("refused price", exc.message, now)
            return
        except BrokerError as exc:
            if order:
                self._order_feed_gap(f"an order notification the desk cannot read: {self._scrub(exc.message)}")
            self._unreadable("malformed order notification" if order else "malformed stock message", exc.message, now)
            return
        # Only a message the desk could read shows the quote feed is alive.
        self._last_quote_ns = now
        if tick is not None:
            self._post(self._ticks, tick)

    def _on_handler_error(self, handler: str, exc: BaseException) -> None:
        """An SDK socket handler raised (see ``sdk``): the message is lost; count it like any unreadable one,
        and when it was an order notification, say so to the ``on_order_feed_gap`` listeners."""
        kind = error_kind(exc)
        with self._stats_lock:
            self.stats.handler_errors[kind] = self.stats.handler_errors.get(kind, 0) + 1
        if handler == ORDER_HANDLER:
            self._order_feed_gap(f"the Breeze SDK could not read an order notification ({kind})")
        self._unreadable(f"SDK {handler}: {kind}", error_text(exc, self._breeze, *self._secrets()), self._clock_ns())

    def _order_feed_gap(self, reason: str) -> None:
        for listener in self._gap_listeners:
            try:
                listener(reason)
            except Exception:
                log.exception("an order-feed-gap listener failed")

    def _unreadable(self, kind: str, detail: str, now: int) -> None:
        with self._stats_lock:
            self.stats.malformed_messages += 1
            total = self.stats.malformed_messages
            self._unreadable_ns.append(now)
            since = self._log_gate.due(kind, now)
        if since is not None:
            log.warning("unreadable Breeze stream message, %s (%d unreadable so far; %d of this kind since its last line): %s",
                        kind, total, since, detail)

    def _storm(self) -> str | None:
        """Why the stream counts as dead for its unreadable messages, or ``None``."""
        with self._stats_lock:
            stamps = self._unreadable_ns
            if len(stamps) < (stamps.maxlen or 0):
                return None
            first, last = stamps[0], stamps[-1]
        window_ns = self._config.storm_window_s * 1e9
        if last - first > window_ns or self._clock_ns() - last > window_ns:
            return None
        return f"stream delivered {len(stamps)} unreadable messages in {(last - first) / 1e9:.1f}s"

    def _post(self, stream: Stream[Any], item: object) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(stream.put, item)
        except RuntimeError:
            log.debug("event loop closed; dropped a Breeze stream message")

    # -- watchdog -----------------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Reconnect dropped or silent sockets with exponential backoff; never raises."""
        backoff = self._config.reconnect_min_s
        next_try = 0.0
        while True:
            await asyncio.sleep(self._config.watchdog_interval_s)
            if self._session_lost is not None or self._breeze is None:
                continue
            problem = self._socket_problem()
            if problem is None:
                backoff = self._config.reconnect_min_s
                continue
            now = time.monotonic()
            if now < next_try:
                continue
            self.stats.reconnects += 1
            log.warning("Breeze %s; reconnecting (attempt %d, next wait %.0fs)", problem, self.stats.reconnects, backoff)
            try:
                await self._reconnect()
            except BrokerError as exc:
                log.warning("Breeze reconnect failed: %s", exc.message)
            except Exception:
                log.exception("Breeze reconnect failed unexpectedly")
            next_try = time.monotonic() + backoff
            backoff = min(backoff * 2, self._config.reconnect_max_s)

    def _socket_problem(self) -> str | None:
        breeze = self._breeze
        quotes = getattr(breeze, "sio_rate_refresh_handler", None)
        orders = getattr(breeze, "sio_order_refresh_handler", None)
        if quotes is None or not quotes.sio.connected:
            return "quote socket disconnected"
        if orders is None or not orders.sio.connected:
            return "order socket disconnected"
        storm = self._storm()
        if storm is not None:
            return storm
        silent_s = (self._clock_ns() - self._last_quote_ns) / 1e9
        if self._subscribed and silent_s > self._config.silence_s:
            return f"quote socket connected but silent for {silent_s:.0f}s"
        return None

    async def _reconnect(self) -> None:
        breeze = self._require()
        with self._stats_lock:
            self._unreadable_ns.clear()
        await self._blocking("close sockets", _close_sockets, breeze)
        await self._open_sockets()
        if self._subscribed:
            await self._join(self._subscribed)


class _LogGate:
    """One log line per kind of problem at once, then at most one per ``interval_ns``."""

    def __init__(self, interval_ns: int) -> None:
        self._interval_ns = interval_ns
        self._last: dict[str, int] = {}
        self._since: dict[str, int] = {}

    def due(self, kind: str, now: int) -> int | None:
        """How many of ``kind`` came since its last line (this one included) when a line is due, else ``None``."""
        self._since[kind] = self._since.get(kind, 0) + 1
        last = self._last.get(kind)
        if last is not None and now - last < self._interval_ns:
            return None
        self._last[kind] = now
        return self._since.pop(kind)


_SOCKET_HANDLERS = ("sio_rate_refresh_handler", "sio_order_refresh_handler", "sio_ohlcv_stream_handler")


def _close_sockets(breeze: Any) -> None:
    """Really close the SDK's socket.io clients. Its own ``ws_disconnect`` only emits an event and
    drops its reference: the client stays connected, with its threads, and keeps delivering messages."""
    for name in _SOCKET_HANDLERS:
        handler = getattr(breeze, name, None)
        setattr(breeze, name, None)
        if handler is None:
            continue
        try:
            handler.sio.disconnect()
        except Exception:
            log.warning("a Breeze socket did not close cleanly", exc_info=True)
    breeze.orderconnect = 0


def _check_socket_answer(answer: object, what: str) -> None:
    # subscribe_feeds swallows its exceptions and returns their text instead of a {"message": ...}.
    if not isinstance(answer, Mapping):
        raise BrokerError(BrokerErrorCode.UNAVAILABLE, f"Breeze did not subscribe {what}: {str(answer)[:200]}")


def _own_exchange(row: object) -> str | None:
    """The exchange a REST row names for itself, when it names a valid one."""
    code = row.get("exchange_code") if isinstance(row, Mapping) else None
    if not isinstance(code, str):
        return None
    try:
        return str(Exchange(code.strip().upper()))
    except ValueError:
        return None


def _unreadable_order(row: object, problem: str) -> UnreadableOrder:
    """What can still be read of an order-book row that ``mapping.order_row`` refused."""
    if not isinstance(row, Mapping):
        return UnreadableOrder(None, problem)
    order_id, remark = row.get("order_id"), row.get("user_remark")
    try:
        status = mapping.status(row.get("status"), "order row.status")
    except BrokerError:
        status = None
    filled, average = _executed(row, status)
    return UnreadableOrder(
        order_id.strip() if isinstance(order_id, str) and order_id.strip() else None,
        problem,
        client_order_id=remark.strip() if isinstance(remark, str) and remark.strip() else None,
        status=status,
        filled_quantity=filled,
        average_price=average,
    )


def _executed(row: Mapping[str, Any], status: OrderStatus | None) -> tuple[int | None, int | None]:
    """The executed quantity and average price an unreadable row still shows; ``None`` for what it does not."""
    if status is None:
        return None, None
    try:
        average = mapping.average_paise(row.get("average_price"), "order row.average_price")
    except BrokerError:
        if status is OrderStatus.EXPIRED:
            # Only the average says whether an expired order executed anything.
            return None, None
        # As if none: fills the desk does not hold yet then have no price, and the desk will not close the order.
        average = None
    try:
        filled = mapping.filled_quantity(row, status, average)
    except BrokerError:
        return None, None
    return filled, average if filled else None


def _rows(payload: object, call: str) -> list[Mapping[str, Any]]:
    if payload is None:
        return []
    if not isinstance(payload, list):
        raise mapping.malformed(f"{call} list", payload)
    return payload


def _day_text(ts_ns: int) -> str:
    return f"{ist_day(ts_ns).isoformat()}T06:00:00.000Z"
