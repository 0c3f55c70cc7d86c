"""The preview pane: the selected photo large (EXIF-oriented), its details and actions.

The window keeps it on the grid's current photo (after sorting, filtering and every new
search; an empty result clears it), so its buttons always act on the photo the grid selects.
Names and paths are elided with the full text as tooltip: a long path never widens the window.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QRect, QSize, Qt, Signal, SignalInstance
from PySide6.QtGui import QImage, QPainter, QPaintEvent, QPalette, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QGridLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from app.gui import widgets as ui
from app.gui.formatting import date_text, human_size
from app.gui.panels import ElidedLabel
from app.gui.results import ResultItem
from app.gui.tasks import Task, TaskSet
from app.gui.thumbnails import load_scaled_in_background

PREVIEW_EDGE = 1600


class ImageView(QWidget):
    """Paints an image scaled to fit, centred, with a message when there is none."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("previewImage")
        self.setMinimumSize(220, 96)  # shrinks first when a small screen is short of height
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image: QImage | None = None
        self._scaled: QPixmap | None = None
        self._message = "Select a photo to see it here."

    def set_image(self, image: QImage | None, message: str = "") -> None:
        """Show ``image`` (None shows ``message``)."""
        self._image = image if image is not None and not image.isNull() else None
        self._scaled = None
        self._message = message
        self.update()

    def has_image(self) -> bool:
        """True when an image is shown."""
        return self._image is not None

    def sizeHint(self) -> QSize:
        """Prefer a generous square."""
        return QSize(360, 300)

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Rescale on the next paint."""
        self._scaled = None
        super().resizeEvent(event)

    def paintEvent(self, _event: QPaintEvent) -> None:
        """Draw the image (scaled once per size) or the message."""
        painter = QPainter(self)
        box = self.rect().adjusted(4, 4, -4, -4)
        if self._image is None:
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(
                box, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._message
            )
            return
        ratio = self.devicePixelRatioF()
        if self._scaled is None:
            target = QSize(round(box.width() * ratio), round(box.height() * ratio))
            image = self._image
            if image.size() != image.size().scaled(target, Qt.AspectRatioMode.KeepAspectRatio):
                image = image.scaled(  # fit the pane: down for photos, up for small images
                    target,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            self._scaled = QPixmap.fromImage(image)
            self._scaled.setDevicePixelRatio(ratio)
        size = self._scaled.deviceIndependentSize().toSize()
        target_rect = QRect(0, 0, size.width(), size.height())
        target_rect.moveCenter(box.center())
        painter.drawPixmap(target_rect, self._scaled)


class PreviewPane(QWidget):
    """Large preview with details and actions.

    Signals carry the shown :class:`ResultItem`: ``openRequested``, ``revealRequested``,
    ``copyRequested``, ``similarRequested``, ``captionsRequested``.
    """

    openRequested = Signal(object)
    revealRequested = Signal(object)
    copyRequested = Signal(object)
    similarRequested = Signal(object)
    captionsRequested = Signal(object)

    def __init__(self, tasks: TaskSet, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("preview")
        self.tasks = tasks
        self.item: ResultItem | None = None
        self._loading: Task | None = None

        self.image = ImageView(self)
        self.title = ElidedLabel("", self, Qt.TextElideMode.ElideMiddle)
        self.title.setObjectName("previewTitle")
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.title.setFont(font)

        self.fields: dict[str, ElidedLabel] = {}
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(3)
        for key, label in (
            ("folder", "Folder"),
            ("date", "Date"),
            ("size", "Size"),
            ("dimensions", "Dimensions"),
            ("score", "Score"),
        ):
            value = ElidedLabel("", self, Qt.TextElideMode.ElideMiddle)
            value.setObjectName(f"preview_{key}")
            self.fields[key] = value
            caption = QLabel(label + ":", self)
            caption.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            form.addRow(caption, value)

        self.open_button = self._button(
            "Open", "Open with the default application (Enter)", self.openRequested
        )
        self.reveal_button = self._button(
            "Show in folder", "Reveal in the file manager", self.revealRequested
        )
        self.copy_button = self._button(
            "Copy path", "Copy the file path (Ctrl+Shift+C)", self.copyRequested
        )
        self.similar_button = self._button(
            "Find similar", "Search for photos like this one", self.similarRequested
        )
        self.captions_button = self._button(
            "Captions…", "Describe this photo for fine-tuning", self.captionsRequested
        )
        self.buttons = (
            self.open_button,
            self.reveal_button,
            self.copy_button,
            self.similar_button,
            self.captions_button,
        )
        buttons = QGridLayout()
        buttons.setSpacing(6)
        buttons.addWidget(self.open_button, 0, 0)
        buttons.addWidget(self.reveal_button, 0, 1)
        buttons.addWidget(self.copy_button, 1, 0)
        buttons.addWidget(self.similar_button, 1, 1)
        buttons.addWidget(self.captions_button, 2, 0, 1, 2)

        ui.vbox((self.image, 1), self.title, form, buttons, parent=self, margins=8, spacing=8)
        self.set_item(None)

    def _button(self, text: str, tip: str, signal: SignalInstance) -> QPushButton:
        """A button that emits ``signal`` with the shown photo."""
        return ui.button(text, self, lambda: self._emit(signal), tip=tip)

    def _emit(self, signal: SignalInstance) -> None:
        if self.item is not None:
            signal.emit(self.item)

    def set_item(self, item: ResultItem | None) -> None:
        """Show ``item`` (None clears the pane); the large image loads in a worker thread."""
        if item is not None and self.item is not None and item.path == self.item.path:
            self.item = item
            self._fill(item)
            return
        self.item = item
        for button in self.buttons:
            button.setEnabled(item is not None)
        if item is None:
            self.title.setText("No photo selected")
            for value in self.fields.values():
                value.setText("—")
            self.image.set_image(None, "Select a photo to see it here.")
            return
        self._fill(item)
        self.image.set_image(None, "Loading…")
        self._loading = load_scaled_in_background(
            self, self.tasks, self._loading, item.path, PREVIEW_EDGE, self._loaded, self._failed
        )

    def _fill(self, item: ResultItem) -> None:
        self.title.setText(item.name)
        self.title.setToolTip(item.path)
        self.fields["folder"].setText(os.path.dirname(item.path))
        when = date_text(item.date)
        if item.taken_at is None and item.modified is not None:
            when += "  (file date)"
        self.fields["date"].setText(when)
        self.fields["size"].setText(human_size(item.size))
        self.fields["dimensions"].setText(item.dimensions or "—")
        self.fields["score"].setText(f"{item.score:.3f}" if item.score is not None else "—")

    def _loaded(self, path: str, image: QImage) -> None:
        if self.item is not None and self.item.path == path:
            self.image.set_image(image)

    def _failed(self, path: str, message: str) -> None:
        if self.item is not None and self.item.path == path:
            self.image.set_image(None, f"Cannot show this photo:\n{message}")
