"""Caption editor for selected photos, and the caption-file import (for fine-tuning).

Captions are stored in the library (``Store.add_caption`` and friends). A caption written here
is a ``user`` caption: a paragraph describing the photo the way the user would search for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QSplitter,
    QWidget,
)

from app.gui import widgets as ui
from app.gui.formatting import count_text, word_piece_counter
from app.gui.preview import ImageView
from app.gui.results import ResultItem
from app.gui.session import Session
from app.gui.tasks import Task, bound
from app.gui.thumbnails import load_scaled
from app.library.captions import CaptionImportReport, import_captions

USER_KIND = "user"


class CaptionEditor(QDialog):
    """Write or edit one descriptive caption per photo; see and delete imported ones."""

    def __init__(
        self, session: Session, items: list[ResultItem], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.store = session.library.store
        self.items = list(items)
        self.drafts: dict[int, str] = {}
        self.index = -1
        self.setObjectName("captionEditor")
        self.setWindowTitle(
            "Captions" if len(items) == 1 else f"Captions for {count_text(len(items), 'photo')}"
        )
        self.resize(820, 520)

        self.photos = QListWidget(self)
        self.photos.setObjectName("captionPhotos")
        for item in self.items:
            row = QListWidgetItem(item.name)
            row.setToolTip(item.path)
            self.photos.addItem(row)
        self.photos.currentRowChanged.connect(self.show_photo)
        self.photos.setVisible(len(self.items) > 1)
        self.photos.setMaximumWidth(220)

        self.image = ImageView(self)
        self.image.setMinimumSize(260, 200)
        self.title = ui.label("", self, wrap=True)
        self.text = QPlainTextEdit(self)
        self.text.setObjectName("captionText")
        self.text.setPlaceholderText(
            "Describe the photo in a few sentences, the way you would search for it: who or what "
            "is there, where things are, colours, light, the place, the occasion."
        )
        self.text.textChanged.connect(self._count)
        self.counter = ui.label("", self, name="wordPieceCounter")
        self.counter.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.others = QListWidget(self)
        self.others.setObjectName("importedCaptions")
        self.others.setWordWrap(True)
        self.others.setMaximumHeight(110)
        self.delete_button = ui.button("Delete caption", self, self.delete_selected)
        self.others.currentRowChanged.connect(lambda row: self.delete_button.setEnabled(row >= 0))

        right = QWidget(self)
        ui.vbox(
            (ui.hbox((self.image, 1)), 1),
            self.title,
            QLabel("<b>Your description</b>", self),
            (self.text, 1),
            self.counter,
            QLabel("<b>Other captions of this photo</b> (imported)", self),
            self.others,
            ui.hbox(ui.STRETCH, self.delete_button),
            parent=right,
            margins=0,
        )

        splitter = QSplitter(self)
        splitter.addWidget(self.photos)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.save_and_close)
        buttons.rejected.connect(self.reject)
        self.next_button = buttons.addButton("Save && next", QDialogButtonBox.ButtonRole.ActionRole)
        self.next_button.clicked.connect(self.next_photo)
        self.next_button.setVisible(len(self.items) > 1)

        ui.vbox((splitter, 1), buttons, parent=self)
        self.photos.setCurrentRow(0)
        if self.index < 0 and self.items:
            self.show_photo(0)

    # -- navigation -----------------------------------------------------------------------------
    def show_photo(self, row: int) -> None:
        """Switch to photo ``row`` (keeping the draft of the previous one)."""
        if not 0 <= row < len(self.items):
            return
        self._keep_draft()
        self.index = row
        item = self.items[row]
        self.title.setText(f"<b>{item.name}</b><br><small>{item.path}</small>")
        user = [c for c in self.store.captions(item.id) if c.kind == USER_KIND]
        draft = self.drafts.get(item.id)
        self.text.setPlainText(draft if draft is not None else (user[0].text if user else ""))
        self._fill_others(item.id)
        self.image.set_image(None, "Loading…")
        path = item.path
        task = Task(lambda _r, _c: load_scaled(path, 800), name="caption-preview")
        task.succeeded.connect(bound(self, lambda image, p=path: self._image_loaded(p, image)))
        self.session.tasks.start(task)
        self.text.setFocus()

    def _image_loaded(self, path: str, image: Any) -> None:
        if 0 <= self.index < len(self.items) and self.items[self.index].path == path:
            self.image.set_image(image)

    def _fill_others(self, image_id: int) -> None:
        self.others.clear()
        for caption in self.store.captions(image_id):
            if caption.kind == USER_KIND:
                continue
            row = QListWidgetItem(f"[{caption.kind}] {caption.text}")
            row.setData(Qt.ItemDataRole.UserRole, caption.id)
            self.others.addItem(row)
        self.delete_button.setEnabled(False)

    def _keep_draft(self) -> None:
        if 0 <= self.index < len(self.items):
            self.drafts[self.items[self.index].id] = self.text.toPlainText()

    def _count(self) -> None:
        model = self.session.model
        if model is None:
            self.counter.setText("")
            return
        count = model.tokenizer.count(self.text.toPlainText())
        state = word_piece_counter(count.word_pieces, count.capacity, count.truncated)
        self.counter.setText(state.text)
        self.counter.setProperty("level", state.level)
        self.counter.style().unpolish(self.counter)
        self.counter.style().polish(self.counter)

    # -- saving ---------------------------------------------------------------------------------
    def save(self) -> int:
        """Write every edited description; returns how many photos changed."""
        self._keep_draft()
        changed = 0
        for image_id, text in self.drafts.items():
            text = text.strip()
            user = [c for c in self.store.captions(image_id) if c.kind == USER_KIND]
            if text and user:
                if user[0].text != text:
                    self.store.update_caption(user[0].id, text=text)
                    changed += 1
                for extra in user[1:]:
                    self.store.delete_caption(extra.id)
            elif text:
                self.store.add_caption(image_id, text, USER_KIND)
                changed += 1
            else:
                for caption in user:
                    self.store.delete_caption(caption.id)
                    changed += 1
        self.drafts.clear()
        self.session.refresh_info()
        return changed

    def save_and_close(self) -> None:
        """Save and close."""
        self.save()
        self.accept()

    def next_photo(self) -> None:
        """Save and move to the next photo (wrapping around)."""
        self.save()
        self.photos.setCurrentRow((self.index + 1) % len(self.items))

    def delete_selected(self) -> None:
        """Delete the selected imported caption."""
        row = self.others.currentItem()
        if row is None or not 0 <= self.index < len(self.items):
            return
        self.store.delete_caption(int(row.data(Qt.ItemDataRole.UserRole)))
        self._fill_others(self.items[self.index].id)
        self.session.refresh_info()


def import_report_text(report: CaptionImportReport) -> str:
    """A paragraph for the import result box."""
    text = (
        f"Read {count_text(report.records, 'captioned photo')}; "
        f"{count_text(report.matched, 'photo')} found in the library, "
        f"{count_text(report.added, 'caption')} added."
    )
    if report.duplicates:
        text += f" {report.duplicates:,} were already there."
    if report.unmatched:
        text += (
            f"\n\n{count_text(len(report.unmatched), 'photo')} of the file are not in the library "
            "(index their folder first), e.g.:\n" + "\n".join(report.unmatched[:5])
        )
    skipped = sum(report.skipped.values())
    if skipped:
        text += f"\n\n{skipped:,} entries had no caption or no image and were skipped."
    return text


def start_caption_import(
    session: Session, source: Path, parent: QWidget | None = None, *, show_result: bool = True
) -> Task:
    """Import ``source`` in a worker thread; shows the outcome in a message box."""
    library = session.library
    task = session.worker_task(
        lambda _r, _c: import_captions(library.store, source), name="caption-import"
    )

    def done(report: CaptionImportReport) -> None:
        session.refresh_info()
        if show_result:
            QMessageBox.information(parent, "Captions imported", import_report_text(report))

    def failed(message: str) -> None:
        if show_result:
            QMessageBox.warning(parent, "Import failed", message)

    task.succeeded.connect(done)
    task.failed.connect(failed)
    return session.tasks.start(task)


def import_captions_interactively(session: Session, parent: QWidget | None = None) -> Task | None:
    """Ask for a caption file (JSONL/CSV) or a folder of sidecars and import it."""
    from PySide6.QtWidgets import QFileDialog

    box = QMessageBox(parent)
    box.setWindowTitle("Import captions")
    box.setText(
        "Import captions from a manifest file (.jsonl or .csv with image, short and long "
        "fields) or from a folder where each photo has a .txt or .json caption next to it."
    )
    file_button = box.addButton("A file…", QMessageBox.ButtonRole.AcceptRole)
    folder_button = box.addButton("A folder…", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    clicked = box.clickedButton()
    if clicked is file_button:
        path = ui.choose_file(parent, "Caption file", "Caption manifests (*.jsonl *.csv)")
    elif clicked is folder_button:
        path = QFileDialog.getExistingDirectory(parent, "Folder with caption sidecars")
    else:
        return None
    if not path:
        return None
    return start_caption_import(session, Path(path), parent)
