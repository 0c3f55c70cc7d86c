"""Captions and fine-tuning from the GUI: caption editor, caption import, the fine-tune dialog."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt

from app.gui.captions import start_caption_import
from app.gui.finetune_dialog import metric_rows, worse_rows
from app.library.captions import caption_records, captioned_count

TINY = "gui-tiny"
SCENE_COUNT = 8


def test_caption_editor_and_import_store_captions(
    qtbot: Any, make_session: Any, make_window: Any, scenes_dir: Path, index_now: Any
) -> None:
    session = make_session(TINY, load=True)
    index_now(session, [scenes_dir])
    window = make_window(session)
    qtbot.waitUntil(lambda: window.results.rowCount() == SCENE_COUNT, timeout=20_000)
    first, second = window.results.item(0), window.results.item(1)

    editor = window.open_captions([first, second])
    editor.text.setPlainText("My grandmother's quilt. Red and blue patches on a cream cloth.")
    editor.next_photo()
    assert editor.index == 1
    editor.text.setPlainText("   ")
    editor.save_and_close()
    store = session.library.store
    [caption] = store.captions(first.id)
    assert caption.kind == "user" and caption.text.startswith("My grandmother")
    assert store.captions(second.id) == []

    # importing the scenes' sidecars attaches short + long captions to every photo
    task = start_caption_import(session, scenes_dir, window, show_result=False)
    qtbot.waitUntil(task.isFinished, timeout=30_000)
    assert captioned_count(store) == SCENE_COUNT
    records = {r.image.name: r for r in caption_records(store)}
    assert len(records) == SCENE_COUNT
    assert records[Path(first.path).name].long[-1].startswith("My grandmother") or any(
        text.startswith("My grandmother") for text in records[Path(first.path).name].long
    )


def test_finetune_dialog_completes_on_a_tiny_set_and_switches_model(
    qtbot: Any, make_session: Any, make_window: Any, scenes_dir: Path, index_now: Any
) -> None:
    session = make_session(TINY, load=True)
    index_now(session, [scenes_dir])
    task = start_caption_import(session, scenes_dir, show_result=False)
    qtbot.waitUntil(task.isFinished, timeout=30_000)
    window = make_window(session)

    dialog = window.open_finetune()
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=30_000)
    assert dialog.base.currentData() == TINY
    assert dialog.mode() == "text" and not dialog.reindex_warning.isVisible()
    dialog.mode_buttons["last-n"].setChecked(True)
    assert dialog.reindex_warning.isVisibleTo(dialog)
    dialog.mode_buttons["text"].setChecked(True)
    assert f"{SCENE_COUNT} captioned photos" in dialog.use_library.text()
    assert dialog.progress.text() == "0 / 10 steps"  # 10 epochs of one batch of 8 photos
    dialog.epochs.setValue(3)
    assert dialog.progress.text() == "0 / 3 steps"
    dialog.use_file.setChecked(True)  # a file is only read when the run starts
    assert dialog.progress.text() == "Not started"
    dialog.use_library.setChecked(True)
    dialog.name.setText("gui-tiny-mine")

    run = dialog.start(steps=4)
    assert run is not None
    assert dialog.stop_button.isVisible() and not dialog.base.isEnabled()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=120_000)
    assert dialog.curve.steps[-1] == 4 and len(dialog.curve.losses) >= 1
    assert dialog.progress.value() == dialog.progress.maximum() == 4
    assert dialog.results.isVisible() and dialog.results.rowCount() >= 1
    assert dialog.results.item(0, 1).text().endswith("%")
    assert "training photos" in dialog.result_note.text()  # too few to hold any out
    assert dialog.switch_button.isVisible()

    rows = metric_rows(dialog.result.before, dialog.result.after, False)
    seen: list[str] = []
    if worse_rows(rows):  # four steps on eight photos may go either way: confirm if asked
        _answer_modal(qtbot, "Use it anyway", seen)
    with qtbot.waitSignal(session.modelReady, timeout=60_000):
        qtbot.mouseClick(dialog.switch_button, Qt.MouseButton.LeftButton)
    assert len(seen) == (1 if worse_rows(rows) else 0)
    assert session.choice.name == "gui-tiny-mine"
    assert session.setting("model") == "gui-tiny-mine"
    assert session.choice.model.metadata.get("base_model") == TINY
    # the library is brought up to date for the new model in the background
    qtbot.waitUntil(
        lambda: session.indexing is not None and not session.indexing.running, timeout=120_000
    )
    assert session.library.store.counts().embeddings.get("gui-tiny-mine") == SCENE_COUNT


def test_finetune_dialog_uses_the_recommended_recipe_for_lotlip_tiny(
    qtbot: Any, make_session: Any, make_window: Any, scenes_dir: Path, models_home: Path
) -> None:
    """The bundled model's measured recipe is what the dialog runs by default (check box on);
    another base, or the box unchecked, gets the dialog's own settings and no data recipe."""
    from lotlip import registry
    from lotlip.folders import read_folder_config
    from training.finetune_defaults import RECOMMENDED

    bundled = registry.BUNDLED_MODEL
    recommended = RECOMMENDED[bundled]
    session = make_session(bundled, load=True)
    dialog = make_window(session).open_finetune()
    qtbot.waitUntil(lambda: dialog.loaded, timeout=30_000)
    assert dialog.base.currentData() == bundled
    assert dialog.use_recommended.isVisibleTo(dialog) and dialog.use_recommended.isChecked()
    assert dialog.use_recommended.text() == "Use the recommended settings for lotlip-tiny"
    assert "study trial 22" in dialog.recommended_text.text()
    assert dialog.mode() == recommended.trainable and not dialog.reindex_warning.isVisibleTo(dialog)
    assert not dialog.lr.isEnabled() and not dialog.mode_buttons["full"].isEnabled()
    assert dialog.current_plan().recommended is recommended

    dialog.use_recommended.setChecked(False)  # the user's own settings: no recipe
    assert dialog.lr.isEnabled() and dialog.current_plan().recommended is None
    assert dialog.mode() == "text" and dialog.lr.currentText() == "5e-5"  # the dialog's own
    dialog.use_recommended.setChecked(True)
    dialog.base.setCurrentIndex(dialog.base.findData(TINY))  # a random model: generic settings
    assert not dialog.use_recommended.isVisibleTo(dialog) and dialog.lr.isEnabled()
    assert dialog.current_plan().recommended is None
    dialog.base.setCurrentIndex(dialog.base.findData(bundled))
    assert not dialog.lr.isEnabled()

    name = "lotlip-tiny-recipe-test"
    dialog.source_edit.setText(str(scenes_dir / "manifest.jsonl"))
    dialog.name.setText(name)
    try:
        assert dialog.start(steps=2) is not None  # the test hook: only the length changes
        qtbot.waitUntil(lambda: dialog.result is not None, timeout=120_000)
        _, meta = read_folder_config(models_home / name)
        config = meta["train_config"]
        assert meta["mode"] == recommended.trainable and config["steps"] == 2
        assert {k: config[k] for k in ("lr", "warmup", "last_n", "weight_decay")} == {
            "lr": recommended.lr,
            "warmup": recommended.warmup,
            "last_n": recommended.last_n,
            "weight_decay": recommended.weight_decay,
        }
        assert meta["recipe"] == asdict(recommended.recipe)
        assert "no re-indexing" in dialog.result_note.text()
    finally:
        shutil.rmtree(models_home / name, ignore_errors=True)


def test_finetune_stop_saves_nothing(
    qtbot: Any,
    make_session: Any,
    make_window: Any,
    scenes_dir: Path,
    index_now: Any,
    models_home: Path,
) -> None:
    session = make_session(TINY, load=True)
    index_now(session, [scenes_dir])
    task = start_caption_import(session, scenes_dir, show_result=False)
    qtbot.waitUntil(task.isFinished, timeout=30_000)
    window = make_window(session)
    dialog = window.open_finetune()
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=30_000)
    dialog.name.setText("gui-tiny-stopped")
    run = dialog.start(steps=500)
    qtbot.waitUntil(lambda: bool(dialog.curve.steps), timeout=60_000)
    dialog.stop()
    qtbot.waitUntil(lambda: "Nothing was saved" in dialog.status.text(), timeout=60_000)
    assert run.wait(10_000)
    assert dialog.result is None
    assert dialog.start_button.isVisible() and dialog.base.isEnabled()
    assert not (models_home / "gui-tiny-stopped").exists()


def _answer_modal(qtbot: Any, button_text: str, seen: list[str]) -> None:
    """Click ``button_text`` in the next modal box (recording its text) once it is shown."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        seen.append(box.text())
        [button] = [b for b in box.buttons() if b.text() == button_text]
        button.click()

    QTimer.singleShot(0, answer)


def test_switching_to_a_model_that_measured_worse_needs_confirmation(
    qtbot: Any, make_window: Any, install_model: Any
) -> None:
    from app.gui.finetune_dialog import FinetunePlan
    from training.finetune import FinetuneResult

    install_model(TINY + "-new")
    window = make_window()
    session = window.session
    dialog = window.open_finetune()
    dialog.plan = FinetunePlan(TINY + "-new", TINY + "-new", "text", 1, 8, 1e-5, "cpu")
    dialog.result = FinetuneResult(
        train=None,  # type: ignore[arg-type]
        model_dir=None,
        before={"heldout_long_t2i_r1": 0.625, "heldout_long_t2i_r5": 0.75},
        after={"heldout_long_t2i_r1": 0.5, "heldout_long_t2i_r5": 0.875},
        train_pairs=30,
        heldout_pairs=8,
        skipped={},
    )
    seen: list[str] = []
    _answer_modal(qtbot, "Keep the current model", seen)
    dialog.switch_model()
    assert "62.5 % → <b>50.0 %</b>" in seen[0] and "held-out" in seen[0]
    assert "top 5" not in seen[0]  # only what got worse
    assert session.setting("model") == TINY and dialog.status.text() == "Kept the current model."

    _answer_modal(qtbot, "Use it anyway", seen)
    dialog.switch_model()
    assert len(seen) == 2 and session.setting("model") == TINY + "-new"
    qtbot.waitUntil(lambda: not session.indexing.running, timeout=60_000)


def test_a_fine_tune_of_the_demo_model_keeps_the_demo_banner(
    qtbot: Any, make_session: Any, make_window: Any, install_model: Any
) -> None:
    import json

    from lotlip import registry

    folder = install_model("demo-tuned")
    config = json.loads((folder / "config.json").read_text())
    config["metadata"]["base_model"] = registry.BUNDLED_MODEL
    (folder / "config.json").write_text(json.dumps(config))
    window = make_window(make_session("demo-tuned"))
    assert not window.session.choice.is_bundled
    assert window.banner.isVisibleTo(window)
    assert f"demo-tuned, fine-tuned from {registry.BUNDLED_MODEL}" in window.banner.text.text()

    plain = make_window(make_session(TINY))  # a model of its own: no banner
    assert not plain.banner.isVisibleTo(plain)


def test_finetune_dialog_shows_the_values_the_recommended_recipe_uses(
    qtbot: Any, make_session: Any, make_window: Any
) -> None:
    """Ticked, the locked inputs show the recipe's own length, batch, learning rate and mode, and
    "(recommended)" marks the recipe's mode; unticked, the user's own values come back. Every
    wrapped explanation gets the height its text needs at the dialog's first size."""
    from PySide6.QtWidgets import QLabel

    from lotlip import registry
    from training.finetune_defaults import GENERIC, RECOMMENDED

    bundled = registry.BUNDLED_MODEL
    recommended = RECOMMENDED[bundled]
    dialog = make_window(make_session(bundled, load=True)).open_finetune()
    qtbot.waitUntil(lambda: dialog.loaded, timeout=30_000)

    def marked() -> list[str]:
        return [k for k, b in dialog.mode_buttons.items() if b.text().endswith("(recommended)")]

    def shown() -> tuple[float, int, int | None, int | None]:
        steps = dialog.steps_box.value() if dialog.steps_box.isVisibleTo(dialog) else None
        epochs = dialog.epochs.value() if dialog.epochs.isVisibleTo(dialog) else None
        return float(dialog.lr.currentText()), dialog.batch.value(), steps, epochs

    assert shown() == (recommended.lr, recommended.batch_size, recommended.steps, None)
    assert marked() == [recommended.trainable] == [dialog.mode()]
    dialog.use_recommended.setChecked(False)
    assert shown() == (5e-5, 16, None, 10)  # the dialog's own values, editable again
    assert dialog.lr.isEnabled() and marked() == [recommended.trainable]
    dialog.use_recommended.setChecked(True)
    assert shown() == (recommended.lr, recommended.batch_size, recommended.steps, None)
    dialog.base.setCurrentIndex(dialog.base.findData(TINY))  # generic settings
    assert marked() == [GENERIC.trainable] and shown() == (5e-5, 16, None, 10)
    dialog.base.setCurrentIndex(dialog.base.findData(bundled))

    qtbot.waitUntil(dialog.isVisible)
    wrapped = [w for w in dialog.findChildren(QLabel) if w.wordWrap() and w.isVisible()]
    assert dialog.recommended_text in wrapped

    def clipped() -> list[str]:
        return [w.text() for w in wrapped if w.heightForWidth(w.width()) > w.height()]

    qtbot.waitUntil(lambda: clipped() == [], timeout=2_000)  # once the layout has settled


def test_finetune_progress_shows_the_planned_steps_before_a_run(
    qtbot: Any, make_session: Any, make_window: Any
) -> None:
    """Before a run the bar counts towards the plan's steps (the recommended recipe's length),
    or says it has not started when the length is not known yet; it follows the settings."""
    from lotlip import registry
    from training.finetune_defaults import RECOMMENDED

    bundled = registry.BUNDLED_MODEL
    steps = RECOMMENDED[bundled].steps
    dialog = make_window(make_session(bundled, load=True)).open_finetune()
    qtbot.waitUntil(lambda: dialog.loaded, timeout=30_000)
    assert dialog.progress.text() == f"0 / {steps} steps"
    dialog.use_recommended.setChecked(False)  # no captions in the library: length unknown
    assert dialog.progress.text() == "Not started"
    dialog.use_recommended.setChecked(True)
    assert dialog.progress.text() == f"0 / {steps} steps"
    dialog.base.setCurrentIndex(dialog.base.findData(TINY))  # generic settings, no captions
    assert dialog.progress.text() == "Not started"


def test_finetune_start_waits_for_enough_captions_and_says_why(
    qtbot: Any, make_session: Any, make_window: Any, scenes_dir: Path, index_now: Any
) -> None:
    """With too few captioned photos in the library, Start is off and the dialog says what to
    do; a caption file, or captions added while it is open, make the data usable."""
    session = make_session(TINY, load=True)
    index_now(session, [scenes_dir])
    dialog = make_window(session).open_finetune()
    qtbot.waitUntil(lambda: dialog.loaded, timeout=30_000)
    hint = dialog.data_hint
    assert dialog.use_library.isChecked() and "(0 captioned photos)" in dialog.use_library.text()
    assert not dialog.start_button.isEnabled()
    assert hint.isVisibleTo(dialog) and "at least 2 described photos" in hint.text()

    dialog.use_file.setChecked(True)  # a file still to be named: not usable yet
    assert not dialog.start_button.isEnabled() and hint.isVisibleTo(dialog)
    dialog.source_edit.setText(str(scenes_dir / "manifest.jsonl"))
    assert dialog.start_button.isEnabled() and not hint.isVisibleTo(dialog)
    dialog.use_library.setChecked(True)
    assert not dialog.start_button.isEnabled() and hint.isVisibleTo(dialog)

    # one photo described (what Photo ▸ Edit captions does): still one short
    store = session.library.store
    first_id = store.image_id(str(sorted(scenes_dir.glob("*.png"))[0]))
    assert first_id is not None
    store.add_caption(first_id, "A red square on a blue background.", "user")
    session.refresh_info()
    qtbot.waitUntil(lambda: "(1 captioned photo)" in dialog.use_library.text(), timeout=10_000)
    assert not dialog.start_button.isEnabled() and hint.isVisibleTo(dialog)

    task = start_caption_import(session, scenes_dir, show_result=False)
    qtbot.waitUntil(task.isFinished, timeout=30_000)
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=10_000)
    assert f"({SCENE_COUNT} captioned photos)" in dialog.use_library.text()
    assert not hint.isVisibleTo(dialog)
