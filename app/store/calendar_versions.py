"""Versions of the trading calendar in force (see ``document_versions``)."""

from __future__ import annotations

from .document_versions import DocumentVersions
from .models import CalendarVersionRow

_VERSIONS = DocumentVersions(CalendarVersionRow.__table__)  # type: ignore[arg-type]

insert = _VERSIONS.insert
latest = _VERSIONS.latest
history = _VERSIONS.history
