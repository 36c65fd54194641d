"""Versions of the risk limits (see ``document_versions``)."""

from __future__ import annotations

from .document_versions import DocumentVersions, StoredDocument
from .models import LimitVersionRow

StoredLimits = StoredDocument
_VERSIONS = DocumentVersions(LimitVersionRow.__table__)  # type: ignore[arg-type]

insert = _VERSIONS.insert
latest = _VERSIONS.latest
history = _VERSIONS.history
