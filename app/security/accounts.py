"""What an operator account is to the window and the commands: the account as shown, the purposes of
an authentication, the errors it raises, and how a lockout's end is written.

Apart from ``operators`` (the directory over the store) so the desk window's dialogs can name these
without importing SQLAlchemy before the window's first paint.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from app.domain.actors import Role
from app.domain.india_time import IST

Purpose = Literal["sign_in", "unlock", "authorise", "change_password"]
PURPOSES: frozenset[str] = frozenset({"sign_in", "unlock", "authorise", "change_password"})


class AuthError(Exception):
    """A refused sign-in. The message is safe to show: it never holds the password, and reads the same
    for an unknown name and a wrong password."""


class OperatorInputError(ValueError):
    """A management call refused for its input; ``field`` says which ("name", "role", "password") for the form."""

    def __init__(self, field: str, problems: list[str]) -> None:
        self.field = field
        self.problems = list(problems)
        super().__init__(f"{field}: {'; '.join(problems)}")


@dataclass(frozen=True, slots=True)
class Operator:
    """An account as the desk shows it: never the password hash.

    ``damaged`` says what is wrong with a stored row Bulwark did not write (an unknown role, an
    ``enabled`` that is not a boolean, a count that is not a number); such an account reads as a
    disabled viewer, the least authority there is, and cannot sign in.
    """

    name: str
    role: Role
    enabled: bool
    failed_attempts: int
    locked_until_ns: int | None
    created_ns: int
    password_changed_ns: int
    damaged: str | None = None

    def locked_at(self, now_ns: int) -> bool:
        """Whether the account is locked out at ``now_ns``."""
        return self.locked_until_ns is not None and now_ns < self.locked_until_ns


def format_until(ts_ns: int) -> str:
    """A lockout's end as the desk shows times: IST, to the second."""
    return dt.datetime.fromtimestamp(ts_ns / 1e9, IST).strftime("%Y-%m-%d %H:%M:%S IST")
