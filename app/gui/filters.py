"""The filter bar: which library folder, and an optional date range.

Both apply to every kind of search (a description, an example image, "find similar") and to
browsing. The date is the EXIF capture date, or the file's date for photos without one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date

from PySide6.QtCore import QDate, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDateEdit, QLabel, QWidget

from app.gui import widgets as ui
from app.gui.requests import Filters

ALL_FOLDERS = "All folders"


def _to_date(value: QDate) -> date:
    return date(value.year(), value.month(), value.day())


class FilterBar(QWidget):
    """Folder choice and date range. Signal ``changed(Filters)`` on every edit."""

    changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("filters")
        self.folder = QComboBox(self)
        self.folder.setObjectName("folderFilter")
        # a long folder name must not widen the window: fixed width, full path as tooltip
        self.folder.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.folder.setMinimumContentsLength(14)
        self.folder.addItem(ALL_FOLDERS, None)
        self.folder.setToolTip("Only search photos in this library folder")
        self.use_dates = QCheckBox("Taken between", self)
        self.use_dates.setToolTip(
            "Only photos taken in this range: the EXIF capture date, or the file's date for "
            "photos without one"
        )
        today = QDate.currentDate()
        self.date_from = QDateEdit(today.addYears(-1), self)
        self.date_to = QDateEdit(today, self)
        for edit in (self.date_from, self.date_to):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setEnabled(False)
        dates = (self.use_dates, self.date_from, QLabel("and", self), self.date_to)
        where = (QLabel("In:", self), self.folder, 12)
        ui.hbox(*where, *dates, ui.STRETCH, parent=self, margins=0, spacing=6)
        self.folder.currentIndexChanged.connect(self._emit)
        self.use_dates.toggled.connect(self._dates_toggled)
        self.date_from.dateChanged.connect(self._emit)
        self.date_to.dateChanged.connect(self._emit)

    def set_folders(self, folders: Sequence[str]) -> None:
        """Offer these library folders (keeps the current choice when it is still there)."""
        current = self.folder.currentData()
        known = [self.folder.itemData(i) for i in range(1, self.folder.count())]
        if list(folders) == known:
            return
        self.folder.blockSignals(True)
        self.folder.clear()
        self.folder.addItem(ALL_FOLDERS, None)
        for path in folders:
            self.folder.addItem(os.path.basename(path.rstrip(os.sep)) or path, path)
            self.folder.setItemData(self.folder.count() - 1, path, 3)  # ToolTipRole
        index = self.folder.findData(current) if current else 0
        self.folder.setCurrentIndex(max(0, index))
        self.folder.blockSignals(False)
        self.folder.setToolTip(self.folder.currentData() or "Search every library folder")
        if current and index < 0:
            self._emit()

    def filters(self) -> Filters:
        """The current filters."""
        folder = self.folder.currentData()
        if not self.use_dates.isChecked():
            return Filters(folders=(folder,) if folder else None)
        start, end = _to_date(self.date_from.date()), _to_date(self.date_to.date())
        if start > end:
            start, end = end, start
        return Filters(folders=(folder,) if folder else None, date_from=start, date_to=end)

    def _dates_toggled(self, on: bool) -> None:
        self.date_from.setEnabled(on)
        self.date_to.setEnabled(on)
        self._emit()

    def _emit(self, *_args: object) -> None:
        self.folder.setToolTip(self.folder.currentData() or "Search every library folder")
        self.changed.emit(self.filters())
