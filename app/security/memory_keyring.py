"""A keyring whose entries live in this process only: the self-test's, and the tests'.

keyring's auto-detection never picks it (its priority refuses): it is installed explicitly with
``keyring.set_keyring``, so a desk run can never end up keeping secrets in memory by accident.
"""

from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.compat import properties
from keyring.errors import PasswordDeleteError


class MemoryKeyring(KeyringBackend):
    """A secure-looking keyring whose entries live in ``entries``, keyed ``(service, username)``, until the process ends."""

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("installed explicitly only")

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
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
