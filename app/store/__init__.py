"""Persistence: audit chain, orders, limits, backups (arrives with the Store issue)."""
