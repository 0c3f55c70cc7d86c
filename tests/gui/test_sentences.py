"""Paragraph-aware search in the window: sentence strips and marks, cycling sentence states
without re-encoding, the near-copies badge, and the saved-search sidebar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter

from app.gui.results import ResultItem
from app.gui.sentences import (
    paint_extras,
    request_from_saved,
    saved_from_request,
    segment_at,
    standing_colour,
    strip_rect,
)
from app.library import explain
from app.library.explain import SentenceScore
from tests.gui.conftest import SCENE_COUNT, SCENE_START
from training.synthetic import make_scene


def _searched(qtbot: Any, window: Any, count: int | None = None) -> None:
    qtbot.waitUntil(
        lambda: window.outcome is not None and window.outcome.request == window.request,
        timeout=30_000,
    )
    assert count is None or window.results.rowCount() == count


def test_strip_colours_and_badge_are_painted(qapp: Any) -> None:
    item = ResultItem(
        id=1,
        path="/x.png",
        sentences=(SentenceScore("a", 0.1, 0.0), SentenceScore("b", 0.5, 1.0)),
        duplicates=("/y.png", "/z.png"),
    )
    image = QImage(120, 120, QImage.Format.Format_ARGB32)
    image.fill(QColor(255, 255, 255))
    painter = QPainter(image)
    box = QRect(0, 0, 120, 120)
    paint_extras(painter, box, item)
    painter.end()
    strip = strip_rect(box)
    y = strip.center().y()
    left, right = image.pixelColor(strip.left() + 10, y), image.pixelColor(strip.right() - 10, y)
    assert left.red() > 150 and left.green() < 100  # standing 0: red
    assert right.green() > 150 and right.red() < 100  # standing 1: green
    corner = [image.pixelColor(x, y) for x in range(80, 120) for y in range(0, 30)]
    assert sum(c.blue() > c.red() + 60 for c in corner) > 50  # the blue "+2" badge
    assert standing_colour(0.5).red() > 150 and standing_colour(0.5).green() > 150  # amber
    assert [segment_at(box, 2, x) for x in (strip.left(), strip.right(), -5)] == [0, 1, -1]


def test_sentences_show_and_cycle_without_reencoding(
    qtbot: Any, make_session: Any, make_window: Any, searcher_model: str, scenes_dir: Path,
    index_now: Any, tmp_path: Path,
) -> None:  # fmt: skip
    session = make_session(searcher_model, load=True)
    index_now(session, [scenes_dir])
    window = make_window(session)
    paragraph = make_scene(SCENE_START + 2).long_captions[0]
    n = len(explain.split_sentences(paragraph))
    window.query.set_text(paragraph)
    window.search_text(paragraph)
    _searched(qtbot, window, SCENE_COUNT)

    features = window.paragraph
    assert [b.property("state") for b in features.bar.buttons] == ["normal"] * n
    assert features.bar.isVisibleTo(window)
    first = window.results.item(0)
    assert len(first.sentences) == n
    rows = features.preview_list.rows
    assert len(rows) == n and all(r.text()[0] in "✓✗" for r in rows)
    assert rows[0].full_text[2:].startswith(first.sentences[0].text)  # (shown elided)

    cache = explain.query_cache(session.choice.model)
    encoded = cache.encoded
    qtbot.mouseClick(features.bar.buttons[1], Qt.MouseButton.LeftButton)  # normal -> must
    _searched(qtbot, window)
    assert 0 < window.results.rowCount() < SCENE_COUNT
    sentence = first.sentences[1].text
    assert window.request.sentences == ((sentence, "must"),)
    assert features.bar.buttons[1].property("state") == "must"
    assert all(item.sentences[1].standing >= explain.MUST_FLOOR for item in window.results.items())
    features.preview_list.rows[1].click()  # must -> ignore, from the preview's list
    _searched(qtbot, window, SCENE_COUNT)
    assert window.request.sentences == ((sentence, "ignore"),)
    assert window.results.item(0).sentences[1].state == "ignore"
    assert cache.encoded == encoded  # both re-runs reused the cached vectors

    # save it, run it again from the sidebar, export what it shows
    features.saved.save(saved_from_request("my scene", window.request))
    assert [features.saved.list.item(i).text() for i in range(features.saved.list.count())] == [
        "my scene"
    ]
    window.search_text("a red circle")
    _searched(qtbot, window, SCENE_COUNT)
    features.saved.list.itemClicked.emit(features.saved.list.item(0))
    _searched(qtbot, window, SCENE_COUNT)
    assert window.request.text == paragraph and window.request.sentences == ((sentence, "ignore"),)
    features.export(str(tmp_path / "out"), "list")
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("Exported"))
    listed = (tmp_path / "out" / "results.txt").read_text().splitlines()
    assert listed == [i.path for i in window.results.items()]


def test_badge_click_expands_the_group(qtbot: Any, make_window: Any) -> None:
    from app.gui.main_window import PAGE_RESULTS, PAGE_WELCOME

    window = make_window()
    # the empty library's info shows the welcome page; wait for it so it cannot replace the grid
    qtbot.waitUntil(lambda: window.stack.currentIndex() == PAGE_WELCOME, timeout=10_000)
    request = _text_request("two shapes. a red star", sentences=(("a red star", "ignore"),))
    assert request_from_saved(saved_from_request("x", request)) == request  # round trip
    window.request = request
    marks = (SentenceScore("two shapes", 0.3, 0.9), SentenceScore("a red star", 0.1, 0.2))
    item = ResultItem(
        id=1, path="/none.png", score=0.9, sentences=marks, duplicates=("/a.png", "/b.png")
    )
    window.results.set_items([item], "relevance")
    window._show_page(PAGE_RESULTS)
    # the grid spreads its columns over the view's width, which the preview (shown with the
    # grid) narrows: read tile positions once the splitter and the view have laid out
    preview = window.splitter.indexOf(window.preview)
    qtbot.waitUntil(lambda: window.splitter.sizes()[preview] > 0, timeout=5_000)
    window.view.doItemsLayout()
    index = window.results.index(0)
    rect = window.view.visualRect(index)
    edge = window.view.itemDelegate().edge
    badge = QPoint(rect.left() + 6 + edge - 12, rect.top() + 6 + 10)
    strip = strip_rect(QRect(rect.left() + 6, rect.top() + 6, edge, edge))
    qtbot.mouseMove(window.view.viewport(), QPoint(strip.right() - 2, strip.center().y()))
    qtbot.waitUntil(lambda: "a red star" in window.view.viewport().toolTip(), timeout=5_000)
    assert window.view.viewport().toolTip().startswith("✗ a red star — beats 20%")
    with qtbot.waitSignal(window.paragraph.clicks.expandRequested, timeout=5_000):
        qtbot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=badge)
    assert window.request.group_duplicates is False


def _text_request(text: str, **fields: Any) -> Any:
    from app.gui.requests import SearchRequest

    return SearchRequest(text=text, **fields)


def test_many_sentences_the_banner_and_the_sidebar_fit_1024x640(
    qtbot: Any, make_window: Any
) -> None:
    from PySide6.QtCore import QSize
    from PySide6.QtWidgets import QApplication

    from app.gui.main_window import PAGE_RESULTS, PAGE_WELCOME

    window = make_window()
    qtbot.waitUntil(lambda: window.stack.currentIndex() == PAGE_WELCOME, timeout=10_000)
    window._show_page(PAGE_RESULTS)  # search controls, grid and preview
    window.banner.show()  # as with the bundled demo model
    free = QSize(1024, 600)  # a 1024×640 screen less a title bar and a panel
    window.resize(free)
    qtbot.waitUntil(lambda: window.size() == free, timeout=5_000)
    texts = [f"sentence {i} tells about a long row of red boats by the sea" for i in range(9)]
    marks = [SentenceScore(t, 0.1, 0.5) for t in texts]
    window.paragraph.bar.set_sentences(marks)
    window.preview.set_item(ResultItem(id=1, path="/none.png", sentences=tuple(marks)))
    window.paragraph.preview_list.set_item(window.preview.item)
    QApplication.processEvents()
    assert window.paragraph.bar.isVisible() and window.paragraph.preview_list.isVisible()
    hint = window.minimumSizeHint()
    assert hint.width() <= free.width() and hint.height() <= free.height(), hint
    assert window.size() == free  # nothing made the window grow
    buttons = window.paragraph.bar.buttons
    assert [b.toolTip().split("\n")[0] for b in buttons] == texts  # full text on hover
    assert all(b.geometry().right() < window.paragraph.bar.width() for b in buttons)


def test_preview_sentences_are_elided_not_clipped(qtbot: Any) -> None:
    from app.gui.sentences import SentenceList

    panel = SentenceList()
    qtbot.addWidget(panel)
    long = "a yellow star on the right of the picture, all on a grey background"
    item = ResultItem(id=1, path="/x.png", sentences=(SentenceScore(long, 0.2, 0.9),))
    panel.set_item(item)
    panel.resize(200, 40)
    panel.show()
    qtbot.waitExposed(panel)
    row = panel.rows[0]
    assert row.width() <= 200
    assert row.text().endswith("…") and row.text()[:-1] in f"✓ {long}"
    assert row.fontMetrics().horizontalAdvance(row.text()) <= row.width()
    assert row.toolTip().startswith(long)


def test_sentence_chips_with_room_show_the_whole_sentence(qtbot: Any) -> None:
    from app.gui.sentences import SentenceBar

    texts = ["a red circle in the top left corner", "a yellow star, all on a grey background"]
    bar = SentenceBar()
    qtbot.addWidget(bar)
    bar.set_sentences([SentenceScore(t, 0.1, 0.5) for t in texts])
    bar.resize(1100, 30)
    bar.show()
    qtbot.waitExposed(bar)
    assert [b.text() for b in bar.buttons] == texts
