"""Who acts on the desk and what they may do: permissions, roles and the one table between them.

An operator signs in with a role; the engine is handed an ``Actor`` whose permissions come from
``ROLE_PERMISSIONS`` and asks it before every action that needs authority. The UI greys out what
the signed-in operator may not do, but never decides: the engine refuses anyway.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


class Permission(enum.StrEnum):
    """Actions that need authority. Engaging the kill switch needs none: anyone may stop the desk."""

    WATCH = "watch"
    TRADE = "trade"
    CANCEL_OWN = "cancel_own"
    CANCEL_ANY = "cancel_any"
    FLATTEN = "flatten"
    REARM = "rearm"
    SET_LIMITS = "set_limits"
    MANAGE_OPERATORS = "manage_operators"
    RESTORE_BACKUP = "restore_backup"
    MANAGE_API_CLIENTS = "manage_api_clients"
    # Halting every desk on the database at once: unlike one desk's kill switch, it stops colleagues' trading.
    FIRM_HALT = "firm_halt"


class Role(enum.StrEnum):
    """An operator's job on the desk; stable codes stored with each account."""

    VIEWER = "viewer"
    TRADER = "trader"
    RISK_OFFICER = "risk_officer"
    ADMIN = "admin"


_WATCH = frozenset({Permission.WATCH})
_TRADER = _WATCH | {Permission.TRADE, Permission.CANCEL_OWN}
# The risk officer controls risk but does not trade: nobody raises their own limits or lifts the
# halt on their own orders.
_RISK_OFFICER = _WATCH | {Permission.SET_LIMITS, Permission.REARM, Permission.FLATTEN, Permission.CANCEL_ANY,
                          Permission.FIRM_HALT}
# The administrator can create an account of any role, so withholding a permission from the role
# would only make the desk slower to use, not safer: the administrator holds every permission, and
# every use of one is audited under the administrator's own name.
_ADMIN = frozenset(Permission)

ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType({
    Role.VIEWER: _WATCH,
    Role.TRADER: _TRADER,
    Role.RISK_OFFICER: _RISK_OFFICER,
    Role.ADMIN: _ADMIN,
})


@dataclass(frozen=True, slots=True)
class Actor:
    """A person or program acting on the desk, named in every audit record it causes."""

    name: str
    permissions: frozenset[Permission] = frozenset()
    role: Role | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("an actor needs a name")

    @classmethod
    def with_role(cls, name: str, role: Role) -> Actor:
        """An operator signed in as ``role``: the permissions are the table's, never chosen by the caller."""
        return cls(name, ROLE_PERMISSIONS[role], role)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


class ApiScope(enum.StrEnum):
    """What an API client's token may do; stable codes stored with each client. No scope re-arms."""

    READ = "read"
    TRADE = "trade"
    KILL = "kill"


# A trading client may cancel and modify only its own orders: a script never cancels a person's.
# KILL grants no permission: engaging the kill switch needs none; the scope only lets a token call it.
SCOPE_PERMISSIONS: Mapping[ApiScope, frozenset[Permission]] = MappingProxyType({
    ApiScope.READ: _WATCH,
    ApiScope.TRADE: frozenset({Permission.TRADE, Permission.CANCEL_OWN}),
    ApiScope.KILL: frozenset(),
})

API_ACTOR_PREFIX = "api:"


def api_actor(client_name: str, scopes: frozenset[ApiScope]) -> Actor:
    """The actor an API client acts as: named ``api:<name>`` (never mistaken for an operator's
    name), with the permissions of its scopes and nothing else."""
    permissions: frozenset[Permission] = frozenset().union(*(SCOPE_PERMISSIONS[s] for s in scopes))
    return Actor(API_ACTOR_PREFIX + client_name, permissions)


def is_api_actor(name: str) -> bool:
    """Whether ``name`` is an API client's actor (operators' names cannot hold a colon)."""
    return name.startswith(API_ACTOR_PREFIX)


SYSTEM = Actor("system")
