"""Audit trail vocabulary: what happened and which kind of source made it happen. Codes are stable."""

from __future__ import annotations

import enum


class AuditSource(enum.StrEnum):
    """Where a decision came from."""

    TICKET = "ticket"
    API = "api"
    PANIC = "panic"
    BREAKER = "breaker"
    SYSTEM = "system"
    SIMULATION = "simulation"
    BROKER = "broker"
    OPERATOR = "operator"


class AuditEventType(enum.StrEnum):
    """Every kind of record the audit chain holds."""

    APP_START = "app.start"
    APP_STOP = "app.stop"
    # Operators and their sessions. login.locked: the account is locked out after failed attempts;
    # login.unlocked: an administrator lifted that lockout. screen.*: the desk's lock screen
    # (idle or asked for), which leaves the engine, the breakers and the kill switch running.
    LOGIN_OK = "login.ok"
    LOGIN_FAILED = "login.failed"
    LOGIN_LOCKED = "login.locked"
    LOGIN_UNLOCKED = "login.unlocked"
    LOGOUT = "logout"
    SCREEN_LOCKED = "screen.locked"
    SCREEN_UNLOCKED = "screen.unlocked"
    PASSWORD_CHANGED = "password.changed"
    PASSWORD_RESET = "operator.password_reset"
    OPERATOR_ADDED = "operator.added"
    OPERATOR_DISABLED = "operator.disabled"
    OPERATOR_ENABLED = "operator.enabled"
    API_CLIENT_ADDED = "api_client.added"
    API_CLIENT_DISABLED = "api_client.disabled"
    API_CLIENT_ENABLED = "api_client.enabled"
    API_CLIENT_ROTATED = "api_client.rotated"
    API_REFUSED = "api.refused"
    API_SERVING = "api.serving"
    API_STOPPED = "api.stopped"
    ORDER_PROPOSED = "order.proposed"
    GATE_ACCEPTED = "gate.accepted"
    GATE_REJECTED = "gate.rejected"
    # The order passed the gate and waits for the rate governor: nothing has reached the broker yet.
    ORDER_QUEUED = "order.queued"
    # The governor released the call and it goes to the broker now (durable before the call).
    ORDER_SENT = "order.sent"
    ORDER_THROTTLED = "order.throttled"
    BROKER_ACK = "broker.ack"
    BROKER_REJECT = "broker.reject"
    ORDER_MODIFY = "order.modify"
    # A modify the desk refused before it reached the broker (authority, the order's state, the gate, throttled).
    ORDER_MODIFY_REFUSED = "order.modify_refused"
    CANCEL_REQUESTED = "cancel.requested"
    # The broker refused a cancel because the order had already ended (filled, cancelled...).
    CANCEL_ALREADY_FINAL = "cancel.already_final"
    CANCELLED = "order.cancelled"
    ORDER_UPDATE = "order.update"
    FILL = "fill"
    KILL_SWITCH_ENGAGED = "kill_switch.engaged"
    CANCEL_SWEEP_DONE = "kill_switch.sweep_done"
    FLATTEN_REQUESTED = "flatten.requested"
    FLATTEN_DONE = "flatten.done"
    REARMED = "rearmed"
    # The firm-wide halt (every desk on the database): firm.halted and firm.rearmed by whoever raised
    # or lifted it (with ``refused`` when they may not), firm.ack by each desk as it halted for it and
    # again once its sweep ended.
    FIRM_HALTED = "firm.halted"
    FIRM_REARMED = "firm.rearmed"
    FIRM_ACK = "firm.ack"
    TRADING_STATE_CHANGED = "trading_state.changed"
    LIMIT_CHANGED = "limit.changed"
    CALENDAR_CHANGED = "calendar.changed"
    BREAKER_TRIPPED = "breaker.tripped"
    ALERT_RAISED = "alert.raised"
    BROKER_CONNECTED = "broker.connected"
    BROKER_DISCONNECTED = "broker.disconnected"
    SESSION_EXPIRED = "session.expired"
    SESSION_RENEWED = "session.renewed"
    BACKUP_CREATED = "backup.created"
    BACKUP_RESTORED = "backup.restored"
    CONFIG_CHANGED = "config.changed"
    RECONCILED = "reconciled"
    # The database was unreachable from began_ns to ended_ns: the records after this one, up to its
    # count, were kept in the desk's spool meanwhile and appended when it answered again.
    STORE_OUTAGE = "store.outage"


# The ``"at"`` of the ``RECONCILED`` record a desk writes once its start has read the broker's order
# book: from there that desk knows what is working, whatever an earlier run left unfinished.
RECONCILED_AT_START = "start"
