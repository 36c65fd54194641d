"""Credentials in the OS keyring, and the list of secret values every redactor must know about.

Secrets live only in the keyring. A backend that does not really protect them (keyring's ``fail``
and ``null`` backends, any plaintext file backend) counts as no secure store at all.
"""

from __future__ import annotations

import logging

import keyring
import keyring.errors
from keyring.errors import KeyringError

from app.store.chain_key import is_secure_backend

log = logging.getLogger(__name__)

SERVICE = "bulwark"
SECRET_NAMES = ("breeze.api_key", "breeze.api_secret", "breeze.session_token")


def backend_name() -> str:
    backend = keyring.get_keyring()
    return f"{type(backend).__module__}.{type(backend).__name__}"


def has_secure_store() -> bool:
    return is_secure_backend(keyring.get_keyring())


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


class VaultError(RuntimeError):
    """The keyring cannot be used for secrets (no secure backend, or it failed); the message says which."""


BREEZE_API_KEY = "breeze.api_key"
BREEZE_API_SECRET = "breeze.api_secret"
BREEZE_SESSION_TOKEN = "breeze.session_token"
# The IST day the stored session token was issued for; not a secret, kept beside the token.
BREEZE_SESSION_DAY = "breeze.session_day"


def get_secret(name: str) -> str | None:
    """The stored value, ``None`` if there is none; ``VaultError`` if the keyring fails."""
    try:
        return keyring.get_password(SERVICE, name)
    except KeyringError as exc:
        raise VaultError(f"the keyring ({backend_name()}) could not be read: {type(exc).__name__}") from None


def require_secure_store() -> None:
    """``VaultError`` unless the keyring backend really protects secrets."""
    if not has_secure_store():
        raise VaultError(
            f"no secure keyring: the backend is {backend_name()}, which does not protect secrets. Use the "
            "system keyring (Windows Credential Manager, macOS Keychain, Secret Service on Linux), or choose "
            "one with PYTHON_KEYRING_BACKEND"
        )


def set_secret(name: str, value: str) -> None:
    """Store ``value`` under ``name``; refuses a keyring that does not really protect it."""
    require_secure_store()
    try:
        keyring.set_password(SERVICE, name, value)
    except KeyringError as exc:
        raise VaultError(f"the keyring ({backend_name()}) refused to store {name}: {type(exc).__name__}") from None


def delete_secret(name: str) -> bool:
    """Remove ``name``; ``False`` if nothing was stored."""
    try:
        keyring.delete_password(SERVICE, name)
    except keyring.errors.PasswordDeleteError:
        return False
    except KeyringError as exc:
        raise VaultError(f"the keyring ({backend_name()}) could not delete {name}: {type(exc).__name__}") from None
    return True
