"""Library ▸ Settings: library location, default model, device, result count, exclusions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QSpinBox,
    QWidget,
)

from app.gui import config
from app.gui import widgets as ui
from app.gui.config import GuiSettings
from app.gui.read_only import keep_disabled
from app.gui.session import Session
from app.gui.tasks import Task
from app.gui.wizard import DEVICE_LABELS, parse_excludes, precision_choice
from app.library.models import list_models


class SettingsDialog(QDialog):
    """Edits library settings (shared with the CLI) and the library location (this user's)."""

    def __init__(
        self, session: Session, settings: GuiSettings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings
        ui.frame_dialog(self, "settingsDialog", "Settings", 620, 420)

        self.library = QLineEdit(str(session.library_dir), self)
        self.library.setObjectName("libraryPath")
        library_row = ui.hbox((self.library, 1), ui.button("Change…", self, self._browse))
        self.model = QComboBox(self)
        self.model.setObjectName("defaultModel")
        self.model.addItem("Automatic (best installed)", None)
        self.device = ui.choices(self, "device", DEVICE_LABELS, session.device)
        self.precision = precision_choice(self, session.precision, "precision")
        self.results = QSpinBox(self)
        self.results.setObjectName("resultCount")
        self.results.setRange(10, 5000)
        self.results.setSingleStep(10)
        self.results.setValue(session.result_count)
        self.excludes = QPlainTextEdit("\n".join(session.excludes), self)
        self.excludes.setObjectName("defaultExcludes")
        self.excludes.setMaximumHeight(110)
        self.watch = QCheckBox("Index new, changed and removed photos while the app runs", self)
        self.watch.setObjectName("watchFolders")
        self.watch.setToolTip(
            "Watches the library folders; a photo copied into one is searchable seconds later"
        )
        self.watch.setChecked(settings.watch_folders)
        note = ui.label(
            "Model, device, precision, result count and exclusions are stored in the library. "
            "The command line (lotlip-search) uses its model, device and precision too, unless "
            "told otherwise. Exclusions apply to folders added from now on and to the next "
            "update of existing ones.",
            self,
            name="mutedLabel",
            wrap=True,
        )
        rows = ui.form(
            ("Library folder:", library_row),
            ("Model:", self.model),
            ("Run models on:", self.device),
            ("Precision:", self.precision),
            ("Results per search:", self.results),
            ("Exclusions:", self.excludes),
            ("Watch folders:", self.watch),
        )
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        ui.vbox(rows, note, ui.STRETCH, buttons, parent=self)

        keep_disabled(
            session,
            self.model,
            self.device,
            self.precision,
            self.results,
            self.excludes,
            self.watch,
            what="changing the library's settings",
        )
        task = Task(lambda _r, _c: list_models(), name="settings-models")
        task.succeeded.connect(self._models)
        session.tasks.start(task)

    def _models(self, entries: list[Any]) -> None:
        current = self.session.setting(config.LIB_MODEL)
        for entry in entries:
            if entry.installed:
                self.model.addItem(f"{entry.name}  ({entry.kind})", entry.name)
        self.model.setCurrentIndex(max(0, self.model.findData(current)) if current else 0)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Library folder", self.library.text())
        if path:
            self.library.setText(path)

    def accept(self) -> None:
        """Save; a new library location applies at the next start."""
        session = self.session
        model = self.model.currentData()
        before = (session.setting(config.LIB_MODEL), session.device, session.precision)
        session.set_setting(config.LIB_MODEL, model)
        session.set_setting(config.LIB_DEVICE, self.device.currentData())
        session.set_setting(config.LIB_PRECISION, self.precision.currentData())
        session.set_setting(config.LIB_RESULT_COUNT, self.results.value())
        session.set_setting(config.LIB_EXCLUDES, parse_excludes(self.excludes.toPlainText()))
        after = (model, self.device.currentData(), self.precision.currentData())
        if after != before and not session.busy():
            session.load_model()
        self.settings.watch_folders = self.watch.isChecked()
        session.set_watching(self.watch.isChecked())
        new_dir = Path(self.library.text().strip()).expanduser()
        if new_dir != session.library_dir:
            self.settings.library_dir = str(new_dir)
            self.settings.sync()
            QMessageBox.information(
                self,
                "Library folder",
                f"LoTLIP Search will use {new_dir} the next time it starts.",
            )
        super().accept()
