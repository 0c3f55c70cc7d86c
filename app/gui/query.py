"""The query box: a multi-line editor for paragraph descriptions and its word-piece counter.

Enter searches, Shift+Enter starts a new line; typing searches too, once it pauses for
:data:`TYPING_PAUSE_MS` (``typingPaused``), so a word typed key by key costs one encoding, not
one per key. The counter shows how many word pieces of the description the model reads
(``model.tokenizer.count``) and turns into a warning when the text will be truncated; the words
past that limit are shown struck through and greyed (an extra selection: the text itself and the
undo history are untouched). Dropping an image file on the box searches by example instead of
pasting its path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QPalette, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QSizePolicy, QTextEdit, QWidget

from app.gui.formatting import CounterState, word_piece_counter
from app.gui.results import local_image_paths

Counter = Callable[[str], Any]  # text -> TokenCount(word_pieces, capacity, truncated)
_WORD = re.compile(r"\S+")
FIRST_PROBE = 32  # words; the cut is searched from the front, so a 5,000-word text stays cheap
COUNT_CHARS = 2_000  # a longer text is counted up to here (several times what a model reads)
TYPING_PAUSE_MS = 400  # typing searches once it pauses this long


def cut_offset(text: str, count: Counter, *, truncated: bool | None = None) -> int | None:
    """Where the words the model does not read begin in ``text`` (None: it reads them all).

    A word is read when every one of its word pieces fits. Probes prefixes that end at word
    boundaries, doubling from the front and then bisecting, so the cost depends on the
    capacity, not on the length of the text. ``truncated``: whether ``text`` is known to be
    longer than the model reads (saves counting it again).
    """
    if not (count(text).truncated if truncated is None else truncated):
        return None
    ends = [m.end() for m in _WORD.finditer(text)]
    fits = -1  # index of the last word end known to fit (-1: none)
    probe = FIRST_PROBE
    while probe < len(ends) and not count(text[: ends[probe]]).truncated:
        fits, probe = probe, probe * 2
    too_long = min(probe, len(ends) - 1)  # a prefix known not to fit
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if count(text[: ends[middle]]).truncated:
            too_long = middle
        else:
            fits = middle
    if fits < 0:
        return 0
    start = ends[fits]
    gap = _WORD.search(text, start)
    return gap.start() if gap is not None else len(text)


class QueryEdit(QPlainTextEdit):
    """Multi-line query editor.

    Signals: ``submitted(text)`` (Enter), ``typingPaused(text)`` (an edit followed by
    :data:`TYPING_PAUSE_MS` without another; not after :meth:`set_text`), ``imageDropped(path)``.
    """

    submitted = Signal(str)
    typingPaused = Signal(str)
    imageDropped = Signal(Path)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("query")
        self.setPlaceholderText(
            "Describe the photo in a few sentences: who or what is in it, where things are, "
            "colours, light, the place…   (Enter searches, Shift+Enter starts a new line)"
        )
        self.setTabChangesFocus(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.document().setDocumentMargin(6)
        metrics = self.fontMetrics()
        self._lines = lambda n: metrics.lineSpacing() * n + 18
        self.setMinimumHeight(self._lines(2))
        self.setMaximumHeight(self._lines(8))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.document().contentsChanged.connect(self.updateGeometry)
        self.cut_at: int | None = None
        self.pause = QTimer(self)
        self.pause.setSingleShot(True)
        self.pause.setInterval(TYPING_PAUSE_MS)
        self.pause.timeout.connect(lambda: self.typingPaused.emit(self.text()))
        self.textChanged.connect(self.pause.start)

    def sizeHint(self) -> QSize:
        """Three lines when short, growing with the paragraph up to eight."""
        lines = max(3, min(8, self.document().lineCount() + 1))
        return QSize(super().sizeHint().width(), self._lines(lines))

    def text(self) -> str:
        """The query as typed."""
        return self.toPlainText()

    def mark_cut(self, offset: int | None) -> None:
        """Strike through and grey the text from ``offset`` on (None: nothing is cut)."""
        self.cut_at = offset
        if offset is None or offset >= len(self.text()):
            self.setExtraSelections([])
            return
        selection = QTextEdit.ExtraSelection()
        cursor = QTextCursor(self.document())
        cursor.setPosition(offset)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        selection.cursor = cursor  # type: ignore[attr-defined]
        style = QTextCharFormat()
        style.setFontStrikeOut(True)
        style.setForeground(self.palette().color(QPalette.ColorRole.PlaceholderText))
        style.setToolTip("The model does not read this part")
        selection.format = style  # type: ignore[attr-defined]
        self.setExtraSelections([selection])

    def set_text(self, text: str) -> None:
        """Replace the query (cursor at the end); the caller searches, not the pause."""
        self.setPlainText(text)
        self.pause.stop()
        self.moveCursor(self.textCursor().MoveOperation.End)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Enter submits; Shift+Enter (or Ctrl+Enter) inserts a line break."""
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            modifiers = event.modifiers()
            if modifiers & (
                Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier
            ):
                self.insertPlainText("\n")
            else:
                self.pause.stop()  # Enter searches now; the pause would only repeat it
                self.submitted.emit(self.text())
            event.accept()
            return
        super().keyPressEvent(event)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        """Accept image files (search by example) as well as text."""
        return bool(local_image_paths(source)) or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        """A dropped or pasted file searches by example; text is inserted as usual."""
        paths = local_image_paths(source)
        if paths:
            self.imageDropped.emit(paths[0])
            return
        super().insertFromMimeData(source)


class WordPieceCounter(QLabel):
    """``"87 / 124 word pieces"`` under the query box; a warning past the model's capacity.

    The count is recomputed 120 ms after the last keystroke (tokenizing a paragraph takes well
    under a millisecond, the delay only avoids flicker). ``state`` is the last
    :class:`CounterState`; the ``level`` dynamic property drives the style sheet.
    """

    levelChanged = Signal(str)

    def __init__(self, editor: QueryEdit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("wordPieceCounter")
        self.editor = editor
        self._count: Counter | None = None
        self.state = word_piece_counter(None, None, False)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(120)
        self._timer.timeout.connect(self.update_count)
        editor.textChanged.connect(self._timer.start)
        self.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._show(self.state)

    def set_counter(self, count: Counter | None) -> None:
        """Use a model's ``tokenizer.count`` (None while no model is loaded)."""
        self._count = count
        self.update_count()

    def update_count(self) -> None:
        """Count now (also called by tests instead of waiting for the timer)."""
        self._timer.stop()
        if self._count is None:
            self._show(word_piece_counter(None, None, False))
            self.editor.mark_cut(None)
            return
        text = self.editor.text()
        # Tokenizing 5,000 words takes a fifth of a second: count a long text's start only
        # (the cut lies far inside it), and the whole text only if that start all fits.
        head = text[:COUNT_CHARS]
        result = self._count(head)
        partial = len(head) < len(text)
        if partial and not result.truncated:
            result, partial = self._count(text), False
        self._show(
            word_piece_counter(
                result.word_pieces, result.capacity, result.truncated, at_least=partial
            )
        )
        cut = cut_offset(head, self._count, truncated=True) if result.truncated else None
        self.editor.mark_cut(cut)

    @property
    def level(self) -> str:
        """``empty``, ``ok``, ``near`` or ``over``."""
        return self.state.level

    def _show(self, state: CounterState) -> None:
        changed = state.level != self.state.level
        self.state = state
        prefix = "⚠ " if state.level == "over" else ""
        suffix = " — rest cut off" if state.level == "over" else ""
        self.setText(prefix + state.text + suffix)
        self.setToolTip(state.tooltip)
        self.setProperty("level", state.level)
        self.style().unpolish(self)
        self.style().polish(self)
        if changed:
            self.levelChanged.emit(state.level)
