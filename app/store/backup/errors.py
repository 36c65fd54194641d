"""The one exception of the backup package.

Its own module so every other module of the package (names, files, URLs, backends) can raise it
without importing any of the others.
"""

from __future__ import annotations

from ..db import StoreError


class BackupError(StoreError):
    """A backup could not be created, checked or restored; the message says why and what to do."""
