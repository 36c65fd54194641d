"""Credentials in the OS keyring, and the list of secret values every redactor must know about.

Secrets live only in the keyring. A backend that does not really protect them (keyring's ``fail``
and ``null`` backends, any plaintext file backend) counts as no secure store at all.
"""

from __future__ import annotations

import logging

import keyring
from keyring.errors import KeyringError

log = logging.getLogger(__name__)

SERVICE = "bulwark"
SECRET_NAMES = ("breeze.api_key", "breeze.api_secret", "breeze.session_token")
_INSECURE = ("fail", "null", "plaintext", "chainer")


def backend_name() -> str:
    backend = keyring.get_keyring()
    return f"{type(backend).__module__}.{type(backend).__name__}"


def has_secure_store() -> bool:
    name = backend_name().lower()
    return not any(word in name for word in _INSECURE)


def stored_secrets() -> list[str]:
    """Every secret value the keyring holds for the desk (to be redacted everywhere); never logged."""
    values = []
    for name in SECRET_NAMES:
        try:
            value = keyring.get_password(SERVICE, name)
        except KeyringError:
            continue
        if value:
            values.append(value)
    return values
