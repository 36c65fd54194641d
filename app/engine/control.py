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
# A local client writes its one line at once; anything slower is stuck or hostile.
READ_TIMEOUT_S = 5.0
LINGER_MAX_BYTES = 1024 * 1024
MAX_CONNECTIONS = 16

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


class ControlServer:
    """Listens on 127.0.0.1 for authenticated commands and runs the matching handler on the desk's loop.

    ``handlers`` maps a command name to a coroutine function taking the request's ``args`` and
    returning a JSON-able reply (``{"ok": True, ...}``).
    """

    def __init__(self, home: Path, handlers: Mapping[str, Handler], *, read_timeout: float = READ_TIMEOUT_S) -> None:
        self.home = home
        self.read_timeout = read_timeout
        self.path = control_file(home)
        self._handlers = dict(handlers)
        self._key = b""
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self.port = 0

    async def start(self) -> None:
        """Listen on a random loopback port and publish the port and a fresh key in ``control.json``."""
        if self._server is not None:
            raise RuntimeError("control server already started")
        self._key = secrets.token_bytes(32)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=MAX_LINE)
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

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        peer = writer.get_extra_info("peername")
        nonce = secrets.token_bytes(32)
        try:
            if len(self._connections) > MAX_CONNECTIONS:
                # Any local user can open connections; a flood must not starve the operator's panic.
                log.warning("control: refused a connection from %s: %d already open", peer, MAX_CONNECTIONS)
                return
            writer.write(_line({"nonce": nonce.hex(), "v": PROTOCOL_VERSION}))
            await writer.drain()
            try:
                command, args = await self._read_request(reader, nonce)
                reply = await self._run(command, args)
            except _Refused as refusal:
                log.warning("control: refused a request from %s: %s", peer, refusal)
                reply = {"ok": False, "error": str(refusal)}
            writer.write(_line({**reply, "mac": _reply_mac(self._key, nonce, reply)}))
            await writer.drain()
            await self._linger(reader, writer)
        except (ConnectionError, TimeoutError) as exc:
            log.warning("control: connection from %s dropped: %s", peer, type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self.read_timeout)
            if task is not None:
                self._connections.discard(task)

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Closing with unread input (a refused, oversized request) makes the OS reset the
        # connection, which can destroy the reply before the client reads it: say we are done,
        # then let the client hang up first, discarding what it still sends, for a bounded time.
        if writer.can_write_eof():
            writer.write_eof()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout
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
        except ValueError:
            raise _Refused("request is not JSON") from None
        if not isinstance(request, dict):
            raise _Refused("request is not a JSON object")
        command, args, mac = request.get("command"), request.get("args"), request.get("mac")
        if not isinstance(command, str) or not isinstance(args, dict):
            raise _Refused("request needs a string 'command' and an object 'args'")
        if not isinstance(mac, str):
            raise _Refused("request is not authenticated (no 'mac')")
        try:
            expected = _request_mac(self._key, nonce, command, args)
        except ValueError:
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


def send_command(home: Path, command: str, args: dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
    """Send one command to the desk running on ``home`` and return its authenticated reply.

    Blocking; the whole exchange (connect, challenge, request, reply) is bounded by ``timeout``.
    Raises ``ControlUnavailable`` when there is no usable ``control.json``, nothing listens on its
    port (a desk that crashed leaves the file behind), the answer is not from the desk, or no
    answer comes in time. A reply with ``"ok": false`` is returned, not raised.
    """
    deadline = time.monotonic() + timeout
    _canonical({"command": command, "args": args})  # a caller's bug (not JSON) is a ValueError/TypeError here
    endpoint = _read_control_file(home)
    where = f"127.0.0.1:{endpoint.port}"
    try:
        sock = socket.create_connection(("127.0.0.1", endpoint.port), timeout=max(deadline - time.monotonic(), 0.001))
    except ConnectionRefusedError:
        raise ControlUnavailable(
            f"nothing listens on {where}: the desk that wrote {control_file(home)} is gone", endpoint.pid
        ) from None
    except TimeoutError:
        raise ControlUnavailable(f"no connection to {where} within {timeout:g}s", endpoint.pid) from None
    except OSError as exc:
        raise ControlUnavailable(f"cannot connect to {where}: {exc.strerror or type(exc).__name__}", endpoint.pid) from None
    with sock:
        connection = _Connection(sock, deadline)
        try:
            challenge = json.loads(connection.read_line())
            nonce = bytes.fromhex(challenge["nonce"])
            connection.send(_line({"command": command, "args": args,
                                   "mac": _request_mac(endpoint.key, nonce, command, args)}))
            reply = json.loads(connection.read_line())
            mac = reply.pop("mac")
            authentic = hmac.compare_digest(_reply_mac(endpoint.key, nonce, reply).encode("ascii"), mac.encode("utf-8", "replace"))
        except TimeoutError:
            raise ControlUnavailable(f"the desk at {where} did not answer within {timeout:g}s", endpoint.pid) from None
        except OSError as exc:
            raise ControlUnavailable(f"the connection to {where} failed: {type(exc).__name__}", endpoint.pid) from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ControlUnavailable(f"whatever listens on {where} does not speak the control protocol", endpoint.pid) from None
    if not authentic:
        raise ControlUnavailable(f"the answer from {where} is not from the desk (bad MAC)", endpoint.pid)
    result: dict[str, Any] = reply
    return result
