"""A keyring backend for in-process tests that raises on every call (the one that keeps entries is
``app.security.memory_keyring``, which the self-test uses too).

keyring's auto-detection never picks it (its priority refuses), so defining it cannot leak into
another test: a test installs it with ``keyring.set_keyring`` or passes it.
"""

from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.compat import properties
from keyring.errors import KeyringError


class RaisingKeyring(KeyringBackend):
    """A keyring whose every call raises ``KeyringError`` (a locked or broken system keyring)."""

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("installed by the tests only")

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringError("the keyring daemon went away")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringError("the keyring daemon went away")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringError("the keyring daemon went away")

    def __str__(self) -> str:
        return "RaisingKeyring"
