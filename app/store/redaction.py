"""Keeps secrets out of audit payloads: by key name, and by value for secrets the desk has registered."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .canonical import canonical_json, json_string

REDACTED = "[REDACTED]"
_PLAIN = frozenset({int, float, bool, str, type(None)})

_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|api[_-]?key|appkey|token|checksum|authori[sz]ation|cookie|credential|private[_-]?key",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a field of this name holds a secret (cached: payloads reuse a few hundred keys)."""
    return _SECRET_KEY.search(key) is not None


# Field names already found not to be secret: a payload whose names are all here is checked with
# one set operation. Bounded, like ``is_secret_key``'s cache; past the bound names are checked each time.
_CLEAN_KEYS: set[str] = set()
_CLEAN_KEYS_MAX = 4096


def _clean_keys(fields: dict[Any, Any]) -> bool:
    """Whether every key of ``fields`` is a string that does not name a secret."""
    if _CLEAN_KEYS.issuperset(fields):
        return True
    for key in fields:
        if type(key) is not str or is_secret_key(key):
            return False
    if len(_CLEAN_KEYS) < _CLEAN_KEYS_MAX:
        _CLEAN_KEYS.update(fields)
    return True


class Redactor:
    """Replaces secret-looking fields and any registered secret value, wherever it appears in a string."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._in_text: re.Pattern[str] | None = None
        for secret in secrets:
            self.register(secret)

    def register(self, secret: str) -> None:
        # Very short values would redact innocent text everywhere; real keys and tokens are long.
        if secret and len(secret) >= 6:
            self._secrets.add(secret)
            # Each secret as it is and as JSON writes it inside a string: JSON escapes character by
            # character, so a string holding a secret encodes to text holding the escaped secret.
            forms = {form for known in self._secrets for form in (known, json_string(known)[1:-1])}
            self._in_text = re.compile("|".join(re.escape(form) for form in sorted(forms)))

    def canonical(self, payload: Mapping[str, Any]) -> str:
        """``canonical_json(self.redact(dict(payload)))``, without the walk when there is nothing to redact.

        A flat dict of plain values whose field names are not secret is encoded as it is; only if
        its text then holds a registered secret is it redacted and encoded again.
        """
        if type(payload) is dict and _PLAIN.issuperset(map(type, payload.values())) and _clean_keys(payload):
            text = canonical_json(payload)
            if self._in_text is None or self._in_text.search(text) is None:
                return text
        return canonical_json(self.redact(dict(payload)))

    def redact(self, value: Any) -> Any:
        """``value`` with secrets replaced; a dict with nothing to replace comes back as the same object."""
        kind = type(value)
        # Exact types first: payloads are mostly plain dicts of numbers and strings, and this runs
        # for every audit append on the caller's thread.
        if kind is dict:
            if not self._secrets and _PLAIN.issuperset(map(type, value.values())) and _clean_keys(value):
                return value  # nothing to redact: spare the copy
            return {
                key: REDACTED if isinstance(key, str) and is_secret_key(key) else self.redact(item)
                for key, item in value.items()
            }
        if kind is int or kind is bool or kind is float or value is None:
            return value
        if kind is str and not self._secrets:
            return value
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
