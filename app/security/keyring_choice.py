"""Which keyring the desk uses when its data folder keeps secrets in the system's: that one, never a chain.

Light on purpose (keyring alone, not keyrings.cryptfile and its ciphers): every command but
``panic`` calls it before it runs, and the desk window after its first paint.

With keyrings.cryptfile installed, keyring's automatic choice is a chain of every backend it
finds, cryptfile's plaintext one among them; ``is_secure_backend`` rightly refuses such a chain, so
a desk on Windows or macOS would be told it has no secure keyring. ``select_system_keyring`` puts
the operating system's own keyring back in its place.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import keyring
from keyring.backends import fail
from keyring.backends.chainer import ChainerBackend

from app.store.chain_key import backend_label, is_secure_backend

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

log = logging.getLogger(__name__)


def _explicitly_chosen() -> bool:
    if os.environ.get("PYTHON_KEYRING_BACKEND"):
        return True
    try:
        return keyring.core.load_config() is not None
    except Exception:  # noqa: BLE001 - an unreadable keyringrc chose nothing the desk could honour
        return False


def select_system_keyring() -> KeyringBackend:
    """The process's keyring, with keyring's chain of every backend replaced by the system's own.

    Left alone: a backend already installed (``keyring.set_keyring``, as the tests do) or chosen
    with ``PYTHON_KEYRING_BACKEND`` or keyring's config file. Otherwise the chain's first backend
    that protects secrets and is not keyrings.cryptfile's (which would ask for a passphrase on the
    terminal, for a file outside the data folder) is installed, else keyring's ``fail`` backend.
    """
    current = keyring.get_keyring()
    if not isinstance(current, ChainerBackend) or _explicitly_chosen():
        return current
    chained: list[KeyringBackend] = list(current.backends)
    chosen: KeyringBackend = next(
        (backend for backend in chained
         if not type(backend).__module__.startswith("keyrings.cryptfile") and is_secure_backend(backend)),
        fail.Keyring(),  # type: ignore[no-untyped-call]
    )
    keyring.set_keyring(chosen)
    log.debug("keyring: %s instead of keyring's chain of %d backends", backend_label(chosen), len(chained))
    return chosen
