"""Containment of the breeze-connect SDK: everything hazardous it does, done on the desk's terms.

What the SDK does and what this module does about it:

- It imports its settings as a top-level module named ``config`` (putting its own folder on
  ``sys.path``) and reads the URLs from it at call time. The desk loads that file itself, under that
  name, before the SDK does, and sets the endpoints there (``apply_endpoints``). Another module
  already called ``config`` in the process would be picked up instead: ``load_sdk`` refuses then.
- At import it downloads the security master from the internet with no timeout, and again in every
  ``generate_session``. The desk points ``config.SECURITY_MASTER_URL`` at its own cached copy
  (``file://``); see ``master.MasterCache``.
- At import it creates ``./logs`` in the working directory and attaches file handlers that log at
  DEBUG, including account data. The import runs with the working directory switched to the desk's
  cache folder (under a lock: the one process-wide side effect, for the import's duration only);
  the file handlers are then closed and removed, the files deleted, and its ``APILogger`` and
  ``WebsocketLogger`` loggers set to INFO so they reach the desk's redacting log handlers only.
- At import it sets ``urllib3``'s ``HAS_IPV6 = False`` process-wide: every ``requests``/``urllib3``
  connection in the desk process then resolves IPv4 only. Harmless for Breeze (IPv4 endpoints) and
  the desk's other traffic (loopback, PostgreSQL through libpq, which does not use urllib3); left as is.
- It sets no HTTP timeout and opens a new connection per call. ``HttpGuard`` stands in for the
  ``requests`` module inside the SDK: every request gets the calling broker's connect and read
  timeout, reuses pooled connections, is counted (the SDK's hidden calls included) and a 5xx answer
  raises ``HttpStatusError`` instead of reaching the SDK's ``.json()``.
- Its socket.io handlers (``SocketEventBreeze.on_message`` for ``stock`` and ``order`` events) run on
  a thread per message and raise on what they cannot parse (``IndexError`` in ``parse_data`` on a
  short tick list): the exception ended the thread with a traceback on stderr, and the desk never
  knew. ``load_sdk`` wraps those handlers: an exception is handed to the callable the desk set as
  ``ERROR_HOOK`` on the ``BreezeConnect`` object (logged once per kind, secrets scrubbed, when none
  is set). A lost order notification needs the order book read again, a lost tick does not, and
  both fail alike (``IndexError in parse_data``) in the one ``on_message``: so ``notify``, the only
  place the SDK registers ``order`` events, has them go to the same handler under its own name,
  ``ORDER_HANDLER``.
- Importing it loads pandas and socket.io: ``load_sdk`` is called from a worker thread, never from
  the GUI thread, and only when a Breeze profile is used.
"""

from __future__ import annotations

import base64
import functools
import importlib
import importlib.util
import io
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
from requests.adapters import BaseAdapter, HTTPAdapter

from app.brokers.base import BrokerError, BrokerErrorCode

from .errors import HttpStatusError

log = logging.getLogger(__name__)

SDK_LOGGERS = ("APILogger", "WebsocketLogger")
_ENDPOINT_NAMES = {
    "api_url": "API_URL",
    "api_v2_url": "BREEZE_NEW_URL",
    "stream_url": "LIVE_STREAM_URL",
    "feeds_url": "LIVE_FEEDS_URL",
    "ohlc_url": "LIVE_OHLC_STREAM_URL",
}
_LOCK = threading.Lock()
_scope = threading.local()
# The SDK's socket.io handlers, on its ``SocketEventBreeze`` class.
SOCKET_HANDLERS = ("on_message", "on_ohlc_stream")
# The handler name an ``order`` event's failure reaches ``ERROR_HOOK`` with (a ``stock`` event's is ``on_message``).
ORDER_HANDLER = "on_message(order)"
# The attribute of a ``BreezeConnect`` object that takes ``(handler name, exception)`` from a failed handler.
ERROR_HOOK = "bulwark_on_handler_error"
# How much of a failed handler's exception text reaches a log line.
ERROR_TEXT_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the SDK sends its calls; ``None`` keeps the SDK's own (ICICI's servers)."""

    api_url: str | None = None
    api_v2_url: str | None = None
    stream_url: str | None = None
    feeds_url: str | None = None
    ohlc_url: str | None = None


@dataclass(slots=True)
class CallScope:
    """The HTTP terms for SDK calls made on this thread: timeouts, and who counts the requests."""

    timeout: tuple[float, float]
    on_request: Callable[[str, str], None] | None = None


class _Sdk:
    """The process-wide SDK state: there is one SDK module per process, so one of these."""

    module: ClassVar[ModuleType | None] = None
    config: ClassVar[ModuleType | None] = None
    defaults: ClassVar[dict[str, str]] = {}


def run_scoped(scope: CallScope, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on this (worker) thread with ``scope``'s HTTP terms applied to every SDK request."""
    _scope.current = scope
    try:
        return fn(*args, **kwargs)
    finally:
        _scope.current = None


def load_sdk(endpoints: Endpoints, master_file: Path, work_dir: Path) -> ModuleType:
    """The contained ``breeze_connect.breeze_connect`` module, imported once per process; call it
    from a worker thread. Sets the endpoints and the master file for the calls that follow."""
    with _LOCK:
        module, config = _Sdk.module, _Sdk.config
        if module is None or config is None:
            config = _load_config()
            _Sdk.defaults = {attr: getattr(config, attr) for attr in (*_ENDPOINT_NAMES.values(), "SECURITY_MASTER_URL")}
            _Sdk.config = config
            _apply(config, endpoints, master_file)
            module = _Sdk.module = _import_in(work_dir)
            _contain_logging(work_dir)
            module.requests = HttpGuard()  # type: ignore[attr-defined]
            _contain_handlers(module)
        _apply(config, endpoints, master_file)
        return module


def _load_config() -> ModuleType:
    spec = importlib.util.find_spec("breeze_connect")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError(BrokerErrorCode.UNAVAILABLE, "the breeze-connect package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "config.py"
    existing = sys.modules.get("config")
    if existing is not None:
        if Path(getattr(existing, "__file__", "") or "").resolve() != path.resolve():
            raise BrokerError(
                BrokerErrorCode.UNAVAILABLE,
                f"a module named 'config' ({getattr(existing, '__file__', '?')}) is already loaded; the Breeze SDK "
                "imports its settings under that name and would use the wrong one",
            )
        return existing
    config_spec = importlib.util.spec_from_file_location("config", path)
    if config_spec is None or config_spec.loader is None:
        raise BrokerError(BrokerErrorCode.UNAVAILABLE, f"the Breeze SDK's settings ({path}) cannot be loaded")
    config = importlib.util.module_from_spec(config_spec)
    sys.modules["config"] = config
    config_spec.loader.exec_module(config)
    return config


def _import_in(work_dir: Path) -> ModuleType:
    work_dir.mkdir(parents=True, exist_ok=True)
    previous = os.getcwd()
    os.chdir(work_dir)
    try:
        return importlib.import_module("breeze_connect.breeze_connect")
    except Exception as exc:
        raise BrokerError(BrokerErrorCode.UNAVAILABLE, f"the Breeze SDK failed to import: {type(exc).__name__}: {exc}") from exc
    finally:
        os.chdir(previous)


def _contain_logging(work_dir: Path) -> None:
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        # DEBUG carries account data (funds, positions, raw responses); INFO and up go to the desk's log.
        logger.setLevel(logging.INFO)
        logger.propagate = True
    logs = work_dir / "logs"
    for file in ("apiLogs.log", "websocketLogs.log"):
        (logs / file).unlink(missing_ok=True)
    try:
        logs.rmdir()
    except OSError:
        log.debug("left %s in place: not empty", logs)


def _contain_handlers(module: ModuleType) -> None:
    handlers = module.SocketEventBreeze
    on_order = _contained(ORDER_HANDLER, handlers.on_message)
    for name in SOCKET_HANDLERS:
        setattr(handlers, name, _contained(name, getattr(handlers, name)))
    handlers.notify = _routing_orders(handlers.notify, on_order)


def _routing_orders(notify: Callable[[Any], None], on_order: Callable[..., Any]) -> Callable[[Any], None]:
    @functools.wraps(notify)
    def routed(self: Any) -> None:
        notify(self)
        # Replaces the registration notify just made: same handler, but its failures name the order path.
        self.sio.on("order", functools.partial(on_order, self))

    return routed


def _contained(name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    unhooked: set[str] = set()

    @functools.wraps(handler)
    def contained(self: Any, *args: Any) -> Any:
        try:
            return handler(self, *args)
        except Exception as exc:  # noqa: BLE001 - the SDK's handler threads must never die with a traceback
            hook = getattr(getattr(self, "breeze", None), ERROR_HOOK, None)
            if callable(hook):
                hook(name, exc)
                return None
            kind = error_kind(exc)
            if kind not in unhooked:
                unhooked.add(kind)
                log.error("Breeze SDK socket handler %s raised %s: %s", name, kind, error_text(exc, getattr(self, "breeze", None)))
            return None

    return contained


def error_kind(exc: BaseException) -> str:
    """``IndexError in parse_data``: the exception's type and the function it was raised in."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{type(exc).__name__} in {frames[-1].name}" if frames else type(exc).__name__


def error_text(exc: BaseException, breeze: Any, *secrets: str) -> str:
    """The exception's text scrubbed (see ``scrub``), then cut to ``ERROR_TEXT_LIMIT`` characters: cut
    first, a secret across the cut would keep its first part and no longer match."""
    return scrub(str(exc), breeze, *secrets)[:ERROR_TEXT_LIMIT]


def scrub(text: str, breeze: Any, *secrets: str) -> str:
    """``text`` without ``secrets`` nor those the SDK object ``breeze`` holds: the API key and secret,
    the session key, and the session header it derives from them (``None`` holds none)."""
    user = getattr(breeze, "user_id", None) or ""
    session_key = getattr(breeze, "session_key", None) or ""
    header = base64.b64encode(f"{user}:{session_key}".encode()).decode() if session_key else ""
    held = (getattr(breeze, "api_key", None), getattr(breeze, "secret_key", None), session_key, header)
    # Longest first: a secret that contains another is redacted whole.
    for secret in sorted({s for s in (*secrets, *held) if isinstance(s, str) and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "[REDACTED]")
    return text


def _apply(config: ModuleType, endpoints: Endpoints, master_file: Path) -> None:
    for field, attr in _ENDPOINT_NAMES.items():
        value = getattr(endpoints, field)
        setattr(config, attr, value if value is not None else _Sdk.defaults[attr])
    # The import itself reads this too (``_apply`` runs before it): the cached file, never the internet.
    vars(config)["SECURITY_MASTER_URL"] = master_file.as_uri()


class HttpGuard:
    """Stands in for the ``requests`` module inside the SDK (which calls ``requests.get/post/put/delete``)."""

    def __init__(self) -> None:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.mount("file://", _FileAdapter())
        self._session = session

    def get(self, url: str, **kwargs: Any) -> Any:
        return self._send("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self._send("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Any:
        return self._send("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self._send("DELETE", url, **kwargs)

    def _send(self, method: str, url: str, **kwargs: Any) -> Any:
        scope: CallScope | None = getattr(_scope, "current", None)
        if url.startswith("file:"):
            return self._session.request(method, url)
        if scope is None:
            # Every SDK call the desk makes runs in a scope; a call outside one is a bug, not a slow path.
            raise BrokerError(BrokerErrorCode.UNAVAILABLE, f"Breeze SDK request outside a desk call: {method} {url}")
        kwargs["timeout"] = scope.timeout
        if scope.on_request is not None:
            scope.on_request(method, url)
        response = self._session.request(method, url, **kwargs)
        if response.status_code >= 500:
            raise HttpStatusError(response.status_code, url)
        return response


class _FileAdapter(BaseAdapter):
    """Serves ``file://`` URLs (the cached security master) to the SDK's ``requests.get``."""

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        response = requests.Response()
        path = Path(url2pathname(urlsplit(request.url).path))
        response.raw = io.BytesIO(path.read_bytes())
        response.status_code = 200
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        """Nothing to release: every answer is read whole."""
