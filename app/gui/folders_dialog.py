"""Library ▸ Folders: every library folder with its photos, waiting photos, failures and
whether it is reachable; add, remove, exclude a subfolder, rescan, see what could not be read.

Counting runs in a worker thread (it walks the folders to count what is waiting); changes that
write to the library (remove, exclude) also run there and are refused while indexing runs,
because the indexer holds the library's write lock in this process.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHeaderView,
    QMessageBox,
    QTreeWidgetItem,
    QWidget,
)

from app.gui import folder_status as fs
from app.gui import widgets as ui
from app.gui.formatting import count_text
from app.gui.read_only import keep_disabled
from app.gui.session import Session
from app.gui.tasks import bound, run_task

if TYPE_CHECKING:
    from app.library.library import FolderStatus

COLUMNS = ("Folder", "Photos", "Waiting", "Could not be read", "Status")
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
COL_PATH, COL_PHOTOS, COL_PENDING, COL_FAILED, COL_STATUS = range(len(COLUMNS))


class FoldersDialog(QDialog):
    """The Folders panel (see the module docstring).

    Signals: ``refreshed(list[FolderStatus])`` after each reload, ``changed(str)`` after a
    remove or exclude (a line saying what was done), ``errorsRequested(str | None)`` (a folder,
    or None for all) when a "could not be read" link is used.
    """

    refreshed = Signal(list)
    changed = Signal(str)
    errorsRequested = Signal(object)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.statuses: list[FolderStatus] = []
        self._loading = False
        self._again = False
        ui.frame_dialog(self, "foldersDialog", "Library folders", 820, 320)

        self.list = ui.path_list(self, "folderList", COLUMNS, several=True)
        header = self.list.header()
        header.setSectionResizeMode(COL_PATH, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self.list.itemDoubleClicked.connect(self._double_clicked)

        self.summary = ui.label("Counting…", self, name="foldersSummary", wrap=True)
        self.errors_link = ui.label("", self, name="errorsLink", rich=True)
        self.errors_link.linkActivated.connect(lambda _link: self.errorsRequested.emit(None))
        self.errors_link.hide()

        self.add_button = ui.button("Add folder…", self, self.choose_folder, name="addFolder")
        self.remove_button = ui.button(
            "Remove",
            self,
            self.confirm_remove,
            name="removeFolder",
            tip="Remove the folder's photos from the library (the files stay on disk)",
        )
        self.exclude_button = ui.button(
            "Exclude subfolder…",
            self,
            self.choose_exclusion,
            name="excludeSubfolder",
            tip="Stop indexing a folder inside the selected one",
        )
        self.rescan_button = ui.button(
            "Rescan",
            self,
            lambda: self.rescan(self.selected_paths() or None),
            name="rescanFolder",
            tip="Look for new, changed and removed photos now",
        )
        actions = (self.add_button, self.remove_button, self.exclude_button, self.rescan_button)
        keep_disabled(session, *actions, what="changing the library's folders")
        status_row = ui.hbox((self.summary, 1), self.errors_link)
        ui.vbox(
            (self.list, 1),
            status_row,
            ui.hbox(*actions, ui.STRETCH, ui.close_buttons(self)),
            parent=self,
        )

        session.indexingStarted.connect(bound(self, lambda _run: self._update_buttons()))
        session.indexingDone.connect(bound(self, lambda _run: self.refresh()))
        self._update_buttons()
        self.refresh()

    # -- reading --------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Recount in a worker thread; emits ``refreshed`` when done."""
        if self._loading:
            self._again = True
            return
        self._loading = True
        library, model = self.session.library, self.session.model_name
        run_task(
            self.session.tasks,
            lambda _r, cancelled: fs.folder_statuses(library, model, cancel=cancelled),
            name="folder-status",
            on_success=bound(self, self._show),
            on_failure=bound(self, self._failed),
        ).finished.connect(bound(self, self._loaded))

    def _loaded(self) -> None:
        self._loading = False
        if self._again:
            self._again = False
            self.refresh()

    def _failed(self, message: str) -> None:
        self.summary.setText(f"The folders could not be counted: {message}")

    def _show(self, statuses: list[FolderStatus]) -> None:
        selected = set(self.selected_paths())
        self.statuses = statuses
        self.list.clear()
        for status in statuses:
            item = QTreeWidgetItem(self._cells(status))
            item.setData(COL_PATH, Qt.ItemDataRole.UserRole, status.path)
            tip = status.path
            if status.excludes:
                tip += "\nExcluded: " + ", ".join(status.excludes)
            item.setToolTip(COL_PATH, tip)
            for column in range(1, len(COLUMNS)):
                item.setTextAlignment(column, RIGHT)
            if status.failures:
                item.setToolTip(COL_FAILED, "Double-click to see which files and why")
            if not status.online:
                item.setForeground(COL_STATUS, QBrush(QColor("#b3261e")))
                item.setToolTip(
                    COL_STATUS,
                    "The folder cannot be reached (unplugged drive or network share?). Its "
                    "photos stay in the library and come back when it does.",
                )
            self.list.addTopLevelItem(item)
            item.setSelected(status.path in selected)
        self._summarise(statuses)
        self._update_buttons()
        self.refreshed.emit(statuses)

    @staticmethod
    def _cells(status: FolderStatus) -> list[str]:
        pending = "—" if status.pending is None else f"{status.pending:,}"
        return [
            status.path,
            f"{status.photos:,}",
            pending,
            f"{status.failures:,}",
            "Online" if status.online else "Offline",
        ]

    def _summarise(self, statuses: list[FolderStatus]) -> None:
        if not statuses:
            self.summary.setText("No folders yet. Add one to start.")
            self.errors_link.hide()
            return
        photos = sum(s.photos for s in statuses)
        waiting = sum(s.pending or 0 for s in statuses)
        offline = sum(1 for s in statuses if not s.online)
        parts = [f"{count_text(photos, 'photo')} in {count_text(len(statuses), 'folder')}"]
        if waiting:
            parts.append(f"{count_text(waiting, 'photo')} waiting to be indexed")
        if offline:
            parts.append(f"{offline} offline")
        self.summary.setText(" · ".join(parts))
        failed = sum(s.failures for s in statuses)
        self.errors_link.setText(f'<a href="errors">{failed:,} could not be read</a>')
        self.errors_link.setVisible(failed > 0)

    def rows(self) -> list[tuple[str, ...]]:
        """The table as text (tests, copying)."""
        return ui.row_texts(self.list)

    def selected_paths(self) -> list[str]:
        """The selected folders."""
        return [
            str(item.data(COL_PATH, Qt.ItemDataRole.UserRole)) for item in self.list.selectedItems()
        ]

    def select(self, path: str) -> None:
        """Select the row of ``path`` only."""
        self.list.clearSelection()
        for i in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(i)
            if item is not None and item.data(COL_PATH, Qt.ItemDataRole.UserRole) == path:
                item.setSelected(True)
                self.list.setCurrentItem(item)

    def _update_buttons(self) -> None:
        selected = bool(self.list.selectedItems())
        busy = self.session.busy()
        self.remove_button.setEnabled(selected and not busy)
        self.exclude_button.setEnabled(len(self.selected_paths()) == 1 and not busy)
        for widget in (self.remove_button, self.exclude_button):
            base = widget.property("baseTip")
            if base is None:
                widget.setProperty("baseTip", widget.toolTip())
                base = widget.toolTip()
            widget.setToolTip(f"{base} (stop indexing first)" if busy else base)

    def _double_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        if column == COL_FAILED and item.text(COL_FAILED) not in ("0", ""):
            self.errorsRequested.emit(item.data(COL_PATH, Qt.ItemDataRole.UserRole))

    # -- changing -------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        """Ask for a folder and add it."""
        path = QFileDialog.getExistingDirectory(self, "Add a photo folder", os.path.expanduser("~"))
        if path:
            self.add_folder(path)

    def add_folder(self, path: str) -> None:
        """Add ``path`` to the library and index it (now, or after the current run)."""
        path = os.path.abspath(path)
        if not os.path.isdir(path):
            QMessageBox.warning(self, "Add folder", f"{path} is not a folder.")
            return
        self.session.add_folders([path], self.session.excludes)
        self.session.index_soon([path])
        self.refresh()

    def confirm_remove(self) -> None:
        """Ask, then remove the selected folders from the library."""
        paths = self.selected_paths()
        if not paths:
            return
        names = "\n".join(paths[:8]) + ("\n…" if len(paths) > 8 else "")
        if ui.confirm(
            self,
            "Remove from the library",
            f"Remove these folders and their photos from the library?\n\n{names}\n\n"
            "The files on disk are not touched.",
        ):
            self.remove(paths)

    def remove(self, paths: list[str]) -> None:
        """Forget ``paths`` (what ``lotlip-search forget`` does) in a worker thread."""
        self._write(
            lambda library: sum(library.forget(p) for p in paths),
            lambda n: f"Removed {count_text(n, 'photo')} from the library",
        )

    def choose_exclusion(self) -> None:
        """Ask for a subfolder of the selected folder and exclude it."""
        selected = self.selected_paths()
        if len(selected) != 1:
            return
        path = QFileDialog.getExistingDirectory(self, "Exclude a subfolder", selected[0])
        if path:
            self.exclude(path)

    def exclude(self, subfolder: str) -> None:
        """Exclude ``subfolder`` from indexing and drop its photos (worker thread)."""
        subfolder = os.path.abspath(subfolder)
        self._write(
            lambda library: fs.exclude_subfolder(library, subfolder),
            lambda n: f"Excluded {subfolder} ({count_text(n, 'photo')} removed)",
        )

    def _write(self, work: Any, message: Any) -> None:
        if self.session.busy():
            QMessageBox.information(self, "Folders", "Stop indexing first, then try again.")
            return
        library = self.session.library
        for widget in (self.remove_button, self.exclude_button):
            widget.setEnabled(False)

        def done(n: int) -> None:
            text = message(n)
            self.summary.setText(text)
            self.session.refresh_info()
            self.changed.emit(text)
            self.refresh()

        def failed(text: str) -> None:
            QMessageBox.warning(self, "Folders", text)
            self._update_buttons()

        run_task(
            self.session.tasks,
            lambda _r, _c: work(library),
            name="folder-change",
            on_success=bound(self, done),
            on_failure=bound(self, failed),
        )

    def rescan(self, paths: list[str] | None = None) -> None:
        """Look for new, changed and removed photos in ``paths`` (None: every folder)."""
        self.session.index_soon(paths)
        self.summary.setText("Rescanning…")
