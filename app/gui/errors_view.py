"""The "could not be read" list: each file with the reason, and a Retry that reads them again.

Failure records are kept by the library so a broken file is not retried on every run; Retry
forgets the chosen records and asks the session to index their folders (now, or right after
the run that is going on).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui import desktop
from app.gui import folder_status as fs
from app.gui.formatting import count_text
from app.gui.icons import app_icon
from app.gui.read_only import keep_disabled
from app.gui.session import Session
from app.gui.tasks import bound, run_task


class ErrorsDialog(QDialog):
    """Files that could not be read (all, or one folder's). Signal ``loaded(int)``."""

    loaded = Signal(int)

    def __init__(
        self, session: Session, folder: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.folder = folder
        self.setObjectName("errorsDialog")
        self.setWindowTitle("Photos that could not be read")
        self.setWindowIcon(app_icon())
        self.resize(880, 360)
        self.summary = QLabel("Loading…", self)
        self.summary.setWordWrap(True)
        self.list = QTreeWidget(self)
        self.list.setObjectName("errorList")
        self.list.setHeaderLabels(["File", "Why it could not be read"])
        self.list.setRootIsDecorated(False)
        self.list.setAlternatingRowColors(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.list.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.list.header().setStretchLastSection(True)
        self.list.setColumnWidth(0, 360)
        self.list.itemSelectionChanged.connect(self._selection)
        self.retry_button = QPushButton("Retry selected", self)
        self.retry_button.setObjectName("retrySelected")
        self.retry_button.clicked.connect(lambda: self.retry(self.selected_paths()))
        self.retry_all_button = QPushButton("Retry all", self)
        self.retry_all_button.setObjectName("retryAll")
        self.retry_all_button.clicked.connect(lambda: self.retry(self.paths()))
        keep_disabled(session, self.retry_button, self.retry_all_button, what="retrying")
        self.copy_button = QPushButton("Copy paths", self)
        self.copy_button.clicked.connect(self._copy)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.retry_button)
        row.addWidget(self.retry_all_button)
        row.addWidget(self.copy_button)
        row.addStretch(1)
        row.addWidget(buttons)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.list, 1)
        layout.addLayout(row)
        self._selection()
        session.indexingDone.connect(bound(self, lambda _run: self.refresh()))
        self.refresh()

    def refresh(self) -> None:
        """Reload the list in a worker thread (emits ``loaded`` with the count)."""
        library, folder = self.session.library, self.folder
        run_task(
            self.session.tasks,
            lambda _r, _c: [(f.path, f.reason) for f in fs.failures(library, folder)],
            name="failures",
            on_success=bound(self, self._show),
        )

    def _show(self, rows: list[tuple[str, str]]) -> None:
        self.list.clear()
        for path, reason in rows:
            item = QTreeWidgetItem([path, reason])
            item.setToolTip(0, path)
            item.setToolTip(1, reason)
            self.list.addTopLevelItem(item)
        where = f" in {self.folder}" if self.folder else ""
        self.summary.setText(
            f"{count_text(len(rows), 'file')}{where} could not be read. They are tried again "
            "when they change, or now with Retry."
            if rows
            else f"Every photo{where} could be read."
        )
        self.retry_all_button.setEnabled(bool(rows))
        self._selection()
        self.loaded.emit(len(rows))

    def rows(self) -> list[tuple[str, str]]:
        """The listed (path, reason) pairs."""
        items = (self.list.topLevelItem(i) for i in range(self.list.topLevelItemCount()))
        return [(item.text(0), item.text(1)) for item in items if item is not None]

    def paths(self) -> list[str]:
        """Every listed path."""
        return [path for path, _ in self.rows()]

    def selected_paths(self) -> list[str]:
        """The selected paths."""
        return [item.text(0) for item in self.list.selectedItems()]

    def _selection(self) -> None:
        self.retry_button.setEnabled(bool(self.list.selectedItems()))

    def retry(self, paths: list[str]) -> None:
        """Forget the failure records of ``paths`` and index their folders again."""
        if not paths:
            return
        library, session = self.session.library, self.session

        def work(_r: Any, _c: Any) -> list[str]:
            fs.clear_failures(library, paths)
            return fs.roots_of(library, paths)

        def cleared(roots: list[str]) -> None:
            if roots:
                session.index_soon(roots)
            self.summary.setText(f"Reading {count_text(len(paths), 'file')} again…")

        run_task(session.tasks, work, name="retry-failures", on_success=bound(self, cleared))

    def _copy(self) -> None:
        paths = self.selected_paths() or self.paths()
        if paths:
            desktop.copy_paths(paths)
