"""Typing searches once typing pauses (issue 11): one encoder call per pause, Enter at once, a
re-run from the query cache, and an answer shown only while its query is the current one.

Real widgets offscreen over a library indexed with the bundled model; encoder calls are counted
with a forward hook on the model's real text tower.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from app.gui.query import TYPING_PAUSE_MS


@pytest.fixture
def window(
    qtbot: Any,
    make_session: Any,
    make_window: Any,
    scenes_dir: Path,
    index_now: Any,
    searcher_model: str,
) -> Any:
    """A shown window over the indexed scenes, browsing."""
    session = make_session(searcher_model, load=True)
    index_now(session, [scenes_dir])
    shown = make_window(session)
    qtbot.waitUntil(lambda: shown.results.rowCount() > 0, timeout=20_000)
    return shown


@pytest.fixture
def encodes(window: Any) -> Iterator[list[int]]:
    """Grows by one for every batch the model's text tower encodes."""
    calls: list[int] = []
    handle = window.session.model.text.register_forward_hook(lambda *_a: calls.append(1))
    yield calls
    handle.remove()


def watch(window: Any) -> tuple[list[Any], list[str]]:
    """Every (answer shown, the window's query at that moment) pair, and every failure shown."""
    shown: list[Any] = []
    failures: list[str] = []
    window.session.searchDone.connect(lambda o: shown.append((o.request, window.request)))
    window.session.searchFailed.connect(failures.append)
    return shown, failures


KEY_GAP_MS = 40  # a quick typist; the event loop runs (and timers may fire) between keys


def type_text(qtbot: Any, window: Any, text: str) -> None:
    """Type ``text`` key by key, :data:`KEY_GAP_MS` apart."""
    window.query.setFocus()
    qtbot.keyClicks(window.query, text, delay=KEY_GAP_MS)


def test_typing_searches_once_after_a_pause_and_enter_at_once(
    qtbot: Any, window: Any, encodes: list[int]
) -> None:
    shown, failures = watch(window)
    text = "a small green triangle near the top left corner, typed quickly"
    type_text(qtbot, window, text)
    assert not window.session.searching and encodes == []  # nothing while typing
    qtbot.waitUntil(lambda: len(shown) == 1, timeout=20_000)
    assert shown[0][0].text == text and shown[0][0] == shown[0][1]
    assert len(encodes) == 1  # the whole text, once
    assert window.outcome.request.text == text
    assert text not in window.settings.recent_queries()  # typing is not history; Enter is
    qtbot.wait(TYPING_PAUSE_MS + 200)
    assert len(shown) == 1  # nothing more once typing stopped

    qtbot.keyClick(window.query, Qt.Key.Key_Return)  # the same text again: at once, cached
    assert window.session.searching
    qtbot.waitUntil(lambda: len(shown) == 2, timeout=20_000)
    assert len(encodes) == 1 and shown[1][0].text == text
    assert text in window.settings.recent_queries()

    more = " on a white background"
    type_text(qtbot, window, more)
    qtbot.keyClick(window.query, Qt.Key.Key_Return)  # Enter before the pause: one search
    qtbot.waitUntil(lambda: len(shown) == 3, timeout=20_000)
    qtbot.wait(TYPING_PAUSE_MS + 300)
    assert [r.text for r, _ in shown] == [text, text, text + more]
    assert len(encodes) == 2 and failures == []
    # what is shown is the library's answer to that text
    expected = window.session.searcher.search(
        text + more, top=window.session.result_count, explain=True
    )
    assert [i.path for i in window.outcome.items] == [r.path for r in expected.results]


def test_an_older_query_is_never_shown(
    qtbot: Any, window: Any, encodes: list[int], tmp_path: Path
) -> None:
    shown, failures = watch(window)
    first = "a blue circle in the middle of the picture, first attempt"
    type_text(qtbot, window, first)
    # the pause started it (on a loaded machine it may even be over before the first poll)
    qtbot.waitUntil(lambda: window.session.searching or bool(encodes), timeout=5_000)
    second = ", or rather a red square"
    type_text(qtbot, window, second)
    qtbot.keyClick(window.query, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: any(r.text == first + second for r, _ in shown), timeout=20_000)
    assert all(answer == current for answer, current in shown), shown
    assert window.outcome.request.text == first + second

    if not hasattr(os, "mkfifo"):
        return
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    window.search_like(fifo)  # fails at once (a pipe is no image) ...
    window.query.set_text("a yellow star")
    window.search_text("a yellow star")  # ... but a newer search was asked for meanwhile
    qtbot.waitUntil(lambda: window.outcome.request.text == "a yellow star", timeout=20_000)
    qtbot.wait(200)
    assert failures == [] and "pipe" not in window.statusBar().currentMessage()
    assert all(answer == current for answer, current in shown), shown

    window.search_like(fifo)  # on its own, the failure is shown, and fast
    started = time.monotonic()
    qtbot.waitUntil(lambda: failures != [], timeout=5_000)
    assert time.monotonic() - started < 5
    assert failures == ["pipe.jpg is a pipe, not an image file"]
    assert "pipe.jpg is a pipe" in window.statusBar().currentMessage()


def test_a_search_waiting_for_the_model_is_not_replaced_by_an_older_answer(
    qtbot: Any,
    make_session: Any,
    make_window: Any,
    scenes_dir: Path,
    index_now: Any,
    searcher_model: str,
) -> None:
    indexing = make_session(searcher_model, load=True)
    index_now(indexing, [scenes_dir])
    indexing.shutdown()
    session = make_session(searcher_model)  # the model is not loaded yet
    window = make_window(session, wait_model=False)
    window.browse()  # an answer on its way, needing no model ...
    text = "a purple ellipse at the bottom, waiting for the model"
    window.search_text(text)  # ... when a search that waits for the model is asked for
    assert session.searcher is None and window.summary.text() == "Waiting for the model to load…"
    qtbot.waitUntil(lambda: window.outcome is not None, timeout=60_000)
    assert window.outcome.request.text == text  # the browse answer was never shown
