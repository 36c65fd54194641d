"""The Breeze emulator as ``tests.bench.breeze`` talks to it: in a process of its own by default.

A broker is another machine: an emulator on a thread of the benchmark's own process shares its
interpreter lock with the SDK and the adapter, and each thread hand-off then waits on the
emulator's work as well, which no desk sees. Run as a module, this starts the emulator (no ticks,
no rate limits), prints one JSON line (its addresses, the emulator's own test credentials, and the
last price of each key named), and serves until its standard input closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.brokers.breeze import (
    BreezeBroker,
    BreezeConfig,
    BreezeCredentials,
    Endpoints,
    MasterCache,
)
from tests.breeze_emulator import BreezeEmulator

ROOT = Path(__file__).resolve().parents[2]
SESSION_TOKEN = "48213577"


class Peer(Protocol):
    """What the benchmark needs of an emulator, wherever it runs."""

    @property
    def api_url(self) -> str: ...
    @property
    def api_v2_url(self) -> str: ...
    @property
    def stream_url(self) -> str: ...
    @property
    def feeds_url(self) -> str: ...
    @property
    def ohlc_url(self) -> str: ...
    @property
    def master_url(self) -> str: ...
    @property
    def api_key(self) -> str: ...
    @property
    def api_secret(self) -> str: ...

    def last_price(self, token_or_key: str) -> int: ...


@dataclass(frozen=True, slots=True)
class RemotePeer:
    """An emulator in another process, as it described itself."""

    api_url: str
    api_v2_url: str
    stream_url: str
    feeds_url: str
    ohlc_url: str
    master_url: str
    api_key: str
    api_secret: str
    prices: dict[str, int]

    def last_price(self, token_or_key: str) -> int:
        return self.prices[token_or_key]


@contextmanager
def emulator(keys: list[str], *, in_process: bool) -> Iterator[Peer]:
    """A running emulator quoting ``keys``: on a thread here, or (the default) in its own process."""
    if in_process:
        with BreezeEmulator(tick_interval_s=None, enforce_rate_limits=False, session_token=SESSION_TOKEN) as local:
            yield local
        return
    child = subprocess.Popen([sys.executable, "-m", "tests.bench.breeze_peer", *keys], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        line = child.stdout.readline()
        if not line:
            raise SystemExit(f"the emulator process ended before it was ready (exit {child.wait(10)})")
        yield RemotePeer(**json.loads(line))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def make_broker(peer: Peer, cache: Path, keys: list[str]) -> BreezeBroker:
    """The desk's Breeze adapter on ``peer``, as ``tests.brokers.breeze.harness.make_broker`` builds it."""
    loaded = MasterCache(cache, peer.master_url).load()
    endpoints = Endpoints(peer.api_url, peer.api_v2_url, peer.stream_url, peer.feeds_url, peer.ohlc_url)
    return BreezeBroker(
        BreezeConfig(cache_dir=cache, endpoints=endpoints),
        BreezeCredentials(peer.api_key, peer.api_secret),
        loaded.master,
        loaded.master.resolve(keys),
        session_token=SESSION_TOKEN,
    )


def serve(keys: list[str]) -> None:
    with BreezeEmulator(tick_interval_s=None, enforce_rate_limits=False, session_token=SESSION_TOKEN) as local:
        described = {
            "api_url": local.api_url, "api_v2_url": local.api_v2_url, "stream_url": local.stream_url,
            "feeds_url": local.feeds_url, "ohlc_url": local.ohlc_url, "master_url": local.master_url,
            "api_key": local.api_key, "api_secret": local.api_secret,
            "prices": {key: local.last_price(key) for key in keys},
        }
        print(json.dumps(described), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    serve(sys.argv[1:])
