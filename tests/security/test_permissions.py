"""The one permission table, row by row: every role against every permission, written out here as
data, so any change to ``ROLE_PERMISSIONS`` (a permission granted or withdrawn, a role or a
permission added) fails this test until the table below is changed with it on purpose."""

from __future__ import annotations

import pytest

from app.domain.actors import ROLE_PERMISSIONS, Actor, Permission, Role

P = Permission
# role: (watch, trade, cancel_own, cancel_any, flatten, rearm, set_limits, manage_operators, restore_backup,
#        manage_api_clients, firm_halt)
COLUMNS = (P.WATCH, P.TRADE, P.CANCEL_OWN, P.CANCEL_ANY, P.FLATTEN, P.REARM, P.SET_LIMITS, P.MANAGE_OPERATORS,
           P.RESTORE_BACKUP, P.MANAGE_API_CLIENTS, P.FIRM_HALT)
TABLE: dict[Role, tuple[int, ...]] = {
    Role.VIEWER:       (1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    Role.TRADER:       (1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
    Role.RISK_OFFICER: (1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1),
    Role.ADMIN:        (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
}


def test_the_table_names_every_role_and_every_permission() -> None:
    assert set(TABLE) == set(Role) == set(ROLE_PERMISSIONS)
    assert set(COLUMNS) == set(Permission) and len(COLUMNS) == len(Permission)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_each_cell(role: Role, permission: Permission) -> None:
    expected = bool(TABLE[role][COLUMNS.index(permission)])
    assert (permission in ROLE_PERMISSIONS[role]) is expected
    assert Actor.with_role("someone", role).can(permission) is expected


def test_an_actor_with_a_role_gets_the_tables_permissions_and_nothing_else() -> None:
    for role in Role:
        actor = Actor.with_role("someone", role)
        assert actor.permissions == ROLE_PERMISSIONS[role] and actor.role is role


def test_the_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        ROLE_PERMISSIONS[Role.VIEWER] = frozenset(Permission)  # type: ignore[index]
