"""Exit codes, argument types and the missing-store check shared by the sub-commands."""

from __future__ import annotations

import argparse
import datetime as dt
import math
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# `backup verify` of a backup whose checksum matches but whose audit chain could not be checked here.
EXIT_UNVERIFIED = 3

# The broker profiles a desk can run on (the settings' ``broker`` values).
BROKERS = ("paper", "breeze")
MAX_REASON = 500


def first_line(exc: BaseException) -> str:
    """An error as one line for the operator: its first line, or its type when it has no text."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def absent_database(url: str) -> Path | None:
    """The SQLite file of ``url`` when it does not exist; ``None`` when it does or the store is not a file.

    A command that only reads asks first: opening a SQLite URL would create an empty store in its place.
    """
    from app.store.db import sqlite_path

    path = sqlite_path(url)
    return path if path is not None and not path.exists() else None


def no_database(url: str, consequence: str) -> str | None:
    """``no database at PATH: consequence`` when ``url`` names a SQLite file that does not exist, else ``None``."""
    path = absent_database(url)
    return None if path is None else f"no database at {path}: {consequence}"


def reason_text(text: str) -> str:
    """An operator's reason for an audited action: not blank, at most ``MAX_REASON`` characters."""
    reason = text.strip()
    if not reason:
        raise argparse.ArgumentTypeError("the reason must not be empty")
    if len(reason) > MAX_REASON:
        raise argparse.ArgumentTypeError(f"the reason must be at most {MAX_REASON} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in reason):
        raise argparse.ArgumentTypeError("the reason must be one line of text (no control characters)")
    return reason


def positive_float(text: str) -> float:
    return _finite_float(text, zero_allowed=False)


def non_negative_float(text: str) -> float:
    return _finite_float(text, zero_allowed=True)


def _finite_float(text: str, *, zero_allowed: bool) -> float:
    """A finite number above zero (or zero too): NaN, infinities and an overflow like ``1e309`` are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
        wanted = "a finite number, zero or more" if zero_allowed else "a positive finite number"
        raise argparse.ArgumentTypeError(f"{text!r} must be {wanted}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-23") from None
