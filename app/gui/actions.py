"""The main window's menus and the results' context menu, built from tables.

The window keeps the slots; this module only says which action calls which slot under which
menu and shortcut, so adding an entry is one line in a table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QWidget

from app.gui.formatting import count_text

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow
    from app.gui.results import ResultItem

Shortcut = QKeySequence | QKeySequence.StandardKey | str | None
SEPARATOR = None


def make_action(
    owner: QWidget, text: str, slot: Callable[..., Any], shortcut: Shortcut = None, tip: str = ""
) -> QAction:
    """An action of ``owner`` (so its shortcut works anywhere in the window)."""
    action = QAction(text, owner)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    action.triggered.connect(slot)
    owner.addAction(action)
    return action


def menu_table(w: MainWindow) -> list[tuple[str, list[tuple[Any, ...] | None]]]:
    """``[(menu title, [(name, text, slot, shortcut, tip) or SEPARATOR, ...]), ...]``.

    ``name``: the window attribute the action is stored in (``""``: not stored).
    """
    keys = QKeySequence.StandardKey
    return [
        (
            "&Library",
            [
                (
                    "index_action",
                    "&Add photo folders…",
                    w.open_wizard,
                    "Ctrl+I",
                    "Choose folders and index them",
                ),
                (
                    "update_action",
                    "&Update index",
                    w.update_index,
                    "F5",
                    "Index new and changed photos",
                ),
                (
                    "import_captions_action",
                    "Import &captions…",
                    w.import_captions,
                    None,
                    "Caption file or folder",
                ),
                SEPARATOR,
                ("", "&Settings…", w.open_settings, keys.Preferences, ""),
                SEPARATOR,
                ("", "&Quit", w.close, keys.Quit, ""),
            ],
        ),
        (
            "&Search",
            [
                ("", "&Focus query", w.focus_query, "Ctrl+L", ""),
                ("", "Search by &example image…", w.choose_example, "Ctrl+E", ""),
                (
                    "similar_action",
                    "Find &similar",
                    w.similar_current,
                    "Ctrl+M",
                    "More like this one",
                ),
                ("", "Show &all photos", w.browse, "Ctrl+Shift+A", "Browse the library"),
            ],
        ),
        (
            "&Photo",
            [
                (
                    "view_action",
                    "&View",
                    w.view_current,
                    None,
                    "Full-screen viewer (Enter, double-click)",
                ),
                (
                    "open_action",
                    "&Open",
                    w.open_current,
                    "Ctrl+O",
                    "Open with the default application",
                ),
                (
                    "reveal_action",
                    "Show in &folder",
                    w.reveal_current,
                    "Ctrl+Shift+O",
                    "Show in the file manager",
                ),
                (
                    "copy_action",
                    "&Copy path",
                    w.copy_selected,
                    "Ctrl+Shift+C",
                    "Copy the paths of the selected photos",
                ),
                (
                    "copy_image_action",
                    "Copy &image",
                    w.copy_image_current,
                    None,
                    "Copy the photo itself",
                ),
                (
                    "export_action",
                    "E&xport to folder…",
                    w.export_selected,
                    "Ctrl+Shift+X",
                    "Copy the selected files into a folder",
                ),
                SEPARATOR,
                ("captions_action", "Edit c&aptions…", w.captions_selected, "Ctrl+Shift+E", ""),
                SEPARATOR,
                (
                    "remove_action",
                    "&Remove from library",
                    w.remove_selected,
                    None,
                    "Forget the selected photos (the files stay on disk)",
                ),
            ],
        ),
        (
            "&View",
            [
                ("preview_action", "&Preview pane", w.toggle_preview, "F9", ""),
                ("", "&Larger thumbnails", lambda: w.step_size(+32), "Ctrl+=", ""),
                ("", "&Smaller thumbnails", lambda: w.step_size(-32), "Ctrl+-", ""),
            ],
        ),
        (
            "&Tools",
            [
                ("", "&Models…", lambda: w.open_models(False), None, ""),
                ("", "&Fine-tune on my captions…", w.open_finetune, "Ctrl+Shift+T", ""),
            ],
        ),
        (
            "&Help",
            [
                ("", "&Keyboard shortcuts", w.show_shortcuts, "F1", ""),
                ("", "&About LoTLIP Search", w.show_about, None, ""),
            ],
        ),
    ]


def build_menus(window: MainWindow) -> dict[str, QMenu]:
    """Fill the window's menu bar from :func:`menu_table`; returns the menus by title."""
    menus: dict[str, QMenu] = {}
    for title, entries in menu_table(window):
        menu = window.menuBar().addMenu(title)
        menus[title] = menu
        for entry in entries:
            if entry is SEPARATOR:
                menu.addSeparator()
                continue
            name, text, slot, shortcut, tip = entry
            action = make_action(window, text, slot, shortcut, tip)
            menu.addAction(action)
            if name:
                setattr(window, name, action)
    window.preview_action.setCheckable(True)
    window.preview_action.setChecked(window.settings.preview_visible)
    search = menus["&Search"]
    search.addSeparator()
    window.recent_menu = search.addMenu("&Recent descriptions")
    window.recent_menu.aboutToShow.connect(window.fill_recent)
    return menus


def results_context_menu(window: MainWindow, items: Sequence[ResultItem]) -> QMenu:
    """The right-click menu for ``items`` (single-photo entries need exactly one photo).

    Every entry acts on the photos the menu was opened for, even if the grid changes (a
    search finishing) while the menu is open.
    """
    items = list(items)
    first = items[0]
    menu = QMenu(window)
    menu.setObjectName("resultsMenu")
    one = len(items) == 1
    several = f" ({len(items)})" if len(items) > 1 else ""
    copy_label = "Copy path" if one else f"Copy {count_text(len(items), 'path')}"
    writable = not window.session.read_only
    entries: list[tuple[str, Callable[[], Any], bool] | None] = [
        ("View", lambda: window.view_item(first), one),
        ("Open", lambda: window.open_item(first), one),
        ("Show in folder", lambda: window.reveal_item(first), one),
        SEPARATOR,
        (copy_label, lambda: window.copy_paths(items), True),
        ("Copy image", lambda: window.copy_image(first), one),
        (f"Export to folder…{several}", lambda: window.export_items(items), True),
        SEPARATOR,
        ("Find similar", lambda: window.search_similar(first), one),
        (f"Captions…{several}", lambda: window.open_captions(items), writable),
        SEPARATOR,
        (
            f"Remove from library{several}",
            lambda: window.remove_items(items),
            writable and not window.session.busy(),
        ),
    ]
    for entry in entries:
        if entry is SEPARATOR:
            menu.addSeparator()
            continue
        text, slot, enabled = entry
        action = menu.addAction(text)
        action.triggered.connect(slot)
        action.setEnabled(enabled)
    return menu
