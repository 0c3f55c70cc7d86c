"""First-run demo: draw generated scenes into the library's demo folder, index them, and end
with a few of their descriptions as example queries to click.

Progress shows at once: the status bar counts the scenes as they are drawn, then the indexing
takes over the same place. When the run is done, a strip above the results offers example
paragraphs (held-out scenes' own long captions); a click searches for one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from app.gui import widgets as ui
from app.gui.session import Session
from app.gui.tasks import Task, bound

if TYPE_CHECKING:
    from app.gui.main_window import MainWindow

DEMO_SCENES = 200
DEMO_SIZE = 320
DEMO_QUERIES = 3
EXAMPLE_CHARS = 150


def write_demo_scenes(
    session: Session, count: int | None = None, report: Any = None, cancelled: Any = None
) -> tuple[str, list[int]]:
    """Render ``count`` held-out synthetic scenes into the library's demo folder (as the CLI's
    ``lotlip-search demo`` does), reporting ``(done, total)`` every few scenes."""
    from app.library.demo_gallery import write_gallery

    folder = session.library.demo_dir
    return str(folder), write_gallery(folder, count or DEMO_SCENES, DEMO_SIZE, report, cancelled)


def example_queries(seeds: list[int], n: int = DEMO_QUERIES) -> list[str]:
    """Long captions of ``n`` scenes spread over the gallery (what the CLI demo searches for)."""
    from app.library.demo_gallery import query_seeds, scene_query

    return [scene_query(seed) for seed in query_seeds(seeds, n)]


class ExampleQueries(QFrame):
    """ "Try one of these descriptions": a button per paragraph. Signal ``chosen(str)``."""

    chosen = Signal(str)

    def __init__(self, texts: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("exampleQueries")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        title = QLabel("<b>The demo is ready.</b> Try one of these descriptions:", self)
        close = ui.dismiss_button(self, "Hide the examples", self.hide)
        layout = ui.vbox(ui.hbox((title, 1), close), parent=self, margins=(10, 6, 6, 6), spacing=2)
        self.buttons: list[QPushButton] = []
        for text in texts:
            short = text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"
            button = QPushButton(f"“{short}”", self)
            button.setObjectName("exampleQuery")
            button.setFlat(True)
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.setToolTip(text)
            button.setStyleSheet("text-align: left; padding: 2px 4px;")
            button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            button.clicked.connect(lambda _checked=False, t=text: self.chosen.emit(t))
            layout.addWidget(button)
            self.buttons.append(button)


def show_examples(window: MainWindow, texts: list[str]) -> ExampleQueries:
    """Put the example strip above the results of ``window``; a click searches."""
    if window.demo_examples is not None:
        window.demo_examples.deleteLater()
    strip = ExampleQueries(texts, window)
    layout = window.centralWidget().layout()
    layout.insertWidget(layout.indexOf(window.splitter), strip)
    strip.show()  # now: a layout shows a new child only at the next turn of the event loop

    strip.chosen.connect(window.search_for)
    window.demo_examples = strip
    return strip


def start_demo(session: Session, window: MainWindow, count: int | None = None) -> Task:
    """Draw the scenes in a worker thread, then add the folder and index it; progress shows at
    once in ``window``'s status bar, and the examples appear when the indexing is done."""
    status = window.indexing_status
    status.show_starting(f"Drawing demo scenes 0 / {count or DEMO_SCENES}…")
    status.stop.setEnabled(False)
    task = Task(
        lambda report, cancelled: write_demo_scenes(session, count, report, cancelled),
        name="demo-scenes",
        rate=10,
    )

    def drawing(reports: list[Any]) -> None:
        done, of = reports[-1]
        status.label.setText(f"Drawing demo scenes {done} / {of}…")
        status.bar.setRange(0, of)
        status.bar.setValue(done)

    def drawn(result: Any) -> None:
        folder, seeds = result
        session.add_folders([folder], session.excludes)
        texts = example_queries(seeds)
        run = session.start_indexing([folder])
        run.done.connect(bound(window, lambda _report: show_examples(window, texts)))

    task.progressed.connect(drawing)
    task.succeeded.connect(drawn)
    task.failed.connect(lambda message: QMessageBox.warning(window, "Demo", message))
    return session.tasks.start(task)
