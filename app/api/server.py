"""The local API served on the desk's own event loop: ``ApiServer``, a ``DeskService``.

uvicorn's ``Server`` runs as a task on the loop that runs the engine (no second thread: a route
awaits the engine directly, as the GUI does). The server binds its own socket so that a port in use
is a clear error before anything starts, and so that the socket is made with ``IPPROTO_TCP``: asyncio
sets TCP_NODELAY only on sockets whose proto says TCP, and without it every small answer waits for
the client's delayed ACK (~40 ms instead of ~0.5 ms). The desk owns the process's signals, so the
server installs no handlers of its own.

Tests and benchmarks serve an engine they built, without a desk::

    server = ApiServer(settings.api, engine=engine, clients=directory)
    await server.start()          # or: await server.start(desk) inside a desk
    ... http://127.0.0.1:{server.port} ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
import socket
import sys
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from app.api.alert_log import AlertLog
from app.api.application import create_app
from app.api.auth import RefusalAuditor
from app.api.context import ApiContext
from app.api.idempotency import IdempotencyStore
from app.api.rate_limit import ClientRateLimiter
from app.domain.audit import AuditEventType, AuditSource
from app.domain.events import AlertLevel
from app.engine.engine import Engine
from app.security.api_clients import ApiClientDirectory
from app.settings import ApiSettings

if TYPE_CHECKING:
    from app.desk import Desk

log = logging.getLogger(__name__)

# uvicorn writes a WebSocket's request line (with its `?token=`) to `uvicorn.error`: at INFO on accept
# ("WebSocket /v1/stream?token=... [accepted]"), at DEBUG/TRACE more. These are the loggers it writes to.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
_QUERY_TOKEN = re.compile(r"(token=)[^&\s\"']*", re.IGNORECASE)
_BARE_TOKEN = re.compile(r"bwk_[A-Za-z0-9_\-]+")
HIDDEN = "<hidden>"

RELOAD_SECONDS = 2.0
# Requests in flight get this long to finish when the server stops; then they are cut.
GRACE_SECONDS = 3
# Received WebSocket frames buffered per connection before uvicorn stops reading its socket.
WS_MAX_QUEUE = 4


class ApiServeError(RuntimeError):
    """The API cannot serve: the port is taken, the address cannot be bound, the TLS files are unusable."""


class HideTokens(logging.Filter):
    """Rewrites a record's message so that no API token is in it: ``token=<hidden>`` and any ``bwk_...``.

    On uvicorn's own loggers, because the desk's log redaction (``app.logs.redact_in_logs``) knows only
    the secrets it was told, and API tokens are never told to it (they are not kept in the clear)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = _BARE_TOKEN.sub(HIDDEN, _QUERY_TOKEN.sub(r"\g<1>" + HIDDEN, message))
        if hidden != message:
            record.msg, record.args = hidden, ()
        return True


class _DeskServer(uvicorn.Server):
    """uvicorn's server without its signal handlers: the desk decides when the process stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ApiServer:
    """Serves the local API beside a running engine (see the module). ``port`` holds the bound port after
    ``start`` (useful with port 0); ``url`` the base address; ``context`` what the routes read.

    In a desk, ``start(desk)`` takes the desk's engine and its API client directory (the one its dialog changes). Without
    one, pass ``engine`` and ``clients``. ``database_ok`` answers readiness (default: the engine's audit
    recorder has not failed); ``clock`` is the monotonic clock of the rate limits, idempotency keys and
    refusal coalescing; ``announce`` hears the URL once serving (``simulate --api`` prints it).
    """

    name = "local API"

    def __init__(
        self,
        settings: ApiSettings,
        *,
        engine: Engine | None = None,
        clients: ApiClientDirectory | None = None,
        database_ok: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        reload_seconds: float = RELOAD_SECONDS,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._engine = engine
        self._clients = clients
        self._database_ok = database_ok
        self._clock = clock
        self._reload_seconds = reload_seconds
        self._announce = announce
        self.context: ApiContext | None = None
        self.app: FastAPI | None = None
        self.port: int | None = None
        self._server: _DeskServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._reloader: asyncio.Task[None] | None = None
        self._stopping = False
        self._hide_tokens = HideTokens()

    @property
    def url(self) -> str:
        """``http(s)://host:port``, once started."""
        if self.port is None:
            raise RuntimeError("the local API has not started")
        scheme = "https" if self.settings.tls_cert is not None else "http"
        host = self.settings.host
        return f"{scheme}://[{host}]:{self.port}" if ":" in host else f"{scheme}://{host}:{self.port}"

    async def start(self, desk: Desk | None = None) -> None:
        """Bind and serve; raises ``ApiServeError`` (or the directory's error) with a reason the operator can act on."""
        if self._task is not None:
            raise RuntimeError("the local API is already serving")
        engine, clients = self._parts(desk)
        # The port first: in use is the likely failure, and then nothing else has been made.
        sock = _bind(self.settings.host, self.settings.port)
        try:
            context, config = self._configure(engine, clients, desk)
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        server = _DeskServer(config)
        self._server, self.context, self._stopping = server, context, False
        self._hide_tokens_in_uvicorn_logs(True)
        self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name="api.server")
        while not server.started:
            if self._task.done():
                failed = self._task
                self._task = self._server = self.context = None
                sock.close()
                context.alerts.close()
                self._hide_tokens_in_uvicorn_logs(False)
                exc = None if failed.cancelled() else failed.exception()
                reason = f": {type(exc).__name__}: {exc}" if exc is not None else ""
                raise ApiServeError(f"the local API did not start on {self.url}{reason}") from exc
            await asyncio.sleep(0.005)
        self._task.add_done_callback(self._ended)
        self._reloader = asyncio.get_running_loop().create_task(self._reload_clients(clients), name="api.reload")
        engine.record(AuditEventType.API_SERVING, {"address": self.url, "tls": self.settings.tls_cert is not None},
                      "system", AuditSource.API)
        log.info("the local API is serving at %s", self.url)
        if self._announce is not None:
            self._announce(self.url)

    def _hide_tokens_in_uvicorn_logs(self, on: bool) -> None:
        for name in UVICORN_LOGGERS:
            logger = logging.getLogger(name)
            if on:
                logger.addFilter(self._hide_tokens)
            else:
                logger.removeFilter(self._hide_tokens)

    def _configure(self, engine: Engine, clients: ApiClientDirectory, desk: Desk | None) -> tuple[ApiContext, uvicorn.Config]:
        alerts = AlertLog(engine.bus, keep=1000)
        try:
            return self._configure_with(engine, clients, desk, alerts)
        except BaseException:
            alerts.close()
            raise

    def _configure_with(
        self, engine: Engine, clients: ApiClientDirectory, desk: Desk | None, alerts: AlertLog,
    ) -> tuple[ApiContext, uvicorn.Config]:
        context = ApiContext(
            engine=engine, clients=clients, settings=self.settings, desk=desk, alerts=alerts,
            limiter=ClientRateLimiter(self.settings.burst, self.settings.per_minute, clock=self._clock),
            idempotency=IdempotencyStore(clock=self._clock),
            database_ok=self._database_ok or _recorder_ok(engine),
            refusals=RefusalAuditor(engine.record, clock=self._clock),
        )
        self.app = create_app(context)
        config = uvicorn.Config(
            # h11 whatever else is installed: the parser the tests and the benchmark ran (httptools measured no faster here).
            self.app, host=self.settings.host, port=self.settings.port, lifespan="off", log_config=None, http="h11",
            # Off: an access line per request is noise on the desk's log. It is not what keeps a WebSocket's
            # `?token=` out of the log (uvicorn.error writes that request line too): HideTokens does that.
            access_log=False, server_header=False, timeout_graceful_shutdown=GRACE_SECONDS,
            # WebSocket frames are held to the same size as request bodies (1009 past it), and few wait unread.
            ws_max_size=self.settings.max_body_bytes, ws_max_queue=WS_MAX_QUEUE,
            ssl_certfile=self.settings.tls_cert, ssl_keyfile=self.settings.tls_key,
        )
        try:
            config.load()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ApiServeError(
                f"the local API cannot use its TLS certificate {self.settings.tls_cert} and key {self.settings.tls_key}: {exc}"
            ) from None
        return context, config

    def _parts(self, desk: Desk | None) -> tuple[Engine, ApiClientDirectory]:
        if desk is None:
            if self._engine is None or self._clients is None:
                raise RuntimeError("an ApiServer without a desk needs engine= and clients=")
            return self._engine, self._clients
        engine = desk.running_engine
        if self._clients is not None:
            return engine, self._clients
        if desk.writer is None:
            raise ApiServeError("the local API needs the desk's database: its API clients are kept there")
        # The desk's own directory, the one its dialog changes: a disable or rotate there counts at once.
        return engine, desk.api_clients

    async def _reload_clients(self, clients: ApiClientDirectory) -> None:
        """Clients added, disabled or rotated by another process (the api-client command) count within seconds."""
        while True:
            await asyncio.sleep(self._reload_seconds)
            reading = asyncio.ensure_future(asyncio.to_thread(clients.reload))
            try:
                await asyncio.shield(reading)
            except asyncio.CancelledError:
                # Cancelling cannot stop the worker thread; it reads the store, so stop waits until it is done.
                await asyncio.gather(reading, return_exceptions=True)
                raise
            except Exception:
                log.exception("the local API could not re-read its clients; it keeps the last list")

    def _ended(self, task: asyncio.Task[None]) -> None:
        # Not the engine's supervisor: the API stopping is no reason to halt trading (the desk's own window,
        # kill switch and control channel do not depend on it), but it must never be silent.
        if self._stopping or task.cancelled():
            return
        exc = task.exception()
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else "it ended"
        log.critical("the local API stopped unexpectedly: %s", reason, exc_info=exc)
        if self.context is not None:
            self.context.engine.alert(AlertLevel.CRITICAL, self.name, f"the {self.name} stopped unexpectedly: {reason}")

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (a few seconds at most), close. Never raises."""
        task, server, reloader = self._task, self._server, self._reloader
        if task is None or server is None:
            return
        self._stopping = True
        self._task = self._reloader = None
        if reloader is not None:
            reloader.cancel()
            # Awaited: a reload running in its worker thread must be over before the desk closes the store.
            await asyncio.gather(reloader, return_exceptions=True)
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), GRACE_SECONDS + 2)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except Exception:
            log.exception("the local API did not stop cleanly")
        if self.context is not None:
            self.context.alerts.close()
            self.context.engine.record(AuditEventType.API_STOPPED, {"address": self.url}, "system", AuditSource.API)
        self._hide_tokens_in_uvicorn_logs(False)
        log.info("the local API at %s stopped", self.url)


def _recorder_ok(engine: Engine) -> Callable[[], bool]:
    def ok() -> bool:
        return engine.recorder is not None and not engine.recorder.failed
    return ok


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (see the module for why IPPROTO_TCP)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ApiServeError(f"the local API cannot listen on {host}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if sys.platform != "win32":
            # Rebinding right after a restart, past old connections in TIME_WAIT; on Windows the option
            # would let a second desk steal the port, so it is left off there.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
            raise ApiServeError(
                f"the local API cannot listen on {host} port {port}: the port is in use (another desk or program); "
                "set api.port to a free port"
            ) from None
        raise ApiServeError(f"the local API cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    return sock
