"""Guard against PySide6 6.12.0 releasing references to ``True``/``None`` it does not own.

Which versions: PySide6 **6.12.0** on CPython **3.11 and older** (measured 2026-11 with the
probe below on Linux: every ``Signal.emit()`` drops one reference to ``True``, and every
``data()`` value that C++ reads back from a Python model drops one to ``None``; 6.11.3 on the
same Python drops none). The same defect was reported upstream as PYSIDE-3474. On Python
3.12+ these singletons are immortal, so nothing happens there. On 3.11 the app aborts with
``Fatal Python error: bool_dealloc`` (or ``none_dealloc``) after a few thousand signals or
repaints — minutes of scrolling or one long indexing run.

The fix is a version constraint: ``pyproject.toml`` excludes 6.12.0 on Python < 3.12, so a
fresh install gets a good release. This module stays as a guard for environments that already
hold 6.12.0 (pip does not downgrade an installed package by itself): :func:`apply` checks for
the leak with a probe signal and, only when it is there, makes the three singletons immortal
the way Python 3.12 does (their reference count is raised so far that it can never reach
zero; they are static objects that are never freed anyway). ``tests/gui/test_pyside_fix.py``
fails when a new release leaks (add it to :data:`AFFECTED` and the constraint) or when the
project no longer supports a Python where this can happen (then delete this module).
"""

from __future__ import annotations

import ctypes
import sys

AFFECTED = ("6.12.0",)
"""PySide6 releases known to over-release the singletons (on Python < :data:`IMMORTAL_FROM`)."""
IMMORTAL_FROM = (3, 12)
"""CPython version from which ``None``/``True``/``False`` are immortal (PEP 683)."""

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
    if sys.version_info >= IMMORTAL_FROM or sys.implementation.name != "cpython":
        return False  # immortal already / another object model
    if not leaks_singletons():
        return False
    for singleton in (None, True, False):
        _add_references(singleton, _HEADROOM)
    _applied = True
    return True
