"""State the user can trust (issue 9): layout, sorting, preview, filters, query box.

Real widgets offscreen, a real library indexed with a real (tiny) model; expectations come from
the library itself (a direct ``Searcher`` call, the tokenizer) or from the files the test made.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QDate, QSize
from PySide6.QtWidgets import QApplication, QWidget

from app.gui.config import GuiSettings
from app.gui.query import cut_offset

TINY = "gui-tiny"
SCENES = 8


def outcome_of(window: Any, mode: str) -> Any:
    outcome = window.outcome
    return outcome if outcome is not None and outcome.request.mode == mode else None


def wait_for(qtbot: Any, window: Any, mode: str, check: Any = lambda _o: True) -> Any:
    qtbot.waitUntil(
        lambda: outcome_of(window, mode) is not None and check(window.outcome), timeout=30_000
    )
    return window.outcome


@pytest.fixture
def indexed(qtbot: Any, make_session: Any, make_window: Any, scenes_dir: Path, index_now: Any):
    """``indexed(folder=scenes_dir, model=TINY)``: a shown window over an indexed library."""

    def make(folder: Path = scenes_dir, model: str = TINY) -> Any:
        session = make_session(model, load=True)
        index_now(session, [folder])
        window = make_window(session)
        qtbot.waitUntil(lambda: window.results.rowCount() > 0, timeout=20_000)
        return window

    return make


def dated_copy(scenes_dir: Path, target: Path, old: int) -> list[Path]:
    """The scenes copied to ``target``; the first ``old`` get a file date in June 2001."""
    target.mkdir(parents=True)
    copies = []
    for i, source in enumerate(sorted(scenes_dir.glob("*.png"))):
        copy = target / source.name
        shutil.copyfile(source, copy)
        if i < old:
            stamp = datetime(2001, 6, 1, 12, 0).timestamp()
            os.utime(copy, (stamp, stamp))
        copies.append(copy)
    return copies


def set_dates(window: Any, start: QDate, end: QDate) -> None:
    window.filters.date_from.setDate(start)
    window.filters.date_to.setDate(end)
    window.filters.use_dates.setChecked(True)


# -- layout -------------------------------------------------------------------------------------
def test_usable_at_1024x640_and_long_texts_widen_nothing(
    qtbot: Any, indexed: Any, scenes_dir: Path, tmp_path: Path
) -> None:
    long_dir = tmp_path / ("a-very-long-folder-name-" * 9) / ("and-another-" * 15)
    shutil.copytree(scenes_dir, long_dir)
    window = indexed(long_dir)
    window.resize(1024, 640)
    qtbot.waitUntil(lambda: window.size() == QSize(1024, 640), timeout=5_000)
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 640, hint

    words = " ".join(f"word{i % 50}" for i in range(5_000))
    window.query.set_text(words)
    window.not_edit.setText("dogs, people, " * 40)
    window.search_text(words)
    wait_for(qtbot, window, "text")
    window.view.setCurrentIndex(window.results.index(3))
    QApplication.processEvents()
    assert window.size() == QSize(1024, 640)
    assert window.minimumSizeHint().width() <= 1024
    # the long path is elided in the preview, the full text is a tooltip
    folder = window.preview.fields["folder"]
    assert folder.elided() != folder.text() and folder.toolTip() == str(long_dir)
    assert window.summary.toolTip() == window.summary.text()
    assert window.summary.width() <= 1024


def test_a_size_the_window_grew_to_is_not_saved(qtbot: Any, make_window: Any) -> None:
    probe = QWidget()
    qtbot.addWidget(probe)
    probe.resize(780, 560)  # within the offscreen screen (800×800)
    GuiSettings().save_window(probe.saveGeometry(), b"", b"")  # the size the user left
    window = make_window()
    assert window.height() == 560
    window.resize(window.width(), 700)  # not the user: e.g. a layout that asked for more room
    window.close()
    geometry = GuiSettings().geometry()
    assert geometry is not None and probe.restoreGeometry(geometry)
    assert probe.height() == 560  # (widths are clamped to the 800 px screen here)


# -- sorting ------------------------------------------------------------------------------------
def test_every_new_search_shows_best_match_first(qtbot: Any, indexed: Any) -> None:
    window = indexed()
    # browsing has no best match: the box says what the grid does
    assert window.request.mode == "browse"
    assert window.sort.currentData() == "newest"
    relevance = window.sort.model().item(window.sort.findData("relevance"))
    assert not relevance.isEnabled()

    window.sort.setCurrentIndex(window.sort.findData("name"))  # picked while browsing
    window.search_text("a red circle")
    outcome = wait_for(qtbot, window, "text")
    assert window.sort.currentData() == "relevance"
    scores = [item.score for item in window.results.items()]
    assert scores == sorted(scores, reverse=True) and len(scores) == len(outcome.items)

    window.sort.setCurrentIndex(window.sort.findData("oldest"))  # picked on results
    first = window.results.item(0)
    window.search_similar(first)
    wait_for(qtbot, window, "similar")
    assert window.sort.currentData() == "relevance"
    scores = [item.score for item in window.results.items()]
    assert scores == sorted(scores, reverse=True)

    window.browse()  # back to browsing: the order the user picked last, shown in the box
    wait_for(qtbot, window, "browse")
    assert window.sort.currentData() == "oldest"
    dates = [item.date for item in window.results.items()]
    assert dates == sorted(dates)


# -- preview ------------------------------------------------------------------------------------
def test_preview_and_its_actions_follow_the_selection(
    qtbot: Any, indexed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.gui import desktop

    opened: list[str] = []
    monkeypatch.setattr(desktop, "open_file", lambda path: opened.append(str(path)) or True)
    window = indexed()
    window.search_text("a blue square")
    wait_for(qtbot, window, "text")
    assert window.preview.item == window.view.current_item() == window.results.item(0)

    window.view.setCurrentIndex(window.results.index(3))
    chosen = window.view.current_item()
    window.sort.setCurrentIndex(window.sort.findData("name"))
    assert window.view.current_item() == chosen  # sorting keeps the photo, not the row
    assert window.preview.item == chosen
    window.preview.open_button.click()
    assert opened == [chosen.path]

    # a new search selects and previews its best match
    window.search_text("a green triangle")
    wait_for(qtbot, window, "text", lambda o: o.request.text == "a green triangle")
    assert window.preview.item == window.view.current_item() == window.results.item(0)

    # an empty result clears the preview and disables its actions
    set_dates(window, QDate(1990, 1, 1), QDate(1990, 12, 31))
    wait_for(qtbot, window, "text", lambda o: o.request.filters.has_dates)
    assert window.results.rowCount() == 0
    assert window.preview.item is None and window.view.current_item() is None
    assert not window.preview.open_button.isEnabled()


# -- filters ------------------------------------------------------------------------------------
def test_filters_apply_to_similar_and_example_searches(
    qtbot: Any, indexed: Any, scenes_dir: Path, tmp_path: Path
) -> None:
    copies = dated_copy(scenes_dir, tmp_path / "photos", old=1)
    window = indexed(copies[0].parent)
    window.search_text("a red circle")
    wait_for(qtbot, window, "text")
    set_dates(window, QDate(2001, 1, 1), QDate(2001, 12, 31))
    wait_for(qtbot, window, "text", lambda o: o.request.filters.has_dates)
    assert [i.path for i in window.results.items()] == [str(copies[0])]

    # find similar to the one photo of 2001: nothing else is in those dates, and the reason says so
    window.search_similar(window.results.item(0))
    outcome = wait_for(qtbot, window, "similar")
    assert outcome.request.filters.has_dates and window.results.rowCount() == 0
    assert outcome.empty_reason == (
        f"{SCENES - 1} photos match the example, but none is in the chosen dates."
    )
    assert window.empty.text() == outcome.empty_reason

    window.search_like(copies[5])
    outcome = wait_for(qtbot, window, "like")
    assert [i.path for i in window.results.items()] == [str(copies[0])]


def test_date_filter_falls_back_to_the_file_date(
    qtbot: Any, indexed: Any, scenes_dir: Path, tmp_path: Path
) -> None:
    copies = dated_copy(scenes_dir, tmp_path / "photos", old=3)  # no EXIF dates at all
    window = indexed(copies[0].parent)
    set_dates(window, QDate(2001, 1, 1), QDate(2001, 12, 31))
    outcome = wait_for(qtbot, window, "browse", lambda o: o.request.filters.has_dates)
    assert sorted(i.path for i in outcome.items) == sorted(str(p) for p in copies[:3])
    assert outcome.undated == 3
    assert "3 without EXIF date: file date used" in window.summary.text()

    window.search_text("a red circle")
    outcome = wait_for(qtbot, window, "text")
    assert sorted(i.path for i in outcome.items) == sorted(str(p) for p in copies[:3])


# -- query box ----------------------------------------------------------------------------------
def test_counter_follows_every_edit_and_the_cut_is_shown(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    tokenizer = window.session.model.tokenizer
    window.query.setFocus()
    seen = []
    for word in ("red ", "circle ", "top"):
        qtbot.keyClicks(window.query, word)
        qtbot.waitUntil(lambda: window.counter.text() not in seen[-1:], timeout=2_000)
        seen.append(window.counter.text())
    assert seen[-1].startswith(f"{tokenizer.count('red circle top').word_pieces} /")
    assert window.query.cut_at is None

    sentence = "A small striped yellow square sits in the bottom right corner of the picture. "
    text = sentence * 12
    window.query.set_text(text)
    qtbot.waitUntil(lambda: window.counter.level == "over", timeout=2_000)
    cut = window.query.cut_at
    assert cut is not None and 0 < cut < len(text)
    # what is kept fits; adding the first cut word does not
    assert not tokenizer.count(text[:cut]).truncated
    next_word = text[cut:].split()[0]
    assert tokenizer.count(text[:cut] + next_word).truncated
    assert window.query.extraSelections()[0].cursor.selectedText() == text[cut:]
    assert window.query.extraSelections()[0].format.fontStrikeOut()

    window.query.undo()  # editing back under the limit clears the mark
    window.query.set_text("a red circle")
    qtbot.waitUntil(lambda: window.counter.level == "ok", timeout=2_000)
    assert window.query.cut_at is None and window.query.extraSelections() == []

    huge = " ".join(f"word{i % 50}" for i in range(5_000))
    window.query.set_text(huge)  # only its start is counted: the counter says "over"
    window.counter.update_count()
    assert window.counter.text().startswith("⚠ over ")
    assert (
        window.query.cut_at is not None
        and not tokenizer.count(huge[: window.query.cut_at]).truncated
    )
    probed: list[int] = []  # the length of each text counted

    def counting(text: str) -> Any:
        probed.append(len(text))
        return tokenizer.count(text)

    offset = cut_offset(huge, counting)
    assert offset is not None and not tokenizer.count(huge[:offset]).truncated
    # cheap however long the text (checked by its work, not a timer): after counting the
    # whole text once, a few dozen probes near the cut, not one per word nor the whole again
    assert len(probed) <= 16 and max(probed[1:]) < len(huge) // 20, probed


def test_not_terms_do_what_the_cli_not_does(qtbot: Any, indexed: Any, searcher_model: str) -> None:
    window = indexed(model=searcher_model)
    text = "a red circle in the middle"
    window.not_edit.setText("blue, green")
    window.search_text(text)
    outcome = wait_for(qtbot, window, "text")
    assert outcome.request.not_text == "blue, green"
    expected = window.session.searcher.search(
        text, top=window.session.result_count, not_text="blue, green"
    )
    plain = window.session.searcher.search(text, top=window.session.result_count)
    assert [i.path for i in outcome.items] == [r.path for r in expected.results]
    assert [r.score for r in expected.results] != [r.score for r in plain.results]
    assert "not blue, green" in window.summary.text()

    window.not_edit.clear()  # Enter in the field searches again
    window.not_edit.returnPressed.emit()
    outcome = wait_for(qtbot, window, "text", lambda o: o.request.not_text == "")
    assert [i.path for i in outcome.items] == [r.path for r in plain.results]
