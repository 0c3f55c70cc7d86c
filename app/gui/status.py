"""The status bar's permanent parts: library counts, the model in use, indexing progress."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QProgressBar, QWidget

from app.gui import widgets as ui
from app.gui.formatting import count_text, human_duration, rate_text

PHASE_TEXT = {
    "opening": "Opening the library…",
    "scanning": "Looking for photos",
    "updating": "Updating moved and removed photos",
    "embedding": "Indexing",
    "saving": "Saving the index…",
    "done": "Done",
}


def progress_line(progress: Any) -> str:
    """``"Indexing 120 / 480 · 14.2 photos/s · 25 s left"`` from an ``IndexProgress``."""
    phase = str(getattr(progress, "phase", "") or "embedding")
    done, total = getattr(progress, "done", 0) or 0, getattr(progress, "total", 0) or 0
    label = PHASE_TEXT.get(phase, phase.capitalize())
    if phase == "scanning":
        return f"{label} · {done:,} found" if done else f"{label}…"
    if phase in ("opening", "saving", "done") or (phase == "updating" and not total):
        return label
    parts = [f"{label} {done:,} / {total:,}" if total else label]
    rate = getattr(progress, "rate", None)
    if rate:
        parts.append(rate_text(rate))
    eta = getattr(progress, "eta_s", None)
    if eta is not None and total and done < total:
        parts.append(f"{human_duration(eta)} left")
    failed = getattr(progress, "failed", 0) or 0
    if failed:
        parts.append(f"{failed:,} failed")
    return " · ".join(parts)


def show_percent(bar: Any, progress: Any) -> None:
    """Set a QProgressBar from an ``IndexProgress`` (busy indicator when the total is unknown)."""
    value = percent(progress)
    if value is None:
        bar.setRange(0, 0)
    else:
        bar.setRange(0, 100)
        bar.setValue(value)


def percent(progress: Any) -> int | None:
    """Completion of the embedding phase in percent, or None (busy bar) in the other phases."""
    done, total = getattr(progress, "done", 0) or 0, getattr(progress, "total", 0) or 0
    phase = getattr(progress, "phase", "embedding")
    if phase == "done":
        return 100
    if phase != "embedding" or not total:
        return None
    return max(0, min(100, round(100 * done / total)))


class IndexingStatus(QWidget):
    """A compact progress bar with a line of text and a stop button.

    Signals: ``stopRequested()``, ``detailsRequested()`` (clicking the text).
    """

    stopRequested = Signal()
    detailsRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("indexingStatus")
        self.label = ui.button(
            "", self, self.detailsRequested, name="indexingText", tip="Show the indexing window"
        )
        self.label.setFlat(True)
        self.label.setCursor(Qt.CursorShape.PointingHandCursor)
        self.bar = QProgressBar(self)
        self.bar.setFixedWidth(140)
        self.bar.setMaximumHeight(14)
        self.bar.setTextVisible(False)
        self.stop = ui.button(
            "Stop",
            self,
            self.stopRequested,
            tip="Stop indexing after the current batch (it resumes next time)",
        )
        self.stop.setFlat(True)
        ui.hbox(self.label, self.bar, self.stop, parent=self, margins=0, spacing=6)
        self.hide()

    def show_progress(self, progress: Any) -> None:
        """Show one ``IndexProgress``."""
        self.label.setText(progress_line(progress))
        show_percent(self.bar, progress)
        current = getattr(progress, "current", None)
        self.bar.setToolTip(str(current) if current else "")
        self.show()

    def show_starting(self, text: str = "Starting to index…") -> None:
        """Show an indeterminate bar."""
        self.label.setText(text)
        self.bar.setRange(0, 0)
        self.stop.setEnabled(True)
        self.show()


def counts_line(info: Any) -> str:
    """``"1,234 photos in 3 folders · 2 could not be read"`` from a ``LibraryInfo``."""
    if not info.images and not info.folders:
        return "No photos yet"
    text = f"{count_text(info.images, 'photo')} in {count_text(len(info.folders), 'folder')}"
    if info.failures:
        text += f" · {info.failures:,} could not be read"
    return text
