"""Durable files for backups: write to a temporary name, fsync, rename, fsync the folder; hash in chunks.

Here because backups, manifests and safety copies all need the same guarantee: a file is either
absent or whole under its final name, and it survives a power cut once the call returns.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_CHUNK = 1 << 20


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    if os.name == "nt":  # Windows cannot open a folder for fsync; rename is durable enough there
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def _temp_path(folder: Path, name: str) -> Path:
    return folder / f".{name}.{uuid.uuid4().hex[:12]}.tmp"


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


@contextmanager
def _atomic_target(dest: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success fsync it and rename it over ``dest``."""
    tmp = _temp_path(dest.parent, dest.name)
    try:
        yield tmp
        if os.name != "nt":
            os.chmod(tmp, 0o600)  # trading records: readable by their owner only
        _fsync_file(tmp)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    finally:
        _unlink(tmp)


def _write_bytes_atomic(dest: Path, data: bytes) -> None:
    with _atomic_target(dest) as tmp:
        tmp.write_bytes(data)


def _free_path(base: Path) -> Path:
    candidate, index = base, 1
    while candidate.exists() or candidate.with_name(candidate.name + "-wal").exists():
        index += 1
        candidate = base.with_name(f"{base.name}-{index}")
    return candidate
