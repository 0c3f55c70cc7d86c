"""The result grid's data: :class:`ResultItem` rows, sorting, and the Qt list model.

Items are built in the search thread (:func:`item_from_result` stats the file for its date), so
the model only holds plain data and answers ``data()`` in constant time, which keeps scrolling
through thousands of results smooth.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QUrl,
)

from app.gui.formatting import date_text, human_size, parse_timestamp

ItemRole = Qt.ItemDataRole.UserRole + 1
ScoreRole = Qt.ItemDataRole.UserRole + 2
PathRole = Qt.ItemDataRole.UserRole + 3

AnyIndex = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class ResultItem:
    """One photo in the grid (a search hit, or a library photo when browsing)."""

    id: int
    path: str
    score: float | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = None
    taken_at: datetime | None = None
    modified: datetime | None = None
    folder: str | None = None
    sentences: tuple[Any, ...] = ()  # app.library.explain.SentenceScore per query sentence
    duplicates: tuple[str, ...] = ()  # paths of near copies folded into this photo

    @property
    def name(self) -> str:
        """The file name."""
        return os.path.basename(self.path)

    @property
    def date(self) -> datetime | None:
        """When the photo was taken (EXIF), else when the file was last modified."""
        return self.taken_at or self.modified

    @property
    def dimensions(self) -> str:
        """``"4032 × 3024"`` or ``""``."""
        if self.width and self.height:
            return f"{self.width} × {self.height}"
        return ""

    def tooltip(self) -> str:
        """Multi-line hover text."""
        lines = [self.path, date_text(self.date)]
        details = ", ".join(x for x in (self.dimensions, human_size(self.size)) if x)
        if details:
            lines.append(details)
        if self.score is not None:
            lines.append(f"score {self.score:.3f}")
        return "\n".join(lines)


def _naive(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is not None:
        return value.astimezone().replace(tzinfo=None)
    return value


def item_from_result(result: Any, *, stat: bool = True) -> ResultItem:
    """A :class:`ResultItem` from an ``app.library`` search result or image row (duck-typed).

    ``stat``: look up the file's modification time (the date of photos without EXIF dates).
    """
    path = str(result.path)
    modified = None
    size = getattr(result, "size", None)
    mtime_ns = getattr(result, "mtime_ns", None)
    if mtime_ns is None and stat:
        try:
            st = os.stat(path)
            mtime_ns = st.st_mtime_ns
            size = size if size is not None else st.st_size
        except OSError:
            mtime_ns = None
    if mtime_ns is not None:
        modified = datetime.fromtimestamp(mtime_ns / 1e9)
    taken = result.taken_at
    taken_at = taken if isinstance(taken, datetime) else parse_timestamp(taken)
    return ResultItem(
        id=int(result.id),
        path=path,
        score=getattr(result, "score", None),
        width=getattr(result, "width", None),
        height=getattr(result, "height", None),
        size=size,
        taken_at=_naive(taken_at),
        modified=modified,
        folder=getattr(result, "folder", None),
        sentences=tuple(getattr(result, "sentences", ()) or ()),
        duplicates=tuple(d.path for d in getattr(result, "duplicates", ()) or ()),
    )


def sort_items(items: Iterable[ResultItem], order: str) -> list[ResultItem]:
    """Items sorted by ``relevance`` (score, best first), ``newest``, ``oldest`` or ``name``.

    Photos without a date go last in both date orders; ties keep their relevance order.
    """
    items = list(items)
    if order == "relevance":
        return sorted(items, key=lambda i: -(i.score if i.score is not None else -1e9))
    if order in ("newest", "oldest"):
        dated = [i for i in items if i.date is not None]
        undated = [i for i in items if i.date is None]
        dated.sort(key=lambda i: i.date, reverse=order == "newest")  # type: ignore[arg-type,return-value]
        return dated + undated
    if order == "name":
        return sorted(items, key=lambda i: (i.name.lower(), i.path))
    raise ValueError(f"unknown sort order {order!r}")


class ResultsModel(QAbstractListModel):
    """A flat list of :class:`ResultItem` for the thumbnail grid; drags carry file URLs."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._items: list[ResultItem] = []
        self._order = "relevance"

    # -- contents ------------------------------------------------------------------------------
    def set_items(self, items: Sequence[ResultItem], order: str | None = None) -> None:
        """Replace every row (sorted by ``order``, or the current order)."""
        if order is not None:
            self._order = order
        self.beginResetModel()
        self._items = sort_items(items, self._order)
        self.endResetModel()

    def set_order(self, order: str) -> None:
        """Re-sort the rows in place; the current and selected photos stay current and selected.

        Persistent indexes (the view's current index and selection) are moved with their
        photos, so whatever acts on "the selected photo" still acts on the same one.
        """
        if order == self._order:
            return
        self._order = order
        self.layoutAboutToBeChanged.emit()
        old_rows = {item.path: row for row, item in enumerate(self._items)}
        self._items = sort_items(self._items, order)
        new_row = {old_rows[item.path]: row for row, item in enumerate(self._items)}
        persistent = self.persistentIndexList()
        self.changePersistentIndexList(
            persistent, [self.index(new_row.get(i.row(), i.row())) for i in persistent]
        )
        self.layoutChanged.emit()

    def items(self) -> list[ResultItem]:
        """All rows, in display order."""
        return list(self._items)

    def item(self, row: int) -> ResultItem | None:
        """The item at ``row``, or None."""
        return self._items[row] if 0 <= row < len(self._items) else None

    def row_of(self, path: str) -> int:
        """The row showing ``path``, or -1."""
        for row, item in enumerate(self._items):
            if item.path == path:
                return row
        return -1

    # -- QAbstractListModel ----------------------------------------------------------------------
    def rowCount(self, parent: AnyIndex | None = None) -> int:
        """Number of results (a flat list has no children)."""
        return 0 if parent is not None and parent.isValid() else len(self._items)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Display name, tooltip, the item itself, its score or path."""
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        item = self._items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return item.name
        if role == Qt.ItemDataRole.ToolTipRole:
            return item.tooltip()
        if role == ItemRole:
            return item
        if role == ScoreRole:
            return item.score
        if role == PathRole:
            return item.path
        return None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        """Rows are selectable and can be dragged out to other applications."""
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
        )

    def mimeTypes(self) -> list[str]:
        """Drags offer file URLs (and plain-text paths)."""
        return ["text/uri-list", "text/plain"]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        """File URLs of the dragged rows, for file managers, editors and chat apps."""
        paths = []
        for index in indexes:
            item = self.item(index.row())
            if item is not None and item.path not in paths:
                paths.append(item.path)
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(p) for p in paths])
        mime.setText("\n".join(paths))
        return mime

    def supportedDragActions(self) -> Qt.DropAction:
        """Results are copied (or linked), never moved away from the library."""
        return Qt.DropAction.CopyAction | Qt.DropAction.LinkAction


def local_image_paths(mime: QMimeData) -> list[Path]:
    """Existing local files among a drop's URLs (what can be searched by example)."""
    paths = []
    for url in mime.urls():
        if url.isLocalFile():
            path = Path(url.toLocalFile())
            if path.is_file():
                paths.append(path)
    return paths
