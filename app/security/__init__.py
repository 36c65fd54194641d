"""Operators, roles, passwords, keyring vault, log redaction (arrives with the Security issue)."""
