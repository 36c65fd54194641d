"""Many desks on one database: desk identity, per-account broker budgets, the firm-wide halt.

Every desk row (orders, fills, position snapshots, trading state, limit versions, rate counters)
gains the id of the desk that wrote it. Rows already there are the one desk's that ran before
desks had ids: they get ``legacy``, and the first desk registered adopts them. Fills are keyed by
desk and fill id (two paper markets number their fills alike), limit versions by desk and
version. Rate counters are keyed by the broker account's fingerprint and the desk (each desk its
own row, the account's total their sum); a legacy counter keeps its broker name as its account.

New tables: ``desks`` (the registry), ``broker_accounts`` and ``account_leases`` (how many desks
share an account's rate limits, and who holds which share), ``firm_state`` (the firm halt) and
``firm_acks`` (each desk's confirmation of it).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Spelled out, not imported: a migration must keep creating what it created when it was written.
LEGACY = "legacy"
DESK = 32


def _desk_column(table: str, *, index: str | None = None) -> None:
    # A server default only to fill the rows already there; then dropped, so every new row must name its desk.
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("desk_id", sa.String(DESK), nullable=False, server_default=LEGACY))
    with op.batch_alter_table(table) as batch:
        batch.alter_column("desk_id", server_default=None, existing_type=sa.String(DESK), existing_nullable=False)
        if index is not None:
            batch.create_index(index, ["desk_id"])


def upgrade() -> None:
    _desk_column("orders", index="ix_orders_desk_id")
    _desk_column("position_snapshots")
    _desk_column("trading_state")
    op.create_index("ix_trading_state_desk_id_id", "trading_state", ["desk_id", "id"])
    _desk_column("fills")
    with op.batch_alter_table("fills") as batch:
        batch.drop_constraint("pk_fills", type_="primary")
        batch.create_primary_key("pk_fills", ["desk_id", "fill_id"])
    _desk_column("limit_versions")
    with op.batch_alter_table("limit_versions") as batch:
        batch.drop_constraint("pk_limit_versions", type_="primary")
        batch.create_primary_key("pk_limit_versions", ["desk_id", "version"])

    op.create_table(
        "rate_counters_by_account",
        sa.Column("trading_day", sa.String(10), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("desk_id", sa.String(DESK), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("trading_day", "account", "desk_id", "kind", name="pk_rate_counters_by_account"),
    )
    op.execute(
        "INSERT INTO rate_counters_by_account (trading_day, account, desk_id, kind, count) "
        f"SELECT trading_day, broker, '{LEGACY}', kind, count FROM rate_counters"
    )
    op.drop_table("rate_counters")
    op.rename_table("rate_counters_by_account", "rate_counters")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE rate_counters RENAME CONSTRAINT pk_rate_counters_by_account TO pk_rate_counters")
    else:
        with op.batch_alter_table("rate_counters", recreate="always") as batch:
            batch.drop_constraint("pk_rate_counters_by_account", type_="primary")
            batch.create_primary_key("pk_rate_counters", ["trading_day", "account", "desk_id", "kind"])

    op.create_table(
        "desks",
        sa.Column("desk_id", sa.String(DESK), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("os_user", sa.String(64), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("started_ns", sa.BigInteger(), nullable=False),
        sa.Column("seen_ns", sa.BigInteger(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("starts", sa.Integer(), nullable=False),
        sa.Column("adopted_legacy", sa.Boolean(create_constraint=True, name="adopted_legacy"), nullable=False),
        sa.PrimaryKeyConstraint("desk_id", name="pk_desks"),
    )
    op.create_table(
        "broker_accounts",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("broker", sa.String(32), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_broker_accounts"),
        sa.CheckConstraint("slots >= 1", name="slots"),
    )
    op.create_table(
        "account_leases",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("desk_id", sa.String(DESK), nullable=False),
        sa.Column("expires_ns", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account"], ["broker_accounts.account"],
                                name="fk_account_leases_account_broker_accounts"),
        sa.PrimaryKeyConstraint("account", "slot", name="pk_account_leases"),
    )
    op.create_table(
        "firm_state",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("origin_desk", sa.String(DESK), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_firm_state"),
    )
    op.create_table(
        "firm_acks",
        sa.Column("firm_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("desk_id", sa.String(DESK), nullable=False),
        sa.Column("halted_ns", sa.BigInteger(), nullable=False),
        sa.Column("swept_ns", sa.BigInteger(), nullable=True),
        sa.Column("still_working", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["firm_id"], ["firm_state.id"], name="fk_firm_acks_firm_id_firm_state"),
        sa.PrimaryKeyConstraint("firm_id", "desk_id", name="pk_firm_acks"),
    )


def downgrade() -> None:
    # Going back would merge every desk's rows into one desk's: restore a backup taken before instead.
    raise NotImplementedError("0007 keys rows by desk and cannot be undone; restore a backup taken before it")
