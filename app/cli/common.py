"""Exit codes and argument types shared by the sub-commands."""

from __future__ import annotations

import argparse
import datetime as dt

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# The broker profiles a desk can run on (the settings' ``broker`` values).
BROKERS = ("paper", "breeze")
MAX_REASON = 500


def first_line(exc: BaseException) -> str:
    """An error as one line for the operator: its first line, or its type when it has no text."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive finite number")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number, zero or more")
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
