"""First-run demo: draw generated scenes into the library's demo folder and index them."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMessageBox, QWidget

from app.gui.session import Session
from app.gui.tasks import Task

DEMO_SCENES = 200
DEMO_SIZE = 320


def write_demo_scenes(session: Session, count: int | None = None) -> str:
    """Render ``count`` held-out synthetic scenes into the library's demo folder (as the CLI's
    ``lotlip-search demo`` does)."""
    from app.library.demo_gallery import write_gallery

    folder = session.library.demo_dir
    write_gallery(folder, count or DEMO_SCENES, DEMO_SIZE)
    return str(folder)


def start_demo(session: Session, parent: QWidget | None = None, count: int | None = None) -> Task:
    """Draw the scenes in a worker thread, then add the folder and index it."""
    task = Task(lambda _r, _c: write_demo_scenes(session, count), name="demo-scenes")

    def drawn(folder: Any) -> None:
        session.add_folders([folder], session.excludes)
        session.start_indexing([folder])

    task.succeeded.connect(drawn)
    task.failed.connect(lambda message: QMessageBox.warning(parent, "Demo", message))
    return session.tasks.start(task)
