"""The signed checkpoint a backup carries: made for the backed-up chain's last record, written
into the manifest and appended to the data folder's checkpoint file.

One module for both backends because the rule is one: never sign a chain that is broken or
shorter than a checkpoint already taken.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from ..chain_key import ChainKeys
from ..checkpoints import (
    Checkpoint,
    CheckpointError,
    append_checkpoint,
    make_checkpoint,
    read_checkpoints,
)
from ..db import StoreError

log = logging.getLogger(__name__)


def _checkpoint(tail: tuple[int, str, str | None], keys: ChainKeys, moment: dt.datetime,
                notes: list[str], *, verified: bool, checkpoints: Path | None) -> Checkpoint | None:
    """A signed checkpoint of the backed-up tail, unless that would bless a chain that is broken or
    shorter than a checkpoint already taken (a truncation): the manifest then says why there is none."""
    if not verified:
        notes.append("no checkpoint: the chain did not verify")
        return None
    if checkpoints is not None and checkpoints.exists():
        try:
            newest = max((checkpoint.seq for checkpoint in read_checkpoints(checkpoints)), default=0)
        except StoreError as exc:
            notes.append(f"no checkpoint: {exc}")
            return None
        if newest > tail[0]:
            notes.append(f"no checkpoint: the chain ends at record {tail[0]}, before the checkpoint at record {newest} "
                         f"in {checkpoints.name} (records were removed)")
            return None
    try:
        return make_checkpoint(*tail, keys, "backup", moment)
    except StoreError as exc:
        # The backup is made all the same (evidence is never withheld); the manifest says why it has no checkpoint.
        notes.append(f"no checkpoint: {exc}")
        return None


def _record_checkpoint(checkpoint: Checkpoint | None, checkpoints: Path | None) -> None:
    if checkpoint is None or checkpoints is None:
        return
    try:
        append_checkpoint(checkpoints, checkpoint)
    except CheckpointError as exc:
        log.error("backup made, but its checkpoint was not appended: %s", exc)
