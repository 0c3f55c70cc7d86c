"""Builders for the widgets and layouts that the dialogs and panels all repeat.

A layout is written as what it holds, in order (see :func:`hbox`); a button or a label as one
call with its object name, tooltip and slot. Only construction lives here, no behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QBoxLayout,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLayout,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

STRETCH = "stretch"
"""A layout item: stretchable empty space (``(STRETCH, 2)`` for a factor of 2)."""

Item = QWidget | QLayout | int | str | tuple[Any, int] | tuple[Any, int, Qt.AlignmentFlag]
Margins = int | tuple[int, int, int, int] | None
Box = TypeVar("Box", bound=QBoxLayout)


def _fill(layout: Box, items: Iterable[Item], margins: Margins, spacing: int | None) -> Box:
    if margins is not None:
        layout.setContentsMargins(*((margins,) * 4 if isinstance(margins, int) else margins))
    if spacing is not None:
        layout.setSpacing(spacing)
    for entry in items:
        item, stretch, *align = entry if isinstance(entry, tuple) else (entry, 0)
        if item is STRETCH:
            layout.addStretch(stretch or 1)
        elif isinstance(item, int):
            layout.addSpacing(item)
        elif isinstance(item, QLayout):
            layout.addLayout(item, stretch)
        else:
            layout.addWidget(item, stretch, *align)
    return layout


def hbox(
    *items: Item, parent: QWidget | None = None, margins: Margins = None, spacing: int | None = None
) -> QHBoxLayout:
    """A row of ``items``: widgets, layouts, :data:`STRETCH`, an int (spacing in pixels),
    ``(item, stretch factor)`` or ``(widget, stretch factor, alignment)``. ``parent``: the
    widget it lays out."""
    layout = QHBoxLayout(parent) if parent is not None else QHBoxLayout()
    return _fill(layout, items, margins, spacing)


def vbox(
    *items: Item, parent: QWidget | None = None, margins: Margins = None, spacing: int | None = None
) -> QVBoxLayout:
    """A column of ``items`` (as for :func:`hbox`)."""
    layout = QVBoxLayout(parent) if parent is not None else QVBoxLayout()
    return _fill(layout, items, margins, spacing)


def form(*rows: tuple[str, QWidget | QLayout]) -> QFormLayout:
    """Labelled rows: ``("Label:", widget or layout)``."""
    layout = QFormLayout()
    for text, field in rows:
        layout.addRow(text, field)
    return layout


def button(
    text: str,
    parent: QWidget,
    clicked: Callable[..., Any] | None = None,
    *,
    name: str = "",
    tip: str = "",
) -> QPushButton:
    """A push button; ``clicked``: a slot or a signal to call."""
    widget = QPushButton(text, parent)
    if name:
        widget.setObjectName(name)
    if tip:
        widget.setToolTip(tip)
    if clicked is not None:
        widget.clicked.connect(clicked)
    return widget


def dismiss_button(
    parent: QWidget, tip: str, clicked: Callable[..., Any], *, width: int = 24, name: str = ""
) -> QPushButton:
    """The flat "✕" that closes a strip or a chip."""
    widget = button("✕", parent, clicked, name=name, tip=tip)
    widget.setFlat(True)
    widget.setFixedWidth(width)
    return widget


def label(
    text: str, parent: QWidget, *, name: str = "", wrap: bool = False, rich: bool = False
) -> QLabel:
    """A label; ``wrap``: word-wrapped; ``rich``: always read as rich text."""
    widget = QLabel(text, parent)
    if name:
        widget.setObjectName(name)
    widget.setWordWrap(wrap)
    if rich:
        widget.setTextFormat(Qt.TextFormat.RichText)
    return widget


def choices(
    parent: QWidget, name: str, labels: dict[str, str], current: str | None = None
) -> QComboBox:
    """A combo box showing the values of ``labels`` with their keys as data; ``current`` (a key)
    selected, else the first."""
    box = QComboBox(parent)
    box.setObjectName(name)
    for key, text in labels.items():
        box.addItem(text, key)
    box.setCurrentIndex(max(0, box.findData(current)))
    return box


def close_buttons(dialog: QDialog) -> QDialogButtonBox:
    """A Close button that rejects ``dialog``."""
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, dialog)
    buttons.rejected.connect(dialog.reject)
    return buttons


def choose_file(parent: QWidget | None, title: str, filters: str, start: str = "") -> str:
    """A file picked in the platform dialog, from ``start`` (the home folder by default); ""
    when cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, title, start or str(Path.home()), filters)
    return path


def confirm(parent: QWidget, title: str, question: str) -> bool:
    """Ask ``question`` with Yes and No; true for Yes."""
    return QMessageBox.question(parent, title, question) == QMessageBox.StandardButton.Yes


def frame_dialog(window: QWidget, name: str, title: str, width: int, height: int) -> None:
    """Object name, title and first size of a dialog (within the screen's free area)."""
    window.setObjectName(name)
    window.setWindowTitle(title)
    window.resize(fit_screen(window, QSize(width, height)))


def fit_screen(window: QWidget, size: QSize) -> QSize:
    """``size`` within the free area of ``window``'s screen (room left for the frame)."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return size
    return size.boundedTo(screen.availableGeometry().size() - QSize(40, 60))


def path_list(
    parent: QWidget,
    name: str,
    headers: Sequence[str],
    *,
    path_width: int | None = None,
    several: bool = False,
) -> QTreeWidget:
    """A flat list whose first column is a path (elided in the middle).

    ``path_width``: that column's first width, the last column taking the rest (None: the
    caller sizes the columns). ``several``: Ctrl/Shift-click select several rows.
    """
    tree = QTreeWidget(parent)
    tree.setObjectName(name)
    tree.setHeaderLabels(list(headers))
    tree.setRootIsDecorated(False)
    tree.setAlternatingRowColors(True)
    if several:
        tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    if path_width is not None:
        tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        tree.header().setStretchLastSection(True)
        tree.setColumnWidth(0, path_width)
    return tree


def show_rows(tree: QTreeWidget, rows: Iterable[Sequence[str]]) -> None:
    """Replace the rows of ``tree``; every cell's tooltip holds its whole text."""
    tree.clear()
    for cells in rows:
        item = QTreeWidgetItem([str(c) for c in cells])
        for column, text in enumerate(cells):
            item.setToolTip(column, str(text))
        tree.addTopLevelItem(item)


def row_texts(tree: QTreeWidget) -> list[tuple[str, ...]]:
    """The text of every row of ``tree``, column by column."""
    items = (tree.topLevelItem(i) for i in range(tree.topLevelItemCount()))
    return [tuple(item.text(c) for c in range(tree.columnCount())) for item in items if item]
