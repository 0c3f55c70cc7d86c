"""The thumbnail grid: a ``QListView`` in icon mode with a painting delegate.

The delegate draws the thumbnail (from :class:`ThumbnailCache`, a placeholder while it is being
made), a score badge and the elided file name; all items have one size, so the view lays out
thousands of rows without asking each for its size. Keyboard: arrows move, Enter views, Space
previews, Escape goes back to the query box, Ctrl+A and Ctrl/Shift-click select several; drags
carry the files' URLs (of every selected photo).
"""

from __future__ import annotations

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QContextMenuEvent,
    QFont,
    QFontMetrics,
    QKeyEvent,
    QPainter,
    QPainterPath,
    QPalette,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from app.gui.results import ItemRole, ResultItem
from app.gui.sentences import paint_extras
from app.gui.thumbnails import ThumbnailCache

PADDING = 6
TEXT_LINES = 1

AnyIndex = QModelIndex | QPersistentModelIndex


class ResultDelegate(QStyledItemDelegate):
    """Paints one result tile: thumbnail, score badge, file name."""

    def __init__(self, cache: ThumbnailCache, edge: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cache = cache
        self.edge = edge
        self.show_scores = True

    def set_edge(self, edge: int) -> None:
        """Thumbnail edge in device-independent pixels."""
        self.edge = edge

    def tile_size(self, option_font: QFont) -> QSize:
        """The size of every tile for the current edge and font."""
        metrics = QFontMetrics(option_font)
        return QSize(
            self.edge + 2 * PADDING, self.edge + 2 * PADDING + TEXT_LINES * metrics.height() + 2
        )

    def sizeHint(self, option: QStyleOptionViewItem, index: AnyIndex) -> QSize:
        """Every tile has the same size (the view uses uniform item sizes)."""
        return self.tile_size(option.font)  # type: ignore[attr-defined]

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        """Draw the tile."""
        item: ResultItem | None = index.data(ItemRole)
        if item is None:
            return
        rect: QRect = option.rect  # type: ignore[attr-defined]
        palette: QPalette = option.palette  # type: ignore[attr-defined]
        state = option.state  # type: ignore[attr-defined]
        selected = bool(state & QStyle.StateFlag.State_Selected)
        hovered = bool(state & QStyle.StateFlag.State_MouseOver)
        focused = bool(state & QStyle.StateFlag.State_HasFocus)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)

        tile = QRectF(rect).adjusted(1.5, 1.5, -1.5, -1.5)
        if selected or hovered:
            colour = palette.color(QPalette.ColorRole.Highlight)
            colour.setAlpha(70 if selected else 28)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            painter.drawRoundedRect(tile, 6, 6)
        if focused and selected:
            pen_colour = palette.color(QPalette.ColorRole.Highlight)
            painter.setPen(pen_colour)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(tile, 6, 6)

        image_box = QRect(rect.left() + PADDING, rect.top() + PADDING, self.edge, self.edge)
        ratio = painter.device().devicePixelRatioF() if painter.device() else 1.0
        pixmap = self.cache.pixmap(item.path, self.edge, ratio)
        if pixmap is not None:
            size = pixmap.deviceIndependentSize().toSize()
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(image_box.center())
            clip = QPainterPath()
            clip.addRoundedRect(QRectF(target), 3, 3)
            painter.setClipPath(clip)
            painter.drawPixmap(target, pixmap)
            painter.setClipping(False)
        else:
            self._placeholder(painter, image_box, palette, self.cache.failure(item.path))

        if self.show_scores and item.score is not None:
            self._badge(painter, image_box, f"{item.score:.2f}")
        paint_extras(painter, image_box, item)  # sentence strip, near-copies badge

        text_rect = QRect(
            rect.left() + PADDING,
            image_box.bottom() + 3,
            rect.width() - 2 * PADDING,
            rect.bottom() - image_box.bottom() - 3,
        )
        metrics = QFontMetrics(option.font)  # type: ignore[attr-defined]
        name = metrics.elidedText(item.name, Qt.TextElideMode.ElideMiddle, text_rect.width())
        role = (
            QPalette.ColorRole.HighlightedText if selected and focused else QPalette.ColorRole.Text
        )
        painter.setPen(palette.color(QPalette.ColorRole.Text if not selected else role))
        painter.setFont(option.font)  # type: ignore[attr-defined]
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, name)
        painter.restore()

    @staticmethod
    def _placeholder(painter: QPainter, box: QRect, palette: QPalette, failure: str | None) -> None:
        base = palette.color(QPalette.ColorRole.Mid)
        base.setAlpha(45)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(base)
        inner = QRectF(box).adjusted(
            box.width() * 0.08, box.height() * 0.15, -box.width() * 0.08, -box.height() * 0.15
        )
        painter.drawRoundedRect(inner, 4, 4)
        if failure:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(inner, Qt.AlignmentFlag.AlignCenter, "cannot\nshow")

    @staticmethod
    def _badge(painter: QPainter, box: QRect, text: str) -> None:
        font = QFont(painter.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        font.setBold(True)
        metrics = QFontMetrics(font)
        width = metrics.horizontalAdvance(text) + 10
        height = metrics.height() + 2
        badge = QRectF(box.left() + 4, box.top() + 4, width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(20, 24, 32, 170))
        painter.drawRoundedRect(badge, height / 2, height / 2)
        painter.setPen(QColor(255, 255, 255))
        painter.setFont(font)
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)


class ResultsView(QListView):
    """Icon-mode list of results with keyboard shortcuts and drag-out.

    Signals: ``openRequested(item)`` (Enter, double-click), ``previewRequested(item)`` (Space),
    ``currentItemChanged(item or None)``, ``escapePressed()``, ``contextMenuRequested(QPoint)``
    (in viewport coordinates; the clicked photo is selected first).
    """

    contextMenuRequested = Signal(QPoint)
    openRequested = Signal(object)
    previewRequested = Signal(object)
    currentItemChanged = Signal(object)
    escapePressed = Signal()

    def __init__(self, cache: ThumbnailCache, edge: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("results")
        self.delegate = ResultDelegate(cache, edge, self)
        self.setItemDelegate(self.delegate)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(500)
        self.setSpacing(2)
        self.setMouseTracking(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setAcceptDrops(False)
        self.viewport().setAcceptDrops(False)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.doubleClicked.connect(self._open_index)
        cache.ready.connect(self._thumbnail_ready)
        cache.broken.connect(lambda path, _reason: self._thumbnail_ready(path))
        self._apply_grid()

    def setModel(self, model: object) -> None:
        """Attach a model and follow its current row."""
        super().setModel(model)  # type: ignore[arg-type]
        self.selectionModel().currentChanged.connect(self._current_changed)

    def set_edge(self, edge: int) -> None:
        """Change the thumbnail size (keeps the current item in view)."""
        current = self.currentIndex()
        self.delegate.set_edge(edge)
        self._apply_grid()
        if current.isValid():
            self.scrollTo(current, QAbstractItemView.ScrollHint.PositionAtCenter)

    def _apply_grid(self) -> None:
        """Spread the columns over the full width (no ragged empty strip on the right)."""
        tile = self.delegate.tile_size(self.font()) + QSize(4, 4)
        available = self.viewport().width() - 2 * self.spacing() - 1
        columns = max(1, available // max(1, tile.width()))
        width = (
            max(tile.width(), available // columns) if available > tile.width() else tile.width()
        )
        self.setGridSize(QSize(width, tile.height()))
        self.setIconSize(QSize(self.delegate.edge, self.delegate.edge))
        self.scheduleDelayedItemsLayout()
        self.viewport().update()

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Re-spread the columns for the new width."""
        super().resizeEvent(event)
        self._apply_grid()

    def current_item(self) -> ResultItem | None:
        """The item under the keyboard cursor."""
        index = self.currentIndex()
        return index.data(ItemRole) if index.isValid() else None

    def selected_items(self) -> list[ResultItem]:
        """Selected items in display order."""
        rows = sorted(i.row() for i in self.selectionModel().selectedIndexes())
        model = self.model()
        return [model.index(r, 0).data(ItemRole) for r in rows]

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        """Right click: act on the selection, or on the clicked photo when it is not selected."""
        index = self.indexAt(event.pos())
        if index.isValid() and not self.selectionModel().isSelected(index):
            self.setCurrentIndex(index)  # selects only it, as file managers do
        elif index.isValid():
            self.selectionModel().setCurrentIndex(
                index, self.selectionModel().SelectionFlag.NoUpdate
            )
        if self.selectionModel().hasSelection():
            self.contextMenuRequested.emit(event.pos())
        event.accept()

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.currentItemChanged.emit(current.data(ItemRole) if current.isValid() else None)

    def _open_index(self, index: QModelIndex) -> None:
        item = index.data(ItemRole)
        if item is not None:
            self.openRequested.emit(item)

    def _thumbnail_ready(self, path: str) -> None:
        # Repainting the viewport is cheaper than finding the row among thousands.
        self.viewport().update()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Enter opens, Space previews, Escape returns to the query."""
        key = event.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            item = self.current_item()
            if item is not None:
                self.openRequested.emit(item)
            event.accept()
            return
        if key == Qt.Key.Key_Space and not event.modifiers():
            item = self.current_item()
            if item is not None:
                self.previewRequested.emit(item)
            event.accept()
            return
        if key == Qt.Key.Key_Escape:
            self.escapePressed.emit()
            event.accept()
            return
        super().keyPressEvent(event)
