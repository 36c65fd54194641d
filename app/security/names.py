"""Operator names: what a name may hold, the key two names are compared by, and a typed name made safe to record.

A name is 1 to 64 ASCII letters, digits and ``. _ -``, starting with a letter or digit. ASCII only,
although the desk is otherwise Unicode: an audit trail that names "asha" and "аsha" (the second
with a Cyrillic "а") as two people is worse than a trader who cannot spell their name with an
accent. Names are unique regardless of case; the account keeps the spelling it was created with.
"""

from __future__ import annotations

import string
import unicodedata

MAX_NAME = 64
_ALLOWED = frozenset(string.ascii_letters + string.digits + "._-")


def name_key(name: str) -> str:
    """The key a name is stored and looked up under: two names that differ only in case are one operator."""
    return name.casefold()


def name_problems(name: str) -> list[str]:
    """What is wrong with ``name`` as a new operator's name; empty when it is acceptable."""
    if not name:
        return ["enter a name"]
    problems = []
    if len(name) > MAX_NAME:
        problems.append(f"at most {MAX_NAME} characters (this one has {len(name)})")
    if any(ch.isspace() for ch in name):
        problems.append("no spaces")
    if any(unicodedata.category(ch).startswith("C") and not ch.isspace() for ch in name):
        problems.append("no control characters")
    others = sorted({ch for ch in name if ch not in _ALLOWED and ch.isprintable() and not ch.isspace()})
    if others:
        shown = "".join(others[:10]) + ("..." if len(others) > 10 else "")
        problems.append(f"only letters a-z and A-Z, digits and . _ - (not {shown})")
    if name[0] in "._-":
        problems.append("starts with a letter or a digit")
    return problems


def printable_name(typed: str) -> str:
    """A name as typed at a sign-in, safe for an audit record or a log line: at most ``MAX_NAME``
    characters, control and other invisible characters escaped (``\\x1b``, ``\\u200b``)."""
    clipped = typed[:MAX_NAME]
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in clipped) + (
        "..." if len(typed) > MAX_NAME else ""
    )
