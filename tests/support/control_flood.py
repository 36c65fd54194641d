"""A local process without the control key that floods a desk's control port, as a hostile or broken one would.

``python -m tests.support.control_flood PORT KIND...`` runs each KIND in its own thread until
killed (``flooding`` starts one process per kind): ``idle`` keeps connections open and silent (replacing those the desk drops), ``garbage``
connects and sends a line of random bytes in a tight loop, ``reconnect`` connects and hangs up in
a tight loop. It prints ``flooding`` once every kind has made its first connection.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

KINDS = ("idle", "garbage", "reconnect")
# More idle connections than the desk keeps unauthenticated, so it must drop some.
IDLE_HELD = 300


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=1)


def _idle(port: int, started: threading.Event) -> None:
    held: list[socket.socket] = []
    while True:
        with contextlib.suppress(OSError):
            held.append(_connect(port))
            started.set()
        if len(held) >= IDLE_HELD:
            held.pop(0).close()


def _garbage(port: int, started: threading.Event) -> None:
    while True:
        with contextlib.suppress(OSError), _connect(port) as sock:
            started.set()
            sock.sendall(os.urandom(200).replace(b"\n", b" ") + b"\n")


def _reconnect(port: int, started: threading.Event) -> None:
    while True:
        with contextlib.suppress(OSError):
            _connect(port).close()
            started.set()


def main(argv: list[str]) -> None:
    port, kinds = int(argv[0]), argv[1:]
    runs = {"idle": _idle, "garbage": _garbage, "reconnect": _reconnect}
    events = []
    for kind in kinds:
        started = threading.Event()
        threading.Thread(target=runs[kind], args=(port, started), daemon=True).start()
        events.append(started)
    for started in events:
        started.wait(30)
    print("flooding", flush=True)
    threading.Event().wait()


@contextmanager
def flooding(port: int, *kinds: str) -> Iterator[list[subprocess.Popen[str]]]:
    """Each kind of flood in its own process (one interpreter lock would throttle them), all under way when
    this yields; killed on the way out."""
    processes: list[subprocess.Popen[str]] = []
    try:
        for kind in kinds:
            processes.append(subprocess.Popen([sys.executable, "-m", "tests.support.control_flood", str(port), kind],
                                              stdout=subprocess.PIPE, text=True))
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "flooding", "the flood did not start"
        yield processes
    finally:
        for process in processes:
            process.kill()
            process.wait(30)


if __name__ == "__main__":
    main(sys.argv[1:])
