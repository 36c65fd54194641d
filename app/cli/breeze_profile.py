"""The Breeze profile put together from settings and the keyring: credentials, today's session
token, the cached security master and the adapter. Shared by ``simulate``, ``panic`` and (later)
the desk's GUI, which calls the same functions."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from ipaddress import ip_address
from typing import TextIO
from urllib.parse import urlsplit

from app.brokers.breeze import (
    BreezeBroker,
    BreezeConfig,
    BreezeCredentials,
    Endpoints,
    MasterCache,
    MasterLoad,
    login_url,
)
from app.domain.india_time import ist_day
from app.security.vault import (
    BREEZE_API_KEY,
    BREEZE_API_SECRET,
    BREEZE_SESSION_DAY,
    BREEZE_SESSION_TOKEN,
    get_secret,
    set_secret,
)
from app.settings import Settings

# What the SDK itself downloads (breeze_connect/config.py) when no other master URL is set.
DEFAULT_MASTER_URL = "https://directlink.icicidirect.com/MotherAppMaster/SecurityMaster.zip"
MAX_TOKEN = 200


class ProfileError(RuntimeError):
    """The Breeze profile cannot be used as configured; the message says what to do."""


def breeze_config(settings: Settings) -> BreezeConfig:
    b = settings.breeze
    return BreezeConfig(
        cache_dir=settings.home / "cache" / "breeze",
        endpoints=Endpoints(b.api_url, b.api_v2_url, b.stream_url, b.feeds_url, b.ohlc_url),
    )


def master_cache(settings: Settings) -> MasterCache:
    return MasterCache(breeze_config(settings).cache_dir, settings.breeze.master_url or DEFAULT_MASTER_URL)


def credentials() -> BreezeCredentials:
    key, secret = get_secret(BREEZE_API_KEY), get_secret(BREEZE_API_SECRET)
    if not key or not secret:
        raise ProfileError("no Breeze API key and secret in the keyring: run  python main.py credentials set --broker breeze")
    return BreezeCredentials(key, secret)


def read_session_token(stream: TextIO, api_key: str, *, prompt: TextIO = sys.stderr) -> str:
    """Print where to log in, then read today's session token from one line of ``stream``."""
    print(f"Log in to Breeze for today's session token: {login_url(api_key)}", file=prompt, flush=True)
    print("Paste the session token and press Enter:", file=prompt, flush=True)
    token = stream.readline().strip()
    if not token:
        raise ProfileError("no session token was given on stdin")
    if len(token) > MAX_TOKEN or any(ch.isspace() for ch in token):
        raise ProfileError("that does not look like a Breeze session token (spaces, or far too long)")
    return token


def stored_session_token(now_ns: int | None = None) -> str | None:
    """The token stored earlier today (IST), or ``None``: Breeze tokens end at midnight."""
    today = ist_day(now_ns if now_ns is not None else time.time_ns()).isoformat()
    if get_secret(BREEZE_SESSION_DAY) != today:
        return None
    return get_secret(BREEZE_SESSION_TOKEN)


def remember_session_token(token: str) -> None:
    """Keep today's working token so ``panic`` can use it without asking."""
    set_secret(BREEZE_SESSION_TOKEN, token)
    set_secret(BREEZE_SESSION_DAY, ist_day(time.time_ns()).isoformat())


def session_token(from_stdin: bool, api_key: str) -> str:
    if from_stdin:
        return read_session_token(sys.stdin, api_key)
    token = stored_session_token()
    if token is None:
        raise ProfileError(
            "no Breeze session token for today: log in and pass it with --session-token-stdin "
            f"(login page: {login_url(api_key)})"
        )
    return token


def load_master(settings: Settings) -> MasterLoad:
    """The cached security master (downloading it if needed; see ``MasterCache``)."""
    return master_cache(settings).load()


def open_breeze(
    settings: Settings, keys: Sequence[str] | None, token: str, creds: BreezeCredentials, loaded: MasterLoad,
    *, book_exchanges: Sequence[str] | None = None, clock_ns: Callable[[], int] = time.time_ns,
) -> BreezeBroker:
    """The adapter for ``keys`` (every exchange's book when ``keys`` is ``None``, for ``panic``)."""
    contracts = loaded.master.resolve(keys) if keys is not None else []
    return BreezeBroker(
        breeze_config(settings), creds, loaded.master, contracts, session_token=token,
        on_session_token=remember_session_token, book_exchanges=book_exchanges, clock_ns=clock_ns,
    )


def require_loopback(settings: Settings) -> None:
    """``simulate`` sends a random order flow: never to a real broker account, only to a local emulator."""
    api = settings.breeze.api_url
    host = urlsplit(api).hostname if api else None
    try:
        loopback = host is not None and (host == "localhost" or ip_address(host).is_loopback)
    except ValueError:
        loopback = False
    if not loopback:
        raise ProfileError(
            "simulate --broker breeze sends a random order flow, so it runs only against a local Breeze emulator: "
            "set BULWARK_BREEZE_API_URL (and the stream, feeds and master URLs) to a loopback address"
        )
