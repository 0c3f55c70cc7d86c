"""The desktop app (``lotlip-search-gui``): PySide6 widgets that drive ``app.library`` and
``training`` from worker threads. No indexing, search or training logic lives here.

It may import ``app.library``, ``training`` and ``lotlip``; nothing outside ``app.gui``
imports it.
"""

from __future__ import annotations

from importlib import metadata

from app.gui import pyside_fix

try:
    __version__ = metadata.version("lotlip-search")
except metadata.PackageNotFoundError:  # running from a source checkout
    __version__ = "0.1.0"

pyside_fix.apply()  # before any widget exists; see the module for the PySide6 6.12 bug
