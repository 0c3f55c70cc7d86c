"""Library management in the app: the Folders panel, the errors view, watch folders, resume."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from app.gui.errors_view import ErrorsDialog
from app.gui.folders_dialog import COL_FAILED, COL_PENDING, COL_PHOTOS, COL_STATUS, FoldersDialog
from app.gui.requests import SearchRequest
from app.gui.watcher import FolderWatcher
from training.synthetic import write_scenes

BROKEN = b"this is a text file, not a picture\n" * 4


def photos(folder: Path, start: int, count: int) -> Path:
    """``count`` generated scenes (PNG + caption sidecars) in ``folder``."""
    write_scenes(folder, start, count, size=48)
    (folder / "manifest.jsonl").unlink()
    return folder


def panel(qtbot: Any, session: Any) -> FoldersDialog:
    """A Folders panel whose first count has arrived (the count runs in a worker thread)."""
    dialog = FoldersDialog(session)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.refreshed, timeout=30_000):
        pass
    return dialog


def row_of(dialog: FoldersDialog, path: Path) -> list[str]:
    return next(r for r in dialog.rows() if r[0] == str(path))


def wait_idle(qtbot: Any, session: Any, timeout: int = 60_000) -> None:
    qtbot.waitUntil(
        lambda: not session.busy() and session.queued_folders == [],
        timeout=timeout,
    )


def test_panel_lists_photos_waiting_failures_and_offline(
    qtbot: Any, make_session: Any, index_now: Any, tmp_path: Path
) -> None:
    folder = photos(tmp_path / "pics", 100, 6)
    (folder / "broken.jpg").write_bytes(BROKEN)
    gone = tmp_path / "usb-drive"
    gone.mkdir()
    session = make_session()
    index_now(session, [folder, gone])
    gone.rmdir()  # the drive is unplugged
    photos(folder / "new", 300, 3)  # arrived while the app was not looking

    dialog = panel(qtbot, session)
    row = row_of(dialog, folder)
    assert row[COL_PHOTOS] == "6"
    assert row[COL_PENDING] == "3"
    assert row[COL_FAILED] == "1"
    assert row[COL_STATUS] == "Online"
    offline = row_of(dialog, gone)
    assert offline[COL_STATUS] == "Offline" and offline[COL_PENDING] == "—"
    assert "3 photos waiting" in dialog.summary.text() and "1 offline" in dialog.summary.text()
    assert dialog.errors_link.isVisibleTo(dialog)
    assert "1 could not be read" in dialog.errors_link.text()

    # Rescan indexes what was waiting; the panel recounts by itself when the run ends.
    dialog.select(str(folder))
    with qtbot.waitSignal(dialog.refreshed, timeout=60_000):
        dialog.rescan(dialog.selected_paths())
    wait_idle(qtbot, session)
    qtbot.waitUntil(lambda: row_of(dialog, folder)[COL_PHOTOS] == "9", timeout=30_000)
    assert row_of(dialog, folder)[COL_PENDING] == "0"


def test_remove_and_exclude_subfolder(
    qtbot: Any, make_session: Any, index_now: Any, tmp_path: Path
) -> None:
    keep = photos(tmp_path / "keep", 100, 3)
    photos(keep / "screenshots", 200, 2)
    drop = photos(tmp_path / "drop", 300, 2)
    session = make_session()
    index_now(session, [keep, drop])
    store = session.library.store
    assert store.counts().images == 7

    dialog = panel(qtbot, session)
    assert dialog.remove_button.isEnabled() is False  # nothing selected
    dialog.select(str(drop))
    assert dialog.remove_button.isEnabled()
    with qtbot.waitSignal(dialog.changed, timeout=30_000) as removed:
        dialog.remove(dialog.selected_paths())
    assert removed.args[0] == "Removed 2 photos from the library"
    assert [f.path for f in session.library.folders()] == [str(keep)]
    assert drop.is_dir() and len(list(drop.glob("*.png"))) == 2  # the files stay

    with qtbot.waitSignal(dialog.changed, timeout=30_000):
        dialog.exclude(str(keep / "screenshots"))
    assert store.counts().images == 3
    assert "/screenshots" in session.library.store.get_folder(str(keep)).excludes
    # the next run does not bring them back
    index_now(session, [keep])
    assert store.counts().images == 3


def test_errors_view_lists_reason_and_retry_reads_again(
    qtbot: Any, make_session: Any, index_now: Any, tmp_path: Path
) -> None:
    folder = photos(tmp_path / "pics", 100, 2)
    broken = folder / "broken.jpg"
    broken.write_bytes(BROKEN)
    session = make_session()
    index_now(session, [folder])
    store = session.library.store
    # A photo that failed once for a passing reason (say, read while still being copied): the
    # library skips it until its size or time changes, so only Retry brings it in.
    late = photos(tmp_path / "late", 400, 1) / "scene_000400.png"
    shutil.move(str(late), folder / late.name)
    late = folder / late.name
    st = late.stat()
    root = store.get_folder(str(folder))
    store.record_failure(
        str(late), "truncated file", folder_id=root.id, size=st.st_size, mtime_ns=st.st_mtime_ns
    )
    index_now(session, [folder])
    assert store.image_id(str(late)) is None

    dialog = ErrorsDialog(session)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.loaded, timeout=30_000) as loaded:
        pass
    assert loaded.args == [2]
    rows = dict(dialog.rows())
    assert "not an image" in rows[str(broken)]
    assert rows[str(late)] == "truncated file"
    assert "2 files could not be read" in dialog.summary.text()

    assert not dialog.retry_button.isEnabled()
    dialog.list.findItems(str(late), Qt.MatchFlag.MatchExactly, 0)[0].setSelected(True)
    assert dialog.retry_button.isEnabled()
    with qtbot.waitSignal(dialog.loaded, timeout=60_000) as reloaded:
        dialog.retry(dialog.selected_paths())  # the list reloads when the run is over
    assert reloaded.args == [1]
    assert store.image_id(str(late)) is not None
    assert [path for path, _ in dialog.rows()] == [str(broken)]


def test_watcher_turns_a_burst_of_events_into_one_signal(qtbot: Any, tmp_path: Path) -> None:
    root = tmp_path / "watched"
    (root / "sub").mkdir(parents=True)
    ignored = root / "thumbs"
    ignored.mkdir()
    watcher = FolderWatcher(debounce_ms=300, max_delay_ms=5_000, ignore=[ignored])
    seen: list[list[str]] = []
    watcher.changed.connect(seen.append)
    watcher.watch([str(root)])
    qtbot.waitUntil(lambda: watcher.roots == (str(root),), timeout=10_000)  # watches in place
    try:
        (root / "notes.txt").write_text("not a photo")
        (ignored / "x.jpg").write_bytes(b"x")
        qtbot.wait(700)
        assert seen == []  # neither a non-picture nor an ignored folder counts
        for i in range(30):
            (root / "sub" / f"p{i}.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
            time.sleep(0.01)
        qtbot.waitUntil(lambda: bool(seen), timeout=5_000)
        qtbot.wait(600)
        assert seen == [[str(root)]]  # 30 files (90+ events): one signal
    finally:
        watcher.stop()


def test_copied_photo_becomes_searchable_within_seconds(
    qtbot: Any, make_session: Any, index_now: Any, tmp_path: Path
) -> None:
    folder = photos(tmp_path / "pics", 100, 4)
    elsewhere = photos(tmp_path / "camera", 500, 2)
    session = make_session(load=True)
    index_now(session, [folder])
    session.set_watching(True)
    qtbot.waitUntil(lambda: session.auto_indexer.watcher.roots == (str(folder),), timeout=5_000)
    store = session.library.store

    copied = folder / "from-camera.png"
    started = time.monotonic()
    shutil.copyfile(elsewhere / "scene_000500.png", copied)
    qtbot.waitUntil(lambda: store.image_id(str(copied)) is not None, timeout=15_000)
    wait_idle(qtbot, session)
    with qtbot.waitSignal(session.searchDone, timeout=30_000) as found:
        session.search(SearchRequest(like=copied, top=3))
    elapsed = time.monotonic() - started
    assert found.args[0].items[0].path == str(copied)  # its own vector is the nearest
    print(f"copied photo searchable after {elapsed:.2f} s")
    assert elapsed < 8.0, f"took {elapsed:.1f} s"

    # moved and deleted photos follow too
    moved = folder / "renamed.png"
    copied.rename(moved)
    qtbot.waitUntil(lambda: store.image_id(str(moved)) is not None, timeout=15_000)
    assert store.image_id(str(copied)) is None
    deleted = folder / "scene_000101.png"
    deleted.unlink()
    qtbot.waitUntil(lambda: store.image_id(str(deleted)) is None, timeout=15_000)
    wait_idle(qtbot, session)

    # the off switch
    session.set_watching(False)
    shutil.copyfile(elsewhere / "scene_000501.png", folder / "later.png")
    qtbot.wait(2_500)
    assert store.image_id(str(folder / "later.png")) is None
    assert session.indexing is None or not session.indexing.running


def test_stop_shows_photos_waiting_and_resume_indexes_exactly_those(
    qtbot: Any, make_session: Any, make_window: Any, many_scenes: Path
) -> None:
    session = make_session(load=True)
    window = make_window(session)
    tools = window.library_tools
    bar = tools.resume_bar
    session.add_folders([str(many_scenes)], [])
    run = session.start_indexing([str(many_scenes)], batch_size=2, progress_rate=0)

    def stop_early(reports: list[Any]) -> None:  # in the indexing thread, like a quick Stop
        if any(r.phase == "embedding" and r.done >= 2 for r in reports):
            run.cancel()

    run.task.progressed.connect(stop_early, Qt.ConnectionType.DirectConnection)
    with qtbot.waitSignal(tools.resume.counted, timeout=60_000) as counted:
        pass
    stored = session.library.store.counts().images
    assert 0 < stored < 40
    assert counted.args == [40 - stored]
    assert bar.isVisibleTo(window)
    assert bar.label.text() == f"{40 - stored} photos waiting"
    assert bar.button.isVisibleTo(window)

    with qtbot.waitSignal(session.indexingDone, timeout=120_000):
        qtbot.mouseClick(bar.button, Qt.MouseButton.LeftButton)
    report = session.indexing.report
    assert report.added == 40 - stored and report.unchanged == stored  # only what was waiting
    assert not bar.isVisibleTo(window)
    assert session.library.store.counts().images == 40


def test_folders_menu_entry_and_failure_count_open_the_panels(
    qtbot: Any, make_window: Any, index_now: Any, tmp_path: Path
) -> None:
    folder = photos(tmp_path / "pics", 100, 2)
    (folder / "broken.jpg").write_bytes(BROKEN)
    window = make_window()
    index_now(window.session, [folder])
    tools = window.library_tools
    library_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Library")
    assert tools.folders_action in library_menu.actions()
    tools.folders_action.trigger()
    assert isinstance(tools.dialogs["folders"], FoldersDialog)

    qtbot.waitUntil(lambda: "could not be read" in window.counts_label.text(), timeout=30_000)
    qtbot.mouseClick(window.counts_label, Qt.MouseButton.LeftButton)
    errors = tools.dialogs["errors"]
    assert isinstance(errors, ErrorsDialog)
    qtbot.waitUntil(lambda: len(errors.rows()) == 1, timeout=30_000)
    assert window.session.watching  # watch folders are on by default


def test_demo_shows_progress_at_once_and_ends_with_queries_to_click(
    qtbot: Any, make_window: Any, monkeypatch: Any
) -> None:
    from app.gui import demo

    monkeypatch.setattr(demo, "DEMO_SCENES", 12)
    monkeypatch.setattr(demo, "DEMO_SIZE", 64)
    window = make_window()
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.welcome, timeout=10_000)
    window.welcome.demo_button.click()
    # before any event is processed, the status bar already says what is going on
    assert window.indexing_status.isVisibleTo(window)
    assert window.indexing_status.label.text().startswith("Drawing demo scenes 0 / 12")
    qtbot.waitUntil(lambda: getattr(window, "demo_examples", None) is not None, timeout=120_000)
    strip = window.demo_examples
    assert strip.isVisibleTo(window)
    assert len(strip.buttons) == demo.DEMO_QUERIES
    assert window.session.library.store.counts().images == 12
    text = strip.buttons[0].toolTip()
    assert len(text.split(". ")) >= 3  # a paragraph
    with qtbot.waitSignal(window.session.searchDone, timeout=60_000) as done:
        qtbot.mouseClick(strip.buttons[0], Qt.MouseButton.LeftButton)
    assert window.query.text() == text
    assert done.args[0].request.text == text and done.args[0].items


def test_settings_switch_turns_watching_off_and_is_remembered(qtbot: Any, make_window: Any) -> None:
    from app.gui.config import GuiSettings

    window = make_window()
    assert window.session.watching
    dialog = window.open_settings()
    assert dialog.watch.isChecked()
    dialog.watch.setChecked(False)
    dialog.accept()
    assert not window.session.watching
    assert GuiSettings().watch_folders is False


def test_watching_a_tree_walks_it_off_the_calling_thread(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Structural, not timed: every folder listing under the tree (os.walk lists through
    # os.scandir) notes its thread; off the calling thread it waits until the test lets go,
    # so watch() provably returns before the walk is done, however loaded the machine is.
    root = tmp_path / "tree"
    deep = root / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    for i in range(20):
        (root / "a" / f"side{i}").mkdir()
    caller = threading.current_thread()
    walkers: list[threading.Thread] = []
    walking = threading.Event()
    release = threading.Event()
    real_scandir = os.scandir

    def noting_scandir(path: Any = ".") -> Any:
        if not isinstance(path, int) and os.fsdecode(os.fspath(path)).startswith(str(root)):
            walkers.append(threading.current_thread())
            walking.set()
            if threading.current_thread() is not caller and not release.wait(timeout=20):
                release.set()  # held long enough: watch() must have been waiting for it
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", noting_scandir)
    watcher = FolderWatcher()
    try:
        watcher.watch([str(root)])
        assert caller not in walkers, "watch() walked the tree on the calling thread"
        assert walking.wait(timeout=30), "nobody walked the tree"
        assert watcher.roots == (), "watch() waited for the walk"  # the walk is still held
        release.set()
        qtbot.waitUntil(lambda: watcher.roots == (str(root),), timeout=30_000)
        assert walkers and caller not in walkers
        seen: list[list[str]] = []
        watcher.changed.connect(seen.append)
        (deep / "new.jpg").write_bytes(b"\xff\xd8\xff" + bytes(64))
        qtbot.waitUntil(lambda: seen == [[str(root)]], timeout=10_000)  # deep folders count
    finally:
        release.set()
        watcher.stop()


def test_errors_view_for_another_folder_replaces_the_open_one(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    window = make_window(wait_model=False)
    tools = window.library_tools
    everything = tools.open_errors(None)
    one = tools.open_errors(str(tmp_path))
    assert one is not everything and one.folder == str(tmp_path)
    assert tools.dialogs["errors"] is one and one.isVisible()
