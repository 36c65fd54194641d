"""A keyring backend for subprocess tests: a JSON file named by BULWARK_TEST_KEYRING_FILE.

Plaintext on purpose and only for tests; the desk itself treats plaintext backends as insecure.
Select it with PYTHON_KEYRING_BACKEND=tests.support.file_keyring.TestFileKeyring.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend


class TestFileKeyring(KeyringBackend):
    """Stores passwords in the JSON file named by ``BULWARK_TEST_KEYRING_FILE``."""

    priority = 1  # type: ignore[assignment]

    @property
    def _path(self) -> Path:
        return Path(os.environ["BULWARK_TEST_KEYRING_FILE"])

    def _load(self) -> dict[str, str]:
        return json.loads(self._path.read_text()) if self._path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}/{username}"] = password
        self._path.write_text(json.dumps(data))

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        data.pop(f"{service}/{username}", None)
        self._path.write_text(json.dumps(data))
