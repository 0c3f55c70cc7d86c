"""The model list shared by the wizard and the Models dialog: installed and downloadable models,
with download (progress + cancel) and import.

:func:`list_models_and_devices` runs in a worker thread (it imports ``torch``);
:class:`ModelPanel` shows the result and drives downloads and imports.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHeaderView,
    QInputDialog,
    QMessageBox,
    QProgressBar,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)

from app.gui import widgets as ui
from app.gui.download import ModelDownload
from app.gui.formatting import human_size
from app.gui.tasks import Task, TaskSet, bound, run_task
from app.library.models import (
    MODEL_NAME_RE,
    ModelEntry,
    default_model,
    import_model,
    list_models,
)
from lotlip.folders import checkpoint_name

KIND_LABELS = {
    "bundled": "bundled demo",
    "official": "official",
    "imported": "imported",
    "fine-tuned": "fine-tuned",
}


@dataclass(frozen=True)
class DeviceInfo:
    """Which devices this machine has."""

    cuda: bool = False
    mps: bool = False


def list_models_and_devices() -> tuple[list[ModelEntry], DeviceInfo]:
    """The model list (:func:`app.library.models.list_models`) and the devices present."""
    import torch

    from lotlip.devices import mps_available

    return list_models(), DeviceInfo(torch.cuda.is_available(), mps_available())


def proposed_import_name(selected: ModelEntry | None, source: Path) -> str:
    """The name Import… proposes: the selected model's when it is one still to be fetched
    (the user fetched its files by hand), else the one the CLI's ``model import`` gives
    (:func:`lotlip.folders.checkpoint_name`)."""
    if selected is not None and not selected.installed:
        return selected.name
    return checkpoint_name(source)


def offline_html(name: str) -> str:
    """How to install official model ``name`` without network here, with selectable links."""
    from lotlip import registry

    info = registry.OFFICIAL_MODELS[name]
    links = "<br>".join(f'<a href="{url}">{url}</a>' for url in (info.url, info.vocab_url))
    return (
        f"No network here? On a computer that has it, fetch<br>{links}<br>copy both files into "
        "one folder here, press <b>Import…</b> and choose the .pt file (the vocab.txt next to "
        f"it is found by itself). Import proposes the name {name}."
    )


class ModelTable(QTreeWidget):
    """Name, kind, size and (optionally) how many library photos each model has indexed."""

    def __init__(self, parent: QWidget | None = None, *, show_indexed: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("modelTable")
        self.show_indexed = show_indexed
        headers = ["Model", "Kind", "Size", "Description"]
        if show_indexed:
            headers.insert(3, "Indexed photos")
        self.setHeaderLabels(headers)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        header = self.header()
        header.setStretchLastSection(True)
        for column in range(len(headers) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.entries: list[ModelEntry] = []

    def set_entries(
        self,
        entries: list[ModelEntry],
        *,
        current: str | None = None,
        indexed: dict[str, int] | None = None,
    ) -> None:
        """Fill the table; ``current`` is selected and marked."""
        selected = self.selected_name() or current
        self.clear()
        self.entries = list(entries)
        for entry in entries:
            kind = KIND_LABELS.get(entry.kind, entry.kind) if entry.installed else "not downloaded"
            size = human_size(entry.size_bytes) if entry.size_bytes else "—"
            if not entry.installed:
                size = f"≈ {size}"
            label = entry.name + ("  (in use)" if entry.name == current else "")
            cells = [label, kind, size, entry.description]
            if self.show_indexed:
                cells.insert(3, f"{(indexed or {}).get(entry.name, 0):,}")
            row = QTreeWidgetItem(cells)
            row.setData(0, Qt.ItemDataRole.UserRole, entry.name)
            row.setToolTip(0, entry.path or "Not downloaded yet")
            if not entry.installed:
                for column in range(len(cells)):
                    row.setForeground(column, self.palette().placeholderText())
            self.addTopLevelItem(row)
            if entry.name == selected:
                self.setCurrentItem(row)

    def selected_name(self) -> str | None:
        """The selected model's name."""
        row = self.currentItem()
        return row.data(0, Qt.ItemDataRole.UserRole) if row is not None else None

    def entry(self, name: str | None) -> ModelEntry | None:
        """The listed model called ``name``, if any."""
        return next((e for e in self.entries if e.name == name), None)

    def select(self, name: str) -> None:
        """Select ``name`` if it is listed."""
        for i in range(self.topLevelItemCount()):
            row = self.topLevelItem(i)
            if row is not None and row.data(0, Qt.ItemDataRole.UserRole) == name:
                self.setCurrentItem(row)
                return


class ModelPanel(QWidget):
    """Model table with Download / Import buttons and an inline download progress row.

    Signals: ``changed()`` (the list was reloaded), ``selectionChanged(name or None)``,
    ``busyChanged(bool)`` (a download or import started or ended), ``installed(name)`` (a
    downloaded or imported model is listed, selected and announced in ``status``).
    """

    changed = Signal()
    selectionChanged = Signal(object)
    busyChanged = Signal(bool)
    installed = Signal(str)

    def __init__(
        self,
        tasks: TaskSet,
        parent: QWidget | None = None,
        *,
        show_indexed: bool = False,
        library_default: bool = False,
    ) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.devices = DeviceInfo()
        self.current: str | None = None
        # for a library: with no ``current`` known, the model it loads by default is in use
        self.library_default = library_default
        self.indexed: dict[str, int] = {}
        self.download: ModelDownload | None = None
        self._import: Task | None = None
        self._new: tuple[str, str] | None = None  # (model just installed, what to say about it)
        self.loaded = False

        self.table = ModelTable(self, show_indexed=show_indexed)
        self.table.currentItemChanged.connect(self._selection)
        self.download_button = ui.button(
            "Download…",
            self,
            lambda: self.start_download(),
            name="downloadModel",
            tip="Download the selected official model from Hugging Face",
        )
        self.import_button = ui.button(
            "Import…",
            self,
            self.import_interactively,
            tip="Import an official checkpoint (.pt) you fetched yourself, or a model folder",
        )
        self.status = ui.label("", self, name="mutedLabel", wrap=True, rich=True)
        self.status.setOpenExternalLinks(True)
        # the offline instructions' links must be selectable and copyable
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.progress = QProgressBar(self)
        self.progress.hide()
        self.cancel_button = ui.button("Cancel download", self, self.cancel_download)
        self.cancel_button.hide()
        buttons = ui.hbox(self.download_button, self.import_button, ui.STRETCH)
        progress_row = ui.hbox((self.progress, 1), self.cancel_button)
        ui.vbox((self.table, 1), buttons, progress_row, self.status, parent=self, margins=0)
        self.status.setText("Looking for models…")
        self._update_buttons()

    # -- listing --------------------------------------------------------------------------------
    def reload(self, current: str | None = None, indexed: dict[str, int] | None = None) -> None:
        """Re-list the models in a worker thread."""
        if current is not None:
            self.current = current
        if indexed is not None:
            self.indexed = indexed
        run_task(
            self.tasks,
            lambda _r, _c: list_models_and_devices(),
            name="list-models",
            on_success=self._listed,
            on_failure=bound(
                self,
                lambda message: self.status.setText(f"Cannot list models: {html.escape(message)}"),
            ),
        )

    def set_indexed(self, indexed: dict[str, int]) -> None:
        """Update the "indexed photos" counts (keeps the selection)."""
        self.indexed = dict(indexed)
        if self.loaded:
            entries = self.table.entries
            self.table.set_entries(entries, current=self._in_use(entries), indexed=self.indexed)

    def _in_use(self, entries: list[ModelEntry]) -> str | None:
        """The model to mark "(in use)": ``current``, else (``library_default``) the one a
        library without a model setting loads, given the installed ``entries``."""
        if self.current is None and self.library_default:
            return default_model(e.name for e in entries if e.installed)[0]
        return self.current

    def _listed(self, result: tuple[list[ModelEntry], DeviceInfo]) -> None:
        entries, self.devices = result
        self.loaded = True
        self.table.set_entries(entries, current=self._in_use(entries), indexed=self.indexed)
        if self.table.currentItem() is None and self.table.topLevelItemCount():
            installed = [e for e in entries if e.installed]
            preferred = next((e for e in installed if e.kind == "official"), None) or (
                installed[0] if installed else entries[0]
            )
            self.table.select(preferred.name)
        if self._new is not None:  # selected once listed, and said after the selection's help
            (name, text), self._new = self._new, None
            self.table.select(name)
            self.status.setText(text)
            self.installed.emit(name)
        elif not self.download or not self.download.running:
            self._show_offline_help()
        self._update_buttons()
        self.changed.emit()

    def selected(self) -> ModelEntry | None:
        """The selected model."""
        return self.table.entry(self.table.selected_name())

    def _selection(self, *_args: object) -> None:
        self._update_buttons()
        if not self.busy():
            self._show_offline_help()
        self.selectionChanged.emit(self.table.selected_name())

    def _show_offline_help(self) -> None:
        """For a model still to be fetched, how to install it by hand (else nothing)."""
        entry = self.selected()
        wanted = entry is not None and not entry.installed
        self.status.setText(offline_html(entry.name) if wanted else "")  # type: ignore[union-attr]

    def busy(self) -> bool:
        """True while downloading or importing."""
        return bool(self.download and self.download.running) or self._import is not None

    def _update_buttons(self) -> None:
        entry = self.selected()
        busy = self.busy()
        self.download_button.setEnabled(not busy and entry is not None and not entry.installed)
        self.import_button.setEnabled(not busy)

    # -- download -------------------------------------------------------------------------------
    def focus_download(self) -> None:
        """Select the first downloadable official model (the banner's "get the official one")."""
        for entry in self.table.entries:
            if not entry.installed:
                self.table.select(entry.name)
                self.download_button.setFocus()
                return

    def start_download(self, *, confirm: bool = True) -> None:
        """Download the selected official model after confirming its size (Cancel stops it)."""
        entry = self.selected()
        if entry is None or entry.installed or self.busy():
            return
        size = human_size(entry.size_bytes) if entry.size_bytes else "an unknown size"
        if confirm and not ui.confirm(
            self,
            "Download model",
            f"Download {entry.name} (about {size}) from Hugging Face?\n\nIt is saved on "
            "this computer once and used offline afterwards.",
        ):
            return
        download = ModelDownload(entry.name, self)
        download.progress.connect(self._download_progress)
        download.finished.connect(self._download_finished)
        self.download = download
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        download.start()
        self._began(f"Connecting to download {entry.name}…")

    def _began(self, text: str) -> None:
        """A download or an import started: a busy bar and ``text``."""
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText(text)
        self._update_buttons()
        self.busyChanged.emit(True)

    def _ended(self, name: str, ok: bool, text: str) -> None:
        """A download or an import of ``name`` ended: say ``text``, list a new model."""
        self.progress.hide()
        self.status.setText(text)
        self._update_buttons()
        self.busyChanged.emit(False)
        if ok:
            self._new = (name, text)
            self.reload()

    def _download_progress(self, name: str, done: int, total: int) -> None:
        if total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(round(1000 * done / total))
            self.status.setText(f"Downloading {name}: {human_size(done)} of {human_size(total)}")
        else:
            self.status.setText(f"Downloading {name}: {human_size(done)}")

    def _download_finished(self, ok: bool, message: str) -> None:
        name = self.download.name if self.download else ""
        self.download = None
        self.cancel_button.hide()
        if ok:  # "(in use)" stays with the library's model: downloading does not switch to it
            self._ended(name, ok, f"{name} is ready.")
            return
        first = html.escape(message.splitlines()[0] if message else "The download failed.")
        offline = offline_html(name) if self.table.entry(name) is not None else ""
        self._ended(name, ok, f"{first}<br>{offline}")

    def cancel_download(self) -> None:
        """Stop the download now."""
        if self.download is not None:
            self.cancel_button.setEnabled(False)
            self.download.cancel()

    # -- import ---------------------------------------------------------------------------------
    def import_interactively(self) -> None:
        """Ask for a checkpoint (and vocabulary) or a model folder and import it."""
        path = ui.choose_file(
            self,
            "Import a model: an official LoTLIP checkpoint, or config.json of a model folder",
            "LoTLIP models (*.pt *.pth config.json);;All files (*)",
        )
        if not path:
            return
        source = Path(path)
        vocab = None
        if source.name == "config.json":
            source = source.parent
        else:
            vocab = source.with_name("vocab.txt")
            if not vocab.is_file():
                chosen = ui.choose_file(
                    self,
                    "The checkpoint needs the bert-base-uncased vocab.txt",
                    "Vocabulary (vocab.txt *.txt)",
                    str(source.parent),
                )
                if not chosen:
                    return
                vocab = Path(chosen)
        default = proposed_import_name(self.selected(), source)
        name, ok = QInputDialog.getText(
            self, "Model name", "Name for the imported model:", text=default
        )
        name = name.strip()
        if not ok or not name:
            return
        if not MODEL_NAME_RE.match(name):
            QMessageBox.warning(
                self, "Model name", "Use letters, digits, '.', '-' or '_' (up to 64 characters)."
            )
            return
        self.start_import(source, name, vocab)

    def start_import(self, source: Path, name: str, vocab: Path | None) -> Task:
        """Import in a worker thread (converting a large checkpoint takes a while)."""
        self._import = run_task(
            self.tasks,
            lambda _r, _c: import_model(source, name, vocab),
            name="import-model",
            on_success=bound(self, lambda _path: self._import_done(name, "")),
            on_failure=bound(self, lambda message: self._import_done(name, message)),
        )
        self._began(f"Importing {name}…")
        return self._import

    def _import_done(self, name: str, error: str) -> None:
        self._import = None
        text = f"Import failed: {html.escape(error)}" if error else f"{name} was imported."
        self._ended(name, not error, text)

    def shutdown(self) -> None:
        """Stop a running download (the dialog is closing)."""
        if self.download is not None and self.download.running:
            self.download.cancel()
            self.download.wait(5000)
