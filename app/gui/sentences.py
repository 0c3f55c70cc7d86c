"""Paragraph-aware search in the window: sentence strips, sentence states, duplicate badges and
saved searches (the logic lives in :mod:`app.library.explain`, ``duplicates`` and ``saved``).

* Under every thumbnail a thin strip, one segment per sentence, coloured by the photo's
  standing on it (red = worse than the library, green = better; grey = ignored).
* A sentence bar under the query and a ✓/✗ list in the preview: clicking a sentence cycles it
  normal → must → ignore → not and searches again at once; the query's vectors are cached, so
  nothing is re-encoded.
* Near copies fold into one tile with a "+N" badge; clicking the badge shows the copies.
* A saved-search sidebar: save the current search by name, run it again, export its results.

:func:`attach` adds all of it to a :class:`app.gui.main_window.MainWindow`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import QEvent, QObject, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QMouseEvent, QPainter, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QFileDialog,
    QFrame,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from app.gui import widgets as ui
from app.gui.panels import ELIDED_MIN_WIDTH
from app.gui.results import ItemRole, ResultItem
from app.library.explain import IGNORE, MARK_FLOOR, MUST, NORMAL, NOT, next_state

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow
    from app.gui.requests import SearchOutcome, SearchRequest
    from app.gui.tasks import Task
    from app.library.saved import SavedSearch

STRIP_HEIGHT = 5
STATE_LABELS = {NORMAL: "", MUST: "must: ", IGNORE: "ignored: ", NOT: "not: "}
STATE_HELP = "Click to cycle: normal → must → ignore → not"


def standing_colour(standing: float) -> QColor:
    """Red (worst) through amber to green (best) for a standing in [0, 1]."""
    value = min(1.0, max(0.0, float(standing)))
    return QColor.fromHsvF(0.33 * value, 0.78, 0.86)


def mark(standing: float, state: str) -> str:
    """``✓``, ``✗`` or ``·`` (ignored)."""
    if state == IGNORE:
        return "·"
    return "✓" if standing >= MARK_FLOOR else "✗"


# --------------------------------------------------------------------------- painting tiles


def strip_rect(image_box: QRect) -> QRect:
    """Where the sentence strip goes: along the bottom edge of the thumbnail box."""
    return QRect(
        image_box.left() + 3, image_box.bottom() - STRIP_HEIGHT - 2, image_box.width() - 6,
        STRIP_HEIGHT,
    )  # fmt: skip


def segment_at(image_box: QRect, count: int, x: int) -> int:
    """Index of the strip segment under ``x`` (-1 outside the strip)."""
    strip = strip_rect(image_box)
    if count <= 0 or not strip.left() <= x <= strip.right():
        return -1
    return min(count - 1, (x - strip.left()) * count // max(1, strip.width()))


def badge_rect(image_box: QRect, count: int, font: QFont) -> QRectF:
    """The "+N" near-copies badge in the thumbnail's top right corner."""
    metrics = QFontMetrics(font)
    width = metrics.horizontalAdvance(f"+{count}") + 12
    height = metrics.height() + 2
    return QRectF(image_box.right() - width - 3, image_box.top() + 4, width, height)


def paint_extras(painter: QPainter, image_box: QRect, item: ResultItem) -> None:
    """Draw the sentence strip and the near-copies badge of ``item`` (when it has them)."""
    sentences = getattr(item, "sentences", ())
    copies = len(getattr(item, "duplicates", ()))
    if not sentences and not copies:
        return
    painter.save()
    painter.setPen(Qt.PenStyle.NoPen)
    if sentences:
        strip = strip_rect(image_box)
        painter.setBrush(QColor(20, 24, 32, 150))
        painter.drawRoundedRect(QRectF(strip).adjusted(-1, -1, 1, 1), 2, 2)
        gap = 1.0
        width = (strip.width() - gap * (len(sentences) - 1)) / len(sentences)
        for i, s in enumerate(sentences):
            colour = QColor(150, 150, 150) if s.state == IGNORE else standing_colour(s.standing)
            painter.setBrush(colour)
            painter.drawRect(
                QRectF(strip.left() + i * (width + gap), strip.top(), width, strip.height())
            )
    if copies:
        font = QFont(painter.font())
        font.setBold(True)
        badge = badge_rect(image_box, copies, font)
        painter.setBrush(QColor(40, 90, 200, 210))
        painter.drawRoundedRect(badge, badge.height() / 2, badge.height() / 2)
        painter.setPen(QColor(255, 255, 255))
        painter.setFont(font)
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, f"+{copies}")
    painter.restore()


class TileClicks(QObject):
    """Watches the results view: a click on a "+N" badge asks to expand the group; hovering a
    strip segment shows its sentence as the tooltip."""

    expandRequested = Signal(object)

    def __init__(self, view: Any) -> None:
        super().__init__(view)
        self.view = view
        view.viewport().installEventFilter(self)
        view.viewport().setMouseTracking(True)

    def _image_box(self, index: Any) -> QRect:
        from app.gui.results_view import PADDING  # (results_view imports this module)

        edge = self.view.itemDelegate().edge
        rect = self.view.visualRect(index)
        return QRect(rect.left() + PADDING, rect.top() + PADDING, edge, edge)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Badge clicks and strip tooltips."""
        kind = event.type()
        if kind not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove):
            return False
        pos = event.position().toPoint()  # type: ignore[attr-defined]
        index = self.view.indexAt(pos)
        item = index.data(ItemRole) if index.isValid() else None
        if item is None:
            return False
        box = self._image_box(index)
        if kind == QEvent.Type.MouseButtonPress and isinstance(event, QMouseEvent):
            copies = len(getattr(item, "duplicates", ()))
            if copies and badge_rect(box, copies, self.view.font()).contains(event.position()):
                self.expandRequested.emit(item)
                return True
            return False
        sentences = getattr(item, "sentences", ())
        strip = strip_rect(box).adjusted(0, -3, 0, 3)
        if sentences and strip.contains(pos):
            s = sentences[segment_at(box, len(sentences), pos.x())]
            tip = f"{mark(s.standing, s.state)} {s.text} — beats {s.standing:.0%} of the library"
            self.view.viewport().setToolTip(tip)
        else:
            self.view.viewport().setToolTip("")
        return False


# --------------------------------------------------------------------------- sentence widgets


def _chip_text(text: str, state: str) -> str:
    return STATE_LABELS[state] + text  # elided by the chip when the bar is short of room


class _ElidedText:
    """Mixed into a button class: the whole ``full_text`` when there is room, elided (``…``)
    when the layout gives less, so long sentences cannot widen the window (tooltips hold
    them)."""

    full_text = ""

    def _button(self) -> QAbstractButton:
        return cast(QAbstractButton, self)

    def set_full_text(self, text: str) -> None:
        """The text to show, elided to the button's width."""
        self.full_text = text
        self._button().setText(text)
        self._button().updateGeometry()

    def _text_width(self, text: str) -> int:
        # measured as Qt's buttons measure their label, so the hints below add up exactly
        return self._button().fontMetrics().size(Qt.TextFlag.TextShowMnemonic, text).width()

    def sizeHint(self) -> QSize:
        """The size with the whole text."""
        hint: QSize = super().sizeHint()  # type: ignore[misc]
        shown = self._text_width(self._button().text())
        return QSize(hint.width() - shown + self._text_width(self.full_text), hint.height())

    def minimumSizeHint(self) -> QSize:
        """A few characters wide: the layout decides the width, not the text."""
        hint = self.sizeHint()
        return QSize(min(ELIDED_MIN_WIDTH, hint.width()), hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Elide the text to the new width."""
        button = self._button()
        needed = self._text_width(self.full_text)
        room = button.width() - (self.sizeHint().width() - needed)
        # (elidedText measures in fractions of a pixel: at exactly the rounded width it elides)
        elided = button.fontMetrics().elidedText(
            self.full_text, Qt.TextElideMode.ElideRight, max(0, room)
        )
        button.setText(self.full_text if room >= needed else elided)
        super().resizeEvent(event)  # type: ignore[misc]


class SentenceChip(_ElidedText, QToolButton):
    """A sentence's button in the sentence bar."""


class SentenceRow(_ElidedText, QPushButton):
    """A sentence's row in the preview's list."""


class SentenceBar(QWidget):
    """One button per sentence of the current query; a click emits ``cycleRequested(text)``."""

    cycleRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sentenceBar")
        self.buttons: list[QToolButton] = []
        self._label = QLabel("Sentences:", self)
        self._layout = ui.hbox(self._label, ui.STRETCH, parent=self, margins=0, spacing=4)
        self.hide()

    def set_sentences(self, sentences: Sequence[Any]) -> None:
        """Show ``sentences`` (objects with ``text``, ``state``); hidden for fewer than two
        sentences of the paragraph and no extra ones."""
        for button in self.buttons:
            self._layout.removeWidget(button)
            button.deleteLater()
        self.buttons = []
        for s in sentences:
            button = SentenceChip(self)
            button.set_full_text(_chip_text(s.text, s.state))
            button.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            button.setToolTip(f"{s.text}\n({s.state}) {STATE_HELP}")
            button.setProperty("state", s.state)
            button.setCheckable(False)
            font = button.font()
            font.setStrikeOut(s.state == IGNORE)
            button.setFont(font)
            button.clicked.connect(lambda _=False, t=s.text: self.cycleRequested.emit(t))
            self._layout.insertWidget(self._layout.count() - 1, button)
            self.buttons.append(button)
        self.setVisible(len(sentences) > 1 or any(s.state != NORMAL for s in sentences))


class SentenceList(QWidget):
    """The preview's list of the selected photo's sentences with ✓/✗ and standing; clicking
    a row emits ``cycleRequested(text)``."""

    cycleRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sentenceList")
        self.rows: list[QPushButton] = []
        # the rows scroll: a long paragraph must not make the preview (and the window) taller
        self._scroll = QScrollArea(self)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setWidgetResizable(True)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        content = QWidget(self._scroll)
        self._layout = ui.vbox(parent=content, margins=0, spacing=1)
        self._scroll.setWidget(content)
        ui.vbox(self._scroll, parent=self, margins=0)
        self.hide()

    def sizeHint(self) -> QSize:
        """Room for every row."""
        return QSize(super().sizeHint().width(), self._rows_height(len(self.rows)))

    def minimumSizeHint(self) -> QSize:
        """Room for two rows (or one); the rest scroll."""
        return QSize(0, self._rows_height(min(2, len(self.rows))))

    def _rows_height(self, count: int) -> int:
        if not count:
            return 0
        spacing = self._layout.spacing()
        return sum(r.sizeHint().height() + spacing for r in self.rows[:count]) - spacing

    def set_item(self, item: ResultItem | None) -> None:
        """Show the sentences of ``item`` (hidden when it has none)."""
        for row in self.rows:
            self._layout.removeWidget(row)
            row.deleteLater()
        self.rows = []
        for s in getattr(item, "sentences", ()) if item is not None else ():
            state = "" if s.state == NORMAL else f"  [{s.state}]"
            row = SentenceRow(self._scroll.widget())
            row.set_full_text(f"{mark(s.standing, s.state)} {s.text}{state}")
            row.setFlat(True)
            row.setStyleSheet(
                f"text-align: left; color: {standing_colour(s.standing).darker(140).name()};"
                if s.state != IGNORE
                else "text-align: left; color: gray;"
            )
            row.setToolTip(
                f"{s.text}\ncosine {s.score:.3f}, beats {s.standing:.0%} of the library. "
                + STATE_HELP
            )
            row.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            row.clicked.connect(lambda _=False, t=s.text: self.cycleRequested.emit(t))
            self._layout.addWidget(row)
            self.rows.append(row)
        self.setVisible(bool(self.rows))


# --------------------------------------------------------------------------- saved searches


def saved_from_request(name: str, request: SearchRequest) -> SavedSearch:
    """A :class:`SavedSearch` for a text request of the window."""
    from app.library.saved import SavedSearch

    filters = request.filters
    return SavedSearch(
        name=name,
        text=request.text,
        sentences=dict(request.sentences),
        folders=tuple(filters.folders or ()),
        date_from=filters.date_from.isoformat() if filters.date_from else None,
        date_to=filters.date_to.isoformat() if filters.date_to else None,
        top=request.top,
        group_duplicates=request.group_duplicates,
    )


def request_from_saved(search: SavedSearch) -> SearchRequest:
    """The window's request for a saved search."""
    from app.gui.requests import Filters, SearchRequest

    filters = Filters(
        folders=tuple(search.folders) or None,
        date_from=date.fromisoformat(search.date_from[:10]) if search.date_from else None,
        date_to=date.fromisoformat(search.date_to[:10]) if search.date_to else None,
    )
    return SearchRequest(
        text=search.text,
        filters=filters,
        top=search.top,
        sentences=tuple(sorted(search.sentences.items())),
        group_duplicates=search.group_duplicates,
    )


class SavedSearchPanel(QWidget):
    """The sidebar of saved searches. Signals: ``runRequested(SavedSearch)``,
    ``saveRequested()``, ``exportRequested(folder, mode)``."""

    runRequested = Signal(object)
    saveRequested = Signal()
    exportRequested = Signal(str, str)

    def __init__(self, store: Any, parent: QWidget | None = None) -> None:
        from app.library.saved import SavedSearches

        super().__init__(parent)
        self.setObjectName("savedSearches")
        self.saved = SavedSearches(store)
        self.list = QListWidget(self)
        self.list.itemClicked.connect(self._run_item)
        self.save_button = ui.button(
            "Save search…",
            self,
            self.saveRequested.emit,
            tip="Save the current search, with its sentence states and filters",
        )
        self.delete_button = ui.button("Delete", self, self._delete)
        modes = {"copies": "as copies", "links": "as links", "list": "as a list"}
        self.export_mode = ui.choices(self, "exportMode", modes)
        self.export_button = ui.button(
            "Export results…", self, self._export, tip="Put the shown results into a folder"
        )
        ui.vbox(
            QLabel("Saved searches", self),
            (self.list, 1),
            self.save_button,
            self.delete_button,
            self.export_button,  # stacked, not side by side: a narrow sidebar
            self.export_mode,
            parent=self,
            margins=0,
        )
        self.refresh()

    def refresh(self) -> None:
        """Reload the list from the library."""
        self.list.clear()
        for search in self.saved.all():
            item = QListWidgetItem(search.name)
            item.setToolTip(search.text)
            item.setData(Qt.ItemDataRole.UserRole, search)
            self.list.addItem(item)
        self.delete_button.setEnabled(self.list.count() > 0)

    def save(self, search: SavedSearch) -> None:
        """Save ``search`` and show it."""
        self.saved.save(search)
        self.refresh()

    def _run_item(self, item: QListWidgetItem) -> None:
        self.runRequested.emit(item.data(Qt.ItemDataRole.UserRole))

    def _delete(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.saved.delete(item.text())
            self.refresh()

    def _export(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export results to")
        if folder:
            self.exportRequested.emit(folder, self.export_mode.currentData())


# --------------------------------------------------------------------------- the window


class ParagraphFeatures(QObject):
    """Wires the widgets above into a main window (see :func:`attach`)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.bar = SentenceBar(window)
        central = window.centralWidget().layout()
        central.insertWidget(central.indexOf(window.query_bar) + 1, self.bar)
        self.preview_list = SentenceList(window.preview)
        preview_layout = window.preview.layout()
        preview_layout.insertWidget(
            preview_layout.indexOf(window.preview.title) + 1, self.preview_list
        )
        self.saved = SavedSearchPanel(window.session.library.store, window)
        self.saved.setMaximumWidth(260)
        window.splitter.insertWidget(0, self.saved)
        window.splitter.setCollapsible(0, True)
        window.splitter.setStretchFactor(1, 3)
        window.splitter.setStretchFactor(2, 1)
        window.splitter.setSizes([190, 820, 340])
        self.clicks = TileClicks(window.view)

        self.bar.cycleRequested.connect(self.cycle)
        self.preview_list.cycleRequested.connect(self.cycle)
        self.clicks.expandRequested.connect(self.expand)
        self.saved.runRequested.connect(self.run_saved)
        self.saved.saveRequested.connect(self.save_current)
        self.saved.exportRequested.connect(self.export)
        window.session.searchDone.connect(self._search_done)
        window.view.currentItemChanged.connect(self.preview_list.set_item)

    def _text_request(self) -> SearchRequest | None:
        request = self.window.request
        return request if request is not None and request.mode == "text" else None

    def cycle(self, text: str) -> None:
        """Move sentence ``text`` to its next state and search again (no re-encoding)."""
        request = self._text_request()
        if request is None:
            return
        states = dict(request.sentences)
        states[text] = next_state(states.get(text, NORMAL))
        kept = tuple(sorted((t, s) for t, s in states.items() if s != NORMAL))
        self.window.run_request(replace(request, sentences=kept))

    def expand(self, _item: Any) -> None:
        """Show the near copies: the same search without grouping."""
        request = self.window.request
        if request is not None and request.group_duplicates:
            self.window.run_request(replace(request, group_duplicates=False))

    def _search_done(self, outcome: SearchOutcome) -> None:
        self.bar.set_sentences(getattr(outcome, "sentences", []) or [])

    def run_saved(self, search: SavedSearch) -> None:
        """Show a saved search's text and run it."""
        self.window.query.set_text(search.text)
        self.window.run_request(request_from_saved(search))

    def save_current(self) -> None:
        """Ask for a name and save the current text search."""
        request = self._text_request()
        if request is None:
            QMessageBox.information(self.window, "Save search", "Search for a description first.")
            return
        name, ok = QInputDialog.getText(self.window, "Save search", "Name:")
        if ok and name.strip():
            try:
                self.saved.save(saved_from_request(name.strip(), request))
            except ValueError as exc:
                QMessageBox.warning(self.window, "Save search", str(exc))

    def export(self, folder: str, mode: str) -> Task | None:
        """Export the shown results into ``folder`` as ``mode`` (in a worker)."""
        outcome = self.window.outcome
        return self.window.photos.export(outcome.items if outcome else [], folder, mode)


def attach(window: MainWindow) -> ParagraphFeatures:
    """Add sentence strips, the sentence bar and list, badges and saved searches to ``window``."""
    return ParagraphFeatures(window)
