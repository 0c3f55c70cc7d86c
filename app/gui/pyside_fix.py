"""Work around PySide6 releasing references to ``None``/``True``/``False`` it does not own.

With PySide6 6.12 on Python 3.11 every ``Signal.emit()`` drops one reference to ``True`` too
many, and a Python ``data()`` override that returns ``None`` drops one to ``None`` too many. On
Python 3.12+ these objects are immortal and nothing happens; on 3.11 the app aborts with
``Fatal Python error: bool_dealloc`` (or ``none_dealloc``) after some thousands of signals or
repaints — a few minutes of scrolling or one long indexing run.

:func:`apply` checks for the leak with a probe signal and, only when it is there, makes the three
singletons immortal the way Python 3.12 does: their reference count is raised so far that it
can never reach zero. They are static objects that are never freed anyway, so nothing else
changes.
"""

from __future__ import annotations

import ctypes
import sys

_HEADROOM = 1 << 40  # references added to each singleton; decades of signals at any rate
_applied = False


def leaks_singletons() -> bool:
    """True when emitting a signal drops a reference to ``True`` (the PySide6 6.12 bug)."""
    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal()

    probe = Probe()
    before = sys.getrefcount(True)
    for _ in range(4):
        probe.ping.emit()
    return sys.getrefcount(True) < before


def _add_references(obj: object, count: int) -> None:
    ctypes.c_ssize_t.from_address(id(obj)).value += count  # ob_refcnt is the first field


def apply() -> bool:
    """Immortalise ``None``, ``True`` and ``False`` if this PySide6 needs it; returns whether."""
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False  # immortal already / another object model
    if not leaks_singletons():
        return False
    for singleton in (None, True, False):
        _add_references(singleton, _HEADROOM)
    _applied = True
    return True
