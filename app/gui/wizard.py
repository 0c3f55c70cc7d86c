"""The folder indexing wizard: folders -> model and device -> summary -> run.

1. **Folders**: several photo folders and exclusion patterns.
2. **Model**: the installed models (download an official one with progress and cancel, import
   a file, or use the bundled demo) and the device.
3. **Summary**: how many photos were found (scanned in a worker thread) and how many are new.
4. **Run**: progress bar, current file, rate, ETA and Stop; at the end, the files that failed and
   why. Closing the wizard leaves the run going in the background (the status bar shows it).

Opening the wizard while a run is going on shows the run page for it.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QProgressBar,
    QWidget,
    QWizard,
    QWizardPage,
)

from app.gui import widgets as ui
from app.gui.formatting import count_text, human_duration, rate_text
from app.gui.icons import app_icon
from app.gui.models_panel import ModelPanel
from app.gui.session import IndexingRun, Session
from app.gui.status import progress_line, show_percent
from app.gui.tasks import Task, bound
from app.gui.theme import WARNING

if TYPE_CHECKING:
    from app.library.indexer import IndexReport

PAGE_FOLDERS, PAGE_MODEL, PAGE_SUMMARY, PAGE_RUN = range(4)
DEVICE_LABELS = {
    "auto": "Automatic (GPU when there is one)",
    "cpu": "CPU",
    "cuda": "NVIDIA GPU (CUDA)",
    "mps": "Apple GPU (Metal)",
}
PRECISION_LABELS = {
    "auto": "Automatic (bf16 on CPUs that compute it natively, fp16 on GPUs)",
    "fp32": "Full precision (fp32)",
    "bf16": "bfloat16 (CPU)",
    "int8": "int8 (CPU only, fastest)",
    "fp16": "Half precision (fp16, GPU only)",
}
"""``--precision`` choices; vectors made at one stay searchable at another (no re-index)."""


def precision_choice(parent: QWidget, current: str, name: str) -> QComboBox:
    """A combo box of :data:`PRECISION_LABELS` with ``current`` selected."""
    box = ui.choices(parent, name, PRECISION_LABELS, current)
    box.setToolTip(
        "How precisely the model computes. bf16 and int8 are faster on the CPU and rank "
        "photos like fp32; photos indexed at one precision are searched at any other."
    )
    return box


@dataclass(frozen=True)
class ScanSummary:
    """What the summary page shows."""

    found: int
    per_folder: dict[str, int]
    already_indexed: int
    missing: tuple[str, ...]
    cancelled: bool = False


def parse_excludes(text: str) -> list[str]:
    """One pattern per line; blank lines and ``#`` comments are ignored."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def scan_folders(
    folders: Sequence[str],
    excludes: Sequence[str],
    *,
    library: Any,
    model: str | None,
    report: Callable[[int], None],
    cancelled: Callable[[], bool],
) -> ScanSummary:
    """Count the photos under ``folders`` and how many ``model`` already indexed, unchanged
    (:func:`app.library.scanner.plan_folders`, run in a worker thread)."""
    from app.library.scanner import ScanRoot, plan_folders

    roots = [ScanRoot(os.path.abspath(f), tuple(excludes)) for f in folders]
    plan = plan_folders(library, roots, model, cancel=cancelled, found=lambda n, _: report(n))
    per_folder = {r.path: 0 for r in roots}
    for info in plan.files:
        per_folder[info.root] += 1
    indexed = plan.changes.unchanged if model else 0  # no model chosen: nothing is indexed with it
    missing = tuple(plan.stats.missing_roots)
    return ScanSummary(len(plan.files), per_folder, indexed, missing, plan.stats.cancelled)


class SessionPage(QWizardPage):
    """A wizard page with its title and subtitle, working on the session."""

    def __init__(self, session: Session, parent: QWidget | None, title: str, subtitle: str):
        super().__init__(parent)
        self.session = session
        self.setTitle(title)
        self.setSubTitle(subtitle)


class FoldersPage(SessionPage):
    """Choose one or more folders and the exclusion patterns."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(
            session,
            parent,
            "Which folders hold your photos?",
            "Add one or more folders. Sub-folders are included; photos are only read, never "
            "changed or moved.",
        )
        self.list = QListWidget(self)
        self.list.setObjectName("folderList")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.remove_button = ui.button("Remove", self, self.remove_selected)
        buttons = ui.vbox(
            ui.button("Add folder…", self, self.choose_folder), self.remove_button, ui.STRETCH
        )
        self.excludes = QPlainTextEdit(self)
        self.excludes.setObjectName("excludes")
        self.excludes.setPlaceholderText("*/Screenshots/*\n*.gif")
        self.excludes.setPlainText("\n".join(session.excludes))
        self.excludes.setMaximumHeight(90)
        hint = ui.label(
            "Skip files and folders matching these patterns, one per line (e.g. "
            "<code>*/Screenshots/*</code> or <code>private/</code>). Hidden folders are skipped.",
            self,
            name="mutedLabel",
            wrap=True,
        )
        row = ui.hbox((self.list, 1), buttons)
        ui.vbox((row, 1), QLabel("<b>Exclusions</b>", self), self.excludes, hint, parent=self)
        for path in session.info.folders:
            self.add_folder(path)
        self.list.itemSelectionChanged.connect(self._selection)
        self._selection()

    def add_folder(self, path: str | os.PathLike[str]) -> None:
        """Add ``path`` (ignored when already listed)."""
        text = os.path.abspath(os.fspath(path))
        if text in self.folders():
            return
        self.list.addItem(text)
        self.completeChanged.emit()

    def choose_folder(self) -> None:
        """Pick a folder with the platform dialog."""
        start = self.folders()[-1] if self.folders() else str(Path.home() / "Pictures")
        path = QFileDialog.getExistingDirectory(self, "Add a photo folder", start)
        if path:
            self.add_folder(path)

    def remove_selected(self) -> None:
        """Remove the selected folders from the list (not from disk)."""
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))
        self.completeChanged.emit()

    def folders(self) -> list[str]:
        """The listed folders."""
        return [self.list.item(i).text() for i in range(self.list.count())]

    def exclude_patterns(self) -> list[str]:
        """The exclusion patterns."""
        return parse_excludes(self.excludes.toPlainText())

    def isComplete(self) -> bool:
        """At least one folder."""
        return self.list.count() > 0

    def _selection(self) -> None:
        self.remove_button.setEnabled(bool(self.list.selectedItems()))


class ModelPage(SessionPage):
    """Choose the model (installed, downloaded, imported or bundled) and the device."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(
            session,
            parent,
            "Which model should read your photos?",
            "The official LoTLIP models understand real photos; the bundled demo model only "
            "knows simple generated scenes. Searches use the model that indexed the photos.",
        )
        self.panel = ModelPanel(session.tasks, self, library_default=True)
        self.panel.changed.connect(self.completeChanged)
        self.panel.selectionChanged.connect(lambda _name: self.completeChanged.emit())
        self.panel.busyChanged.connect(lambda _busy: self.completeChanged.emit())
        self.device = ui.choices(self, "deviceChoice", DEVICE_LABELS, session.device)
        self.panel.changed.connect(self._devices_known)
        self.precision = precision_choice(self, session.precision, "precisionChoice")
        rows = ui.form(("Run on:", self.device), ("Precision:", self.precision))
        ui.vbox((self.panel, 1), rows, parent=self)
        self._started = False

    def initializePage(self) -> None:
        """List the models (once) with the library's current one selected."""
        if not self._started:
            self._started = True
            current = self.session.setting("model") or (
                self.session.choice.name if self.session.choice is not None else None
            )
            self.panel.reload(current=current, indexed=self.session.info.embeddings)
            index = self.device.findData(self.session.device)
            self.device.setCurrentIndex(max(0, index))

    def _devices_known(self) -> None:
        devices = self.panel.devices
        for key, available in (("cuda", devices.cuda), ("mps", devices.mps)):
            index = self.device.findData(key)
            item = self.device.model().item(index)  # type: ignore[attr-defined]
            if item is not None:
                item.setEnabled(available)
                if not available:
                    item.setToolTip("Not available on this computer")
        if not self.device.model().item(self.device.currentIndex()).isEnabled():  # type: ignore[attr-defined]
            self.device.setCurrentIndex(0)

    def model_name(self) -> str | None:
        """The chosen installed model."""
        entry = self.panel.selected()
        return entry.name if entry is not None and entry.installed else None

    def device_name(self) -> str:
        """``auto``, ``cpu``, ``cuda`` or ``mps``."""
        return str(self.device.currentData())

    def isComplete(self) -> bool:
        """An installed model is selected and nothing is downloading."""
        return self.model_name() is not None and not self.panel.busy()

    def cleanupPage(self) -> None:
        """Going back keeps the list (and a running download)."""


class SummaryPage(SessionPage):
    """Counts the photos in the chosen folders before anything is indexed."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(
            session,
            parent,
            "Ready to index",
            "Check what was found. Indexing reads each photo once; only new and changed photos "
            "are read again later.",
        )
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Start indexing")
        self.headline = ui.label("", self, name="summaryHeadline")
        font = self.headline.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.headline.setFont(font)
        self.details = ui.label("", self, wrap=True, rich=True)
        self.scan_bar = QProgressBar(self)
        self.scan_bar.setRange(0, 0)
        self.scan_bar.setMaximumHeight(10)
        self.scan_bar.setTextVisible(False)
        ui.vbox(self.headline, self.scan_bar, self.details, ui.STRETCH, parent=self)
        self.summary: ScanSummary | None = None
        self._task: Task | None = None

    def initializePage(self) -> None:
        """Scan the folders in a worker thread."""
        wizard = self.wizard()
        assert isinstance(wizard, IndexWizard)
        folders = wizard.folders_page.folders()
        excludes = wizard.folders_page.exclude_patterns()
        model = wizard.model_page.model_name()
        self.summary = None
        self.headline.setText("Looking for photos…")
        self.scan_bar.show()
        self.details.setText(self._plan_text(None))
        library = self.session.library
        self._cancel_scan()

        def work(report: Any, cancelled: Any) -> ScanSummary:
            return scan_folders(
                folders, excludes, library=library, model=model, report=report, cancelled=cancelled
            )

        task = self.session.worker_task(work, name="scan-summary")
        task.progressed.connect(
            bound(
                self,
                lambda counts: self.headline.setText(f"Looking for photos… {counts[-1]:,} found"),
            )
        )
        task.succeeded.connect(self._scanned)
        task.failed.connect(
            bound(self, lambda message: self.headline.setText(f"Cannot scan: {message}"))
        )
        self._task = self.session.tasks.start(task)
        self.completeChanged.emit()

    def _plan_text(self, counts: dict[str, int] | None) -> str:
        """The chosen folders (with ``counts`` once scanned), model and device."""
        wizard = self.wizard()
        assert isinstance(wizard, IndexWizard)
        model, device = wizard.model_page.model_name(), wizard.model_page.device_name()
        rows = "".join(
            f"<tr><td>{html.escape(f)}</td><td align='right'>&nbsp;&nbsp;"
            f"{'…' if counts is None else count_text(counts.get(f, 0), 'photo')}</td></tr>"
            for f in wizard.folders_page.folders()
        )
        return (
            f"<p><b>Folders</b></p><table cellspacing='2'>{rows}</table>"
            f"<p><b>Model</b>&nbsp;&nbsp;{html.escape(str(model))} · "
            f"{DEVICE_LABELS.get(device, device)}</p>"
        )

    def _scanned(self, summary: ScanSummary) -> None:
        self.summary = summary
        self.scan_bar.hide()
        new = summary.found - summary.already_indexed
        self.headline.setText(f"{count_text(summary.found, 'photo')} found")
        lines = []
        if summary.already_indexed:
            lines.append(
                f"{summary.already_indexed:,} are already indexed and will be skipped; "
                f"{count_text(new, 'photo')} to index."
            )
        elif summary.found:
            lines.append(f"All {count_text(summary.found, 'photo')} will be indexed.")
        else:
            lines.append("No photos were found. Go back to add other folders or change exclusions.")
        for folder in summary.missing:
            missing = html.escape(folder)
            lines.append(f"<span style='color:{WARNING}'>{missing}: cannot be read</span>")
        if self.wizard() is not None:
            plan = self._plan_text(summary.per_folder)
            self.details.setText("<p>" + "<br>".join(lines) + "</p>" + plan)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        """The scan has finished (an empty result may still update the library)."""
        return self.summary is not None

    def _cancel_scan(self) -> None:
        if self._task is not None and self._task.isRunning():
            self._task.cancel()
        self._task = None

    def cleanupPage(self) -> None:
        """Going back stops the scan."""
        self._cancel_scan()


class RunPage(SessionPage):
    """Indexing progress: bar, current file, rate, ETA, Stop; failures at the end."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(
            session,
            parent,
            "Indexing",
            "You can close this window: indexing goes on in the background and the status bar "
            "shows it. If you quit, it continues where it stopped next time.",
        )
        self.run: IndexingRun | None = None
        self.bar = QProgressBar(self)
        self.bar.setObjectName("indexProgress")
        self.bar.setRange(0, 0)
        self.phase = ui.label("Starting…", self, name="indexPhase")
        self.current = ui.label("", self, name="indexCurrent")
        self.current.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.current.setMinimumWidth(200)
        self.rate = ui.label("—", self, name="indexRate")
        self.eta = ui.label("—", self, name="indexEta")
        self.stop_button = ui.button(
            "Stop indexing",
            self,
            self.stop,
            name="stopIndexing",
            tip="Stop after the current batch; what is done is kept",
        )
        self.result = ui.label("", self, name="indexResult", wrap=True)
        self.failures = ui.path_list(
            self, "failureList", ["File", "Why it could not be indexed"], path_width=380
        )
        self.failures.hide()
        rows = ui.form(("Now:", self.current), ("Speed:", self.rate), ("Time left:", self.eta))
        stop_row = ui.hbox(ui.STRETCH, self.stop_button)
        ui.vbox(self.phase, self.bar, rows, stop_row, self.result, (self.failures, 1), parent=self)

    def initializePage(self) -> None:
        """Register the folders and settings, then start (or attach to) the run."""
        wizard = self.wizard()
        assert isinstance(wizard, IndexWizard)
        run = self.session.indexing if self.session.busy() else None
        if run is None:
            run = wizard.start_run()
        self.attach(run)

    def attach(self, run: IndexingRun) -> None:
        """Follow ``run``."""
        self.run = run
        run.progress.connect(self.show_progress)
        run.done.connect(self._done)
        run.failed.connect(self._failed)
        if run.last_progress is not None:
            self.show_progress(run.last_progress)
        if not run.running:
            self._done(run.report)

    def show_progress(self, progress: Any) -> None:
        """Update from an ``IndexProgress``."""
        self.phase.setText(progress_line(progress))
        show_percent(self.bar, progress)
        current = getattr(progress, "current", None)
        if current:
            width = max(200, self.current.width())
            text = self.current.fontMetrics().elidedText(
                str(current), Qt.TextElideMode.ElideMiddle, width
            )
            self.current.setText(text)
            self.current.setToolTip(str(current))
        if getattr(progress, "phase", "") == "embedding":
            self.rate.setText(rate_text(getattr(progress, "rate", None)))
            eta = getattr(progress, "eta_s", None)
            self.eta.setText(human_duration(eta) if eta is not None else "—")

    def stop(self) -> None:
        """Stop after the current batch."""
        if self.run is not None and self.run.running:
            self.run.cancel()
            self.stop_button.setEnabled(False)
            self.phase.setText("Stopping after the current batch…")

    def _done(self, report: Any) -> None:
        self.stop_button.hide()
        self.current.setText("—")
        self.bar.setRange(0, 100)
        self.eta.setText("—")
        if report is None:
            self.bar.setValue(0)
            self.phase.setText("Stopped before any photo was indexed.")
        else:
            cancelled = bool(getattr(report, "cancelled", False))
            self.bar.setValue(self.bar.value() if cancelled else 100)
            self.phase.setText("Stopped." if cancelled else "Finished.")
            embedded = getattr(report, "embedded", 0)
            elapsed = getattr(report, "elapsed_s", 0.0)
            if embedded and elapsed:
                self.rate.setText(f"{rate_text(embedded / elapsed)} on average")
            self.result.setText(self._report_text(report, cancelled))
            self.show_failures(list(getattr(report, "failures", []) or []))
        self.completeChanged.emit()
        wizard = self.wizard()
        if wizard is not None:
            wizard.button(QWizard.WizardButton.CancelButton).hide()

    def _failed(self, message: str) -> None:
        self.stop_button.hide()
        self.bar.setRange(0, 100)
        self.bar.setValue(0)
        self.phase.setText("Indexing failed.")
        self.result.setText(message)
        self.completeChanged.emit()

    @staticmethod
    def _report_text(report: IndexReport, cancelled: bool) -> str:
        text = report.counts_text()
        elapsed = getattr(report, "elapsed_s", None)
        if elapsed:
            text += f" in {human_duration(elapsed)}"
        if cancelled:
            text += ". The rest is indexed next time (Library ▸ Update index, or on restart)."
        return text + ("" if cancelled else ".")

    def show_failures(self, failures: list[tuple[str, str]]) -> None:
        """List failed files with their reasons."""
        ui.show_rows(self.failures, failures)
        self.failures.setVisible(bool(failures))

    def isComplete(self) -> bool:
        """Finish is enabled once the run ended."""
        return self.run is not None and not self.run.running


class IndexWizard(QWizard):
    """Choose folders and a model, see what will happen, index (see the module docstring)."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setObjectName("indexWizard")
        self.setWindowTitle("Add photo folders")
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setPixmap(QWizard.WizardPixmap.LogoPixmap, app_icon().pixmap(48, 48))
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, False)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Done")
        self.folders_page = FoldersPage(session, self)
        self.model_page = ModelPage(session, self)
        self.summary_page = SummaryPage(session, self)
        self.run_page = RunPage(session, self)
        self.setPage(PAGE_FOLDERS, self.folders_page)
        self.setPage(PAGE_MODEL, self.model_page)
        self.setPage(PAGE_SUMMARY, self.summary_page)
        self.setPage(PAGE_RUN, self.run_page)
        if session.busy():
            self.setStartId(PAGE_RUN)
        self.currentIdChanged.connect(self._page_changed)
        self.resize(720, 540)

    def _page_changed(self, page_id: int) -> None:
        cancel = self.button(QWizard.WizardButton.CancelButton)
        if page_id == PAGE_RUN:
            cancel.setText("Continue in background")
            cancel.setToolTip("Close this window; indexing goes on")
        else:
            cancel.setText("Cancel")

    def start_run(self) -> IndexingRun:
        """Store the choices in the library and start indexing the chosen folders."""
        folders = self.folders_page.folders()
        excludes = self.folders_page.exclude_patterns()
        model = self.model_page.model_name()
        device = self.model_page.device_name()
        self.session.set_setting("excludes", excludes)
        self.session.set_setting("precision", self.model_page.precision.currentData())
        if model:
            self.session.set_setting("model", model)
        self.session.set_setting("device", device)
        self.session.add_folders(folders, excludes)
        return self.session.start_indexing(folders, model=model, device=device)

    def reject(self) -> None:
        """Closing never stops a running indexing (use Stop for that)."""
        self.summary_page._cancel_scan()
        self.model_page.panel.shutdown()
        super().reject()
