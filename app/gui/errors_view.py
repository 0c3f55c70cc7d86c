"""The "could not be read" list: each file with the reason, and a Retry that reads them again.

Failure records are kept by the library so a broken file is not retried on every run; Retry
forgets the chosen records and asks the session to index their folders (now, or right after
the run that is going on).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QWidget

from app.gui import desktop
from app.gui import folder_status as fs
from app.gui import widgets as ui
from app.gui.formatting import count_text
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
        ui.frame_dialog(self, "errorsDialog", "Photos that could not be read", 880, 360)
        self.summary = ui.label("Loading…", self, wrap=True)
        self.list = ui.path_list(
            self, "errorList", ["File", "Why it could not be read"], path_width=360, several=True
        )
        self.list.itemSelectionChanged.connect(self._selection)
        self.retry_button = ui.button(
            "Retry selected",
            self,
            lambda: self.retry(self.selected_paths()),
            name="retrySelected",
        )
        self.retry_all_button = ui.button(
            "Retry all", self, lambda: self.retry(self.paths()), name="retryAll"
        )
        keep_disabled(session, self.retry_button, self.retry_all_button, what="retrying")
        self.copy_button = ui.button("Copy paths", self, self._copy)
        row = ui.hbox(
            self.retry_button,
            self.retry_all_button,
            self.copy_button,
            ui.STRETCH,
            ui.close_buttons(self),
        )
        ui.vbox(self.summary, (self.list, 1), row, parent=self)
        self._selection()
        session.indexingDone.connect(bound(self, lambda _run: self.refresh()))
        self.refresh()

    def refresh(self) -> None:
        """Reload the list in a worker thread (emits ``loaded`` with the count)."""
        library, folder = self.session.library, self.folder
        run_task(
            self.session.tasks,
            lambda _r, _c: [(f.path, f.reason) for f in library.store.failures(folder)],
            name="failures",
            on_success=bound(self, self._show),
        )

    def _show(self, rows: list[tuple[str, str]]) -> None:
        ui.show_rows(self.list, rows)
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

    def rows(self) -> list[tuple[str, ...]]:
        """The listed (path, reason) pairs."""
        return ui.row_texts(self.list)

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
            library.store.clear_failures(paths)
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
