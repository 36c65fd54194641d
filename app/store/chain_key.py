"""The audit chain's keys: HMAC-SHA256 secrets kept in the OS keyring, never in the database.

Each key is stored under ``audit.chain_key.<fingerprint>`` (service ``bulwark``), so a record's
``key_fp`` column is enough to find the key that checks it, on any machine whose keyring holds it.
The fingerprint is the first 16 hex digits of SHA-256 over a label and the key: it names the key
without revealing anything that would let anyone recompute a hash.

Every writer (the desk, ``panic``, ``rearm``, the CLI) and ``audit verify`` get keys only through
``ChainKeys``; ``keyring`` is imported on first use, so a command that never meets a keyed record
never pays for loading it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import TYPE_CHECKING, Any, NoReturn

from .db import StoreError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

log = logging.getLogger(__name__)

SERVICE = "bulwark"
ALGORITHM = "HMAC-SHA256"
_ENTRY = "audit.chain_key."
_FINGERPRINT_LABEL = b"bulwark audit chain key fingerprint v1\x00"
_CHECKPOINT_LABEL = b"bulwark audit checkpoint v1\x00"
_KEY_BYTES = 32
# keyring's fail and null backends store nothing; plaintext ones (keyrings.alt) protect nothing.
_INSECURE = ("fail", "null", "plaintext", "chainer")


def fingerprint_of(secret: bytes) -> str:
    """The public name of a key: 16 hex digits of SHA-256 over a domain-separation label and the key."""
    return hashlib.sha256(_FINGERPRINT_LABEL + secret).hexdigest()[:16]


def entry_name(fingerprint: str) -> str:
    """The keyring entry (service ``bulwark``) holding the key named ``fingerprint``."""
    return _ENTRY + fingerprint


def backend_label(backend: KeyringBackend) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


def is_secure_backend(backend: KeyringBackend) -> bool:
    """Whether a keyring backend really protects what it stores."""
    name = backend_label(backend).lower()
    return not any(word in name for word in _INSECURE)


class ChainKeyError(StoreError):
    """A key the chain needs is not in this machine's keyring, or the keyring cannot be used."""


class ChainKey:
    """One chain key: its fingerprint, and a keyed HMAC state each record's MAC is copied from.

    The secret stays inside: it is not in ``repr``, cannot be pickled, and only ever leaves as a MAC.
    """

    __slots__ = ("_mac", "_secret", "fingerprint")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a chain key must be at least 16 bytes")
        self._secret = secret
        self.fingerprint = fingerprint_of(secret)
        # HMAC (RFC 2104) as two SHA-256 states already fed the padded key: copying them per record
        # skips re-keying, and plain hashlib copies cost less than the hmac module's wrapper.
        block = secret if len(secret) <= 64 else hashlib.sha256(secret).digest()
        block = block.ljust(64, b"\0")
        self._mac = (hashlib.sha256(bytes(b ^ 0x36 for b in block)), hashlib.sha256(bytes(b ^ 0x5C for b in block)))

    def pads(self) -> tuple[Any, Any]:
        """The keyed inner and outer SHA-256 states: copy both, feed the inner, feed its digest to the outer."""
        return self._mac

    def hexdigest(self, message: bytes) -> str:
        """HMAC-SHA256 of ``message`` under this key (what ``hmac.new(key, message, sha256)`` gives)."""
        inner, outer = self._mac[0].copy(), self._mac[1].copy()
        inner.update(message)
        outer.update(inner.digest())
        return outer.hexdigest()

    def sign(self, message: bytes) -> str:
        """The checkpoint signature of ``message`` (domain-separated from record MACs)."""
        return hmac.new(self._secret, _CHECKPOINT_LABEL + message, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"ChainKey({self.fingerprint})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a chain key is not serialisable")


def missing_key_message(fingerprint: str, backend: str) -> str:
    return f"the chain is keyed with key {fingerprint}; this machine's keyring ({backend}) has no such key"


class ChainKeys:
    """Finds and creates chain keys in a keyring backend (the system's, unless one is given)."""

    def __init__(self, backend: KeyringBackend | None = None) -> None:
        self._backend = backend
        self._found: dict[str, ChainKey] = {}

    def _keyring(self) -> KeyringBackend:
        if self._backend is None:
            import keyring

            self._backend = keyring.get_keyring()
        return self._backend

    def describe(self) -> str:
        """The keyring backend's name (for messages)."""
        return backend_label(self._keyring())

    def get(self, fingerprint: str) -> ChainKey | None:
        """The key named ``fingerprint``, or ``None`` if this keyring does not hold it (or holds no keys at all)."""
        known = self._found.get(fingerprint)
        if known is not None:
            return known
        from keyring.errors import KeyringError

        try:
            stored = self._keyring().get_password(SERVICE, _ENTRY + fingerprint)
        except Exception as exc:  # noqa: BLE001 - a broken backend holds no usable key; the caller fails closed
            if not isinstance(exc, KeyringError):
                log.warning("the keyring %s failed reading audit chain key %s: %s",
                            backend_label(self._keyring()), fingerprint, type(exc).__name__)
            return None
        if not stored:
            return None
        try:
            key = ChainKey(bytes.fromhex(stored))
        except ValueError:
            return None
        # An entry whose content does not hash to its name is someone else's, or damaged.
        if key.fingerprint != fingerprint:
            return None
        self._found[fingerprint] = key
        return key

    def require(self, fingerprint: str) -> ChainKey:
        """The key named ``fingerprint``; ``ChainKeyError`` saying so if this keyring lacks it."""
        key = self.get(fingerprint)
        if key is None:
            raise ChainKeyError(missing_key_message(fingerprint, self.describe()))
        return key

    def create(self) -> ChainKey | None:
        """A new random key, stored before it is returned; ``None`` (and a warning) without a secure keyring."""
        backend = self._keyring()
        if not is_secure_backend(backend):
            log.warning("audit chain left unkeyed: the keyring backend %s does not protect secrets; anyone who can "
                        "write the database could recompute the chain", backend_label(backend))
            return None
        key = ChainKey(secrets.token_bytes(_KEY_BYTES))
        try:
            backend.set_password(SERVICE, _ENTRY + key.fingerprint, key._secret.hex())
        except Exception as exc:  # noqa: BLE001 - any failing backend: the chain stays unkeyed and says so
            log.warning("audit chain left unkeyed: the keyring %s refused to store a key (%s)",
                        backend_label(backend), type(exc).__name__)
            return None
        if self.get(key.fingerprint) is None:
            log.warning("audit chain left unkeyed: the keyring %s did not give back the key it stored",
                        backend_label(backend))
            return None
        log.info("created audit chain key %s in %s", key.fingerprint, backend_label(backend))
        return key
