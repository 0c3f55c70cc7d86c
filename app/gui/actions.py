"""The main window's menus and the results' context menu, built from tables, and what the
Search ▸ Recent and Help entries show.

The window and its :class:`~app.gui.photo_actions.PhotoActions` keep the slots; this module
only says which action calls which slot under which menu and shortcut, so adding an entry is
one line in a table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox, QWidget

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


SHORTCUTS = (
    ("Ctrl+L, Ctrl+F", "Type a description"),
    ("Enter / Shift+Enter", "Search / new line in the description"),
    ("Arrow keys", "Move through the results"),
    ("Enter, double-click", "View full screen (arrows move, +/- zoom, 0 fits, Esc back)"),
    ("Ctrl+O", "Open in the default application"),
    ("Ctrl+A, Ctrl/Shift-click", "Select several photos"),
    ("Right click", "Photo actions"),
    ("Space", "Show it in the preview pane"),
    ("Escape", "Back to the description"),
    ("Ctrl+M", "Find similar photos"),
    ("Ctrl+E", "Search by an example image (or drop one on the window)"),
    ("Ctrl+Shift+C", "Copy the paths of the selected photos"),
    ("Ctrl+Shift+X", "Export the selected files to a folder"),
    ("Ctrl+Shift+O", "Show in the file manager"),
    ("Ctrl+= / Ctrl+-", "Larger / smaller thumbnails"),
    ("F9", "Show or hide the preview"),
    ("Ctrl+I / F5", "Add folders / update the index"),
)
"""Help ▸ Keyboard shortcuts."""


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
                    lambda: w.with_current(w.search_similar),
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
                    lambda: w.with_current(w.view_item),
                    None,
                    "Full-screen viewer (Enter, double-click)",
                ),
                (
                    "open_action",
                    "&Open",
                    lambda: w.photos.open(),
                    "Ctrl+O",
                    "Open with the default application",
                ),
                (
                    "reveal_action",
                    "Show in &folder",
                    lambda: w.photos.reveal(),
                    "Ctrl+Shift+O",
                    "Show in the file manager",
                ),
                (
                    "copy_action",
                    "&Copy path",
                    lambda: w.photos.copy_paths(),
                    "Ctrl+Shift+C",
                    "Copy the paths of the selected photos",
                ),
                (
                    "copy_image_action",
                    "Copy &image",
                    lambda: w.photos.copy_image(),
                    None,
                    "Copy the photo itself",
                ),
                (
                    "export_action",
                    "E&xport to folder…",
                    lambda: w.photos.export(),
                    "Ctrl+Shift+X",
                    "Copy the selected files into a folder",
                ),
                SEPARATOR,
                (
                    "captions_action",
                    "Edit c&aptions…",
                    lambda: w.open_captions(None),
                    "Ctrl+Shift+E",
                    "",
                ),
                SEPARATOR,
                (
                    "remove_action",
                    "&Remove from library",
                    lambda: w.photos.remove(),
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
                ("", "&Keyboard shortcuts", lambda: show_shortcuts(w), "F1", ""),
                ("", "&About LoTLIP Search", lambda: show_about(w), None, ""),
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
    window.recent_menu.aboutToShow.connect(lambda: fill_recent(window))
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
        ("Open", lambda: window.photos.open(first), one),
        ("Show in folder", lambda: window.photos.reveal(first), one),
        SEPARATOR,
        (copy_label, lambda: window.photos.copy_paths(items), True),
        ("Copy image", lambda: window.photos.copy_image(first), one),
        (f"Export to folder…{several}", lambda: window.photos.export(items), True),
        SEPARATOR,
        ("Find similar", lambda: window.search_similar(first), one),
        (f"Captions…{several}", lambda: window.open_captions(items), writable),
        SEPARATOR,
        (
            f"Remove from library{several}",
            lambda: window.photos.remove(items),
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


def fill_recent(window: MainWindow) -> None:
    """Fill Search ▸ Recent descriptions (just before it opens)."""
    window.recent_menu.clear()
    queries = window.settings.recent_queries()
    for text in queries[:15]:
        label = " ".join(text.split())
        label = label[:70] + "…" if len(label) > 70 else label
        action = window.recent_menu.addAction(label.replace("&", "&&"))
        action.triggered.connect(lambda _checked=False, t=text: window.search_for(t))
    if not queries:
        window.recent_menu.addAction("No searches yet").setEnabled(False)


def show_shortcuts(window: QWidget) -> None:
    """A table of keyboard shortcuts."""
    rows = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in SHORTCUTS)
    QMessageBox.information(window, "Keyboard shortcuts", f"<table cellspacing=6>{rows}</table>")


def show_about(window: QWidget) -> None:
    """Version and a line about the model."""
    from app.gui import __version__

    QMessageBox.about(
        window,
        "About LoTLIP Search",
        f"<h3>LoTLIP Search {__version__}</h3>"
        "<p>Finds photos from paragraph-long descriptions with LoTLIP, a CLIP-style model "
        "trained for long texts (corner tokens). Everything runs locally.</p>",
    )
