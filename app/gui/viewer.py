"""The full-screen viewer: one result at a time, arrows to move, zoom and fit, Esc to go back.

:class:`PhotoViewer` walks the rows of the results model the grid shows, so it follows the
grid's sort order. It reports the row it ends on (``closed(row)``) and the window selects that
photo in the grid. The photo is decoded in a worker thread (EXIF-oriented, longest side at most
:data:`VIEWER_EDGE`); a photo that cannot be decoded shows why.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QLabel, QWidget

from app.gui import widgets as ui
from app.gui.results import ResultsModel
from app.gui.tasks import Task, TaskSet
from app.gui.thumbnails import load_scaled_in_background

VIEWER_EDGE = 4096
ZOOM_STEP = 1.25
ZOOM_MIN, ZOOM_MAX = 0.05, 16.0
KEYS_HINT = "      ← → move · + − zoom · 0 fit · 1 actual size · Esc back"


class ZoomView(QWidget):
    """Paints an image fitted to the widget, or at a zoom factor with panning by dragging."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("viewerImage")
        self.image: QImage | None = None
        self.zoom: float | None = None  # None: fit the window
        self.offset = QPointF(0, 0)
        self.message = ""
        self._drag: QPointF | None = None

    def set_image(self, image: QImage | None, message: str = "") -> None:
        """Show ``image`` fitted (None shows ``message``)."""
        self.image = image if image is not None and not image.isNull() else None
        self.message = message
        self.fit()

    def fit_scale(self) -> float:
        """The scale that fits the whole image in the widget (never above 1 for big photos)."""
        if self.image is None or self.image.width() == 0 or self.image.height() == 0:
            return 1.0
        return min(self.width() / self.image.width(), self.height() / self.image.height())

    def scale(self) -> float:
        """The scale the image is painted at."""
        return self.fit_scale() if self.zoom is None else self.zoom

    def fit(self) -> None:
        """Fit the image to the window."""
        self.zoom = None
        self.offset = QPointF(0, 0)
        self.update()

    def set_zoom(self, zoom: float) -> None:
        """Paint at ``zoom`` (1.0: one image pixel per screen pixel)."""
        self.zoom = min(ZOOM_MAX, max(ZOOM_MIN, zoom))
        self.update()

    def zoom_by(self, factor: float) -> None:
        """Zoom in (factor > 1) or out from the current scale."""
        self.set_zoom(self.scale() * factor)

    def paintEvent(self, _event: QPaintEvent) -> None:
        """Draw the image centred (plus the pan offset), or the message."""
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(16, 16, 18))
        if self.image is None:
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(
                self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message
            )
            return
        scale = self.scale()
        size = QSize(round(self.image.width() * scale), round(self.image.height() * scale))
        target = QRectF(0, 0, size.width(), size.height())
        target.moveCenter(QRectF(self.rect()).center() + self.offset)
        painter.setRenderHint(
            QPainter.RenderHint.SmoothPixmapTransform, self.zoom is None or scale < 1.0
        )
        painter.drawImage(target, self.image)

    def wheelEvent(self, event: QWheelEvent) -> None:
        """The wheel zooms."""
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(ZOOM_STEP**steps)
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """Start panning."""
        self._drag = event.position()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """Pan while the button is held (only when zoomed)."""
        if self._drag is not None and self.zoom is not None:
            self.offset += event.position() - self._drag
            self._drag = event.position()
            self.update()

    def mouseReleaseEvent(self, _event: QMouseEvent) -> None:
        """Stop panning."""
        self._drag = None


class PhotoViewer(QWidget):
    """A full-screen window over ``model``'s rows (see the module docstring).

    Keys: Left/Right (or Page Up/Down, Backspace/Space) move, Home/End jump, + and - zoom,
    0 or F fits, 1 shows actual size, Esc (or Enter) goes back. Signal ``closed(row)``.
    """

    closed = Signal(int)

    def __init__(self, model: ResultsModel, tasks: TaskSet, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("viewer")
        self.setWindowTitle("LoTLIP Search — viewer")
        self.model = model
        self.tasks = tasks
        self.row = -1
        self.path: str | None = None
        # the grid may refresh while the viewer is open (new photos while indexing): stay on
        # the same photo, wherever its row went
        model.modelReset.connect(self._follow)
        model.layoutChanged.connect(self._follow)
        self._loading: Task | None = None
        self.view = ZoomView(self)
        self.caption = QLabel(self)
        self.caption.setObjectName("viewerCaption")
        self.caption.setStyleSheet("color: #ddd; background: #101012; padding: 4px 10px;")
        ui.vbox((self.view, 1), self.caption, parent=self, margins=0, spacing=0)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def show_row(self, row: int) -> None:
        """Show the photo at ``row`` (clamped to the rows there are)."""
        count = self.model.rowCount()
        if count == 0:
            self.row, self.path = -1, None
            self.view.set_image(None, "No photos")
            self.caption.setText("")
            return
        self.row = max(0, min(count - 1, row))
        item = self.model.item(self.row)
        assert item is not None
        self.path = item.path
        score = f" · score {item.score:.3f}" if item.score is not None else ""
        self.caption.setText(f"{self.row + 1} / {count} · {item.path}{score}{KEYS_HINT}")
        self.caption.setToolTip(item.path)
        self.view.set_image(None, "Loading…")
        self._loading = load_scaled_in_background(
            self, self.tasks, self._loading, item.path, VIEWER_EDGE, self._loaded, self._failed
        )

    def current_path(self) -> str | None:
        """The path of the photo shown."""
        return self.path

    def _follow(self, *_args: object) -> None:
        if self.path is None:
            return
        row = self.model.row_of(self.path)
        if row >= 0:
            self.row = row
        elif self.isVisible():
            self.show_row(self.row)  # the photo left the results: show the one now there

    def _loaded(self, path: str, image: QImage) -> None:
        if path == self.current_path():
            self.view.set_image(image)

    def _failed(self, path: str, message: str) -> None:
        if path == self.current_path():
            self.view.set_image(None, f"Cannot show this photo:\n{message}")

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Move, zoom, fit, go back (see the class docstring)."""
        key = event.key()
        moves = {
            Qt.Key.Key_Right: 1,
            Qt.Key.Key_Down: 1,
            Qt.Key.Key_PageDown: 1,
            Qt.Key.Key_Space: 1,
            Qt.Key.Key_Left: -1,
            Qt.Key.Key_Up: -1,
            Qt.Key.Key_PageUp: -1,
            Qt.Key.Key_Backspace: -1,
        }
        if key in moves:
            self.show_row(self.row + moves[key])
        elif key == Qt.Key.Key_Home:
            self.show_row(0)
        elif key == Qt.Key.Key_End:
            self.show_row(self.model.rowCount() - 1)
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.view.zoom_by(ZOOM_STEP)
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.view.zoom_by(1 / ZOOM_STEP)
        elif key in (Qt.Key.Key_0, Qt.Key.Key_F):
            self.view.fit()
        elif key == Qt.Key.Key_1:
            self.view.set_zoom(1.0)
        elif key in (Qt.Key.Key_Escape, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.close()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def mouseDoubleClickEvent(self, _event: QMouseEvent) -> None:
        """A double-click goes back, like Esc."""
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Tell the window which photo to select."""
        if self._loading is not None:
            self._loading.cancel()
        self.closed.emit(self.row)
        super().closeEvent(event)
