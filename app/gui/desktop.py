"""Hand-offs to the desktop: open a photo, reveal it in the file manager, copy its path."""

from __future__ import annotations

import atexit
import functools
import os
import sys
from pathlib import Path

from PySide6.QtCore import QProcess, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication


def open_file(path: str | os.PathLike[str]) -> bool:
    """Open ``path`` with the user's default application."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def reveal_in_file_manager(path: str | os.PathLike[str]) -> bool:
    """Show ``path`` selected in the file manager (or open its folder where that is unknown)."""
    path = str(Path(path).absolute())
    if sys.platform == "darwin":
        return QProcess.startDetached("open", ["-R", path])[0]
    if sys.platform == "win32":
        return QProcess.startDetached("explorer.exe", ["/select,", os.path.normpath(path)])[0]
    if _freedesktop_show_item(path):
        return True
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))


def _freedesktop_show_item(path: str) -> bool:
    """Ask the session's file manager over D-Bus (``org.freedesktop.FileManager1``)."""
    try:
        from PySide6.QtDBus import QDBusConnection, QDBusMessage
    except ImportError:
        return False
    bus = QDBusConnection.sessionBus()
    if not bus.isConnected():
        return False
    service = "org.freedesktop.FileManager1"
    interface = bus.interface()
    if interface is None or not interface.isServiceRegistered(service).value():
        activatable = interface.call("ListActivatableNames") if interface else None
        names = activatable.arguments()[0] if activatable and activatable.arguments() else []
        if service not in names:
            return False
    message = QDBusMessage.createMethodCall(
        service, "/org/freedesktop/FileManager1", service, "ShowItems"
    )
    message.setArguments([[QUrl.fromLocalFile(path).toString()], ""])
    return bool(bus.send(message))  # asynchronous: never blocks the GUI


def copy_paths(paths: list[str]) -> None:
    """Put the paths on the clipboard, one per line (also as file URLs for file managers)."""
    from PySide6.QtCore import QMimeData

    mime = QMimeData()
    mime.setText("\n".join(paths))
    mime.setUrls([QUrl.fromLocalFile(p) for p in paths])
    QGuiApplication.clipboard().setMimeData(mime)
    _release_clipboard_at_exit()


@functools.cache
def _release_clipboard_at_exit() -> None:
    """Empty our clipboard entry while Python still runs.

    The clipboard owns the QMimeData made here; left to Qt's own clean-up, it is destroyed after
    the interpreter has gone, and PySide6 (6.11) crashes the process on the way out.
    """

    def release() -> None:
        if QGuiApplication.instance() is not None:
            QGuiApplication.clipboard().clear()

    atexit.register(release)
