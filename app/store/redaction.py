"""Keeps secrets out of audit payloads: by key name, and by value for secrets the desk has registered."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|api[_-]?key|appkey|token|checksum|authori[sz]ation|cookie|credential|private[_-]?key",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a field of this name holds a secret (cached: payloads reuse a few hundred keys)."""
    return _SECRET_KEY.search(key) is not None


class Redactor:
    """Replaces secret-looking fields and any registered secret value, wherever it appears in a string."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.register(secret)

    def register(self, secret: str) -> None:
        # Very short values would redact innocent text everywhere; real keys and tokens are long.
        if secret and len(secret) >= 6:
            self._secrets.add(secret)

    def redact(self, value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        if isinstance(value, dict):
            return {
                key: REDACTED if isinstance(key, str) and is_secret_key(key) else self.redact(item)
                for key, item in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.redact(item) for item in value]
        if isinstance(value, str) and self._secrets:
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
        return value
