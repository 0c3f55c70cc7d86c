"""A read-only library (a read-only medium, a snapshot, someone else's files): search, never write.

The store opens a library it cannot write read-only (``Store.read_only``), as the command line
does. The app then says so once in the status bar and turns off every control that would write
(indexing, removing, captions, settings, watch folders, switching models, saving searches), each
with the reason as its tooltip, instead of letting the write fail later. :func:`keep_disabled`
is the one way to do that: a control stays off even when its dialog recomputes its state.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QWidget

LABEL = "Read-only library"


def reason(session: Any, what: str) -> str:
    """Why ``what`` (e.g. "indexing") is off in a read-only library, and what to do."""
    return (
        f"{what[:1].upper()}{what[1:]} is off: the library at {session.library_dir} is "
        "read-only. Searching works. To change the library, copy its folder to a writable "
        "place and choose the copy in Library ▸ Settings."
    )


class _StayDisabled(QObject):
    """Undoes any later enabling of the widgets it watches."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            event.type() == QEvent.Type.EnabledChange
            and isinstance(watched, QWidget)
            and watched.isEnabled()
        ):
            watched.setEnabled(False)
        return False


def keep_disabled(session: Any, *controls: QWidget | QAction, what: str) -> bool:
    """In a read-only library, turn ``controls`` off for good, with the reason as their tooltip.

    ``what`` names what they do ("indexing", "removing photos"). Returns whether the library
    is read-only (nothing happens otherwise).
    """
    if not session.read_only:
        return False
    tip = reason(session, what)
    for control in controls:
        control.setToolTip(tip)
        control.setStatusTip(tip)
        control.setEnabled(False)
        if isinstance(control, QAction):
            control.changed.connect(
                lambda c=control: c.setEnabled(False) if c.isEnabled() else None
            )
        else:
            lock = _StayDisabled(control)
            control.installEventFilter(lock)
    return True


def show_read_only(window: Any) -> None:
    """Say in the main window's status bar that the library is read-only and turn off what
    would write (menus, the welcome page, saved searches, the Resume button)."""
    session = window.session
    if not session.read_only:
        return
    label = QLabel(LABEL, window)
    label.setObjectName("readOnlyLabel")
    label.setToolTip(reason(session, "changing it"))
    window.statusBar().addPermanentWidget(label)
    window.read_only_label = label
    keep_disabled(
        session,
        window.index_action,
        window.update_action,
        window.welcome.start_button,
        window.welcome.demo_button,
        window.library_tools.resume_bar.button,
        what="indexing",
    )
    keep_disabled(session, window.remove_action, what="removing photos from the library")
    keep_disabled(
        session,
        window.captions_action,
        window.import_captions_action,
        window.preview.captions_button,
        what="editing captions",
    )
    saved = window.paragraph.saved
    keep_disabled(session, saved.save_button, saved.delete_button, what="saving searches")
