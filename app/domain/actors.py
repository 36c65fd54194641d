"""Who acts on the desk and what they may do.

The operator model (logins, roles, lockout) arrives with its own issue; until then the engine's
API takes an ``Actor`` carrying its permission set, and checks it where an action needs one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Permission(enum.StrEnum):
    """Actions that need authority. Engaging the kill switch needs none: anyone may stop the desk."""

    TRADE = "trade"
    FLATTEN = "flatten"
    REARM = "rearm"
    SET_LIMITS = "set_limits"


@dataclass(frozen=True, slots=True)
class Actor:
    """A person or program acting on the desk, named in every audit record it causes."""

    name: str
    permissions: frozenset[Permission] = frozenset()

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("an actor needs a name")

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


SYSTEM = Actor("system")
