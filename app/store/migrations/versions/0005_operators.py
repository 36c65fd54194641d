"""Operator accounts: name, role, argon2id password hash, enabled, lockout state.

``name_key`` is the casefolded name, the primary key, so two operators can never differ only in
case. No account is created here: there is no default operator and no default password; the first
administrator is made by the desk's first-run dialog or ``main.py operator add``. ``role`` may hold
only the roles Bulwark knows, ``enabled`` only a boolean. ``unknown_sign_ins`` counts sign-in
attempts with a name no account has (never the name typed).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("name_key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(create_constraint=True, name="ck_operators_enabled"), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until_ns", sa.BigInteger(), nullable=True),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("password_changed_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name_key", name="pk_operators"),
        # Spelled out, not imported: a migration must keep creating what it created when it was written.
        sa.CheckConstraint("role IN ('viewer', 'trader', 'risk_officer', 'admin')", name="ck_operators_role"),
    )
    op.create_table(
        "unknown_sign_ins",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("last_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_unknown_sign_ins"),
    )


def downgrade() -> None:
    op.drop_table("unknown_sign_ins")
    op.drop_table("operators")
