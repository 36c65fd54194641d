"""Local-API clients: name, scopes, the SHA-256 of the token (never the token), a hint, enabled, who made and changed it.

``name_key`` is the casefolded name, unique, so two clients never differ only in case. ``scopes``
holds comma-separated scope codes (read, trade, kill), never empty; the codes themselves are
checked when the desk reads the row, so a row edited into an unknown code is skipped, not obeyed.
``token_hash`` is unique and 64 hex characters long; ``enabled`` only a boolean.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name_key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("token_hint", sa.String(8), nullable=False),
        sa.Column("enabled", sa.Boolean(create_constraint=True, name="enabled"), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("changed_ns", sa.BigInteger(), nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_clients"),
        sa.UniqueConstraint("name_key", name="uq_api_clients_name_key"),
        sa.UniqueConstraint("token_hash", name="uq_api_clients_token_hash"),
        # Spelled out, not imported: a migration must keep creating what it created when it was written.
        # Check names are the short ones: the naming convention makes them ck_api_clients_<name>.
        sa.CheckConstraint("scopes <> ''", name="scopes"),
        sa.CheckConstraint("length(token_hash) = 64", name="token_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_clients")
