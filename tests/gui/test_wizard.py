"""The indexing wizard and background indexing: end to end, failures, cancel, quit and resume."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from app.gui import widgets as ui
from app.library.library import Library

TINY = "gui-tiny"
SCENE_COUNT = 8


def drive_to_summary(qtbot: Any, wizard: Any, folder: Path, model: str = TINY) -> None:
    """Fill the folder and model pages and wait for the summary's scan."""
    wizard.folders_page.add_folder(folder)
    assert wizard.folders_page.isComplete()
    wizard.next()
    qtbot.waitUntil(lambda: wizard.model_page.panel.loaded, timeout=30_000)
    wizard.model_page.panel.table.select(model)
    assert wizard.model_page.isComplete()
    index = wizard.model_page.device.findData("cpu")
    wizard.model_page.device.setCurrentIndex(index)
    wizard.next()
    qtbot.waitUntil(lambda: wizard.summary_page.summary is not None, timeout=30_000)


def test_wizard_indexes_a_generated_folder_end_to_end(
    qtbot: Any, make_window: Any, scenes_dir: Path
) -> None:
    window = make_window()
    # an empty library opens on the welcome page, which leads to the wizard
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.welcome, timeout=10_000)
    qtbot.mouseClick(window.welcome.start_button, Qt.MouseButton.LeftButton)
    wizard = window.dialogs["wizard"]
    assert wizard.isVisible() and wizard.currentId() == 0

    drive_to_summary(qtbot, wizard, scenes_dir)
    summary = wizard.summary_page.summary
    assert summary.found == SCENE_COUNT and summary.already_indexed == 0
    assert f"{SCENE_COUNT} photos found" in wizard.summary_page.headline.text()

    wizard.next()  # "Start indexing" (a commit page: no way back)
    run = wizard.run_page.run
    assert run is not None and window.session.indexing is run
    qtbot.waitUntil(wizard.run_page.isComplete, timeout=120_000)
    report = run.report
    assert report.added == SCENE_COUNT and not report.cancelled and report.failed == 0
    assert wizard.run_page.bar.value() == 100
    assert f"{SCENE_COUNT} added" in wizard.run_page.result.text()
    assert not wizard.run_page.failures.isVisible()
    assert wizard.button(QWizard.WizardButton.FinishButton).isEnabled()
    wizard.accept()

    # the library now shows in the grid and the status bar; settings went to the library
    qtbot.waitUntil(lambda: window.results.rowCount() == SCENE_COUNT, timeout=20_000)
    assert window.stack.currentWidget() is window.view
    qtbot.waitUntil(lambda: f"{SCENE_COUNT} photos in 1 folder" in window.counts_label.text())
    assert window.session.setting("model") == TINY
    assert window.session.setting("device") == "cpu"
    assert window.filters.folder.count() == 2  # "All folders" + the new one

    # a second pass through the wizard knows they are indexed
    second = window.open_wizard()
    drive_to_summary(qtbot, second, scenes_dir)
    assert second.summary_page.summary.already_indexed == SCENE_COUNT


def test_failed_file_is_listed_with_its_reason(
    qtbot: Any, make_window: Any, scenes_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    shutil.copytree(scenes_dir, folder)
    broken = folder / "holiday.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40)  # a cut-off JPEG
    window = make_window()
    wizard = window.open_wizard()
    drive_to_summary(qtbot, wizard, folder)
    assert wizard.summary_page.summary.found == SCENE_COUNT + 1
    wizard.next()
    qtbot.waitUntil(wizard.run_page.isComplete, timeout=120_000)

    rows = ui.row_texts(wizard.run_page.failures)
    assert [Path(path).name for path, _ in rows] == ["holiday.jpg"]
    reason = rows[0][1]
    assert reason and "holiday" not in reason  # a reason, not the path again
    assert wizard.run_page.failures.isVisible()
    assert "1 could not be read" in wizard.run_page.result.text()
    assert wizard.run_page.run.report.added == SCENE_COUNT


def _stop_when_embedding(run: Any, *, user: bool) -> None:
    """Cancel ``run`` from its own thread once the first batch is committed (deterministic)."""

    def check(reports: list[Any]) -> None:
        if any(r.phase == "embedding" and r.done >= 2 for r in reports):
            if user:
                run.cancel()
            else:
                run.task.cancel()

    run.task.progressed.connect(check, Qt.ConnectionType.DirectConnection)


def test_cancel_stops_indexing_and_a_later_run_resumes(
    qtbot: Any, make_session: Any, make_window: Any, many_scenes: Path, index_now: Any
) -> None:
    session = make_session(TINY, load=True)
    window = make_window(session)
    session.add_folders([str(many_scenes)], [])
    run = session.start_indexing([str(many_scenes)], batch_size=2, progress_rate=0)
    wizard = window.open_wizard()  # opened during a run, the wizard shows that run
    assert wizard.currentId() == 3 and wizard.run_page.run is run
    _stop_when_embedding(run, user=True)
    qtbot.waitUntil(lambda: not run.running, timeout=60_000)
    first = run.report
    assert wizard.run_page.phase.text() == "Stopped."
    assert "indexed next time" in wizard.run_page.result.text()
    assert first.cancelled
    assert 0 < first.added < 40
    assert session.pending_resume() is None  # stopped on purpose: no automatic resume
    qtbot.waitUntil(lambda: not window.indexing_status.isVisible(), timeout=5_000)

    second = index_now(session, [many_scenes]).report
    assert not second.cancelled
    assert second.added == 40 - first.added
    assert second.unchanged == first.added
    assert session.library.store.counts().images == 40


def test_quitting_mid_run_is_safe_and_resumes_next_start(
    qtbot: Any, make_session: Any, make_window: Any, many_scenes: Path, isolated: Path
) -> None:
    session = make_session(TINY, load=True)
    window = make_window(session)
    session.add_folders([str(many_scenes)], [])
    run = session.start_indexing([str(many_scenes)], batch_size=2, progress_rate=0)

    def slow(_reports: list[Any]) -> None:  # in the indexing thread: leave time to quit
        time.sleep(0.03)

    run.task.progressed.connect(slow, Qt.ConnectionType.DirectConnection)
    qtbot.waitUntil(
        lambda: (
            run.last_progress is not None
            and run.last_progress.phase == "embedding"
            and run.last_progress.done >= 2
        ),
        timeout=60_000,
    )
    window.close()  # stops at a safe point within a second (a batch commits whole or not)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=60_000)
    qtbot.waitUntil(lambda: not run.task.isRunning(), timeout=60_000)
    assert run.report is None or run.report.cancelled

    with Library.open(isolated / "library") as lib:  # the note for the next start is there
        assert lib.store.get_setting("gui_resume_indexing")["folders"] == [str(many_scenes)]
        done_before = lib.store.counts().images
        assert lib.store.embedding_count(TINY) == done_before  # whole batches only
    assert 0 < done_before < 40

    again = make_session(TINY)
    window2 = make_window(again)  # loading the model resumes the interrupted run
    qtbot.waitUntil(lambda: again.indexing is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not again.indexing.running, timeout=120_000)
    assert again.indexing.report.added == 40 - done_before
    assert again.pending_resume() is None
    assert window2.isVisible()


def test_welcome_demo_draws_and_indexes_scenes(
    qtbot: Any, make_window: Any, monkeypatch: Any
) -> None:
    from app.gui import demo

    monkeypatch.setattr(demo, "DEMO_SCENES", 6)
    monkeypatch.setattr(demo, "DEMO_SIZE", 64)
    window = make_window()
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.welcome, timeout=10_000)
    task = demo.start_demo(window.session, window, count=6)
    qtbot.waitUntil(task.isFinished, timeout=60_000)
    session = window.session
    qtbot.waitUntil(
        lambda: session.indexing is not None and not session.indexing.running, timeout=60_000
    )
    assert session.indexing.report.added == 6
    qtbot.waitUntil(lambda: window.results.rowCount() == 6, timeout=20_000)


def test_wizard_marks_the_model_the_library_would_load_when_none_is_chosen(
    qtbot: Any, make_session: Any, scenes_dir: Path
) -> None:
    """No model setting and none loaded yet: the wizard still marks (and selects) the model the
    library loads by default, the one a model load then picks."""
    from app.gui.wizard import IndexWizard

    session = make_session(None)
    assert session.setting("model") is None and session.choice is None
    wizard = IndexWizard(session)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.folders_page.add_folder(scenes_dir)
    wizard.next()
    panel = wizard.model_page.panel
    qtbot.waitUntil(lambda: panel.loaded, timeout=30_000)
    rows = [panel.table.topLevelItem(i) for i in range(panel.table.topLevelItemCount())]
    marked = [row.text(0) for row in rows if row.text(0).endswith("(in use)")]

    with qtbot.waitSignal(session.modelReady, timeout=60_000) as blocker:
        session.load_model()
    loaded = blocker.args[0].name
    assert marked == [f"{loaded}  (in use)"]
    assert panel.table.selected_name() == loaded
    wizard.reject()
