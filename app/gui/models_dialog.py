"""Tools ▸ Models: installed models with their kind, source and size; download, import, remove,
and make one the library's model."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QDialog,
    QMessageBox,
    QWidget,
)

from app.gui import widgets as ui
from app.gui.models_panel import ModelPanel
from app.gui.read_only import keep_disabled
from app.gui.session import Session
from app.gui.tasks import Task, bound
from app.library.models import remove_model, use_refusal


class ModelsDialog(QDialog):
    """The model manager."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        ui.frame_dialog(self, "modelsDialog", "Models", 820, 420)
        intro = ui.label(
            "The official LoTLIP models read real photos well; the bundled demo model only knows "
            "simple generated scenes. Fine-tuned models are made by Tools ▸ Fine-tune.",
            self,
            wrap=True,
        )
        self.panel = ModelPanel(session.tasks, self, show_indexed=True, library_default=True)
        self.panel.selectionChanged.connect(lambda _name: self._update_buttons())
        self.panel.busyChanged.connect(lambda _busy: self._update_buttons())
        self.panel.installed.connect(self._installed)
        self.use_button = ui.button(
            "Use for this library", self, self.use_selected, name="useModel"
        )
        self.remove_button = ui.button("Remove…", self, self.remove_selected, name="removeModel")
        actions = ui.hbox(self.use_button, self.remove_button, ui.STRETCH)
        ui.vbox(intro, (self.panel, 1), actions, ui.close_buttons(self), parent=self)
        self.panel.reload(current=self._current(), indexed=session.info.embeddings)
        keep_disabled(session, self.use_button, what="choosing the library's model")
        self.panel.changed.connect(self._update_buttons)
        session.libraryInfo.connect(
            bound(self, lambda info: self.panel.set_indexed(info.embeddings))
        )
        session.modelReady.connect(self._model_changed)
        session.refresh_info()
        self._update_buttons()

    def _current(self) -> str | None:
        choice = self.session.choice
        return choice.name if choice is not None else self.session.setting("model")

    def _model_changed(self, _choice: Any = None) -> None:
        self.panel.current = self._current()
        self.panel.set_indexed(self.session.info.embeddings)
        self._update_buttons()

    def focus_download(self) -> None:
        """Select the first official model that is not downloaded yet."""
        if self.panel.loaded:
            self.panel.focus_download()
        else:
            self.panel.changed.connect(self.panel.focus_download)

    def _update_buttons(self) -> None:
        entry = self.panel.selected()
        busy = self.panel.busy()
        self.use_button.setEnabled(
            not busy
            and entry is not None
            and entry.installed
            and use_refusal(self.session.library, entry.name, self._current()) is None
        )
        self.remove_button.setEnabled(
            not busy
            and entry is not None
            and entry.kind in ("imported", "fine-tuned", "official")
            and entry.path is not None
            and "models" in entry.path
        )

    def _installed(self, name: str) -> None:
        """Say whether the new model can become this library's (one rule with the CLI's)."""
        refusal = use_refusal(self.session.library, name, self._current())
        said = (
            f"{refusal[0].upper()}{refusal[1:]}" if refusal else "Press <b>Use for this library</b>"
        )
        self.panel.status.setText(f"{self.panel.status.text()} {said}.")

    def use_selected(self) -> None:
        """Make the selected model the library's model (indexing photos it has not seen)."""
        entry = self.panel.selected()
        if entry is None or not entry.installed:
            return
        indexed = self.session.info.embeddings.get(entry.name, 0)
        self.session.set_setting("model", entry.name)
        if indexed < self.session.info.images and ui.confirm(
            self,
            "Index with this model?",
            f"{entry.name} has indexed {indexed:,} of {self.session.info.images:,} photos. "
            "Index the rest now (in the background)?",
        ):
            self.session.start_indexing(None, model=entry.name)
            self.panel.reload(current=entry.name)
            return
        self.session.load_model(entry.name)
        self.panel.reload(current=entry.name)

    def remove_selected(self) -> Task | None:
        """Delete the selected model from disk (after asking)."""
        entry = self.panel.selected()
        if entry is None:
            return None
        warning = ""
        if entry.name == self._current():
            warning = "\n\nIt is the model this library uses; the bundled model takes over."
        if not ui.confirm(
            self, "Remove model", f"Delete {entry.name} from this computer?{warning}"
        ):
            return None
        name = entry.name
        task = Task(lambda _r, _c: remove_model(name), name="remove-model")
        task.succeeded.connect(bound(self, lambda _r: self._removed(name)))
        task.failed.connect(
            bound(self, lambda message: QMessageBox.warning(self, "Remove model", message))
        )
        return self.session.tasks.start(task)

    def _removed(self, name: str) -> None:
        if self.session.setting("model") == name:
            self.session.set_setting("model", None)
            self.session.load_model()
        self.panel.reload()

    def reject(self) -> None:
        """Closing cancels a download in progress."""
        self.panel.shutdown()
        super().reject()
