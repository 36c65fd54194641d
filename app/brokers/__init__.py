"""Broker adapters behind one async protocol."""
