"""Library management in the app: the Folders panel, the errors view, watch folders, resume."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt

from app.gui.errors_view import ErrorsDialog
from app.gui.folders_dialog import COL_FAILED, COL_PENDING, COL_PHOTOS, COL_STATUS, FoldersDialog
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
    assert "screenshots" in session.library.store.get_folder(str(keep)).excludes
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
