"""The Breeze emulator itself, spoken to the way the breeze-connect SDK speaks (without importing the SDK,
whose import writes ./logs and downloads the real security master)."""

from __future__ import annotations

import base64
import csv
import io
import json
import queue
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

import pytest
import requests
import socketio  # type: ignore[import-untyped]

from tests.breeze_emulator import BreezeEmulator, Contract, default_contracts
from tests.breeze_emulator.master import CASH_HEADER, FNO_HEADER
from tests.support.calendar import PAPER_SESSION_DAY

WAIT_S = 10.0
RELIANCE = "NSE:RELIANCE"
# The emulator is given the December 2026 contracts, so these keys are fixed.
CONTRACTS = default_contracts(PAPER_SESSION_DAY)
NIFTY_FUT = "NFO:NIFTY:2026-12-29:FUT"
NIFTY_CALL = "NFO:NIFTY:2026-12-29:25800:CE"


@pytest.fixture
def emu() -> Iterator[BreezeEmulator]:
    """A still market: prices move only when a test moves them."""
    with BreezeEmulator(tick_interval_s=None, contracts=CONTRACTS) as emulator:
        yield emulator


@pytest.fixture
def ticking() -> Iterator[BreezeEmulator]:
    with BreezeEmulator(tick_interval_s=0.05, contracts=CONTRACTS) as emulator:
        yield emulator


def session_token(emulator: BreezeEmulator, key: str = "48213577") -> str:
    return base64.b64encode(f"{emulator.user_id}:{key}".encode("ascii")).decode("ascii")


def call(
    emulator: BreezeEmulator,
    method: str,
    endpoint: str,
    body: dict[str, Any],
    *,
    secret: str | None = None,
    app_key: str | None = None,
    key: str = "48213577",
    timeout: float = WAIT_S,
    http: requests.Session | None = None,
) -> requests.Response:
    """A request signed exactly like the SDK's ``generate_headers``: sha256(timestamp + body + secret)."""
    raw = json.dumps(body, separators=(",", ":"))
    stamp = datetime.now(UTC).isoformat()[:19] + ".000Z"
    checksum = sha256((stamp + raw + (secret or emulator.api_secret)).encode("utf-8")).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Checksum": "token " + checksum,
        "X-Timestamp": stamp,
        "X-AppKey": app_key or emulator.api_key,
        "X-SessionToken": session_token(emulator, key),
    }
    sender = http or requests
    return sender.request(method, emulator.api_url + endpoint, data=raw, headers=headers, timeout=timeout)


def breeze(
    emulator: BreezeEmulator, method: str, endpoint: str, body: dict[str, Any], **kw: Any
) -> dict[str, Any]:
    response = call(emulator, method, endpoint, body, **kw)
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    return payload


def customer_details(emulator: BreezeEmulator, token: str, app_key: str | None = None) -> dict[str, Any]:
    body = json.dumps({"SessionToken": token, "AppKey": app_key or emulator.api_key}, separators=(",", ":"))
    response = requests.get(
        emulator.api_url + "customerdetails",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=WAIT_S,
    )
    payload: dict[str, Any] = response.json()
    return payload


def place_body(
    contract: Contract, action: str, quantity: int, price_paise: int, **extra: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "stock_code": contract.stock_code,
        "exchange_code": contract.exchange_code,
        "product": contract.product_type,
        "action": action,
        "order_type": "limit",
        "quantity": str(quantity),
        "price": f"{price_paise / 100:.2f}",
        "validity": "day",
        "user_remark": "",
    }
    if contract.is_derivative:
        assert contract.expiry is not None
        body["expiry_date"] = f"{contract.expiry.isoformat()}T06:00:00.000Z"
        body["right"] = contract.right or "others"
        body["strike_price"] = str((contract.strike_paise or 0) // 100)
    body.update(extra)
    return body


def place(emulator: BreezeEmulator, key: str, action: str, lots: int, price_paise: int) -> str:
    contract = emulator.contract(key)
    answer = breeze(
        emulator, "POST", "order", place_body(contract, action, lots * contract.lot_size, price_paise)
    )
    assert answer["Status"] == 200, answer
    order_id: str = answer["Success"]["order_id"]
    return order_id


def eventually(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def socket_client(
    emulator: BreezeEmulator, url: str, events: dict[str, queue.Queue[Any]], *, reconnect: bool = False
) -> socketio.Client:
    client = socketio.Client(reconnection=reconnect, reconnection_delay=0.1, reconnection_delay_max=0.2)
    for name, sink in events.items():
        client.on(name, sink.put)
    client.connect(
        url,
        auth={"user": emulator.user_id, "token": "48213577"},
        transports="websocket",
        wait_timeout=WAIT_S,
    )
    return client


def next_matching(events: queue.Queue[Any], check: Callable[[Any], bool], timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("no matching event arrived")
        try:
            event = events.get(timeout=remaining)
        except queue.Empty:
            continue
        if check(event):
            return event


# ---- authentication ----------------------------------------------------------------------------


def test_bad_checksum_is_refused(emu: BreezeEmulator) -> None:
    answer = breeze(emu, "GET", "funds", {}, secret="not-the-secret")
    assert answer == {"Success": None, "Status": 401, "Error": "Checksum mismatch."}
    assert (emu.calls[-1].breeze_status, emu.calls[-1].refused) == (401, "auth:Checksum mismatch.")


def test_wrong_app_key_is_refused(emu: BreezeEmulator) -> None:
    answer = breeze(emu, "GET", "funds", {}, app_key="someone-else")
    assert answer == {"Success": None, "Status": 401, "Error": "Public Key does not exist."}


def test_customer_details_hands_out_the_session_token_the_sdk_signs_with(emu: BreezeEmulator) -> None:
    answer = customer_details(emu, "48213577")
    assert answer["Status"] == 200 and answer["Error"] is None
    user, _, key = base64.b64decode(answer["Success"]["session_token"]).decode("ascii").partition(":")
    assert (user, key) == (emu.user_id, "48213577")
    assert answer["Success"]["idirect_userid"] == emu.user_id
    assert breeze(emu, "GET", "funds", {}, key=key)["Status"] == 200

    assert customer_details(emu, "48213577", app_key="nope") == {
        "Success": None,
        "Status": 500,
        "Error": "Public Key does not exist.",
    }
    assert customer_details(emu, "11111111")["Error"] == "Invalid session."
    # customerdetails is exempt from the rate limits and the signature; it is still logged
    assert emu.call_count("customerdetails", "GET") == 3


def test_an_expired_session_answers_resource_not_available_until_a_new_login(emu: BreezeEmulator) -> None:
    emu.expire_session()
    assert breeze(emu, "GET", "funds", {}) == {
        "Success": None,
        "Status": 401,
        "Error": "Resource not available.",
    }
    assert customer_details(emu, "48213577")["Error"] == "Resource not available."

    emu.new_session("70000001")
    assert customer_details(emu, "48213577")["Error"] == "Invalid session."
    assert customer_details(emu, "70000001")["Status"] == 200
    assert breeze(emu, "GET", "funds", {}, key="70000001")["Status"] == 200
    assert breeze(emu, "GET", "funds", {})["Error"] == "Invalid session."


# ---- orders ------------------------------------------------------------------------------------


def test_place_list_cancel(emu: BreezeEmulator) -> None:
    reliance = emu.contract(RELIANCE)
    order_id = place(emu, RELIANCE, "buy", 3, reliance.price_paise - 1000)
    assert len(order_id) == 18 and order_id[8:10] == "N3"

    listed = breeze(emu, "GET", "order", {"exchange_code": "NSE", "from_date": "x", "to_date": "y"})
    (row,) = listed["Success"]
    assert row["order_id"] == order_id
    assert (row["status"], row["quantity"], row["pending_quantity"], row["cancelled_quantity"]) == (
        "Ordered",
        "3",
        "3",
        "0",
    )
    assert (row["stock_code"], row["action"], row["price"], row["average_price"]) == (
        "RELIND",
        "Buy",
        "1490.00",
        "0",
    )
    assert emu.working_count() == 1

    cancelled = breeze(emu, "DELETE", "order", {"exchange_code": "NSE", "order_id": order_id})
    assert cancelled == {
        "Success": {"order_id": order_id, "message": "Your Order Canceled successfully."},
        "Status": 200,
        "Error": None,
    }
    (row,) = breeze(emu, "GET", "order", {"exchange_code": "NSE", "order_id": order_id})["Success"]
    assert (row["status"], row["pending_quantity"], row["cancelled_quantity"]) == ("Cancelled", "0", "3")
    assert emu.working_count() == 0

    again = breeze(emu, "DELETE", "order", {"exchange_code": "NSE", "order_id": order_id})
    assert again["Status"] == 500 and again["Success"] is None and "Cancelled" in again["Error"]


def test_order_validation_texts(emu: BreezeEmulator) -> None:
    nifty = emu.contract(NIFTY_FUT)
    cases = {
        "Order type not allowed": place_body(nifty, "buy", 65, nifty.price_paise, order_type="market"),
        "Quantity should be in multiples of the lot size 65": place_body(nifty, "buy", 64, nifty.price_paise),
        "Price should be in multiples of the tick size 0.05": place_body(
            nifty, "buy", 65, nifty.price_paise + 1
        ),
    }
    for text, body in cases.items():
        assert breeze(emu, "POST", "order", body) == {"Success": None, "Status": 500, "Error": text}
    # the SDK passes the caller's expiry through: Breeze's own "29-Dec-2026" works as well as ISO
    body = place_body(nifty, "buy", 65, nifty.price_paise - 5000, expiry_date="29-Dec-2026")
    assert breeze(emu, "POST", "order", body)["Status"] == 200
    assert emu.orders()[0]["order_id"][8:10] == "14"


def test_marketable_order_executes_and_shows_in_trades_and_positions(emu: BreezeEmulator) -> None:
    reliance = emu.contract(RELIANCE)
    order_id = place(emu, RELIANCE, "buy", 2, reliance.price_paise + 500)

    (row,) = emu.orders()
    assert (row["status"], row["pending_quantity"], row["average_price"]) == ("Executed", "0", "1500.00")
    (trade,) = breeze(emu, "GET", "trades", {"exchange_code": "NSE"})["Success"]
    assert (trade["order_id"], trade["action"], trade["quantity"], trade["average_cost"]) == (
        order_id,
        "Buy",
        "2",
        "1500.00",
    )
    (position,) = breeze(emu, "GET", "portfoliopositions", {})["Success"]
    assert (position["stock_code"], position["action"], position["quantity"], position["average_price"]) == (
        "RELIND",
        "Buy",
        "2",
        "1500.00",
    )
    assert emu.positions() == [position]
    assert breeze(emu, "GET", "trades", {"exchange_code": "NFO"})["Error"] == "No Data Found"


def test_resting_orders_fill_when_the_price_crosses_and_on_demand(emu: BreezeEmulator) -> None:
    call_id = place(emu, NIFTY_CALL, "sell", 2, 40000)
    resting_buy = place(emu, RELIANCE, "buy", 10, 149000)

    emu.fill(call_id, quantity=65)
    (row,) = [r for r in emu.orders() if r["order_id"] == call_id]
    assert (row["status"], row["pending_quantity"]) == ("Partially Executed", "65")

    emu.set_price(RELIANCE, 148900)
    (row,) = [r for r in emu.orders() if r["order_id"] == resting_buy]
    assert (row["status"], row["average_price"]) == ("Executed", "1490.00")
    positions = {p["stock_code"]: p for p in emu.positions()}
    assert (positions["NIFTY"]["action"], positions["NIFTY"]["quantity"]) == ("Sell", "65")
    with pytest.raises(ValueError, match="Executed"):
        emu.fill(resting_buy)


def test_an_empty_order_list_is_no_data_found(emu: BreezeEmulator) -> None:
    answer = breeze(emu, "GET", "order", {"exchange_code": "NFO", "from_date": "a", "to_date": "b"})
    assert answer == {"Success": None, "Status": 500, "Error": "No Data Found"}


def test_quotes_are_in_rupees(emu: BreezeEmulator) -> None:
    body = {"stock_code": "NIFTY", "exchange_code": "NFO", "expiry_date": "2026-12-29T06:00:00.000Z"}
    (quote,) = breeze(emu, "GET", "quotes", {**body, "product_type": "futures", "right": "others"})["Success"]
    assert quote["ltp"] == 26150.0 and quote["best_bid_price"] < quote["ltp"] < quote["best_offer_price"]
    assert quote["lower_circuit"] < quote["ltp"] < quote["upper_circuit"]


# ---- faults ------------------------------------------------------------------------------------

FAULTS: dict[str, tuple[Callable[[BreezeEmulator], None], Callable[[requests.Response], object]]] = {
    "timeout": (
        lambda e: e.faults.timeout("funds", seconds=0.3),
        lambda r: (r.status_code == 504 and "text/html" in r.headers["Content-Type"]) or pytest.fail(r.text),
    ),
    "http_error": (
        lambda e: e.faults.http_error(502, "funds"),
        lambda r: (r.status_code == 502 and r.text.startswith("<html>")) or pytest.fail(r.text),
    ),
    "malformed": (
        lambda e: e.faults.malformed("funds"),
        lambda r: (r.status_code == 200 and r.text == '{"Success": {"order_id": ') or pytest.fail(r.text),
    ),
    "rate_limit": (
        lambda e: e.faults.rate_limit("funds", "GET"),
        lambda r: (
            (
                r.status_code == 429
                and r.json() == {"Success": None, "Status": 429, "Error": "Too many requests"}
            )
            or pytest.fail(r.text)
        ),
    ),
    "session_expired": (
        lambda e: e.faults.session_expired("funds"),
        lambda r: (
            r.json() == {"Success": None, "Status": 500, "Error": "Resource not available."}
            or pytest.fail(r.text)
        ),
    ),
    "missing_field": (
        lambda e: e.faults.missing_field("allocated_equity", "funds"),
        lambda r: "allocated_equity" not in r.json()["Success"] or pytest.fail(r.text),
    ),
    "bad_value": (
        lambda e: e.faults.bad_value("allocated_equity", "abc", "funds"),
        lambda r: r.json()["Success"]["allocated_equity"] == "abc" or pytest.fail(r.text),
    ),
    "reject": (
        lambda e: e.faults.reject("Exchange is closed", "funds"),
        lambda r: (
            r.json() == {"Success": None, "Status": 500, "Error": "Exchange is closed"} or pytest.fail(r.text)
        ),
    ),
}


@pytest.mark.parametrize("kind", list(FAULTS))
def test_each_fault_answers_once_then_service_resumes(emu: BreezeEmulator, kind: str) -> None:
    arm, check = FAULTS[kind]
    emu.faults.http_error(503, "quotes")  # armed for another endpoint: must not be used up here
    arm(emu)
    # a call to another endpoint leaves the fault armed
    assert breeze(emu, "GET", "portfoliopositions", {})["Error"] == "No Data Found"
    check(call(emu, "GET", "funds", {}))
    normal = breeze(emu, "GET", "funds", {})
    assert normal["Status"] == 200 and isinstance(normal["Success"]["allocated_equity"], float)
    assert emu.faults.armed() == 1
    assert emu.rate_limit_breaches == 0


def test_a_timed_out_order_is_not_placed_unless_the_fault_applies_it(emu: BreezeEmulator) -> None:
    reliance = emu.contract(RELIANCE)
    body = place_body(reliance, "buy", 1, reliance.price_paise - 500)
    emu.faults.timeout("order", "POST", seconds=2.0)
    with pytest.raises(requests.Timeout):
        call(emu, "POST", "order", body, timeout=0.3)
    assert emu.orders() == [] and emu.calls[-1].refused == "fault:timeout"

    emu.faults.timeout("order", "POST", seconds=2.0, apply=True)
    with pytest.raises(requests.Timeout):
        call(emu, "POST", "order", body, timeout=0.3)
    # the ghost order: the client gave up, the exchange has it
    (row,) = breeze(emu, "GET", "order", {"exchange_code": "NSE", "from_date": "a", "to_date": "b"})[
        "Success"
    ]
    assert row["status"] == "Ordered"


def test_master_unavailable_answers_503(emu: BreezeEmulator) -> None:
    emu.faults.master_unavailable = True
    assert requests.get(emu.master_url, timeout=WAIT_S).status_code == 503
    emu.faults.master_unavailable = False
    assert requests.get(emu.master_url, timeout=WAIT_S).content == emu.master_bytes()


def test_the_eleventh_order_action_in_a_second_is_refused() -> None:
    # The limiter's clock stands still: every call falls in the same second, however slow the machine.
    with BreezeEmulator(tick_interval_s=None, contracts=CONTRACTS, rate_clock=lambda: 1_000.0) as emu:
        body = {"exchange_code": "NSE", "order_id": "20261123N399999999"}
        answers = [call(emu, "DELETE", "order", body) for _ in range(11)]
        assert [a.status_code for a in answers] == [200] * 10 + [429]
        assert [a.json()["Error"] for a in answers[:10]] == ["No Data Found"] * 10
        assert answers[10].json() == {"Success": None, "Status": 429, "Error": "Too many requests"}
        assert emu.rate_limit_breaches == 1
        assert [c.refused for c in emu.calls].count("rate limit") == 1
        # reads are not order actions
        assert breeze(emu, "GET", "funds", {})["Status"] == 200


# ---- socket.io ---------------------------------------------------------------------------------


def test_stream_ticks_have_the_sdk_lengths(ticking: BreezeEmulator) -> None:
    reliance, nifty = ticking.contract(RELIANCE), ticking.contract(NIFTY_FUT)
    ticks: queue.Queue[Any] = queue.Queue()
    client = socket_client(ticking, ticking.stream_url, {"stock": ticks})
    try:
        client.emit("join", [reliance.stream_symbol, nifty.stream_symbol])
        cash = next_matching(ticks, lambda t: t[0] == "4.1!" + reliance.token)
        future = next_matching(ticks, lambda t: t[0] == "4.1!" + nifty.token)
        assert len(cash) == 21 and len(future) == 23
        assert isinstance(cash[2], float) and isinstance(cash[19], int) and cash[15].endswith("C")
        assert ticking.connected_clients == {"stream": 1, "feeds": 0}

        client.emit("leave", nifty.stream_symbol)
        ticking.set_price(RELIANCE, 151000)
        # Prices are floats, possibly a unit in the last place off (the emulator's price_noise).
        next_matching(ticks, lambda t: t[0] == reliance.stream_symbol and t[2] == pytest.approx(1510.0, abs=1e-9))
    finally:
        client.disconnect()


def test_stream_refuses_bad_auth(emu: BreezeEmulator) -> None:
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(
            emu.stream_url,
            auth={"user": emu.user_id, "token": "wrong"},
            transports="websocket",
            wait_timeout=WAIT_S,
        )
    emu.expire_session()
    with pytest.raises(socketio.exceptions.ConnectionError):
        socket_client(emu, emu.feeds_url, {})
    assert emu.connected_clients == {"stream": 0, "feeds": 0}


def test_silence_stops_ticks_but_keeps_the_connection(ticking: BreezeEmulator) -> None:
    """Checked by cause and effect, not by waiting: a price move while silent sends no ``stock`` event
    (the server's own count stays put), and the first move after the silence reaches the client."""
    reliance = ticking.contract(RELIANCE)
    ticks: queue.Queue[Any] = queue.Queue()
    client = socket_client(ticking, ticking.stream_url, {"stock": ticks})
    try:
        client.emit("join", reliance.stream_symbol)
        next_matching(ticks, lambda t: True)
        ticking.silence()
        sent = ticking.stock_events_sent
        ticking.freeze_walk()
        ticking.set_price(RELIANCE, 151_000)
        ticking.set_price(RELIANCE, 151_500)
        assert ticking.stock_events_sent == sent, "no stock event while silent, from the walk or set_price"
        assert ticking.last_price(RELIANCE) == 151_500, "prices carry on while silent"
        assert client.connected and ticking.connected_clients["stream"] == 1

        ticking.silence(False)
        ticking.set_price(RELIANCE, 152_000)
        assert ticking.stock_events_sent == sent + 1
        next_matching(ticks, lambda t: round(t[2] * 100) == 152_000)
    finally:
        client.disconnect()


def test_raw_events_and_server_side_disconnect(emu: BreezeEmulator) -> None:
    ticks: queue.Queue[Any] = queue.Queue()
    orders: queue.Queue[Any] = queue.Queue()
    stream = socket_client(emu, emu.stream_url, {"stock": ticks})
    feeds = socket_client(emu, emu.feeds_url, {"order": orders})
    emu.emit_raw_stock(["4.1!2885", "garbage"])
    emu.emit_raw_order(["1", "short"])
    assert ticks.get(timeout=WAIT_S) == ["4.1!2885", "garbage"]
    assert orders.get(timeout=WAIT_S) == ["1", "short"]

    emu.disconnect_streams()
    eventually(lambda: not stream.connected and not feeds.connected, "clients to be dropped")
    assert emu.connected_clients == {"stream": 0, "feeds": 0}


def test_an_abrupt_disconnect_lets_clients_reconnect(emu: BreezeEmulator) -> None:
    client = socket_client(emu, emu.stream_url, {}, reconnect=True)
    try:
        first_sid = client.sid
        emu.disconnect_streams(abrupt=True)
        eventually(lambda: client.connected and client.sid != first_sid, "the client to reconnect")
        eventually(
            lambda: emu.connected_clients == {"stream": 1, "feeds": 0}, "the server to count one client"
        )
    finally:
        client.disconnect()


def test_feeds_report_every_order_state(emu: BreezeEmulator) -> None:
    orders: queue.Queue[Any] = queue.Queue()
    client = socket_client(emu, emu.feeds_url, {"order": orders})
    try:
        reliance = emu.contract(RELIANCE)
        order_id = place(emu, RELIANCE, "buy", 4, reliance.price_paise - 500)
        ordered = orders.get(timeout=WAIT_S)
        assert len(ordered) == 47 and all(isinstance(x, str) for x in ordered) and "!" not in ordered[0]
        assert (ordered[11], ordered[13], ordered[14], ordered[20], ordered[23]) == (
            "4",
            "NSE",
            "RELIND",
            "O",
            order_id,
        )
        assert (ordered[18], ordered[24], ordered[25], ordered[26]) == ("1495.00", "4", "4", "0")

        emu.fill(order_id, quantity=1, price_paise=149400)
        partial = orders.get(timeout=WAIT_S)
        assert (partial[20], partial[25], partial[26], partial[42]) == ("P", "3", "1", "1494.00")
        breeze(emu, "DELETE", "order", {"exchange_code": "NSE", "order_id": order_id})
        assert orders.get(timeout=WAIT_S)[20] == "D"

        option_id = place(emu, NIFTY_CALL, "buy", 1, 50000)
        ordered, executed = orders.get(timeout=WAIT_S), orders.get(timeout=WAIT_S)
        assert (ordered[11], ordered[15], ordered[16], ordered[18], ordered[19], ordered[26]) == (
            "6",
            "O",
            "C",
            "25800",
            "29-Dec-2026",
            option_id,
        )
        assert (executed[25], executed[28], executed[39]) == ("E", "65", "395.00")

        emu.reject_next_orders(1, "Insufficient margin")
        rejected_id = place(emu, RELIANCE, "sell", 1, reliance.price_paise)
        rejected = orders.get(timeout=WAIT_S)
        assert (rejected[20], rejected[23], rejected[41]) == ("J", rejected_id, "Insufficient margin")
        assert [int(m) for m in (ordered[6], executed[6], rejected[6])] == sorted(
            int(m) for m in (ordered[6], executed[6], rejected[6])
        )
    finally:
        client.disconnect()


# ---- security master ---------------------------------------------------------------------------


def test_security_master_has_the_four_files_with_exact_headers(emu: BreezeEmulator) -> None:
    response = requests.get(emu.master_url, timeout=WAIT_S)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    files: dict[str, list[list[str]]] = {}
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        for name in archive.namelist():
            # ICICI's cash files pad their header after each comma (`"Token", "ShortName"`); F&O files do not.
            files[name] = list(csv.reader(io.TextIOWrapper(archive.open(name), encoding="utf-8"), skipinitialspace=True))
            padded = name in ("NSEScripMaster.txt", "BSEScripMaster.txt")
            assert archive.read(name).startswith(b'"Token", "ShortName", ' if padded else b'"Token","InstrumentName",')
    assert set(files) == {
        "NSEScripMaster.txt",
        "BSEScripMaster.txt",
        "FONSEScripMaster.txt",
        "FOBSEScripMaster.txt",
    }
    assert tuple(files["NSEScripMaster.txt"][0]) == tuple(files["BSEScripMaster.txt"][0]) == CASH_HEADER
    assert tuple(files["FONSEScripMaster.txt"][0]) == tuple(files["FOBSEScripMaster.txt"][0]) == FNO_HEADER
    assert len(CASH_HEADER) == 31 and len(FNO_HEADER) == 30

    nse = {row[1]: dict(zip(CASH_HEADER, row, strict=True)) for row in files["NSEScripMaster.txt"][1:]}
    assert nse["RELIND"]["Token"] == emu.contract(RELIANCE).token
    assert (nse["RELIND"]["Symbol"], nse["RELIND"]["ExchangeCode"], nse["RELIND"]["ticksize"]) == (
        "RELIANCE",
        "RELIANCE",
        "0.05",
    )
    fno = [dict(zip(FNO_HEADER, row, strict=True)) for row in files["FONSEScripMaster.txt"][1:]]
    call_row = next(r for r in fno if r["Token"] == emu.contract(NIFTY_CALL).token)
    assert (call_row["InstrumentName"], call_row["ShortName"], call_row["Series"]) == (
        "OPTIDX",
        "NIFTY",
        "OPTION",
    )
    assert (call_row["ExpiryDate"], call_row["StrikePrice"], call_row["OptionType"]) == (
        "29-Dec-2026",
        "25800",
        "CE",
    )
    stock_future = next(r for r in fno if r["ExchangeCode"] == "RELIANCE")
    assert (stock_future["InstrumentName"], stock_future["ShortName"], stock_future["OptionType"]) == (
        "FUTSTK",
        "RELIND",
        "XX",
    )
    (sensex,) = [dict(zip(FNO_HEADER, row, strict=True)) for row in files["FOBSEScripMaster.txt"][1:]]
    assert (sensex["ShortName"], sensex["ExchangeCode"], sensex["Series"]) == ("BSESEN", "SENSEX", "FUTURE")
