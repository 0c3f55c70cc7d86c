"""The main window on real widgets: query box and counter, paragraph search, drag and drop,
keyboard, preferences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QDate, QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.gui.actions import fill_recent
from app.gui.config import GuiSettings
from training.synthetic import make_scene, scene_file_stem

TINY = "gui-tiny"
SCENE_START, SCENE_COUNT = 100, 8


def outcome_of(window: Any, mode: str) -> Any:
    outcome = window.outcome
    return outcome if outcome is not None and outcome.request.mode == mode else None


def test_counter_warns_past_the_limit(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    capacity = window.session.model.tokenizer.text_capacity
    assert capacity == 124

    window.query.set_text("A large red circle at the top. A small blue star below it.")
    qtbot.waitUntil(lambda: window.counter.level == "ok", timeout=5_000)
    assert window.counter.text().endswith(f"/ {capacity} word pieces")
    assert "⚠" not in window.counter.text()
    assert window.query.property("level") == "ok"

    sentence = "A small striped yellow square sits in the bottom right corner of the picture. "
    window.query.set_text(sentence * 12)
    qtbot.waitUntil(lambda: window.counter.level == "over", timeout=5_000)
    pieces = int(window.counter.text().split()[1])
    assert pieces > capacity
    assert window.counter.text().startswith("⚠") and "cut off" in window.counter.text()
    assert window.query.property("level") == "over"  # the box is outlined too
    assert "ignored" in window.counter.toolTip()

    window.query.set_text("")
    qtbot.waitUntil(lambda: window.counter.level == "empty", timeout=5_000)


def test_enter_searches_and_shift_enter_adds_a_line(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    window.query.setFocus()
    window.query.set_text("a red circle")
    qtbot.keyClick(window.query, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert window.query.text() == "a red circle\n"
    with qtbot.waitSignal(window.session.searchDone, timeout=30_000):
        qtbot.keyClick(window.query, Qt.Key.Key_Return)
    assert window.query.text() == "a red circle\n"  # Enter did not add a line
    assert window.outcome.request.text == "a red circle\n"
    assert window.results.rowCount() == 0
    assert window.stack.currentWidget() is window.welcome  # nothing indexed: still the welcome


def test_paragraph_query_fills_the_grid_with_its_scene_first(
    qtbot: Any,
    make_session: Any,
    make_window: Any,
    searcher_model: str,
    scenes_dir: Path,
    index_now: Any,
) -> None:
    session = make_session(searcher_model, load=True)
    index_now(session, [scenes_dir])
    window = make_window(session)
    assert window.banner.isVisibleTo(window) == session.choice.is_bundled

    seed = SCENE_START + 3
    paragraph = make_scene(seed).long_captions[0]
    assert len(paragraph.split(". ")) >= 4  # a paragraph, not a phrase
    window.query.set_text(paragraph)
    window.query.setFocus()
    qtbot.keyClick(window.query, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: outcome_of(window, "text") is not None, timeout=30_000)

    assert window.results.rowCount() == SCENE_COUNT
    first = window.results.item(0)
    assert Path(first.path).name == f"{scene_file_stem(seed)}.png"
    scores = [item.score for item in window.results.items()]
    assert scores == sorted(scores, reverse=True)
    assert window.stack.currentWidget() is window.view
    assert "8 photos for" in window.summary.text()
    # the first result is current and previewed; its thumbnail is made and cached on disk
    assert window.preview.item is not None and window.preview.item.path == first.path
    qtbot.waitUntil(lambda: window.thumbnails.image(first.path) is not None, timeout=30_000)
    assert list(session.thumbnails_dir.rglob("*.jpg"))
    qtbot.waitUntil(window.preview.image.has_image, timeout=30_000)

    # sort by name, then back to relevance
    window.sort.setCurrentIndex(window.sort.findData("name"))
    names = [item.name for item in window.results.items()]
    assert names == sorted(names)
    window.sort.setCurrentIndex(window.sort.findData("relevance"))
    assert window.results.item(0).path == first.path


def _drop(window: Any, paths: list[Path]) -> tuple[bool, bool]:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    centre = QPointF(window.width() / 2, window.height() / 2)
    enter = QDragEnterEvent(
        centre.toPoint(),  # PySide6 6.11 takes only a QPoint here
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    drop = QDropEvent(
        centre,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, drop)
    return enter.isAccepted(), drop.isAccepted()


def test_drop_an_image_to_search_by_example(
    qtbot: Any, make_session: Any, make_window: Any, scenes_dir: Path, index_now: Any
) -> None:
    session = make_session(TINY, load=True)
    index_now(session, [scenes_dir])
    window = make_window(session)
    target = scenes_dir / f"{scene_file_stem(SCENE_START + 5)}.png"

    accepted = _drop(window, [target])
    assert accepted == (True, True)
    qtbot.waitUntil(lambda: outcome_of(window, "like") is not None, timeout=30_000)
    first = window.results.item(0)
    assert first.path == str(target)
    assert first.score is not None and first.score > 0.999  # its own vector
    assert window.example.isVisible() and target.name in window.example.label.text()

    # something that is not a file is refused
    assert _drop(window, [scenes_dir / "missing.png"]) == (False, False)

    # results drag out as file URLs
    mime = window.results.mimeData([window.results.index(0)])
    assert [u.toLocalFile() for u in mime.urls()] == [str(target)]

    # "find similar" leaves the photo itself out
    window.search_similar(first)
    qtbot.waitUntil(lambda: outcome_of(window, "similar") is not None, timeout=30_000)
    assert str(target) not in [item.path for item in window.results.items()]


def test_keyboard_and_preferences_are_remembered(
    qtbot: Any, make_session: Any, make_window: Any, scenes_dir: Path, index_now: Any
) -> None:
    session = make_session(TINY, load=True)
    index_now(session, [scenes_dir])
    window = make_window(session)
    qtbot.waitUntil(lambda: window.results.rowCount() == SCENE_COUNT, timeout=20_000)

    window.view.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.query.hasFocus()
    window.view.setFocus()
    window.view.setCurrentIndex(window.results.index(0))
    qtbot.keyClick(window.view, Qt.Key.Key_Right)
    assert window.view.currentIndex().row() == 1
    assert window.preview.item == window.results.item(1)
    with qtbot.waitSignal(window.view.previewRequested):
        qtbot.keyClick(window.view, Qt.Key.Key_Space)
    with qtbot.waitSignal(window.view.escapePressed):
        qtbot.keyClick(window.view, Qt.Key.Key_Escape)
    assert window.query.hasFocus()

    window.size_slider.setValue(208)
    assert window.view.delegate.edge == 208
    window.sort.setCurrentIndex(window.sort.findData("oldest"))
    window.resize(1000, 700)
    window.close()
    settings = GuiSettings()
    assert settings.thumb_size == 208
    assert settings.sort_order == "oldest"
    assert settings.geometry() is not None


def test_filters_and_recent_descriptions(
    qtbot: Any, make_session: Any, make_window: Any, scenes_dir: Path, index_now: Any
) -> None:
    session = make_session(TINY, load=True)
    index_now(session, [scenes_dir])
    window = make_window(session)
    qtbot.waitUntil(lambda: window.filters.folder.count() == 2, timeout=20_000)
    window.filters.folder.setCurrentIndex(1)  # the scenes folder
    window.search_text("a red circle")
    qtbot.waitUntil(lambda: outcome_of(window, "text") is not None, timeout=30_000)
    assert window.outcome.request.filters.folders == (str(scenes_dir),)
    assert window.results.rowCount() == SCENE_COUNT
    # the scenes carry no capture date: their file date (today) counts instead
    window.filters.date_from.setDate(QDate(2000, 1, 1))
    window.filters.date_to.setDate(QDate(2000, 12, 31))
    window.filters.use_dates.setChecked(True)
    qtbot.waitUntil(
        lambda: (
            window.outcome.request.filters.date_from is not None and window.results.rowCount() == 0
        ),
        timeout=30_000,
    )
    assert window.stack.currentWidget() is window.empty
    assert "No photo in the library is in the chosen folder and dates" in window.empty.text()
    fill_recent(window)
    labels = [a.text() for a in window.recent_menu.actions()]
    assert labels == ["a red circle"]


def test_status_line_after_indexing_names_the_vectors_reused_from_the_base(
    qtbot: Any, make_session: Any, make_window: Any, scenes_dir: Path, index_now: Any,
    models_home: Path,
) -> None:  # fmt: skip
    """A text fine-tune takes its base's vectors: the status line says so, not "0 new"."""
    import json
    import shutil

    window = make_window(make_session(TINY, load=True))
    index_now(window.session, [scenes_dir])
    tuned = models_home / "gui-tiny-text"
    shutil.copytree(models_home / TINY, tuned)
    config = json.loads((tuned / "config.json").read_text())
    config["metadata"].update(kind="fine-tuned", mode="text", base_model=TINY)
    (tuned / "config.json").write_text(json.dumps(config))
    try:
        run = window.session.start_indexing(model="gui-tiny-text")
        qtbot.waitUntil(lambda: not run.running, timeout=120_000)
        assert run.report.reused == SCENE_COUNT
        assert f"{SCENE_COUNT} reused" in window.statusBar().currentMessage()
    finally:
        shutil.rmtree(tuned, ignore_errors=True)
