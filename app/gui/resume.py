""" "240 photos waiting · Resume": what an interrupted indexing left to do, shown and resumable.

After Stop, after a failed run, and at every start, :class:`ResumeTracker` counts in a worker
thread the photos the next run would index (the same plan an index run makes) and shows the
number with a Resume button in the status bar. A run interrupted by quitting resumes by itself
at the next start (the session's resume note); the bar says so meanwhile.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QWidget

from app.gui import folder_status as fs
from app.gui import widgets as ui
from app.gui.formatting import count_text
from app.gui.session import Session
from app.gui.tasks import bound, run_task


class ResumeBar(QWidget):
    """A label and a Resume button for the status bar. Signal ``resumeRequested()``."""

    resumeRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("resumeBar")
        self.label = ui.label("", self, name="waitingLabel")
        self.button = ui.button(
            "Resume",
            self,
            self.resumeRequested,
            name="resumeButton",
            tip="Index the photos that are waiting",
        )
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        ui.hbox(self.label, self.button, parent=self, margins=0, spacing=6)
        self.hide()

    def show_waiting(self, count: int, *, resuming: bool = False) -> None:
        """Show ``count`` waiting photos (hidden at 0); ``resuming``: the app will go on itself."""
        if count <= 0:
            self.hide()
            return
        text = f"{count_text(count, 'photo')} waiting"
        self.label.setText(text + (" · resuming…" if resuming else ""))
        self.button.setVisible(not resuming)
        self.show()


class ResumeTracker(QObject):
    """Keeps a :class:`ResumeBar` true (see the module docstring). Signal ``counted(int)``."""

    counted = Signal(int)

    def __init__(self, session: Session, bar: ResumeBar) -> None:
        super().__init__(bar)
        self.session = session
        self.bar = bar
        self.waiting: int | None = None
        self._counting = False
        bar.resumeRequested.connect(self.resume)
        session.indexingStarted.connect(bound(self, lambda _run: self.bar.hide()))
        session.indexingDone.connect(bound(self, self._done))

    def count(self) -> None:
        """Count the waiting photos in a worker thread (emits ``counted``)."""
        if self._counting or self.session.busy():
            return
        self._counting = True
        library, model = self.session.library, self.session.model_name
        run_task(
            self.session.tasks,
            lambda _r, cancelled: sum(fs.pending_counts(library, model, cancel=cancelled).values()),
            name="count-waiting",
            on_success=bound(self, self._counted),
        ).finished.connect(bound(self, self._finished))

    def _finished(self) -> None:
        self._counting = False

    def _counted(self, n: int) -> None:
        if self.session.busy():
            return  # a run started meanwhile; its progress says more
        self.waiting = n
        self.bar.show_waiting(n, resuming=self.session.pending_resume() is not None)
        self.counted.emit(n)

    def _done(self, run: Any) -> None:
        report = run.report
        if run.error or run.user_cancelled or getattr(report, "cancelled", False):
            self.count()
        else:
            self.waiting = 0
            self.bar.hide()

    def resume(self) -> None:
        """Index every folder (the plan picks up exactly what is waiting)."""
        self.bar.hide()
        self.session.index_soon(None)
