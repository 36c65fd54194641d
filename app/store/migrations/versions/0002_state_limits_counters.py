"""Position snapshots, limit versions, trading state history and daily rate counters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "position_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("instrument_key", sa.String(96), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("realized", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_position_snapshots"),
    )
    op.create_index("ix_position_snapshots_ts_ns", "position_snapshots", ["ts_ns"])
    op.create_table(
        "limit_versions",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_limit_versions"),
    )
    op.create_table(
        "trading_state",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trading_state"),
    )
    op.create_table(
        "rate_counters",
        sa.Column("trading_day", sa.String(10), nullable=False),
        sa.Column("broker", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("trading_day", "broker", "kind", name="pk_rate_counters"),
    )


def downgrade() -> None:
    for table in ("rate_counters", "trading_state", "limit_versions", "position_snapshots"):
        op.drop_table(table)
