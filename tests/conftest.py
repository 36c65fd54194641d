"""Shared test set-up. Qt, when a test uses it, renders offscreen: no display needed."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
