"""The running desk's local control channel: how ``main.py panic`` and ``main.py rearm`` reach it from outside the GUI.

Transport: TCP on 127.0.0.1 at a random port, which works the same on Windows and Linux (no Unix
sockets, no Qt). Any local user can connect to a loopback port, so every command is
authenticated with a key only the desk's user can read.

Discovery: on start the desk writes ``<home>/control.json``::

    {"pid": 4242, "port": 53111, "key": "<32 random bytes, hex>", "started_ns": 1795...}

atomically (temporary file, then ``os.replace``) and created with mode 0o600, so only the user
can read the key on POSIX. On Windows the mode bits do nothing; the file is protected by the ACL
of the user's profile folder, where the data folder lives by default.

Protocol: one command per connection, newline-delimited JSON, each line at most 64 KiB.

1. server → client: ``{"nonce": "<32 random bytes, hex>", "v": 1}``
2. client → server: ``{"command": str, "args": {...}, "mac": hex}`` with
   ``mac = HMAC-SHA256(key, nonce || canonical JSON of {"command", "args"})``
3. server → client: the reply object plus ``"mac"`` =
   ``HMAC-SHA256(key, nonce || canonical JSON of {"reply": <reply without mac>})``

The nonce is fresh per connection, so a recorded request is worthless on a new one; the reply's
MAC lets the client tell the desk from whatever else may have taken the port after a crash.
A request with a bad or missing MAC, an unknown command, or a malformed, oversized or late line
gets ``{"ok": false, "error": ...}`` and is logged; it never reaches a handler. Canonical JSON is
sorted keys, no whitespace, UTF-8, no NaN. The key never appears in a log line or an exception.

Floods: any local process can open connections, and none of them may keep the operator's panic
out. The server never refuses to accept; a connection that has not authenticated gets
``read_timeout`` (1 s: a real client writes its line the moment it has the nonce) and at most
``MAX_UNAUTHENTICATED`` of them are kept: when a new one arrives past that, the oldest already
refused (garbage, a bad MAC) is reset, else the oldest still silent. A connection is authenticated
the moment its request's MAC checks, on the same loop step that reads it, so once the operator's
line is in, the server can no longer drop it. Warnings about refused and dropped connections are
summarised, so a flood cannot fill the log. The client tries again, within its deadline, when a
connection is dropped before the desk could have run the command (after that too for a command
that may run twice, like panic). Panic has a second way in that no socket can block: the desk
watches the HALTED flag panic writes first (``app.engine.halt_watch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.store.canonical import canonical_json

log = logging.getLogger(__name__)

CONTROL_FILE_NAME = "control.json"
PROTOCOL_VERSION = 1
MAX_LINE = 64 * 1024
# A local client writes its one line the moment it has the nonce; anything slower is stuck or
# hostile, and each second one holds a place is a second a flood can use against the operator.
READ_TIMEOUT_S = 1.0
LINGER_MAX_BYTES = 1024 * 1024
# After a refusal the peer is known not to hold the key: it gets only a moment to read why.
REFUSED_LINGER_S = 0.2
# Unauthenticated connections kept at once; past this the oldest is dropped, never the newcomer.
# A flooder would have to open this many connections within one round trip of the operator's
# client (a millisecond or so locally) to push it out; well inside the usual 1024 descriptors.
MAX_UNAUTHENTICATED = 256
# The kernel's queue of connections not accepted yet: a burst of connects waits there instead of
# being refused. asyncio also accepts at most this many per loop step, so one step can never
# admit enough to push out every connection admitted before it.
BACKLOG = 100
# A flood of refusals is logged as its first line and then one summary per period.
LOG_SUMMARY_S = 5.0
# The client: one connect waits at most this long, since a connect lost to a full accept queue is
# only sent again after a second, and a fresh attempt is quicker.
CONNECT_ATTEMPT_S = 0.3
# A refused connect is tried again for this long (Windows refuses while the accept queue is full);
# refused past it, nothing listens.
REFUSED_RETRY_S = 0.2
RETRY_PAUSE_S = 0.01

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlUnavailable(Exception):
    """No desk could be reached over the control channel; ``reason`` says why, for the operator.

    ``pid`` is the process named in the control file, when one could be read.
    """

    def __init__(self, reason: str, pid: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pid = pid


def control_file(home: Path) -> Path:
    """Where a running desk publishes its port and key."""
    return home / CONTROL_FILE_NAME


def _canonical(value: Any) -> bytes:
    # The audit chain's canonical form: both ends must hash exactly what went over the wire.
    return canonical_json(value).encode("utf-8")


def _request_mac(key: bytes, nonce: bytes, command: str, args: dict[str, Any]) -> str:
    return hmac.new(key, nonce + _canonical({"command": command, "args": args}), hashlib.sha256).hexdigest()


def _reply_mac(key: bytes, nonce: bytes, reply: dict[str, Any]) -> str:
    # A different shape from the request's, so a request's MAC can never pass as a reply's.
    return hmac.new(key, nonce + _canonical({"reply": reply}), hashlib.sha256).hexdigest()


def _line(value: dict[str, Any]) -> bytes:
    return _canonical(value) + b"\n"


class _Refused(Exception):
    """A request that must not reach a handler; the message goes back to the client and to the log."""


class _Summarised:
    """Warnings that a flood repeats: the first is logged, then at most one summary per ``period`` seconds."""

    def __init__(self, period: float = LOG_SUMMARY_S) -> None:
        self._period = period
        self._quiet_until = 0.0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._quiet_until:
            self._suppressed += 1
            return
        self.flush()
        log.warning(message, *args)
        self._quiet_until = now + self._period

    def flush(self) -> None:
        if self._suppressed:
            log.warning("control: %d more refused or dropped connections not logged one by one", self._suppressed)
            self._suppressed = 0


class ControlServer:
    """Listens on 127.0.0.1 for authenticated commands and runs the matching handler on the desk's loop.

    ``handlers`` maps a command name to a coroutine function taking the request's ``args`` and
    returning a JSON-able reply (``{"ok": True, ...}``). ``read_timeout`` bounds the wait for a
    connection's request line; ``dropped`` counts the connections reset to make room for newer ones.
    """

    def __init__(self, home: Path, handlers: Mapping[str, Handler], *, read_timeout: float = READ_TIMEOUT_S) -> None:
        self.home = home
        self.read_timeout = read_timeout
        self.path = control_file(home)
        self._handlers = dict(handlers)
        self._key = b""
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        # Connections that have not authenticated, oldest first (dicts keep insertion order): those
        # still waiting for a request line, and those refused and being answered, dropped first.
        self._unauthenticated: dict[asyncio.StreamWriter, None] = {}
        self._refused: dict[asyncio.StreamWriter, None] = {}
        self._warnings = _Summarised()
        self.dropped = 0
        self.port = 0

    async def start(self) -> None:
        """Listen on a random loopback port and publish the port and a fresh key in ``control.json``."""
        if self._server is not None:
            raise RuntimeError("control server already started")
        self._key = secrets.token_bytes(32)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=MAX_LINE, backlog=BACKLOG)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            await asyncio.to_thread(self._publish)
        except OSError:
            await self.close()
            raise
        log.info("control channel listening on 127.0.0.1:%d (%s)", self.port, self.path)

    def _publish(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        document = {"pid": os.getpid(), "port": self.port, "key": self._key.hex(), "started_ns": time.time_ns()}
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        # O_EXCL with 0o600: the key is never readable by others, not even for a moment.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_canonical(document))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    async def close(self) -> None:
        """Stop listening, drop open connections, and remove ``control.json`` if it is still ours."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()
        self._warnings.flush()
        await asyncio.to_thread(self._unpublish)
        self._key = b""

    def _unpublish(self) -> None:
        # Another desk may have started since and written its own file: leave that one alone.
        try:
            document = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return
        if isinstance(document, dict) and document.get("pid") == os.getpid() and document.get("port") == self.port:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    # -- one connection ---------------------------------------------------------------------------

    def _admit(self, writer: asyncio.StreamWriter) -> None:
        """Track a new connection as unauthenticated; past the cap, reset the oldest refused one, else the oldest."""
        self._unauthenticated[writer] = None
        if len(self._unauthenticated) + len(self._refused) <= MAX_UNAUTHENTICATED:
            return
        tier = self._refused if self._refused else self._unauthenticated
        oldest = next(iter(tier))
        del tier[oldest]
        self.dropped += 1
        self._warnings.warning("control: dropped the oldest unauthenticated connection from %s: more than %d open",
                               oldest.get_extra_info("peername"), MAX_UNAUTHENTICATED)
        # A reset frees its place at once; its task sees the connection lost and ends. A real
        # client that was pushed out tries again.
        oldest.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        self._admit(writer)
        peer = writer.get_extra_info("peername")
        nonce = secrets.token_bytes(32)
        try:
            writer.write(_line({"nonce": nonce.hex(), "v": PROTOCOL_VERSION}))
            try:
                command, args = await self._read_request(reader, nonce)
                # No await since the MAC was checked: from here no flood can push this connection out.
                self._unauthenticated.pop(writer, None)
                authenticated = True
                reply = await self._run(command, args)
            except _Refused as refusal:
                if writer.transport.is_closing():
                    return  # dropped for a newer connection, or the client left without a word: nobody to answer
                authenticated = False
                # Answered but kept a moment to read the answer: the first to go when room is needed.
                del self._unauthenticated[writer]
                self._refused[writer] = None
                self._warnings.warning("control: refused a request from %s: %s", peer, refusal)
                reply = {"ok": False, "error": str(refusal)}
            writer.write(_line({**reply, "mac": _reply_mac(self._key, nonce, reply)}))
            await writer.drain()
            await self._linger(reader, writer, self.read_timeout if authenticated else REFUSED_LINGER_S)
        except OSError as exc:  # reset, gone (ENOTCONN on the half-close), or too slow to read its answer
            self._warnings.warning("control: connection from %s dropped: %s", peer, type(exc).__name__)
        except asyncio.CancelledError:
            # Only ``close`` cancels a connection; ending quietly keeps asyncio from logging each one.
            return
        finally:
            self._unauthenticated.pop(writer, None)
            self._refused.pop(writer, None)
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seconds: float) -> None:
        # Closing with unread input (a refused, oversized request) makes the OS reset the
        # connection, which can destroy the reply before the client reads it: say we are done,
        # then let the client hang up first, discarding what it still sends, for a bounded time.
        if writer.can_write_eof():
            writer.write_eof()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        discarded = 0
        while discarded <= LINGER_MAX_BYTES:
            try:
                chunk = await asyncio.wait_for(reader.read(MAX_LINE), max(deadline - loop.time(), 0))
            except TimeoutError:
                return
            if not chunk:
                return
            discarded += len(chunk)

    async def _read_request(self, reader: asyncio.StreamReader, nonce: bytes) -> tuple[str, dict[str, Any]]:
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\n"), self.read_timeout)
        except TimeoutError:
            raise _Refused(f"no request within {self.read_timeout:g}s") from None
        except asyncio.LimitOverrunError:
            raise _Refused(f"request longer than {MAX_LINE} bytes") from None
        except asyncio.IncompleteReadError:
            raise _Refused("connection closed before a complete request line") from None
        try:
            request = json.loads(raw)
        except (ValueError, RecursionError):
            # RecursionError: a line of thousands of nested brackets, well under MAX_LINE.
            raise _Refused("request is not JSON (or nested too deep)") from None
        if not isinstance(request, dict):
            raise _Refused("request is not a JSON object")
        command, args, mac = request.get("command"), request.get("args"), request.get("mac")
        if not isinstance(command, str) or not isinstance(args, dict):
            raise _Refused("request needs a string 'command' and an object 'args'")
        if not isinstance(mac, str):
            raise _Refused("request is not authenticated (no 'mac')")
        try:
            expected = _request_mac(self._key, nonce, command, args)
        except (ValueError, RecursionError):
            raise _Refused("request holds values that have no canonical JSON form") from None
        if not hmac.compare_digest(expected.encode("ascii"), mac.encode("utf-8", "replace")):
            raise _Refused("request authentication failed (wrong key or stale nonce)")
        if command not in self._handlers:
            raise _Refused(f"unknown command {command[:64]!r}")
        return command, args

    async def _run(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        log.info("control: running %r", command)
        try:
            reply = await self._handlers[command](args)
        except Exception as exc:  # the caller must hear that the command failed; the log has the traceback
            log.exception("control: command %r failed", command)
            return {"ok": False, "error": f"command {command!r} failed: {type(exc).__name__}"}
        try:
            _canonical(reply)
        except (TypeError, ValueError):
            log.error("control: command %r returned a reply that is not JSON", command)
            return {"ok": False, "error": f"command {command!r} returned an unusable reply"}
        return reply


# -- the client -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Endpoint:
    pid: int | None
    port: int
    key: bytes


def _read_control_file(home: Path) -> _Endpoint:
    path = control_file(home)
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ControlUnavailable(f"no desk has published a control channel ({path} does not exist)") from None
    except OSError as exc:
        raise ControlUnavailable(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except ValueError:
        raise ControlUnavailable(f"{path} is not valid JSON (damaged?)") from None
    if not isinstance(document, dict):
        raise ControlUnavailable(f"{path} does not hold a control description")
    pid = document.get("pid") if isinstance(document.get("pid"), int) else None
    port, key = document.get("port"), document.get("key")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ControlUnavailable(f"{path} names no valid port", pid)
    try:
        key_bytes = bytes.fromhex(key) if isinstance(key, str) else b""
    except ValueError:
        key_bytes = b""
    if len(key_bytes) != 32:
        raise ControlUnavailable(f"{path} holds no valid key", pid)
    return _Endpoint(pid, port, key_bytes)


class _Connection:
    """A blocking socket with a deadline for the whole exchange."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = b""

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self._remaining())
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise ValueError("line too long")
            self.sock.settimeout(self._remaining())
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the desk")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


class _Dropped(Exception):
    """This attempt ended before the desk could have run the command; another one may get through."""


def send_command(
    home: Path, command: str, args: dict[str, Any], timeout: float = 2.0, *, idempotent: bool = False
) -> dict[str, Any]:
    """Send one command to the desk running on ``home`` and return its authenticated reply.

    Blocking; the whole exchange (connect, challenge, request, reply), retries included, is bounded
    by ``timeout``. Raises ``ControlUnavailable`` when there is no usable ``control.json``, nothing
    listens on its port (a desk that crashed leaves the file behind), the answer is not from the
    desk, or no answer comes in time. A reply with ``"ok": false`` is returned, not raised.

    A connection dropped before the request went out (a flood made the desk drop it, or the accept
    queue was full) is tried again; one dropped after it went out only when ``idempotent``, because
    the desk may have run the command: a second panic does no harm, a second re-arm would fail.
    """
    deadline = time.monotonic() + timeout
    _canonical({"command": command, "args": args})  # a caller's bug (not JSON) is a ValueError/TypeError here
    endpoint = _read_control_file(home)
    where = f"127.0.0.1:{endpoint.port}"
    refused_until = time.monotonic() + REFUSED_RETRY_S
    attempts = 0
    while True:
        attempts += 1
        try:
            return _attempt(endpoint, where, command, args, deadline, timeout, idempotent)
        except ConnectionRefusedError:
            if time.monotonic() >= refused_until:
                raise ControlUnavailable(
                    f"nothing listens on {where}: the desk that wrote {control_file(home)} is gone", endpoint.pid
                ) from None
            why = "connection refused"
        except _Dropped as dropped:
            why = str(dropped)
        if time.monotonic() + RETRY_PAUSE_S >= deadline:
            raise ControlUnavailable(
                f"the desk at {where} did not answer within {timeout:g}s ({attempts} attempts, the last: {why})", endpoint.pid
            )
        time.sleep(RETRY_PAUSE_S)


def _attempt(
    endpoint: _Endpoint, where: str, command: str, args: dict[str, Any], deadline: float, timeout: float, idempotent: bool,
) -> dict[str, Any]:
    """One connection's exchange. Raises ``ConnectionRefusedError`` and ``_Dropped`` for the caller to retry."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ControlUnavailable(f"the desk at {where} did not answer within {timeout:g}s", endpoint.pid)
    try:
        sock = socket.create_connection(("127.0.0.1", endpoint.port), timeout=min(remaining, CONNECT_ATTEMPT_S))
    except ConnectionRefusedError:
        raise
    except TimeoutError:
        raise _Dropped("no connection within its share of the wait") from None
    except ConnectionError as exc:  # reset while connecting: dropped by a desk making room
        raise _Dropped(f"{type(exc).__name__} while connecting") from None
    except OSError as exc:
        raise ControlUnavailable(f"cannot connect to {where}: {exc.strerror or type(exc).__name__}", endpoint.pid) from None
    sent = False
    with sock:
        connection = _Connection(sock, deadline)
        try:
            challenge = json.loads(connection.read_line())
            nonce = bytes.fromhex(challenge["nonce"])
            connection.send(_line({"command": command, "args": args,
                                   "mac": _request_mac(endpoint.key, nonce, command, args)}))
            sent = True
            reply = json.loads(connection.read_line())
            mac = reply.pop("mac")
            authentic = hmac.compare_digest(_reply_mac(endpoint.key, nonce, reply).encode("ascii"), mac.encode("utf-8", "replace"))
        except TimeoutError:
            raise ControlUnavailable(f"the desk at {where} did not answer within {timeout:g}s", endpoint.pid) from None
        except ConnectionError as exc:
            if not sent or idempotent:
                raise _Dropped(f"{type(exc).__name__} {'after' if sent else 'before'} the request went out") from None
            raise ControlUnavailable(
                f"the connection to {where} failed after the request went out ({type(exc).__name__}): "
                "the desk may or may not have run it", endpoint.pid,
            ) from None
        except OSError as exc:
            raise ControlUnavailable(f"the connection to {where} failed: {type(exc).__name__}", endpoint.pid) from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ControlUnavailable(f"whatever listens on {where} does not speak the control protocol", endpoint.pid) from None
    if not authentic:
        raise ControlUnavailable(f"the answer from {where} is not from the desk (bad MAC)", endpoint.pid)
    result: dict[str, Any] = reply
    return result
