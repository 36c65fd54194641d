"""ICICI's security master: which token and ICICI stock code each instrument has, and its contract terms.

The SDK downloads ``SecurityMaster.zip`` from the internet when it is imported and again on every
session, without a timeout. The desk instead keeps one copy in its cache folder: ``MasterCache``
downloads it (with a timeout) only when there is none or it is older than a day. An old copy is
refreshed in the background: the desk waits a few seconds for the new one, then starts on the old
one with a warning while the download goes on (the next start uses it). Without any copy and
without network it fails with a clear error.
The SDK is then pointed at the cached file.

The zip holds ``NSEScripMaster.txt``, ``BSEScripMaster.txt`` (cash) and ``FONSEScripMaster.txt``,
``FOBSEScripMaster.txt`` (derivatives): quoted CSV with a header row. ICICI pads the cash files'
header after each comma (``"Token", "ShortName", ...``) and not the F&O files' (nor, as the SDK's own
``csv.reader`` parsing shows, any data row), so every file is read tolerant of quotes and padding
in header and rows alike. Columns are found by name (``Token``, ``ShortName``, ``ExchangeCode`` ...
see ``_CASH`` and ``_DERIVATIVES``), so a reordered file still reads and a renamed column fails
loudly. Tick sizes written as whole numbers are paise (``5``); written with a decimal point they
are rupees (``0.05``). Strikes are rupees.

A file whose format the desk cannot read makes only its exchange unavailable (with a warning that
names the file and the line): a desk that trades NSE must not be stopped by a change to the BSE
file. Resolving an instrument of an unavailable exchange fails with that reason. A zip that is not
a zip, a damaged member, or four unreadable files are a ``MasterError`` for the whole master.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from app.domain.instruments import (
    Exchange,
    Instrument,
    InstrumentError,
    OptionRight,
    Segment,
    instrument_key,
)

from .contracts import BreezeContract, breeze_date

log = logging.getLogger(__name__)

MASTER_FILE = "SecurityMaster.zip"
_FILES = {
    "NSEScripMaster.txt": Exchange.NSE,
    "BSEScripMaster.txt": Exchange.BSE,
    "FONSEScripMaster.txt": Exchange.NFO,
    "FOBSEScripMaster.txt": Exchange.BFO,
}
_CASH = ("Token", "ShortName", "ticksize", "Lotsize", "ExchangeCode")
_DERIVATIVES = ("Token", "InstrumentName", "ShortName", "ExpiryDate", "StrikePrice", "OptionType", "LotSize",
                "TickSize", "ExchangeCode")
# Exchanges publish no freeze quantity for cash; F&O freeze quantities come from a separate exchange
# file. When the master has none, these conservative stand-ins apply (the limits file caps orders anyway).
CASH_FREEZE_QUANTITY = 100_000
DERIVATIVE_FREEZE_LOTS = 20
_MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
# The largest decimal exponent an amount in rupees may have (``Decimal.adjusted()``): amounts stay below
# 1e13 rupees (ten trillion). Nothing the desk trades comes near; a larger value is garbage, and refusing
# it before it becomes an int keeps a hostile exponent from costing seconds.
MAX_RUPEES_EXPONENT = 12


_MAX_PROBLEMS = 20


class MasterError(ValueError):
    """The security master is missing, unreadable, or not in the expected format."""


class MasterDownloadError(MasterError):
    """The security master could not be fetched (network, HTTP status, size); nothing was parsed."""


@dataclass(frozen=True, slots=True)
class ContractFields:
    """How a Breeze REST row names a contract: the key to find it in the master."""

    exchange: Exchange
    stock_code: str
    expiry: date | None = None
    strike: int | None = None
    right: OptionRight | None = None


@dataclass(slots=True)
class SecurityMaster:
    """Every contract in the master, found by desk key, by stream symbol, or by Breeze's row fields.

    ``unavailable`` holds the exchanges whose file could not be read, with the reason; ``skipped``
    counts rows left out, and ``problems`` describes the first few (file, line, why).
    """

    by_key: dict[str, BreezeContract] = field(default_factory=dict)
    by_symbol: dict[str, BreezeContract] = field(default_factory=dict)
    by_fields: dict[ContractFields, BreezeContract] = field(default_factory=dict)
    unavailable: dict[Exchange, str] = field(default_factory=dict)
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, contract: BreezeContract) -> bool:
        """Take ``contract`` in; ``False`` (and nothing changes) when its key is already there."""
        instrument = contract.instrument
        if instrument.key in self.by_key:
            return False
        self.by_key[instrument.key] = contract
        # NSE cash and NFO share the stream prefix; like the SDK, the cash contract keeps the symbol.
        self.by_symbol.setdefault(contract.stream_symbol, contract)
        fields = ContractFields(instrument.exchange, contract.stock_code.upper(), instrument.expiry, instrument.strike, instrument.right)
        self.by_fields.setdefault(fields, contract)
        return True

    def skip(self, where: str, why: str) -> None:
        """Count a row left out; the first few are kept (``problems``) for the warning."""
        self.skipped += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(f"{where}: {why}")

    def resolve(self, keys: Iterable[str]) -> list[BreezeContract]:
        """The contracts for ``keys``; ``MasterError`` naming every key the master does not have,
        and why when its exchange's file was unreadable."""
        keys = list(keys)
        missing = [key for key in keys if key not in self.by_key]
        if missing:
            exchanges = {key.split(":", 1)[0] for key in missing}
            reasons = [f"{exchange} is unavailable ({why})" for exchange, why in self.unavailable.items()
                       if str(exchange) in exchanges]
            detail = f"; {'; '.join(reasons)}" if reasons else ""
            raise MasterError(f"not in the Breeze security master: {', '.join(missing)}{detail}")
        return [self.by_key[key] for key in keys]


def parse_master(data: bytes) -> SecurityMaster:
    """Read a ``SecurityMaster.zip``. A file that is missing or in a format the desk cannot read makes
    its exchange unavailable (logged); ``MasterError`` when the zip is not one, a member is damaged,
    or no file at all could be read."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise MasterError(f"the security master is not a zip file ({exc})") from None
    master = SecurityMaster()
    with archive:
        names = {Path(name).name: name for name in archive.namelist()}
        for name, exchange in _FILES.items():
            if name not in names:
                master.unavailable[exchange] = f"the security master has no {name}"
                continue
            try:
                raw = archive.read(names[name])
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                # Bit rot, not a format change: the whole download is suspect.
                raise MasterError(f"the security master's {name} is damaged ({type(exc).__name__}: {exc})") from None
            try:
                _read_file(name, exchange, raw, master)
            except _Unreadable as exc:
                master.unavailable[exchange] = str(exc)
    if len(master.unavailable) == len(_FILES):
        raise MasterError("no file of the security master could be read: " + "; ".join(master.unavailable.values()))
    for exchange, why in master.unavailable.items():
        log.warning("security master: %s is unavailable: %s", exchange, why)
    if master.skipped:
        log.warning("security master: %d rows skipped, first: %s", master.skipped, "; ".join(master.problems[:5]))
    return master


class _Unreadable(Exception):
    """One file of the master cannot be read at all (its header, its encoding): its exchange is unavailable."""


class _Lines:
    """The file's lines decoded one by one, so an undecodable line costs only its own row and every
    problem names its line. ``number`` is the line last handed to the CSV reader."""

    def __init__(self, name: str, data: bytes, master: SecurityMaster) -> None:
        self._name = name
        self._data = data
        self._master = master
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        for number, raw in enumerate(self._data.splitlines(keepends=True), start=1):
            self.number = number
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                if number == 1:
                    raise _Unreadable(f"{self._name} line 1 (the header) is not UTF-8: {exc.reason}") from None
                self._master.skip(f"{self._name} line {number}", f"not UTF-8 ({exc.reason} at byte {exc.start})")


def _read_file(name: str, exchange: Exchange, data: bytes, master: SecurityMaster) -> None:
    lines = _Lines(name, data, master)
    # skipinitialspace: ICICI writes `"Token", "ShortName"`; without it the quotes stay in the names.
    rows = csv.reader(lines, skipinitialspace=True)
    try:
        header = [_column(text) for text in next(rows)]
    except StopIteration:
        raise _Unreadable(f"{name} is empty") from None
    except csv.Error as exc:
        raise _Unreadable(f"{name} line 1 (the header) is not CSV: {exc}") from None
    required = _DERIVATIVES if exchange.is_derivatives else _CASH
    absent = [column for column in required if column not in header]
    if absent:
        raise _Unreadable(f"{name} line 1: column {', '.join(absent)} missing; the security master's format has changed")
    build = _derivative if exchange.is_derivatives else _cash
    while True:
        try:
            fields = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            master.skip(f"{name} line {lines.number}", f"not CSV ({exc})")
            continue
        if not any(text.strip() for text in fields):
            continue
        # A short row gets empty fields, so it fails its checks and is skipped.
        row = dict.fromkeys(header, "")
        row.update(zip(header, (text.strip() for text in fields), strict=False))
        where = f"{name} line {lines.number}"
        try:
            contract = build(exchange, row)
        # ArithmeticError: every number a row can hold (Decimal's own signals included) fails as that row only.
        except (InstrumentError, ValueError, KeyError, ArithmeticError, TypeError) as exc:
            master.skip(where, str(exc) or type(exc).__name__)
            continue
        if not master.add(contract):
            master.skip(where, f"{contract.instrument.key} listed twice; the first is kept")


def _column(text: str) -> str:
    # Padding outside the quotes is gone already; this takes padding and stray quotes inside them.
    return text.strip().strip('"').strip()


def _cash(exchange: Exchange, row: dict[str, str]) -> BreezeContract:
    symbol = row["ExchangeCode"].strip()
    lot = _lot(row["Lotsize"])
    freeze = _optional_int(row.get("FreezeQty")) or CASH_FREEZE_QUANTITY // lot * lot
    instrument = Instrument(
        key=instrument_key(exchange, symbol), exchange=exchange, symbol=symbol, underlying=symbol,
        segment=Segment.CASH, lot_size=lot, tick_size=_tick(row["ticksize"]), freeze_quantity=freeze,
    )
    return BreezeContract(instrument, row["Token"].strip(), row["ShortName"].strip())


def _derivative(exchange: Exchange, row: dict[str, str]) -> BreezeContract:
    symbol = row["ExchangeCode"].strip()
    kind = row["InstrumentName"].strip().upper()
    expiry = breeze_date(row["ExpiryDate"])
    lot = _lot(row["LotSize"])
    freeze = _optional_int(row.get("FreezeQty")) or DERIVATIVE_FREEZE_LOTS * lot
    strike: int | None = None
    right: OptionRight | None = None
    if kind.startswith("OPT"):
        segment = Segment.OPTIONS
        strike = _paise(row["StrikePrice"])
        right = {"CE": OptionRight.CALL, "PE": OptionRight.PUT}[row["OptionType"].strip().upper()]
    elif kind.startswith("FUT"):
        segment = Segment.FUTURES
    else:
        raise ValueError(f"instrument {kind!r} is neither a future nor an option")
    instrument = Instrument(
        key=instrument_key(exchange, symbol, expiry, strike, right), exchange=exchange, symbol=symbol,
        underlying=symbol, segment=segment, lot_size=lot, tick_size=_tick(row["TickSize"]),
        freeze_quantity=freeze, expiry=expiry, strike=strike, right=right,
    )
    return BreezeContract(instrument, row["Token"].strip(), row["ShortName"].strip())


def _tick(text: str) -> int:
    text = text.strip()
    return _paise(text) if "." in text else int(text)


def _lot(text: str) -> int:
    lot = int(text)
    if lot <= 0:
        # The default freeze quantity divides by it.
        raise ValueError(f"lot size {lot} is not positive")
    return lot


def _paise(text: str) -> int:
    rupees = Decimal(text.strip())
    # Infinity would pass the whole-paise check and fail in int(); an exponent like 1e999990 would take
    # int() half a minute.
    if not rupees.is_finite() or rupees.adjusted() > MAX_RUPEES_EXPONENT:
        raise ValueError(f"{text!r} is not an amount in rupees")
    paise = rupees * 100
    if paise != paise.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of paise")
    return int(paise)


def _optional_int(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text else None


@dataclass(frozen=True, slots=True)
class MasterLoad:
    """A loaded master and how fresh it is: ``stale`` is set (with the reason) when an old copy is in use."""

    master: SecurityMaster
    path: Path
    age_s: float
    stale: str | None = None


Downloader = Callable[[str, float], bytes]


def download(url: str, timeout: float) -> bytes:
    """Fetch ``url`` with a connect and read timeout and a size cap; ``MasterDownloadError`` on any failure."""
    import requests  # the SDK's own dependency, imported only when a Breeze profile runs

    try:
        with requests.get(url, timeout=(min(timeout, 10.0), timeout), stream=True) as response:
            response.raise_for_status()
            chunks, size = [], 0
            for chunk in response.iter_content(1 << 20):
                size += len(chunk)
                if size > _MAX_DOWNLOAD_BYTES:
                    raise MasterDownloadError(f"the security master at {url} is larger than {_MAX_DOWNLOAD_BYTES >> 20} MiB")
                chunks.append(chunk)
    except requests.RequestException as exc:
        raise MasterDownloadError(f"could not download the security master from {url}: {type(exc).__name__}: {exc}") from None
    return b"".join(chunks)


class MasterCache:
    """The cached ``SecurityMaster.zip`` in ``directory``, refreshed from ``url`` when older than ``max_age_s``."""

    def __init__(
        self, directory: Path, url: str, *, timeout_s: float = 30.0, max_age_s: float = 20 * 3600,
        grace_s: float = 5.0, fetch: Downloader = download, clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.url = url
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self.grace_s = grace_s
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self.background: threading.Thread | None = None

    @property
    def path(self) -> Path:
        return self.directory / MASTER_FILE

    def load(self) -> MasterLoad:
        """The cached master when fresh; else a new download; else the stale copy with a warning.

        With a stale copy the download runs in the background and ``load`` waits ``grace_s`` for it.
        ``MasterError`` only when there is no usable copy and the download fails.
        """
        cached: SecurityMaster | None = None
        age = float("inf")
        if self.path.exists():
            age = max(0.0, self._clock() - self.path.stat().st_mtime)
            try:
                cached = parse_master(self.path.read_bytes())
            except MasterError as exc:
                log.warning("the cached security master %s is unusable (%s); downloading a new one", self.path, exc)
        if cached is not None and age <= self.max_age_s:
            return MasterLoad(cached, self.path, age)
        if cached is None:
            try:
                return MasterLoad(self.refresh(), self.path, 0.0)
            except MasterDownloadError as exc:
                raise MasterDownloadError(
                    f"no security master in {self.directory} and the download failed: {exc}. "
                    "The desk needs it once to map instruments; connect to the internet and start again"
                ) from None
            except MasterError as exc:
                raise MasterError(
                    f"no usable security master in {self.directory}: the download from {self.url} worked, "
                    f"but the desk cannot read it: {exc}"
                ) from None
        outcome: list[SecurityMaster | MasterError] = []
        self.background = threading.Thread(target=self._refresh_into, args=(outcome,), name="breeze-master", daemon=True)
        self.background.start()
        self.background.join(self.grace_s)
        if outcome and isinstance(outcome[0], SecurityMaster):
            return MasterLoad(outcome[0], self.path, 0.0)
        why = f"the refresh failed ({outcome[0]})" if outcome else f"the refresh is still running after {self.grace_s:g}s"
        reason = f"using a security master {age / 3600:.1f} h old: {why}"
        log.warning(reason)
        return MasterLoad(cached, self.path, age, reason)

    def _refresh_into(self, outcome: list[SecurityMaster | MasterError]) -> None:
        try:
            outcome.append(self.refresh())
        except MasterError as exc:
            log.warning("security master refresh from %s failed: %s", self.url, exc)
            outcome.append(exc)
        except Exception as exc:
            log.exception("security master refresh crashed")
            outcome.append(MasterError(f"{type(exc).__name__}: {exc}"))

    def refresh(self) -> SecurityMaster:
        """Download, check and atomically replace the cached copy; the old copy stays on any failure.

        ``MasterDownloadError`` when the download fails, ``MasterError`` when what came is unreadable.
        """
        try:
            data = self._fetch(self.url, self.timeout_s)
        except MasterDownloadError:
            raise
        except MasterError as exc:
            raise MasterDownloadError(str(exc)) from None
        master = parse_master(data)
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._replace(data)
        log.info("security master refreshed from %s: %d contracts", self.url, len(master.by_key))
        return master

    def _replace(self, data: bytes) -> None:
        handle, temporary = tempfile.mkstemp(prefix=".master-", dir=self.directory)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
