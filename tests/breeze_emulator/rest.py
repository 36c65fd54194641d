"""Breeze's REST API as the SDK calls it: signed JSON requests (bodies even on GET), JSON answers.

Request pipeline: log, rate limits (``customerdetails`` is exempt), armed faults, authentication,
then the endpoint. Breeze answers most failures with HTTP 200 and ``{"Success": None, "Status":
<code>, "Error": <text>}``; the emulator does the same, with the texts the SDK and adapters match.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from tests.breeze_emulator.contracts import (
    MONTHS,
    Contract,
    breeze_date,
    parse_rupees,
    rupees_text,
)
from tests.breeze_emulator.faults import Fault, Faults
from tests.breeze_emulator.market import Market, MarketError

EXPIRED_SESSION = "Resource not available."
INVALID_SESSION = "Invalid session."
UNKNOWN_APP_KEY = "Public Key does not exist."
CHECKSUM_MISMATCH = "Checksum mismatch."
STALE_TIMESTAMP = "Request timestamp is not within the allowed window."
TOO_MANY_REQUESTS = "Too many requests"
NO_DATA = "No Data Found"
TIMESTAMP_SKEW_S = 120.0
UNSIGNED_ENDPOINTS = frozenset({"customerdetails"})

Payload = dict[str, Any]


def ok(success: object) -> Payload:
    return {"Success": success, "Status": 200, "Error": None}


def error(text: str, status: int = 500) -> Payload:
    return {"Success": None, "Status": status, "Error": text}


CASH_PRODUCTS = ("cash", "margin", "mtf", "btst", "eatm")


@dataclass(frozen=True, slots=True)
class Call:
    """One REST call as the emulator saw it.

    ``status`` is the HTTP status; ``breeze_status`` the ``Status`` field of a JSON answer (Breeze
    reports most failures as HTTP 200 with ``Status`` 401 or 500), ``None`` for non-JSON answers.
    ``refused`` says why the emulator did not process the call: ``"rate limit"`` for its own
    limits, ``"fault:<kind>"`` for an injected fault that replaced the answer, ``"auth:<error>"``
    for a failed signature or session check (``customerdetails`` refusals are answers, not
    refusals), else ``None``.
    """

    ts: float
    method: str
    endpoint: str
    body: dict[str, Any] | None
    status: int
    refused: str | None
    breeze_status: int | None = None


class Sessions:
    """The trader's login: one valid session token (used as the session key), possibly expired."""

    def __init__(self, *, api_key: str, api_secret: str, user_id: str, session_token: str) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.user_id = user_id
        self._lock = threading.Lock()
        self._token = session_token
        self._expired = False

    def expire(self) -> None:
        with self._lock:
            self._expired = True

    def renew(self, session_token: str) -> None:
        with self._lock:
            self._token = session_token
            self._expired = False

    def _key_error(self, user: object, key: object) -> str | None:
        with self._lock:
            if user != self.user_id or key != self._token:
                return INVALID_SESSION
            return EXPIRED_SESSION if self._expired else None

    def session_token(self) -> str:
        """What ``customerdetails`` hands out and the SDK sends back as ``X-SessionToken``."""
        with self._lock:
            raw = f"{self.user_id}:{self._token}"
        return base64.b64encode(raw.encode("ascii")).decode("ascii")

    def customer_error(self, app_key: object, token: object) -> str | None:
        if app_key != self.api_key:
            return UNKNOWN_APP_KEY
        return self._key_error(self.user_id, token)

    def socket_error(self, auth: object) -> str | None:
        if not isinstance(auth, Mapping):
            return INVALID_SESSION
        return self._key_error(auth.get("user"), auth.get("token"))

    def header_error(self, headers: Mapping[str, str], raw_body: str) -> str | None:
        """Why these signed headers are refused (``None`` if they are good), as the SDK signs them."""
        if headers.get("X-AppKey") != self.api_key:
            return UNKNOWN_APP_KEY
        stamp = headers.get("X-Timestamp", "")
        try:
            sent = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.000Z").replace(tzinfo=UTC)
        except ValueError:
            return STALE_TIMESTAMP
        if abs(time.time() - sent.timestamp()) > TIMESTAMP_SKEW_S:
            return STALE_TIMESTAMP
        expected = "token " + hashlib.sha256((stamp + raw_body + self.api_secret).encode("utf-8")).hexdigest()
        if not hmac.compare_digest(headers.get("X-Checksum", ""), expected):
            return CHECKSUM_MISMATCH
        try:
            decoded = base64.b64decode(headers.get("X-SessionToken", ""), validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError):
            return INVALID_SESSION
        user, _, key = decoded.partition(":")
        return self._key_error(user, key)


class RateLimiter:
    """Breeze's limits as sliding windows; a refused call uses no quota."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._actions: deque[float] = deque()
        self._windows: tuple[tuple[int, float, deque[float]], ...] = (
            (100, 60.0, deque()),
            (5000, 86_400.0, deque()),
        )

    def admit(self, order_action: bool) -> bool:
        now = self._clock()
        windows = [*self._windows, *([(10, 1.0, self._actions)] if order_action else [])]
        for _, seconds, stamps in windows:
            while stamps and now - stamps[0] >= seconds:
                stamps.popleft()
        if any(len(stamps) >= limit for limit, _, stamps in windows):
            return False
        for _, _, stamps in windows:
            stamps.append(now)
        return True


def _parse_expiry(text: object) -> date | None:
    """``29-Dec-2026`` or ISO ``2026-12-29T06:00:00.000Z`` (the SDK passes the caller's text through)."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        pass
    parts = text.split("-")
    if len(parts) == 3 and parts[1].title() in MONTHS and parts[0].isdigit() and parts[2].isdigit():
        try:
            return date(int(parts[2]), MONTHS.index(parts[1].title()) + 1, int(parts[0]))
        except ValueError:
            return None
    return None


def _quantity(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return None


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    return value.strip() if isinstance(value, str) else ""


def _html(status: int, reason: str) -> web.Response:
    page = (
        f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>"
    )
    return web.Response(status=status, text=page, content_type="text/html")


def _auth_refusal(payload: Payload) -> str | None:
    # Only the signature and session checks answer Status 401.
    return f"auth:{payload['Error']}" if payload.get("Status") == 401 else None


def _mutate(payload: Payload, fault: Fault) -> None:
    success = payload.get("Success")
    rows = success if isinstance(success, list) else [success]
    for row in rows:
        if not isinstance(row, dict) or (fault.order_id is not None and row.get("order_id") != fault.order_id):
            continue
        if fault.kind == "missing_field":
            row.pop(fault.field, None)
        else:
            row[fault.field] = fault.value


class RestApi:
    """The REST app: ``/breezeapi/api/v1/<endpoint>``, ``/api/v2/<endpoint>`` and ``/SecurityMaster.zip``."""

    def __init__(
        self,
        *,
        market: Market,
        sessions: Sessions,
        faults: Faults,
        master: Callable[[], bytes],
        enforce_rate_limits: bool,
        rate_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.market = market
        self.sessions = sessions
        self.faults = faults
        self._master = master
        self._enforce = enforce_rate_limits
        self._limiter = RateLimiter(rate_clock)
        self._lock = threading.Lock()
        self.calls: list[Call] = []
        self.rate_limit_breaches = 0
        self.app = web.Application()
        self.app.router.add_route("*", "/breezeapi/api/v1/{endpoint}", self._handle)
        self.app.router.add_route("*", "/api/v2/{endpoint}", self._handle)
        self.app.router.add_get("/SecurityMaster.zip", self._security_master)
        self._routes: dict[tuple[str, str], Callable[[dict[str, Any]], Payload]] = {
            ("order", "POST"): self._place,
            ("order", "GET"): self._order_get,
            ("order", "PUT"): self._modify,
            ("order", "DELETE"): self._cancel,
            ("trades", "GET"): self._trades,
            ("portfoliopositions", "GET"): self._positions,
            ("funds", "GET"): self._funds,
            ("quotes", "GET"): self._quotes,
        }

    # ---- plumbing -----------------------------------------------------------------------------

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def snapshot_calls(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    async def _security_master(self, request: web.Request) -> web.StreamResponse:
        if self.faults.master_unavailable:
            return _html(503, "Service Unavailable")
        return web.Response(
            body=self._master(),
            content_type="application/zip",
            headers={"Content-Disposition": "attachment; filename=SecurityMaster.zip"},
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.time()
        endpoint = request.match_info["endpoint"]
        method = request.method
        raw = await request.text()
        try:
            parsed = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else None

        def record(status: int, refused: str | None, breeze_status: int | None) -> None:
            self._record(Call(started, method, endpoint, body, status, refused, breeze_status))

        if endpoint not in UNSIGNED_ENDPOINTS and self._enforce:
            with self._lock:
                admitted = self._limiter.admit(order_action=endpoint == "order" and method != "GET")
                if not admitted:
                    self.rate_limit_breaches += 1
            if not admitted:
                record(429, "rate limit", 429)
                return web.json_response(error(TOO_MANY_REQUESTS, 429), status=429)

        fault = self.faults.take(endpoint, method)
        if fault is not None and fault.kind not in ("missing_field", "bad_value"):
            return await self._faulted(fault, request, raw, body, record)

        payload = self._process(endpoint, method, request, raw, body)
        if fault is not None:
            _mutate(payload, fault)
        record(200, _auth_refusal(payload), payload.get("Status"))
        return web.json_response(payload)

    async def _faulted(
        self,
        fault: Fault,
        request: web.Request,
        raw: str,
        body: dict[str, Any] | None,
        record: Callable[[int, str | None, int | None], None],
    ) -> web.StreamResponse:
        refused = f"fault:{fault.kind}"
        response: web.StreamResponse
        if fault.kind == "timeout":
            if fault.apply:
                payload = self._process(request.match_info["endpoint"], request.method, request, raw, body)
                record(200, _auth_refusal(payload), payload.get("Status"))
                response = web.json_response(payload)
            else:
                record(504, refused, None)
                response = _html(504, "Gateway Time-out")
            await asyncio.sleep(fault.seconds)
            return response
        if fault.kind == "http_error":
            record(fault.status, refused, None)
            if fault.html:
                return _html(fault.status, "Internal Server Error" if fault.status == 500 else "Server Error")
            return web.Response(status=fault.status, text=f"{fault.status} Server Error")
        if fault.kind == "malformed":
            record(200, refused, None)
            return web.Response(status=200, text='{"Success": {"order_id": ', content_type="application/json")
        if fault.kind == "rate_limit":
            record(429, refused, 429)
            return web.json_response(error(TOO_MANY_REQUESTS, 429), status=429)
        text = EXPIRED_SESSION if fault.kind == "session_expired" else fault.text
        record(200, refused, 500)
        return web.json_response(error(text))

    def _process(
        self, endpoint: str, method: str, request: web.Request, raw: str, body: dict[str, Any] | None
    ) -> Payload:
        if endpoint == "customerdetails":
            return self._customer_details(body or {})
        refusal = self.sessions.header_error(request.headers, raw)
        if refusal is not None:
            return error(refusal, 401)
        route = self._routes.get((endpoint, method))
        if route is None:
            return error(f"{method} {endpoint} is not emulated", 404)
        if body is None:
            return error("Request body is not a JSON object")
        try:
            return route(body)
        except MarketError as exc:
            return error(str(exc))

    # ---- endpoints ----------------------------------------------------------------------------

    def _customer_details(self, body: Mapping[str, Any]) -> Payload:
        refusal = self.sessions.customer_error(body.get("AppKey"), body.get("SessionToken"))
        if refusal is not None:
            return error(refusal)
        day = datetime.now().date()
        trade_date = breeze_date(day)
        return ok(
            {
                "exg_trade_date": {
                    "NSE": trade_date,
                    "BSE": trade_date,
                    "FNO": trade_date,
                    "NDX": trade_date,
                },
                "exg_status": {"NSE": "O", "BSE": "O", "FNO": "Y", "NDX": "X"},
                "segments_allowed": {"Trading": "Y", "Equity": "Y", "Derivatives": "Y", "Currency": "Z"},
                "idirect_userid": self.sessions.user_id,
                "session_token": self.sessions.session_token(),
                "idirect_user_name": "Emulated Trader",
                "idirect_ORD_TYP": "N",
                "idirect_lastlogin_time": f"{trade_date} 09:00:00",
                "mf_holding_mode_popup_flg": "N",
                "commodity_exchange_status": "Y",
                "commodity_trade_date": trade_date,
                "commodity_allowed": "O",
            }
        )

    def _contract(self, body: Mapping[str, Any], product_field: str) -> Contract:
        """The contract named by an order or quote body, or a ``MarketError`` saying what is wrong."""
        exchange = _text(body, "exchange_code").upper()
        stock_code = _text(body, "stock_code").upper()
        product = _text(body, product_field).lower()
        if not stock_code:
            raise MarketError("Stock-Code cannot be empty")
        if exchange not in ("NSE", "BSE", "NFO", "BFO"):
            raise MarketError("Exchange-Code should be either 'nse', 'bse', 'nfo' or 'bfo'")
        if exchange in ("NSE", "BSE"):
            # Equity products: delivery ("cash"), intraday ("margin") and Breeze's funded variants.
            if (product or "cash") not in CASH_PRODUCTS:
                raise MarketError(f"Product should be one of {', '.join(CASH_PRODUCTS)} for Exchange-Code '{exchange.lower()}'")
            found = self.market.find(exchange, stock_code, "cash")
        else:
            if product not in ("futures", "options"):
                raise MarketError(
                    "Product-type should be either 'futures' or 'options' for Exchange-Code 'NFO' or 'BFO'"
                )
            expiry = _parse_expiry(body.get("expiry_date"))
            if expiry is None:
                raise MarketError("Expiry-Date is missing or not a date")
            right = _text(body, "right").lower() or None
            strike = None
            if product == "options":
                strike = parse_rupees(body.get("strike_price"))
                if right not in ("call", "put") or strike is None:
                    raise MarketError("Right should be 'call' or 'put' and Strike-Price a number for options")
            found = self.market.find(exchange, stock_code, product, expiry, right, strike)
        if found is None:
            raise MarketError(f"Stock-Code {stock_code} not found for Exchange-Code {exchange}")
        return found

    @staticmethod
    def _checked_quantity(c: Contract, value: object) -> int:
        quantity = _quantity(value)
        if quantity is None:
            raise MarketError("Quantity should be a positive whole number")
        if quantity % c.lot_size:
            raise MarketError(f"Quantity should be in multiples of the lot size {c.lot_size}")
        if quantity > c.freeze_quantity:
            raise MarketError(f"Quantity exceeds the freeze quantity {c.freeze_quantity}")
        return quantity

    @staticmethod
    def _checked_price(c: Contract, value: object) -> int:
        price = parse_rupees(value)
        if price is None or price <= 0:
            raise MarketError("Price should be a positive number")
        if price % c.tick_paise:
            raise MarketError(f"Price should be in multiples of the tick size {rupees_text(c.tick_paise)}")
        return price

    @staticmethod
    def _checked_order_type(body: Mapping[str, Any], required: bool) -> None:
        order_type = _text(body, "order_type").lower()
        if (required or order_type) and order_type != "limit":
            raise MarketError("Order type not allowed")

    def _place(self, body: dict[str, Any]) -> Payload:
        contract = self._contract(body, "product")
        action = _text(body, "action").lower()
        if action not in ("buy", "sell"):
            raise MarketError("Action should be either 'buy', or 'sell'")
        self._checked_order_type(body, required=True)
        quantity = self._checked_quantity(contract, body.get("quantity"))
        price = self._checked_price(contract, body.get("price"))
        validity = _text(body, "validity").lower() or "day"
        if validity not in ("day", "ioc", "vtc"):
            raise MarketError("Validity should be either 'day', 'ioc', or 'vtc'")
        remark = body.get("user_remark")
        order = self.market.place(
            contract, action, quantity, price, validity, remark if isinstance(remark, str) else ""
        )
        return ok({"order_id": order.order_id, "message": "Successfully Placed the order", "user_remark": ""})

    def _order_get(self, body: dict[str, Any]) -> Payload:
        exchange = _text(body, "exchange_code").upper()
        order_id = _text(body, "order_id")
        if order_id:
            return ok([self.market.order_row(self.market.order(order_id, exchange))])
        if not exchange:
            raise MarketError("Exchange-Code cannot be empty")
        rows = [
            self.market.order_row(o)
            for o in self.market.orders.values()
            if o.contract.exchange_code == exchange or self.faults.books_ignore_exchange
        ]
        return ok(rows) if rows else error(NO_DATA)

    def _modify(self, body: dict[str, Any]) -> Payload:
        order = self.market.order(_text(body, "order_id"), _text(body, "exchange_code").upper())
        self._checked_order_type(body, required=False)
        quantity = price = None
        if body.get("quantity") not in (None, ""):
            quantity = self._checked_quantity(order.contract, body["quantity"])
        if body.get("price") not in (None, ""):
            price = self._checked_price(order.contract, body["price"])
        self.market.modify(order, quantity, price)
        return ok({"message": "Successfully Modified the order", "order_id": order.order_id})

    def _cancel(self, body: dict[str, Any]) -> Payload:
        order = self.market.order(_text(body, "order_id"), _text(body, "exchange_code").upper())
        self.market.cancel(order)
        return ok({"order_id": order.order_id, "message": "Your Order Canceled successfully."})

    def _trades(self, body: dict[str, Any]) -> Payload:
        exchange = _text(body, "exchange_code").upper()
        order_id = _text(body, "order_id")
        if order_id:
            self.market.order(order_id, exchange)
            rows = [self.market.trade_detail_row(t) for t in self.market.trades if t.order_id == order_id]
            return ok(rows) if rows else error(NO_DATA)
        action = _text(body, "action").lower()
        stock_code = _text(body, "stock_code").upper()
        product = _text(body, "product_type").lower()
        rows = [
            self.market.trade_row(t)
            for t in self.market.trades
            if (t.contract.exchange_code == exchange or self.faults.books_ignore_exchange)
            and (not action or t.action == action)
            and (not stock_code or t.contract.stock_code == stock_code)
            and (not product or t.contract.product_type == product)
        ]
        return ok(rows) if rows else error(NO_DATA)

    def _positions(self, body: dict[str, Any]) -> Payload:
        rows = [self.market.position_row(p) for p in self.market.open_positions()]
        return ok(rows) if rows else error(NO_DATA)

    def _funds(self, body: dict[str, Any]) -> Payload:
        blocked = {"equity": 0, "fno": 0}
        for order in self.market.working_orders():
            if order.action == "buy":
                segment = "fno" if order.contract.is_derivative else "equity"
                blocked[segment] += order.pending * order.price_paise
        allocated = 50_000_000_00
        total_blocked = blocked["equity"] + blocked["fno"]
        return ok(
            {
                "bank_account": "000000000001",
                "total_bank_balance": 2 * allocated / 100 + 10_000_000.0,
                "allocated_equity": allocated / 100,
                "allocated_fno": allocated / 100,
                "allocated_commodity": 0.0,
                "allocated_currency": 0.0,
                "block_by_trade_equity": blocked["equity"] / 100,
                "block_by_trade_fno": blocked["fno"] / 100,
                "block_by_trade_commodity": 0.0,
                "block_by_trade_currency": 0.0,
                "block_by_trade_balance": total_blocked / 100,
                "unallocated_balance": "10000000",
            }
        )

    def _quotes(self, body: dict[str, Any]) -> Payload:
        contract = self._contract(body, "product_type")
        rows = [self.market.quote_row(contract)]
        if contract.exchange_code == "BSE":
            # The SDK reads a BSE quote from the second row: Breeze puts the NSE listing first.
            twin = self.market.find("NSE", contract.stock_code, "cash")
            rows.insert(0, self.market.quote_row(twin or contract))
        return ok(rows)
