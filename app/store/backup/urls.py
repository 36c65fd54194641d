"""Database URLs as backups see them: which backend a URL names, and its password kept out of text.

One place so no message, manifest or tool output of either backend can carry a password.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .errors import BackupError


def _describe(url: str) -> str:
    """A URL fit for messages and manifests: the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _scrub(text: str, *urls: str) -> str:
    """Remove every password of ``urls`` from ``text`` (tool output, driver errors)."""
    for url in urls:
        try:
            password = make_url(url).password
        except ArgumentError:
            continue
        if password:
            text = text.replace(str(password), "***")
    return text


def _backend(url: str) -> str:
    try:
        name = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise BackupError(f"not a database URL: {_describe(url)}") from exc
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"cannot back up a {name} database: only SQLite and PostgreSQL are supported")
    return name
