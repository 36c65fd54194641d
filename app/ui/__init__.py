"""PySide6 widgets, pyqtgraph charts, the engine-to-Qt bridge (arrives with the UI issue)."""
