"""Per-user GUI preferences in an INI file (window geometry, thumbnail size, sort order, ...).

Settings that belong to a library (its model, device, result count, exclusions) live in the
library itself (``Store.get_setting``), so the CLI and the GUI agree on them. What only matters to
this user's windows lives here, in ``<platformdirs user config dir>/lotlip-search/gui.ini``;
``$LOTLIP_SEARCH_GUI_CONFIG`` names another file (tests use a temporary one).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from PySide6.QtCore import QByteArray, QSettings

CONFIG_ENV = "LOTLIP_SEARCH_GUI_CONFIG"
APP_NAME = "lotlip-search"

SORT_ORDERS = ("relevance", "newest", "oldest", "name")
THUMB_MIN, THUMB_MAX, THUMB_DEFAULT = 80, 320, 160

# library settings keys shared with the CLI
LIB_MODEL = "model"
LIB_DEVICE = "device"
LIB_PRECISION = "precision"
LIB_RESULT_COUNT = "result_count"
LIB_EXCLUDES = "excludes"
LIB_RESUME = "gui_resume_indexing"
DEFAULT_RESULT_COUNT = 100
DEFAULT_EXCLUDES = ("*/.thumbnails/*", "*/@eaDir/*", "*.tmp")


def config_path() -> Path:
    """Where the INI file lives."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "gui.ini"


class Switch:
    """An on/off preference stored as ``true``/``false`` under ``key`` (on by default)."""

    def __init__(self, key: str, doc: str) -> None:
        self.key = key
        self.__doc__ = doc

    def __get__(self, settings: GuiSettings, _owner: type | None = None) -> bool:
        return str(settings.qsettings.value(self.key, "true")).lower() == "true"

    def __set__(self, settings: GuiSettings, value: bool) -> None:
        settings.qsettings.setValue(self.key, "true" if value else "false")


class GuiSettings:
    """Typed access to the INI file; every getter has a sane default and clamps bad values."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.qsettings = QSettings(str(self.path), QSettings.Format.IniFormat)

    def sync(self) -> None:
        """Write pending changes to disk."""
        self.qsettings.sync()

    # -- typed ----------------------------------------------------------------------------------
    def _int(self, key: str, default: int, low: int, high: int) -> int:
        try:
            value = int(self.qsettings.value(key, default))
        except (TypeError, ValueError):
            return default
        return max(low, min(high, value))

    def _bytes(self, key: str) -> QByteArray | None:
        value = self.qsettings.value(key)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    @property
    def library_dir(self) -> str | None:
        """A library folder chosen in the settings dialog (None: the default one)."""
        value = self.qsettings.value("library/path", "")
        return str(value) or None

    @library_dir.setter
    def library_dir(self, path: str | None) -> None:
        self.qsettings.setValue("library/path", path or "")

    @property
    def thumb_size(self) -> int:
        """Edge of a result thumbnail in pixels."""
        return self._int("results/thumb_size", THUMB_DEFAULT, THUMB_MIN, THUMB_MAX)

    @thumb_size.setter
    def thumb_size(self, value: int) -> None:
        self.qsettings.setValue("results/thumb_size", int(value))

    @property
    def sort_order(self) -> str:
        """One of :data:`SORT_ORDERS`."""
        value = str(self.qsettings.value("results/sort", "relevance"))
        return value if value in SORT_ORDERS else "relevance"

    @sort_order.setter
    def sort_order(self, value: str) -> None:
        self.qsettings.setValue("results/sort", value if value in SORT_ORDERS else "relevance")

    preview_visible = Switch("window/preview", "Whether the preview pane is shown.")
    watch_folders = Switch(
        "library/watch",
        "Index new, changed, moved and deleted photos automatically while the app runs.",
    )

    def geometry(self) -> QByteArray | None:
        """The main window's saved geometry."""
        return self._bytes("window/geometry")

    def window_state(self) -> QByteArray | None:
        """The main window's saved toolbar/dock state."""
        return self._bytes("window/state")

    def splitter_state(self) -> QByteArray | None:
        """The results/preview splitter's saved sizes."""
        return self._bytes("window/splitter")

    def save_window(self, geometry: QByteArray, state: QByteArray, splitter: QByteArray) -> None:
        """Remember the main window's layout."""
        self.qsettings.setValue("window/geometry", geometry)
        self.qsettings.setValue("window/state", state)
        self.qsettings.setValue("window/splitter", splitter)
        self.qsettings.sync()

    def recent_queries(self) -> list[str]:
        """The last queries, newest first."""
        value = self.qsettings.value("search/recent", [])
        if isinstance(value, str):
            return [value]
        return [str(v) for v in (value or [])]

    def add_recent_query(self, text: str, keep: int = 20) -> None:
        """Put ``text`` at the front of the recent queries."""
        text = text.strip()
        if not text:
            return
        items = [q for q in self.recent_queries() if q != text]
        self.qsettings.setValue("search/recent", [text, *items][:keep])
