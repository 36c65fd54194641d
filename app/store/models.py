"""The desk's tables (SQLAlchemy 2 typed ORM). Migrations in ``migrations/`` create and evolve them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The desk that owns rows written before desks had ids (migration 0007); the first desk registered
# on the database adopts them (``desk_identity.register``).
LEGACY_DESK_ID = "legacy"
DESK_ID_LENGTH = 32

# Stable constraint names, so batch migrations on SQLite can find and alter them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AuditRecord(Base):
    """One link of the append-only audit chain; ``hash`` covers every other column and ``prev_hash``."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # The fingerprint of the HMAC key ``hash`` was computed with; NULL for the plain SHA-256 chain.
    key_fp: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (Index("ix_audit_log_ts_ns", "ts_ns"),)


class OrderRow(Base):
    """The latest known state of one order."""

    __tablename__ = "orders"

    client_order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    desk_id: Mapped[str] = mapped_column(String(DESK_ID_LENGTH), nullable=False, index=True)
    broker_order_id: Mapped[str | None] = mapped_column(String(64), index=True)
    instrument_key: Mapped[str] = mapped_column(String(96), nullable=False)
    side: Mapped[str] = mapped_column(String(4), nullable=False)
    quantity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    order_type: Mapped[str] = mapped_column(String(16), nullable=False)
    product: Mapped[str] = mapped_column(String(16), nullable=False)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False)
    filled_quantity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fill_value: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    trading_day: Mapped[str] = mapped_column(String(10), nullable=False, index=True)


class FillRow(Base):
    """One execution; ``(desk_id, fill_id)`` is unique so a replayed fill is stored once.

    The broker's fill id is unique only within one broker account's book (paper markets of two desks
    both number from the start), hence the desk in the key.
    """

    __tablename__ = "fills"

    desk_id: Mapped[str] = mapped_column(String(DESK_ID_LENGTH), primary_key=True)
    fill_id: Mapped[str] = mapped_column(String(96), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(ForeignKey("orders.client_order_id"), nullable=False, index=True)
    instrument_key: Mapped[str] = mapped_column(String(96), nullable=False)
    side: Mapped[str] = mapped_column(String(4), nullable=False)
    quantity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    ts_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)


class PositionSnapshotRow(Base):
    """A position as it stood at ``ts_ns`` (written at stop and periodically)."""

    __tablename__ = "position_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    desk_id: Mapped[str] = mapped_column(String(DESK_ID_LENGTH), nullable=False)
    ts_ns: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    instrument_key: Mapped[str] = mapped_column(String(96), nullable=False)
    quantity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cost: Mapped[int] = mapped_column(BigInteger, nullable=False)
    realized: Mapped[int] = mapped_column(BigInteger, nullable=False)


class _DocumentVersion:
    """The columns of a versioned document's table (see ``document_versions``)."""

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    document: Mapped[str] = mapped_column(Text, nullable=False)


class LimitVersionRow(_DocumentVersion, Base):
    """One version of one desk's risk limits: the whole document, who set it, when and why."""

    __tablename__ = "limit_versions"

    desk_id: Mapped[str] = mapped_column(String(DESK_ID_LENGTH), primary_key=True)


class CalendarVersionRow(_DocumentVersion, Base):
    """One version of the trading calendar in force: the whole merged document, who, when and why."""

    __tablename__ = "calendar_versions"


class TradingStateRow(Base):
    """Every change of trading state; the newest row is the state a restart resumes in."""

    __tablename__ = "trading_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    desk_id: Mapped[str] = mapped_column(String(DESK_ID_LENGTH), nullable=False)
    ts_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)

    __table_args__ = (Index("ix_trading_state_desk_id_id", "desk_id", "id"),)


class RateCounterRow(Base):
    """Broker calls one desk spent through one broker account on one trading day, by kind.

    ``account`` is a fingerprint of the broker account (never its key). Each desk writes its own rows,
    so no desk overwrites another's count; the account's day total is their sum.
    """

    __tablename__ = "rate_counters"

    trading_day: Mapped[str] = mapped_column(String(10), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    desk_id: Mapped[str] = mapped_column(String(DESK_ID_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False)


class DeskRow(Base):
    """One desk registered on this database: a data folder on a workstation, with its stable id.

    ``seen_ns`` is the desk's heartbeat while it runs (``None`` once it stopped cleanly): the firm
    view tells a running desk from one that died by how old it is. ``adopted_legacy``: this desk
    took over the rows written before desks had ids.
    """

    __tablename__ = "desks"

    desk_id: Mapped[str] = mapped_column(String(DESK_ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    os_user: Mapped[str] = mapped_column(String(64), nullable=False)
    created_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    started_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    seen_ns: Mapped[int | None] = mapped_column(BigInteger)
    pid: Mapped[int | None] = mapped_column(Integer)
    # How many times the desk started: part of its client order ids, so no two runs share one.
    starts: Mapped[int] = mapped_column(Integer, nullable=False)
    adopted_legacy: Mapped[bool] = mapped_column(Boolean(create_constraint=True, name="adopted_legacy"), nullable=False)


class BrokerAccountRow(Base):
    """A broker account desks trade through, by fingerprint: how many desks may share its rate limits.

    Each desk holding one of its ``slots`` gets that fraction of the account's per-second, per-minute
    and per-day limits, so the desks together stay inside them.
    """

    __tablename__ = "broker_accounts"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    broker: Mapped[str] = mapped_column(String(32), nullable=False)
    slots: Mapped[int] = mapped_column(Integer, nullable=False)
    created_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (CheckConstraint("slots >= 1", name="slots"),)


class AccountLeaseRow(Base):
    """One slot of a broker account's rate budget, leased by a running desk until ``expires_ns``."""

    __tablename__ = "account_leases"

    account: Mapped[str] = mapped_column(ForeignKey("broker_accounts.account"), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    desk_id: Mapped[str] = mapped_column(String(DESK_ID_LENGTH), nullable=False)
    expires_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)


class FirmStateRow(Base):
    """Every change of the firm-wide trading state: HALTED stops every desk on the database, ACTIVE
    lifts the firm halt (each desk then re-arms on its own). The newest row is in force."""

    __tablename__ = "firm_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    origin_desk: Mapped[str | None] = mapped_column(String(DESK_ID_LENGTH))


class FirmAckRow(Base):
    """A desk's confirmation of a firm halt: when it halted, when its sweep ended and what it left working."""

    __tablename__ = "firm_acks"

    firm_id: Mapped[int] = mapped_column(ForeignKey("firm_state.id"), primary_key=True, autoincrement=False)
    desk_id: Mapped[str] = mapped_column(String(DESK_ID_LENGTH), primary_key=True)
    halted_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    swept_ns: Mapped[int | None] = mapped_column(BigInteger)
    still_working: Mapped[int | None] = mapped_column(Integer)


class OperatorRow(Base):
    """One operator account. ``name_key`` is the casefolded name (names are unique regardless of case);
    ``password_hash`` is the only place a password's hash lives, and nothing else of a password is stored."""

    __tablename__ = "operators"

    name_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean(create_constraint=True, name="enabled"), nullable=False)
    # Counted when an attempt starts (before the password is checked), so parallel attempts cannot
    # outrun the lockout; a success sets it back to 0.
    failed_attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    locked_until_ns: Mapped[int | None] = mapped_column(BigInteger)
    created_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    password_changed_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)

    # The roles of app.domain.actors.Role (the migration spells them out the same way). A row edited
    # past this constraint still reads as a damaged account, never as a crash.
    __table_args__ = (CheckConstraint("role IN ('viewer', 'trader', 'risk_officer', 'admin')", name="role"),)


class UnknownSignInRow(Base):
    """Sign-in attempts with a name no account has: how many, and when the last one was (one row, ``id`` 1).

    Never the name typed (it may be a password typed into the wrong field). Counting them is also a
    write, as counting a known name's attempt is, so the two cost the same and time tells no names apart.
    """

    __tablename__ = "unknown_sign_ins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    attempts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ApiClientRow(Base):
    """One local-API client: a program (a strategy script, a stop button) that calls the desk's HTTP API.

    ``name_key`` is the casefolded name (unique regardless of case, as operators' names are). The
    token itself is never stored: ``token_hash`` is its SHA-256 hex (unique), ``token_hint`` its last
    four characters, enough to tell two tokens apart in a list. ``scopes`` is the comma-separated
    scope codes of ``app.domain.actors.ApiScope``; a row edited into something else is read as damaged.
    """

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    scopes: Mapped[str] = mapped_column(String(64), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    token_hint: Mapped[str] = mapped_column(String(8), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean(create_constraint=True, name="enabled"), nullable=False)
    created_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    changed_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    changed_by: Mapped[str] = mapped_column(String(64), nullable=False)

    # At least one scope, and a hash that is a SHA-256 hex digest's length. Which codes are known is
    # checked on read (a check here would have to change with every new scope).
    __table_args__ = (
        CheckConstraint("scopes <> ''", name="scopes"),
        CheckConstraint("length(token_hash) = 64", name="token_hash"),
    )
