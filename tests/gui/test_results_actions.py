"""Viewing and acting on results (issue 9): context menu, multi-select and batch actions, the
full-screen viewer, failures of Open / Show in folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QContextMenuEvent, QGuiApplication
from PySide6.QtWidgets import QApplication

TINY = "gui-tiny"
SCENES = 8


@pytest.fixture
def window(
    qtbot: Any,
    make_session: Any,
    make_window: Any,
    scenes_dir: Path,
    index_now: Any,
    tmp_path: Path,
) -> Any:
    """A window browsing a library of the scenes, copied (the tests remove and delete some)."""
    photos = tmp_path / "photos"
    shutil.copytree(scenes_dir, photos)
    session = make_session(TINY, load=True)
    index_now(session, [photos])
    window = make_window(session)
    qtbot.waitUntil(lambda: window.results.rowCount() == SCENES, timeout=20_000)
    return window


def right_click(window: Any, row: int) -> Any:
    rect = window.view.visualRect(window.results.index(row))
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, rect.center())
    QApplication.sendEvent(window.view.viewport(), event)
    return window.context_menu


def test_context_menu_acts_on_the_clicked_photo(qtbot: Any, window: Any) -> None:
    window.view.setCurrentIndex(window.results.index(0))
    menu = right_click(window, 2)
    target = window.results.item(2)
    assert window.selected_items() == [target]  # right click selects the photo it is on
    labels = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert labels == [
        "View",
        "Open",
        "Show in folder",
        "Copy path",
        "Copy image",
        "Export to folder…",
        "Find similar",
        "Captions…",
        "Remove from library",
    ]
    actions = {a.text(): a for a in menu.actions()}
    actions["Copy path"].trigger()
    assert QGuiApplication.clipboard().text() == target.path

    actions["Copy image"].trigger()
    qtbot.waitUntil(lambda: not QGuiApplication.clipboard().image().isNull(), timeout=10_000)
    assert QGuiApplication.clipboard().image().width() == 64  # the scene, full size

    actions["Find similar"].trigger()
    qtbot.waitUntil(
        lambda: window.outcome.request.mode == "similar" and window.results.rowCount() > 0,
        timeout=30_000,
    )
    assert window.outcome.request.similar_to == target.id

    window.browse()
    qtbot.waitUntil(lambda: window.outcome.request.mode == "browse", timeout=30_000)
    row = window.results.row_of(target.path)
    right_click(window, row)
    task = window.photos.remove(confirm=False)
    qtbot.waitUntil(lambda: task.isFinished(), timeout=20_000)
    qtbot.waitUntil(lambda: window.results.row_of(target.path) < 0, timeout=20_000)
    assert window.session.library.store.image_id(target.path) is None
    assert Path(target.path).is_file()  # the file stays on disk


def test_context_menu_keeps_its_photo_when_the_grid_changes(qtbot: Any, window: Any) -> None:
    menu = right_click(window, 5)
    target = window.results.item(5)
    window.search_text("a red circle")  # a search finishes while the menu is open
    qtbot.waitUntil(lambda: window.outcome.request.mode == "text", timeout=30_000)
    assert not menu.isVisible()  # closed with the results it was opened for
    actions = {a.text(): a for a in menu.actions()}
    actions["Copy path"].trigger()
    assert QGuiApplication.clipboard().text() == target.path


def test_multi_select_batch_actions(qtbot: Any, window: Any, tmp_path: Path) -> None:
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    items = window.selected_items()
    assert len(items) == SCENES

    menu = right_click(window, 1)  # on a selected photo: the selection stays
    assert len(window.selected_items()) == SCENES
    labels = {a.text(): a for a in menu.actions()}
    assert not labels["Open"].isEnabled() and not labels["Find similar"].isEnabled()
    labels[f"Copy {SCENES} paths"].trigger()
    assert QGuiApplication.clipboard().text().splitlines() == [i.path for i in items]

    # drag several out: one URL per selected photo
    mime = window.results.mimeData(window.view.selectionModel().selectedIndexes())
    assert sorted(u.toLocalFile() for u in mime.urls()) == sorted(i.path for i in items)

    # Ctrl/Shift-click
    window.view.clearSelection()
    first = window.view.visualRect(window.results.index(0)).center()
    third = window.view.visualRect(window.results.index(2)).center()
    qtbot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=first)
    qtbot.mouseClick(
        window.view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, third
    )
    assert [i.path for i in window.selected_items()] == [
        window.results.item(r).path for r in range(3)
    ]
    qtbot.mouseClick(
        window.view.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.ControlModifier,
        first,
    )
    assert len(window.selected_items()) == 2

    # export the two to a folder, twice: nothing is overwritten
    out = tmp_path / "export"
    out.mkdir()
    for _ in range(2):
        window.photos.export(folder=str(out))
        qtbot.waitUntil(
            lambda: window.statusBar().currentMessage().startswith("Exported"), timeout=20_000
        )
    names = sorted(p.name for p in out.iterdir())
    chosen = sorted(Path(i.path).name for i in window.selected_items())
    assert len(names) == 4 and set(chosen) <= set(names)
    assert all(
        Path(i.path).read_bytes() == (out / Path(i.path).name).read_bytes()
        for i in window.selected_items()
    )
    assert window.statusBar().currentMessage().startswith("Exported 2 photos")


def test_export_reports_a_photo_it_cannot_copy(qtbot: Any, window: Any, tmp_path: Path) -> None:
    items = [window.results.item(r) for r in range(3)]
    Path(items[1].path).unlink()  # still in the grid, gone from disk
    out = tmp_path / "export"
    window.photos.export(items, folder=str(out))
    qtbot.waitUntil(
        lambda: window.statusBar().currentMessage().startswith("Exported"), timeout=20_000
    )
    message = window.statusBar().currentMessage()
    assert message.startswith("Exported 2 photos") and "1 could not be exported" in message
    assert Path(items[1].path).name in message
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(items[i].path).name for i in (0, 2))


def test_full_screen_viewer(qtbot: Any, window: Any) -> None:
    window.view.setFocus()
    window.view.setCurrentIndex(window.results.index(2))
    qtbot.keyClick(window.view, Qt.Key.Key_Return)
    viewer = window.viewer
    assert viewer is not None and viewer.isVisible() and viewer.isFullScreen()
    assert viewer.current_path() == window.results.item(2).path
    qtbot.waitUntil(lambda: viewer.view.image is not None, timeout=10_000)

    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    assert viewer.current_path() == window.results.item(4).path
    qtbot.keyClick(viewer, Qt.Key.Key_Left)
    assert viewer.row == 3
    qtbot.waitUntil(lambda: viewer.view.image is not None, timeout=10_000)
    fit = viewer.view.scale()
    qtbot.keyClick(viewer, Qt.Key.Key_Plus)
    assert viewer.view.scale() == pytest.approx(fit * 1.25)
    qtbot.keyClick(viewer, Qt.Key.Key_1)
    assert viewer.view.scale() == 1.0
    qtbot.keyClick(viewer, Qt.Key.Key_0)
    assert viewer.view.zoom is None and viewer.view.scale() == pytest.approx(fit)
    qtbot.keyClick(viewer, Qt.Key.Key_End)
    assert viewer.row == SCENES - 1

    qtbot.keyClick(viewer, Qt.Key.Key_Escape)
    assert not viewer.isVisible()
    assert window.view.currentIndex().row() == SCENES - 1  # back with that photo selected
    assert window.preview.item == window.results.item(SCENES - 1)

    # the grid refreshing meanwhile (new photos while indexing) keeps the viewer on its photo
    window.view_item(window.results.item(2))
    shown = viewer.current_path()
    window.sort.setCurrentIndex(window.sort.findData("name"))
    items = window.results.items()
    before = window.results.row_of(shown)
    window.results.set_items([i for i in items if i.path != items[0].path or i.path == shown])
    assert viewer.current_path() == shown and window.results.item(viewer.row).path == shown
    assert before == 0 or viewer.row == before - 1  # its row moved up, the viewer followed
    qtbot.keyClick(viewer, Qt.Key.Key_Escape)
    assert window.view.current_item().path == shown

    # a double-click opens it as well
    rect = window.view.visualRect(window.results.index(1))
    qtbot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert viewer.isVisible() and viewer.row == 1
    viewer.close()


def test_show_in_folder_reports_failure_like_open(
    qtbot: Any, window: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.gui import desktop

    calls: list[str] = []
    monkeypatch.setattr(desktop, "open_file", lambda p: calls.append(f"open {p}") or False)
    monkeypatch.setattr(
        desktop, "reveal_in_file_manager", lambda p: calls.append(f"reveal {p}") or False
    )
    window.view.setCurrentIndex(window.results.index(0))
    item = window.view.current_item()
    window.preview.reveal_button.click()
    assert calls == [f"reveal {item.path}"]
    assert window.statusBar().currentMessage() == f"No file manager could show {item.name}"
    window.preview.open_button.click()
    assert window.statusBar().currentMessage() == f"No application could open {item.name}"

    Path(item.path).unlink()  # moved away, drive unplugged…
    calls.clear()
    for action in (window.photos.reveal, window.photos.open):
        window.statusBar().clearMessage()
        action()
        assert window.statusBar().currentMessage().startswith(f"{item.name} is no longer at")
    assert calls == []
