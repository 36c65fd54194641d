"""Keyed audit chain: a per-record key fingerprint, and no unique index on ``hash``.

``key_fp`` names the HMAC-SHA256 key a record's hash was computed with (its fingerprint, never the
key); NULL means the plain SHA-256 chain every earlier record keeps, so nothing is rewritten and
old records verify as before. A column rather than a "switch" record because a writer (``panic``
included) must learn the chain's key from the tail alone, without scanning the chain.

The unique index on ``hash`` goes: nothing looks records up by hash, the sequence key and the
chain itself already rule out a duplicate or a fork, and inserting 64 random hex characters into a
b-tree dirtied a page per record, which made each group commit write about four times the pages.
SQLite cannot drop a table constraint, so there the table is rebuilt: the rows are copied byte for
byte (never re-hashed) and the index and the append-only triggers are created again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

APPEND_ONLY = "audit_log is append-only"
_COLUMNS = "seq, ts_ns, actor, source, event_type, payload, prev_hash, hash"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("uq_audit_log_hash", "audit_log", type_="unique")
        op.add_column("audit_log", sa.Column("key_fp", sa.String(16), nullable=True))
        return
    # ``seq INTEGER`` (64-bit in SQLite) makes the sequence number the rowid: appends and the
    # verify walk go through the table's own b-tree, not a separate primary-key index besides it.
    op.execute(
        "CREATE TABLE audit_log_0004 ("
        "seq INTEGER NOT NULL, ts_ns BIGINT NOT NULL, actor VARCHAR(128) NOT NULL, source VARCHAR(32) NOT NULL, "
        "event_type VARCHAR(64) NOT NULL, payload TEXT NOT NULL, prev_hash VARCHAR(64) NOT NULL, "
        "hash VARCHAR(64) NOT NULL, key_fp VARCHAR(16), CONSTRAINT pk_audit_log PRIMARY KEY (seq))"
    )
    op.execute(f"INSERT INTO audit_log_0004 ({_COLUMNS}) SELECT {_COLUMNS} FROM audit_log ORDER BY seq")
    # DROP TABLE fires no trigger; the old table's index and triggers go with it.
    op.execute("DROP TABLE audit_log")
    op.execute("ALTER TABLE audit_log_0004 RENAME TO audit_log")
    op.execute("CREATE INDEX ix_audit_log_ts_ns ON audit_log (ts_ns)")
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_log_no_{action.lower()} BEFORE {action} ON audit_log "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
        )


def downgrade() -> None:
    raise RuntimeError("downgrading below 0004 would drop the keys' fingerprints from the audit chain; restore a backup")
