"""Which broker account a desk's calls spend: a fingerprint that names it without revealing it.

The broker counts its rate limits per account (Breeze: per API key), so desks trading through one
account share one budget. The fingerprint is what the store keys that budget by: stable, short, and
of no use to anyone who reads the database or the logs. It is never the key itself, nor anything a
key could be recovered from short of guessing it.
"""

from __future__ import annotations

import hashlib
import re

# Each kind of account hashes under its own label, so a paper account named like a key never collides with it.
_BREEZE_LABEL = b"bulwark broker account v1: breeze api key\x00"
_PAPER_LABEL = b"bulwark broker account v1: paper account\x00"
_PRIVATE_LABEL = b"bulwark broker account v1: private to desk\x00"
FINGERPRINT_HEX = 16
PAPER_ACCOUNT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


def _fingerprint(label: bytes, text: str) -> str:
    return hashlib.sha256(label + text.encode("utf-8")).hexdigest()[:FINGERPRINT_HEX]


def breeze_account(api_key: str) -> str:
    """The account of a Breeze API key: ``breeze:`` and 16 hex digits of a labelled SHA-256 of the key."""
    if not api_key.strip():
        raise ValueError("a Breeze account needs its API key")
    return "breeze:" + _fingerprint(_BREEZE_LABEL, api_key.strip())


def paper_account(name: str) -> str:
    """A simulated account desks agree to share by giving it the same plain ``name`` (``paper.account``)."""
    if not PAPER_ACCOUNT_PATTERN.match(name):
        raise ValueError(
            f"a paper account name is 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit, got {name!r}"
        )
    return "paper:" + _fingerprint(_PAPER_LABEL, name)


def private_account(desk_id: str) -> str:
    """The account of a desk whose broker shares it with no other desk (each desk's own paper market)."""
    return "desk:" + _fingerprint(_PRIVATE_LABEL, desk_id)


def account_of(shared: str | None, desk_id: str) -> str:
    """The account a desk's calls spend: its broker's (``BrokerCapabilities.account``), else its own."""
    return shared if shared is not None else private_account(desk_id)
