"""What the window does to photos: open, show in folder, copy paths or the image, export to a
folder, remove from the library.

Every action takes the photos it acts on, or, given none, the window's current photo (single
photo actions) or its selection (the others). Work that touches files runs in a worker thread;
each outcome, failures included, is reported in the window's status bar.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog

from app.gui import desktop
from app.gui import widgets as ui
from app.gui.formatting import count_text
from app.gui.read_only import reason
from app.gui.tasks import Task, bound, run_task
from app.gui.thumbnails import load_scaled

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow
    from app.gui.results import ResultItem

CLIPBOARD_EDGE = 8192


class PhotoActions(QObject):
    """The photo actions of ``window`` (see the module docstring)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window

    def _report(self, message: str, timeout_ms: int = 8000) -> None:
        self.window.statusBar().showMessage(message, timeout_ms)

    def _one(self, item: ResultItem | None) -> ResultItem | None:
        """``item``, or the current photo; None (and a report) when its file is gone."""
        item = item if item is not None else self.window.view.current_item()
        if item is None or os.path.exists(item.path):
            return item
        self._report(f"{item.name} is no longer at {os.path.dirname(item.path)}")
        return None

    def _start(self, fn: Any, name: str, done: Any, failed: str) -> Task:
        """Run ``fn`` in a worker; ``done`` gets its result, a failure is reported after
        ``failed``."""
        return run_task(
            self.window.session.tasks,
            fn,
            name=name,
            on_success=bound(self, done),
            on_failure=bound(self, lambda message: self._report(f"{failed}: {message}")),
        )

    def open(self, item: ResultItem | None = None) -> None:
        """Open a photo in the default application (a failure is reported)."""
        item = self._one(item)
        if item is not None and not desktop.open_file(item.path):
            self._report(f"No application could open {item.name}")

    def reveal(self, item: ResultItem | None = None) -> None:
        """Show a photo in the file manager (a failure is reported like :meth:`open`)."""
        item = self._one(item)
        if item is not None and not desktop.reveal_in_file_manager(item.path):
            self._report(f"No file manager could show {item.name}")

    def copy_paths(self, items: list[ResultItem] | None = None) -> None:
        """Copy the paths of ``items`` to the clipboard."""
        items = items if items is not None else self.window.selected_items()
        if items:
            desktop.copy_paths([i.path for i in items])
            self._report(f"Copied {count_text(len(items), 'path')}", 3000)

    def copy_image(self, item: ResultItem | None = None) -> None:
        """Put the photo itself on the clipboard (decoded in a worker, EXIF-oriented)."""
        item = self._one(item)
        if item is None:
            return
        path = item.path
        name = item.name

        def copied(image: Any) -> None:
            QGuiApplication.clipboard().setImage(image)
            self._report(f"Copied the image {name}", 3000)

        self._start(
            lambda _r, _c: load_scaled(path, CLIPBOARD_EDGE),
            "copy-image",
            copied,
            f"Cannot copy {name}",
        )

    def export(
        self,
        items: list[ResultItem] | None = None,
        folder: str | None = None,
        mode: str = "copies",
    ) -> Task | None:
        """Put the files of ``items`` into a folder (asked for when ``folder`` is None) as
        ``mode`` (see :func:`app.library.export.export_photos`)."""
        from app.library.export import export_photos

        items = items if items is not None else self.window.selected_items()
        if not items:
            self._report("Select one or more photos to export", 5000)
            return None
        if not folder:
            what = count_text(len(items), "photo")
            folder = QFileDialog.getExistingDirectory(
                self.window, f"Export {what} to", str(Path.home())
            )
            if not folder:
                return None
        paths = [i.path for i in items]
        target = folder
        self._report(f"Exporting {count_text(len(paths), 'photo')} to {folder}…", 0)
        return self._start(
            lambda _r, cancelled: export_photos(paths, target, mode, cancelled),
            "export",
            lambda report: self._exported(report, target),
            "Export failed",
        )

    def _exported(self, report: Any, folder: str) -> None:
        text = f"Exported {count_text(report.photos, 'photo')} to {folder}"
        if report.failed:
            path, why = report.failed[0]
            name = os.path.basename(path)
            text += f"; {len(report.failed)} could not be exported ({name}: {why})"
        self._report(text, 15000)

    def remove(self, items: list[ResultItem] | None = None, confirm: bool = True) -> Task | None:
        """Forget ``items`` (the files stay on disk; the next index skips them)."""
        session = self.window.session
        items = items if items is not None else self.window.selected_items()
        if not items:
            return None
        if session.read_only:
            self._report(reason(session, "removing photos from the library"), 15000)
            return None
        if session.busy():
            self._report("Wait for the indexing to finish before removing photos", 8000)
            return None
        what = items[0].name if len(items) == 1 else count_text(len(items), "photo")
        if confirm and not ui.confirm(
            self.window,
            "Remove from library",
            f"Remove {what} from the library? The files stay on disk, and updating the "
            "index will not add them again.",
        ):
            return None
        library, paths = session.library, [i.path for i in items]
        return self._start(
            lambda _r, _c: sum(library.forget(p) for p in paths),
            "remove",
            self._removed,
            "Cannot remove",
        )

    def _removed(self, count: int) -> None:
        self._report(f"Removed {count_text(count, 'photo')} from the library", 8000)
        self.window.session.refresh_info()
        if self.window.request is not None:
            self.window.search_again()
