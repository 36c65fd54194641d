"""Persistence: the audit chain, orders and fills, limits, trading state, counters, backups."""
