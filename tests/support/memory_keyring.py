"""In-memory keyring backends for in-process tests: one that keeps entries in a dict, one that raises.

Neither is ever picked by keyring's auto-detection (their priority refuses), so defining them
cannot leak into another test: a test installs one with ``keyring.set_keyring`` or passes it.
"""

from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.compat import properties
from keyring.errors import KeyringError, PasswordDeleteError


class MemoryKeyring(KeyringBackend):
    """A secure-looking keyring whose entries live in ``entries``, keyed ``(service, username)``."""

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("installed by the tests only")

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")

    def __str__(self) -> str:
        return "MemoryKeyring"


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
