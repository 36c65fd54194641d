"""Bulwark, a trading control desk for ICICI Direct Breeze traders."""

# The one place the version is written: pyproject.toml reads it, and so do the installers.
__version__ = "0.1.0"
