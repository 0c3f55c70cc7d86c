"""Hooks the library-management parts into the main window: Library ▸ Folders…, the errors
view (also from the status bar's "N could not be read"), the waiting/Resume bar and watch
folders. Kept out of ``main_window`` so that file only calls :func:`install_library_tools`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt

from app.gui.actions import make_action
from app.gui.resume import ResumeBar, ResumeTracker

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow


class LibraryTools(QObject):
    """The library-management parts of one main window."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.dialogs = window.dialogs  # shared: the window shows and closes them
        self.folders_action = make_action(
            window,
            "&Folders…",
            self.open_folders,
            "Ctrl+Shift+L",
            "Library folders: counts, add, remove, exclude, rescan",
        )
        self.folders_action.setObjectName("foldersAction")
        self.errors_action = make_action(
            window, "Photos that could not be &read…", lambda: self.open_errors(None)
        )
        menu = window.menus["&Library"]
        first = menu.actions()[1]  # after "Add photo folders…"
        menu.insertAction(first, self.folders_action)
        menu.insertAction(first, self.errors_action)

        self.resume_bar = ResumeBar(window)
        window.statusBar().addPermanentWidget(self.resume_bar)
        self.resume = ResumeTracker(self.session, self.resume_bar)
        self._counted_once = False
        self.session.libraryInfo.connect(self._library_info)

        window.counts_label.installEventFilter(self)

    def _library_info(self, info: Any) -> None:
        clickable = bool(info.failures)
        counts = self.window.counts_label
        counts.setCursor(
            Qt.CursorShape.PointingHandCursor if clickable else Qt.CursorShape.ArrowCursor
        )
        counts.setToolTip("Click to see which photos could not be read" if clickable else "")
        if not self._counted_once and info.folders:
            self._counted_once = True
            self.resume.count()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """A click on "N could not be read" in the status bar opens the errors view."""
        if (
            watched is self.window.counts_label
            and event.type() == QEvent.Type.MouseButtonRelease
            and self.session.info.failures
        ):
            self.open_errors(None)
            return True
        return super().eventFilter(watched, event)

    def open_folders(self) -> Any:
        """The Folders panel."""
        from app.gui.folders_dialog import FoldersDialog

        def make() -> Any:
            dialog = FoldersDialog(self.session, self.window)
            dialog.errorsRequested.connect(self.open_errors)
            return dialog

        return self.window.show_dialog("folders", make)

    def open_errors(self, folder: str | None = None) -> Any:
        """The errors view (all failures, or one folder's)."""
        from app.gui.errors_view import ErrorsDialog

        old = self.dialogs.get("errors")
        if old is not None and getattr(old, "folder", None) != folder:
            old.close()
        return self.window.show_dialog(
            "errors", lambda: ErrorsDialog(self.session, folder, self.window)
        )


def install_library_tools(window: MainWindow) -> LibraryTools:
    """Add the library-management parts to ``window`` and turn on watch folders if wanted."""
    tools = LibraryTools(window)
    if window.settings.watch_folders:
        window.session.set_watching(True)
    return tools
