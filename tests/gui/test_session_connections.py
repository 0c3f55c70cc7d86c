"""Each GUI worker thread reads the library through its own SQLite connection, so a long read
or write in one thread (an index rebuild, an indexing batch) never stalls another."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest


def test_worker_threads_are_not_blocked_by_the_gui_threads_connection(
    qtbot: Any, make_session: Any
) -> None:
    session = make_session(load=False)
    gui_store = session.library.store
    # this thread holds its connection (as a long read would) while a worker reads
    with gui_store.snapshot(), qtbot.waitSignal(session.libraryInfo, timeout=5_000) as blocker:
        session.refresh_info()
    assert blocker.args[0].settings.get("device") == "cpu"
    assert session.library.store is gui_store  # the GUI thread keeps its own connection


def test_a_workers_connection_is_closed_when_its_task_ends(qtbot: Any, make_session: Any) -> None:
    from app.gui.tasks import Task

    session = make_session(load=False)
    seen: list[Any] = []
    task = session.tasks.start(
        Task(lambda _r, _c: seen.append(session.library.store), name="probe",
             context=session.library.own_connection)
    )  # fmt: skip
    qtbot.waitUntil(lambda: task.isFinished(), timeout=5_000)
    assert seen and seen[0] is not session.library.store
    with pytest.raises(sqlite3.ProgrammingError):  # closed with the task
        seen[0].conn.execute("SELECT 1")


def test_index_opened_by_a_worker_is_saved_later_from_the_gui_thread(
    qtbot: Any, make_session: Any, index_now: Any, scenes_dir: Any
) -> None:
    session = make_session(load=True)
    index_now(session, [scenes_dir])  # the ANN index was opened in the indexing thread
    photo = sorted(scenes_dir.glob("*.png"))[0]

    assert session.library.forget(photo) == 1  # deletes from the cached index and saves it

    index = session.library.ann(session.choice.name)
    assert len(index) == len(session.library.store.image_ids())
