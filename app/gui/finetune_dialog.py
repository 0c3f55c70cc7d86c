"""Fine-tune a model on the user's own captions, with a live loss curve and a before/after.

The dialog collects the choices, then runs :func:`training.finetune.finetune` in a worker thread
(:func:`run_finetune`); progress arrives as throttled batches of ``StepReport``. The new model is
written to ``lotlip.registry.models_home()/<name>``; at the end the dialog shows retrieval
before and after on held-out captions and offers to switch the library to the new model.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QFrame,
    QGroupBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui import widgets as ui
from app.gui.formatting import count_text, human_duration
from app.gui.loss_curve import LossCurve
from app.gui.read_only import keep_disabled
from app.gui.session import Session
from app.gui.tasks import Task, TaskCancelled, bound
from app.gui.theme import WARNING
from app.library.captions import caption_records, captioned_count
from app.library.models import MODEL_NAME_RE, list_models

MODES = (
    (
        "text",
        "Text tower only",
        "Learns your words; the image side stays frozen, so how photos are seen does not "
        "change. Safe on small sets.",
    ),
    (
        "text-last-n",
        "Last blocks of the text tower and the word embeddings",
        "Learns your words with fewer weights; the image side stays frozen, so no re-indexing.",
    ),
    (
        "last-n",
        "Last blocks of both towers",
        "Also adapts how photos are seen: every photo is indexed again with the new model.",
    ),
    (
        "full",
        "Whole model",
        "Slowest, and easy to overfit on a few hundred photos. Every photo is indexed again.",
    ),
)
# training.finetune_defaults.GENERIC.trainable (not imported here: that module pulls in torch)
GENERIC_MODE = "text"
RECOMMENDED_MARK = " (recommended)"
STEPS_FORMAT = "%v / %m steps"
LEARNING_RATES = ("1e-5", "3e-5", "5e-5", "1e-4", "3e-4", "1e-3", "2e-3")
# Modes that keep the image tower frozen: the new model reuses every indexed photo.
IMAGE_FROZEN = ("text", "text-last-n")
# A contrastive batch needs two pairs: each caption is told apart from another photo's.
MIN_CAPTIONED = 2
TOO_FEW_CAPTIONS = (
    f"Fine-tuning needs at least {MIN_CAPTIONED} described photos: describe some "
    "(Photo ▸ Edit captions) or import a caption file."
)
NO_SOURCE = "Choose a caption file or folder."
METRIC_ROWS = (
    ("Long caption → photo, top 1", "long_t2i_r1"),
    ("Long caption → photo, top 5", "long_t2i_r5"),
    ("Short caption → photo, top 1", "short_t2i_r1"),
    ("Photo → long caption, top 1", "long_i2t_r1"),
)


@dataclass(frozen=True)
class FinetunePlan:
    """Everything a run needs (decided in the dialog)."""

    base: str
    name: str
    mode: str
    epochs: int
    batch_size: int
    lr: float
    device: str
    source: Path | None = None  # None: the library's captions
    steps: int | None = None  # overrides epochs, or the recommended steps (tests, advanced use)
    # the base's recommended settings (training.finetune_defaults.FinetuneDefaults); when set,
    # they decide mode, length, learning rate, batch and data recipe; None: the fields above
    recommended: Any = None


@dataclass(frozen=True)
class PlanReport:
    """First progress report of a run: its size."""

    steps: int
    train_pairs: int
    heldout_pairs: int


def steps_for(pairs: int, epochs: int, batch_size: int) -> int:
    """Optimizer steps for ``epochs`` passes over ``pairs`` training pairs."""
    batch = max(2, min(batch_size, pairs))
    return max(1, epochs * math.ceil(pairs / batch))


def default_name(base: str, taken: set[str]) -> str:
    """``<base>-mine-<yyyymmdd>`` (with a counter if taken)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{base}-mine-{date.today():%Y%m%d}")
    name, n = stem, 2
    while name in taken:
        name, n = f"{stem}-{n}", n + 1
    return name


def enough_captions(count: int) -> bool:
    """Whether ``count`` captioned photos are enough to fine-tune on."""
    return count >= MIN_CAPTIONED


def run_finetune(
    plan: FinetunePlan, store: Any, report: Callable[[Any], None], cancelled: Callable[[], bool]
) -> Any:
    """Fine-tune per ``plan`` (worker thread); returns ``training.finetune.FinetuneResult``."""
    from lotlip import registry
    from training.data import SkipStats
    from training.finetune import finetune as finetune_model
    from training.finetune import read_caption_records, split_heldout
    from training.train import TrainConfig

    if plan.source is None:
        records = caption_records(store)
    else:
        records = read_caption_records(plan.source, SkipStats("fine-tune data"))
    if not enough_captions(len(records)):
        raise ValueError(f"Found {count_text(len(records), 'captioned photo')}. {TOO_FEW_CAPTIONS}")
    seed = 0
    train_records, heldout = split_heldout(records, 0.2, seed)
    recommended = plan.recommended
    steps = plan.steps or (
        recommended.steps
        if recommended is not None
        else steps_for(len(train_records), plan.epochs, plan.batch_size)
    )
    report(PlanReport(steps, len(train_records), len(heldout)))
    out = registry.models_home() / plan.name
    if (out / "config.json").exists():
        raise FileExistsError(f"A model named {plan.name} already exists; choose another name.")
    chosen = {
        "batch_size": plan.batch_size,
        "lr": plan.lr,
        "weight_decay": 0.1,
        "warmup": max(1, steps // 10),
        "trainable": plan.mode,
    }
    if recommended is not None:
        chosen = {**recommended.settings(), "steps": steps}
    config = TrainConfig(
        **{"steps": steps, **chosen},
        out=str(out),
        save_every=max(steps, 1),
        log_every=max(1, steps // 100),
        device=plan.device,
        seed=seed,
        workers=0,
    )
    try:
        result = finetune_model(
            plan.base,
            records,
            config,
            name=plan.name,
            progress=report,
            should_stop=cancelled,
            recipe=None if recommended is None else recommended.recipe,
        )
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    if result.model_dir is None:
        shutil.rmtree(out, ignore_errors=True)
        raise TaskCancelled()
    return result


def describe_recommended(recommended: Any) -> str:
    """What the recommended settings are, in words (under the check box)."""
    recipe = recommended.recipe
    parts = []  # mode, length, batch and learning rate show in their own (locked) inputs
    if recipe.shuffle_sentences:
        parts.append("sentences shuffled")
    if recipe.short_phrasings:
        parts.append("other short phrasings of your captions")
    if recipe.replay:
        parts.append(f"{recipe.replay} of the model's own training scenes mixed in")
    data = ", ".join(parts) if parts else "your captions as they are"
    return (
        f"Measured to generalise best to new photos ({recommended.source}); data: {data}. "
        "Uncheck to choose your own settings."
    )


def metric_rows(before: dict[str, float], after: dict[str, float], heldout: bool) -> list[tuple]:
    """``(label, before %, after %)`` for the result table."""
    split = "heldout" if heldout else "train"
    rows = []
    for label, key in METRIC_ROWS:
        full = f"{split}_{key}"
        if full in before or full in after:
            rows.append((label, before.get(full), after.get(full)))
    return rows


def worse_rows(rows: list[tuple]) -> list[tuple]:
    """The rows of :func:`metric_rows` whose "after" is below "before"."""
    return [r for r in rows if r[1] is not None and r[2] is not None and r[2] < r[1]]


def worse_message(rows: list[tuple], heldout: bool) -> str:
    """What the switch confirmation says: each worse measure with its numbers."""
    where = "on the held-out photos" if heldout else "on the training photos"
    lines = "".join(
        f"<li>{label}: {100 * before:.1f} % → <b>{100 * after:.1f} %</b></li>"
        for label, before, after in rows
    )
    return (
        f"<p>The new model finds photos <b>worse</b> than the model it started from {where}:</p>"
        f"<ul>{lines}</ul><p>Searches may get worse after switching. Use it anyway?</p>"
    )


class FinetuneDialog(QDialog):
    """Choose base model, data, mode and length; run; compare; switch."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.task: Task | None = None
        self.result: Any = None
        self.plan: FinetunePlan | None = None
        self.installed: set[str] = set()
        self.base_defaults: dict[str, Any] = {}  # model name -> its recommended settings
        self._manual: tuple[str, str, int] | None = None  # (mode, lr, batch) while recommended
        self.library_pairs = 0
        self.loaded = False  # the models and the captioned photos are counted
        self._caption_rows = session.info.captions  # recount when the library's count changes
        self.confirm_close = True
        ui.frame_dialog(self, "finetuneDialog", "Fine-tune on your captions", 760, 720)
        self._build()
        self._update_plan_text()
        self._load_choices()
        session.libraryInfo.connect(bound(self, self._library_changed))

    # -- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        intro = ui.label(
            "Teach the model your own words: it learns from photos you have described "
            "(Photo ▸ Edit captions, or Library ▸ Import captions). A fifth of them is held out "
            "to measure whether searching got better.",
            self,
            wrap=True,
        )

        self.use_library = QRadioButton("Captions in the library", self)
        self.use_library.setObjectName("useLibraryCaptions")
        self.use_library.setChecked(True)
        self.use_library.toggled.connect(self._update_plan_text)
        self.use_library.toggled.connect(self._update_data_state)
        self.use_file = QRadioButton("A caption file or folder:", self)
        self.source_edit = QLineEdit(self)
        self.source_edit.setPlaceholderText("manifest.jsonl, captions.csv or a folder of sidecars")
        self.source_edit.textChanged.connect(lambda _t: self.use_file.setChecked(True))
        self.source_edit.textChanged.connect(self._update_data_state)
        browse = ui.button("Browse…", self, self._browse_source)
        source_row = ui.hbox(self.use_file, (self.source_edit, 1), browse)
        # why Start is off: the chosen data cannot be trained on yet
        self.data_hint = ui.label("", self, name="finetuneDataHint", wrap=True)
        self.data_hint.setStyleSheet(f"color: {WARNING};")
        self.data_hint.hide()
        data_box = QGroupBox("Data", self)
        ui.vbox(self.use_library, source_row, self.data_hint, parent=data_box)

        self.base = QComboBox(self)
        self.base.setObjectName("baseModel")
        self.base.currentIndexChanged.connect(self._base_changed)
        self.name = QLineEdit(self)
        self.name.setObjectName("newModelName")
        self.epochs = QSpinBox(self)
        self.epochs.setObjectName("epochs")
        self.epochs.setRange(1, 500)
        self.epochs.setValue(10)
        self.epochs.valueChanged.connect(self._update_plan_text)
        self.steps_box = QSpinBox(self)  # the recommended length (in steps), shown locked
        self.steps_box.setObjectName("recommendedSteps")
        self.steps_box.setRange(1, 1_000_000)
        self.steps_box.setEnabled(False)
        self.steps_box.hide()
        self.batch = QSpinBox(self)
        self.batch.setRange(2, 256)
        self.batch.setValue(16)
        self.batch.valueChanged.connect(self._update_plan_text)
        self.lr = QComboBox(self)
        self.lr.addItems(LEARNING_RATES)
        self.lr.setCurrentText("5e-5")
        self.plan_text = ui.label("", self, name="mutedLabel")
        self.use_recommended = QCheckBox(self)
        self.use_recommended.setObjectName("useRecommended")
        self.use_recommended.setChecked(True)
        self.use_recommended.toggled.connect(self._apply_recommended)
        self.use_recommended.hide()
        self.recommended_text = ui.label("", self, name="mutedLabel", wrap=True)
        self.recommended_text.hide()
        self.length_unit = QLabel("epochs, batch", self)
        rate = QLabel("learning rate", self)
        length = ui.hbox(
            self.epochs, self.steps_box, self.length_unit, self.batch, rate, self.lr, ui.STRETCH
        )
        rows = ui.form(
            ("Start from:", self.base),
            ("New model name:", self.name),
            ("", self.use_recommended),
            ("", self.recommended_text),
            ("Training:", length),
            ("", self.plan_text),
        )

        mode_box = QGroupBox("What to train", self)
        mode_layout = QVBoxLayout(mode_box)
        self.modes = QButtonGroup(self)
        self.mode_buttons: dict[str, QRadioButton] = {}
        for key, label, help_text in MODES:
            button = QRadioButton(label, self)
            button.setObjectName(f"mode_{key}")
            button.setToolTip(help_text)
            self.modes.addButton(button)
            self.mode_buttons[key] = button
            note = ui.label(help_text, self, name="mutedLabel", wrap=True)
            note.setIndent(22)
            mode_layout.addWidget(button)
            mode_layout.addWidget(note)
        self.mode_buttons["text"].setChecked(True)
        self.modes.buttonToggled.connect(self._mode_changed)
        self.reindex_warning = ui.label(
            "⚠ This mode changes how photos are seen: after switching to the new model, all "
            "photos are indexed again.",
            self,
            wrap=True,
        )
        self.reindex_warning.setStyleSheet(f"color: {WARNING};")
        self.reindex_warning.hide()
        mode_layout.addWidget(self.reindex_warning)

        self.progress = QProgressBar(self)
        self.progress.setObjectName("finetuneProgress")
        self.status = ui.label("", self, name="finetuneStatus", wrap=True)
        self.curve = LossCurve(self)

        self.results = QTableWidget(0, 3, self)
        self.results.setObjectName("finetuneResults")
        self.results.setHorizontalHeaderLabels(["Retrieval", "Before", "After"])
        self.results.verticalHeader().hide()
        self.results.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.results.horizontalHeader().setDefaultAlignment(
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        )
        self.results.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.results.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.results.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.results.hide()
        self.result_note = ui.label("", self, wrap=True)
        self.result_note.hide()

        self.start_button = ui.button("Start fine-tuning", self, self.start, name="startFinetune")
        self.start_button.setDefault(True)
        self.stop_button = ui.button("Stop", self, self.stop, name="stopFinetune")
        self.stop_button.hide()
        self.switch_button = ui.button(
            "Use the new model", self, self.switch_model, name="switchModel"
        )
        self.switch_button.hide()
        keep_disabled(self.session, self.switch_button, what="switching the library to a new model")
        self.close_button = ui.button("Close", self, self.close)
        buttons = (self.start_button, self.stop_button, self.switch_button, self.close_button)
        # the choices scroll: on a small screen (1024×640) the run's curve and results still show
        settings = QScrollArea(self)
        settings.setObjectName("finetuneSettings")
        settings.setFrameShape(QFrame.Shape.NoFrame)
        settings.setWidgetResizable(True)
        settings.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        content = QWidget(settings)
        ui.vbox(intro, data_box, rows, mode_box, parent=content, margins=0)
        settings.setWidget(content)
        ui.vbox(
            (settings, 1),
            self.progress,
            self.status,
            self.curve,  # its own height: the extra room goes to the choices above
            self.results,
            self.result_note,
            ui.hbox(ui.STRETCH, *buttons),
            parent=self,
        )

    def _load_choices(self) -> None:
        self.base.addItem("Looking for models…")
        self.base.setEnabled(False)
        self.start_button.setEnabled(False)
        library = self.session.library

        def work(_r: Any, _c: Any) -> tuple[list[Any], int, dict[str, Any]]:
            from training.finetune_defaults import GENERIC, defaults_for

            entries = [e for e in list_models() if e.installed]
            defaults = {e.name: defaults_for(e.name) for e in entries}
            recommended = {name: d for name, d in defaults.items() if d is not GENERIC}
            return entries, captioned_count(library.store), recommended

        task = self.session.worker_task(work, name="finetune-choices")
        task.succeeded.connect(self._choices_loaded)
        task.failed.connect(
            bound(self, lambda message: self.status.setText(f"Cannot list models: {message}"))
        )
        self.session.tasks.start(task)

    def _choices_loaded(self, result: tuple[list[Any], int, dict[str, Any]]) -> None:
        entries, self.library_pairs, self.base_defaults = result
        self.installed = {e.name for e in entries}
        self.base.clear()
        self.base.setEnabled(True)
        current = self.session.choice.name if self.session.choice is not None else None
        for entry in entries:
            self.base.addItem(f"{entry.name}  ({entry.kind})", entry.name)
        index = self.base.findData(current)
        self.base.setCurrentIndex(max(0, index))
        self.loaded = True
        self._show_library_count(self.library_pairs)

    def _show_library_count(self, pairs: int) -> None:
        self.library_pairs = pairs
        self.use_library.setText(
            f"Captions in the library ({count_text(pairs, 'captioned photo')})"
        )
        self._update_data_state()
        self._update_plan_text()

    def _library_changed(self, info: Any) -> None:
        """Recount the captioned photos once the library's captions changed (edited or
        imported while the dialog is open)."""
        if not self.loaded or info.captions == self._caption_rows:
            return
        self._caption_rows = info.captions
        library = self.session.library
        task = self.session.worker_task(
            lambda _r, _c: captioned_count(library.store), name="finetune-captions"
        )
        task.succeeded.connect(bound(self, self._show_library_count))
        self.session.tasks.start(task)

    def data_problem(self) -> str | None:
        """Why the chosen data cannot be fine-tuned on yet, or None when it can (a file's
        content is only read when the run starts)."""
        if self.use_file.isChecked():
            return None if self.source_edit.text().strip() else NO_SOURCE
        return None if enough_captions(self.library_pairs) else TOO_FEW_CAPTIONS

    def _update_data_state(self, *_args: object) -> None:
        """Start is on when the models are listed and the data is usable; else the hint says
        what is missing."""
        problem = self.data_problem() if self.loaded else None
        self.data_hint.setText(problem or "")
        self.data_hint.setVisible(problem is not None)
        self.start_button.setEnabled(self.loaded and bool(self.installed) and problem is None)

    # -- choices --------------------------------------------------------------------------------
    def _browse_source(self) -> None:
        path = ui.choose_file(self, "Caption file", "Caption manifests (*.jsonl *.csv);;All (*)")
        if path:
            self.source_edit.setText(path)

    def _base_changed(self, _index: int) -> None:
        base = self.base.currentData()
        if base:
            self.name.setText(default_name(str(base), self.installed))
        recommended = self.recommended()
        self.use_recommended.setVisible(recommended is not None)
        self.recommended_text.setVisible(recommended is not None)
        if recommended is not None:
            self.use_recommended.setText(
                f"Use the recommended settings for {recommended.measured_on}"
            )
            self.recommended_text.setText(describe_recommended(recommended))
        marked = recommended.trainable if recommended is not None else GENERIC_MODE
        for key, label, _ in MODES:
            self.mode_buttons[key].setText(label + (RECOMMENDED_MARK if key == marked else ""))
        self._apply_recommended()

    def recommended(self) -> Any:
        """The chosen base's recommended settings (measured for it or the model it was
        fine-tuned from), or None: then the settings below are the generic ones."""
        return self.base_defaults.get(str(self.base.currentData()))

    def using_recommended(self) -> bool:
        """Whether the run uses the base's recommended settings."""
        return self.recommended() is not None and self.use_recommended.isChecked()

    def _apply_recommended(self, *_args: object) -> None:
        """Show the recommended settings in the inputs they decide, and lock those inputs."""
        using = self.using_recommended()
        if using:
            if self._manual is None:  # the user's own choices, back when the box is unchecked
                self._manual = (self.mode(), self.lr.currentText(), self.batch.value())
            recommended = self.recommended()
            self.mode_buttons[recommended.trainable].setChecked(True)
            self._show_lr(recommended.lr)
            self.batch.setValue(recommended.batch_size)
            self.steps_box.setValue(recommended.steps)
        elif self._manual is not None:
            mode, lr, batch = self._manual
            self._manual = None
            self.mode_buttons[mode].setChecked(True)
            self.lr.setCurrentText(lr)
            self.batch.setValue(batch)
        self.steps_box.setVisible(using)  # the recipe's length is in steps, the user's in epochs
        self.epochs.setVisible(not using)
        self.length_unit.setText("steps, batch" if using else "epochs, batch")
        if self.task is None:
            self._set_inputs_enabled(True)
        self._update_plan_text()

    def _show_lr(self, lr: float) -> None:
        """Select ``lr`` in the learning-rate list (added to it when it is not one of them)."""
        for index in range(self.lr.count()):
            if math.isclose(float(self.lr.itemText(index)), lr):
                self.lr.setCurrentIndex(index)
                return
        self.lr.addItem(f"{lr:g}")
        self.lr.setCurrentIndex(self.lr.count() - 1)

    def _mode_changed(self, *_args: object) -> None:
        self.reindex_warning.setVisible(self.mode() not in IMAGE_FROZEN)

    def mode(self) -> str:
        """The chosen training mode (``text``, ``last-n`` or ``full``)."""
        return next(k for k, b in self.mode_buttons.items() if b.isChecked())

    def _library_train_pairs(self) -> int:
        """Training pairs of the library's captions (0 when a file is chosen)."""
        pairs = self.library_pairs if self.use_library.isChecked() else 0
        return pairs - (int(pairs * 0.2) if pairs >= 25 else 0)

    def planned_steps(self) -> int | None:
        """The length of the run the dialog describes, or None while it is not known (the
        data is a file that is only read when the run starts)."""
        if self.using_recommended():
            return self.recommended().steps
        train = self._library_train_pairs()
        return steps_for(train, self.epochs.value(), self.batch.value()) if train else None

    def _update_plan_text(self) -> None:
        steps, train = self.planned_steps(), self._library_train_pairs()
        self.plan_text.setText(
            f"≈ {steps} steps over {count_text(train, 'photo')}" if train else ""
        )
        if self.task is None:  # before a run, the bar shows the run planned
            self.progress.setFormat(STEPS_FORMAT if steps else "Not started")
            self.progress.setRange(0, steps or 1)
            self.progress.setValue(0)

    def current_plan(self, steps: int | None = None) -> FinetunePlan:
        """The run the dialog describes."""
        source = None
        if self.use_file.isChecked() and self.source_edit.text().strip():
            source = Path(self.source_edit.text().strip())
        return FinetunePlan(
            base=str(self.base.currentData()),
            name=self.name.text().strip(),
            mode=self.mode(),
            epochs=self.epochs.value(),
            batch_size=self.batch.value(),
            lr=float(self.lr.currentText()),
            device=self.session.device,
            source=source,
            steps=steps,
            recommended=self.recommended() if self.using_recommended() else None,
        )

    def _check(self, plan: FinetunePlan) -> str | None:
        if not plan.base or plan.base == "None":
            return "Choose a model to start from."
        if not MODEL_NAME_RE.match(plan.name):
            return "Name the new model with letters, digits, '.', '-' or '_'."
        if plan.name in self.installed:
            return f"A model named {plan.name} already exists."
        problem = self.data_problem()
        if problem is not None:  # Start is off then; this guards other callers of start()
            return problem
        if plan.source is not None and not plan.source.exists():
            return f"{plan.source} does not exist."
        return None

    # -- running --------------------------------------------------------------------------------
    def start(self, *, steps: int | None = None) -> Task | None:
        """Start the run (``steps`` overrides the epochs)."""
        plan = self.current_plan(steps)
        problem = self._check(plan)
        if problem:
            QMessageBox.warning(self, "Fine-tune", problem)
            return None
        self.plan = plan
        self.result = None
        library = self.session.library
        task = self.session.worker_task(
            lambda report, cancelled: run_finetune(plan, library.store, report, cancelled),
            name="finetune",
        )
        task.progressed.connect(self._progress)
        task.succeeded.connect(self._done)
        task.failed.connect(self._failed)
        task.cancelled_.connect(self._stopped)
        self.task = task
        self.curve.clear()
        self.progress.setFormat(STEPS_FORMAT)
        self.progress.setRange(0, 0)
        self.status.setText("Preparing: loading the model and measuring it before training…")
        self.results.hide()
        self.result_note.hide()
        self.switch_button.hide()
        self.start_button.hide()
        self.stop_button.show()
        self.stop_button.setEnabled(True)
        self._set_inputs_enabled(False)
        return self.session.tasks.start(task)

    def _set_inputs_enabled(self, enabled: bool) -> None:
        tunable = enabled and not self.using_recommended()  # the recommendation decides these
        choices = (self.base, self.name, self.source_edit, self.use_recommended, self.use_library)
        for widget in (*choices, self.use_file):
            widget.setEnabled(enabled)
        for widget in (self.epochs, self.batch, self.lr, *self.mode_buttons.values()):
            widget.setEnabled(tunable)

    def _progress(self, reports: list[Any]) -> None:
        points = []
        for item in reports:
            if isinstance(item, PlanReport):
                self.progress.setRange(0, item.steps)
                self.curve.clear(item.steps)
                held = (
                    f"{count_text(item.heldout_pairs, 'photo')} held out"
                    if item.heldout_pairs
                    else "too few to hold any out (measured on the training photos)"
                )
                self.status.setText(f"Training on {count_text(item.train_pairs, 'photo')}; {held}.")
            elif hasattr(item, "loss"):
                points.append((item.step, item.loss))
        if points:
            last = reports[-1]
            self.progress.setRange(0, getattr(last, "steps", self.progress.maximum()))
            self.progress.setValue(points[-1][0])
            self.curve.add_points(points)
            rate = getattr(last, "samples_per_second", 0.0)
            remaining = (last.steps - last.step) * (self.plan.batch_size if self.plan else 1)
            eta = remaining / rate if rate else None
            text = f"Step {last.step} of {last.steps} · loss {last.loss:.3f}"
            if eta is not None and last.step < last.steps:
                text += f" · about {human_duration(eta)} left"
            if last.step >= last.steps:
                text = "Measuring the new model and saving it…"
            self.status.setText(text)

    def _done(self, result: Any) -> None:
        self.result = result
        self._reset_after_run()
        self.start_button.setText("Fine-tune again")
        self.progress.setValue(self.progress.maximum())
        name = self.plan.name if self.plan else ""
        self.installed.add(name)
        self.status.setText(f"Done: saved as {name}.")
        rows = metric_rows(result.before, result.after, bool(result.heldout_pairs))
        self.results.setRowCount(len(rows))
        for r, (label, before, after) in enumerate(rows):
            self.results.setItem(r, 0, QTableWidgetItem(label))
            for c, value in ((1, before), (2, after)):
                cell = QTableWidgetItem("—" if value is None else f"{100 * value:.1f} %")
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 2 and before is not None and after is not None and after != before:
                    cell.setForeground(QColor("#1a7f37" if after > before else WARNING))
                self.results.setItem(r, c, cell)
        header = self.results.horizontalHeader().height()
        rows_height = sum(self.results.rowHeight(r) for r in range(len(rows)))
        self.results.setFixedHeight(header + rows_height + 2 * self.results.frameWidth() + 2)
        self.results.show()
        where = (
            f"on {count_text(result.heldout_pairs, 'held-out photo')} not used for training"
            if result.heldout_pairs
            else "on the training photos themselves (too few captions to hold any out)"
        )
        note = f"Measured {where}."
        if self.plan and self.plan.mode not in IMAGE_FROZEN:
            note += " Switching indexes every photo again with the new model."
        else:
            note += (
                " Its image tower is unchanged, so switching reuses every indexed photo: "
                "no re-indexing."
            )
        self.result_note.setText(note)
        self.result_note.show()
        self.switch_button.show()
        self.switch_button.setEnabled(True)

    def _failed(self, message: str) -> None:
        self._reset_after_run()
        self._update_plan_text()
        self.status.setText(f"Fine-tuning failed: {message}")

    def _stopped(self, _result: Any) -> None:
        self._reset_after_run()
        self.status.setText("Stopped. Nothing was saved.")

    def _reset_after_run(self) -> None:
        self.task = None
        self.stop_button.hide()
        self.start_button.show()
        self._set_inputs_enabled(True)

    def stop(self) -> None:
        """Stop after the current step (nothing is saved)."""
        if self.task is not None:
            self.task.cancel()
            self.stop_button.setEnabled(False)
            self.status.setText("Stopping after the current step…")

    def switch_model(self) -> None:
        """Make the new model the library's model and bring the index up to date for it.

        When any retrieval measure got worse, the switch needs an explicit confirmation that
        shows the numbers (see :meth:`confirm_worse`).
        """
        if self.plan is None or self.result is None:
            return
        heldout = bool(self.result.heldout_pairs)
        worse = worse_rows(metric_rows(self.result.before, self.result.after, heldout))
        if worse and not self.confirm_worse(worse, heldout):
            self.status.setText("Kept the current model.")
            return
        name = self.plan.name
        self.session.set_setting("model", name)
        # The indexer gives every photo a vector of the new model (it skips what is done), and
        # the run hands its model to the session, so searches switch as soon as it is loaded.
        self.session.start_indexing(None, model=name)
        self.switch_button.setEnabled(False)
        self.status.setText(f"Now using {name}; the index is updated for it in the background.")

    def confirm_worse(self, rows: list[tuple], heldout: bool) -> bool:
        """Ask before switching to a model that measured worse (No is the default)."""
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "The new model measured worse",
            worse_message(rows, heldout),
            QMessageBox.StandardButton.NoButton,
            self,
        )
        box.setObjectName("worseModelConfirmation")
        box.setTextFormat(Qt.TextFormat.RichText)
        use = box.addButton("Use it anyway", QMessageBox.ButtonRole.AcceptRole)
        keep = box.addButton("Keep the current model", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        box.exec()
        return box.clickedButton() is use

    def closeEvent(self, event: Any) -> None:
        """Closing stops a run (after the current step)."""
        if self.task is not None and self.task.isRunning():
            question = "Stop fine-tuning? Nothing will be saved."
            if self.confirm_close and not ui.confirm(self, "Fine-tune", question):
                event.ignore()
                return
            self.task.cancel()
        super().closeEvent(event)
