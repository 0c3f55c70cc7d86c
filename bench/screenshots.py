"""Screenshots of the real app for the README: main window, wizard, fine-tune dialog, ...

Runs the actual widgets on an X display: under ``xvfb-run`` when no ``$DISPLAY`` is set
(``apt-get install xvfb``). Each set of shots gets its own temporary library filled with
generated scenes:

- ``app``: the library is indexed through the wizard, searched with a paragraph, and a
  fine-tune runs on the scenes' captions (welcome, wizard-*, finetune, models);
- ``sentences``: indexed directly, then a paragraph with one false sentence is searched: the
  sentence strips under the thumbnails, the ✓/✗ list in the preview, a saved search.

    python bench/screenshots.py                   # writes docs/screenshots/*.png
    python bench/screenshots.py --only sentences  # writes docs/screenshots/sentences.png
    python bench/screenshots.py --out /tmp/shots --scenes 60 --steps 40

The model is ``--model``, else the bundled ``lotlip-tiny``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZE = (1280, 820)
SETS = ("app", "sentences")


def ensure_display(argv: list[str]) -> None:
    """Re-run under ``xvfb-run`` when there is no X display."""
    if os.environ.get("DISPLAY") or os.environ.get("LOTLIP_SCREENSHOTS_CHILD"):
        return
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        sys.exit("no $DISPLAY and no xvfb-run: apt-get install xvfb, or run on a desktop")
    env = dict(os.environ, LOTLIP_SCREENSHOTS_CHILD="1", QT_QPA_PLATFORM="xcb")
    command = [xvfb, "-a", "-s", "-screen 0 1600x1000x24 -dpi 96", sys.executable, *argv]
    sys.exit(subprocess.call(command, env=env))


def scratch_library(
    count: int, damaged: bool = True, prefix: str = "lotlip-shots-", parent: Path | None = None
) -> tuple[Path, Path, list[int]]:
    """Point the app at a new temporary library and settings file (in ``os.environ``) and write
    a gallery of held-out scenes (320 px PNG + caption sidecars) and, if ``damaged``, one
    damaged file, not added to the library yet.

    Returns the temporary folder (in ``parent``, else the system's), the gallery folder in it
    and the gallery's scene seeds.
    """
    from app.library.demo_gallery import write_gallery

    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.environ["LOTLIP_SEARCH_LIBRARY"] = str(work / "library")
    os.environ["LOTLIP_SEARCH_GUI_CONFIG"] = str(work / "gui.ini")
    os.environ.setdefault("LOTLIP_MODELS_DIR", str(work / "models"))  # only the bundled model
    gallery = work / "Pictures" / "Scenes"
    seeds = write_gallery(gallery, count, 320)
    if damaged:
        (gallery / "IMG_2041.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64)
    return work, gallery, seeds


@dataclass
class Camera:
    """Runs the Qt event loop and saves widgets as ``<out>/<name>.png``."""

    app: Any
    out: Path
    model: str

    def wait(self, condition: Any, timeout: float = 600.0, settle: float = 0.0) -> None:
        """Run Qt's event loop until ``condition()`` holds, then ``settle`` seconds more."""
        from PySide6.QtCore import QEventLoop

        deadline = time.monotonic() + timeout
        while not condition():
            self.app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.005)
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {condition}")
        end = time.monotonic() + settle
        while time.monotonic() < end:
            self.app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.005)

    def shot(self, widget: Any, name: str) -> None:
        """Let the widget settle, then save its picture."""
        self.wait(lambda: True, settle=0.4)
        path = self.out / f"{name}.png"
        widget.grab().save(str(path))
        print(f"wrote {path}")

    def open_window(self, width: int = SIZE[0]) -> Any:
        """A main window on the current library, with the model on the CPU."""
        from app.gui.config import GuiSettings
        from app.gui.main_window import MainWindow
        from app.gui.session import Session

        session = Session()
        session.set_setting("model", self.model)
        session.set_setting("device", "cpu")
        window = MainWindow(session, GuiSettings())
        window.resize(width, SIZE[1])
        window.show()
        return window

    def close(self, window: Any) -> None:
        """Close the window (its session shuts down) and wait until it is gone."""
        window.close()
        self.wait(lambda: not window.isVisible(), timeout=120)

    def search(self, window: Any, paragraph: str) -> None:
        """Search ``paragraph`` as if typed into the query box; wait for the results."""
        window.query.set_text(paragraph)
        window.counter.update_count()
        window.search_text(paragraph)
        self.wait(lambda: window.outcome is not None and window.outcome.request.mode == "text")

    def show_results(self, window: Any, select: str | None = None) -> None:
        """Select the result ``select`` (a path) when given; wait for thumbnails and preview."""
        if select is not None:
            row = window.results.row_of(select)
            if row >= 0:
                window.view.setCurrentIndex(window.results.index(row))
        window.view.setFocus()

        def drawn() -> bool:
            """The preview and every thumbnail in view are painted (or marked unreadable)."""
            view, thumbnails = window.view, window.thumbnails
            for row, item in enumerate(window.results.items()):
                rect = view.visualRect(window.results.index(row))
                done = thumbnails.image(item.path) is not None or thumbnails.failure(item.path)
                if rect.intersects(view.viewport().rect()) and not done:
                    return False
            return window.preview.image.has_image()

        self.wait(drawn, settle=0.5)


def shoot_app(camera: Camera, scenes: int, steps: int, scratch: Path) -> None:
    """Welcome, the wizard's pages, a fine-tune and the models panel, on a new library."""
    from app.gui.captions import start_caption_import
    from training.synthetic import make_scene

    _, gallery, seeds = scratch_library(scenes, parent=scratch)
    model, wait, shot = camera.model, camera.wait, camera.shot
    window = camera.open_window()
    session = window.session
    wait(lambda: session.choice is not None or session.model_error is not None, settle=0.5)
    shot(window, "welcome")

    # the wizard: folders -> model -> summary -> run
    wizard = window.open_wizard()
    wizard.folders_page.add_folder(gallery)
    wizard.next()
    wait(lambda: wizard.model_page.panel.loaded)
    wizard.model_page.panel.table.select(model)
    wizard.model_page.device.setCurrentIndex(wizard.model_page.device.findData("cpu"))
    shot(wizard, "wizard-model")
    wizard.next()
    wait(lambda: wizard.summary_page.summary is not None, settle=0.2)
    shot(wizard, "wizard-summary")
    wizard.next()
    wait(wizard.run_page.isComplete, settle=0.3)
    shot(wizard, "wizard")
    wizard.accept()

    # a paragraph query
    wait(lambda: session.choice is not None and session.choice.name == model)
    camera.search(window, make_scene(seeds[len(seeds) // 3]).long_captions[1])
    camera.show_results(window)
    # (main-window.png is a real screenshot of the whole screen: bench/desktop_shots.py)

    # fine-tune on the scenes' own captions (as if the user had described them)
    task = start_caption_import(session, gallery, show_result=False)
    wait(task.isFinished)
    session.refresh_info()
    dialog = window.open_finetune()
    dialog.resize(780, 1040)  # room for every choice and the results, no scrolling
    wait(dialog.start_button.isEnabled)
    dialog.start(steps=steps)
    wait(lambda: dialog.task is None, timeout=1800, settle=0.3)
    shot(dialog, "finetune")
    dialog.close()

    models = window.open_models()
    models.resize(860, 420)
    wait(lambda: models.panel.loaded, settle=0.3)
    shot(models, "models")
    models.close()
    camera.close(window)


def shoot_sentences(camera: Camera, scenes: int, scratch: Path) -> None:
    """Paragraph-aware search on a new, directly indexed library: a paragraph with one false
    sentence, its described scene selected, and a saved search."""
    import lotlip
    from app.gui.sentences import saved_from_request
    from app.library.indexer import Indexer
    from app.library.library import Library
    from bench.bench_explain import falsify
    from training.synthetic import make_scene, scene_file_stem

    _, gallery, seeds = scratch_library(scenes, damaged=False, parent=scratch)
    with Library.open(os.environ["LOTLIP_SEARCH_LIBRARY"]) as lib:
        lib.add_folder(gallery)
        Indexer(lib, lotlip.load(camera.model, device="cpu")).run()
    window = camera.open_window(SIZE[0] + 200)
    camera.wait(lambda: window.session.choice is not None)
    rng = random.Random(3)
    for seed in seeds[5:]:  # a scene whose false sentence changes a colour (clear to see)
        sentences, _, kind = falsify(make_scene(seed), rng)
        if kind == "colour" and len(sentences) <= 6:
            break
    paragraph = ". ".join(sentences) + "."
    camera.search(window, paragraph)
    window.paragraph.saved.save(saved_from_request("scene with a wrong colour", window.request))
    # show the described scene itself: its false sentence is the one marked ✗
    camera.show_results(window, select=str(gallery / f"{scene_file_stem(seed)}.png"))
    camera.shot(window, "sentences")
    camera.close(window)


def main(argv: list[str] | None = None) -> int:
    """Take the chosen sets of shots (all by default) into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--model", default="lotlip-tiny", help="model name (default: bundled)")
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--steps", type=int, default=40, help="fine-tune steps")
    parser.add_argument(
        "--only", choices=SETS, action="append", help="only this set of shots (repeatable)"
    )
    args = parser.parse_args(argv)
    ensure_display([__file__, *(argv if argv is not None else sys.argv[1:])])

    from PySide6.QtWidgets import QApplication

    from app.gui.icons import app_icon
    from app.gui.main import tune_interpreter
    from app.gui.theme import apply_theme

    tune_interpreter()
    app = QApplication([sys.argv[0]])
    app.setApplicationName("LoTLIP Search")
    app.setWindowIcon(app_icon())
    apply_theme(app)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    camera = Camera(app, out, args.model)
    chosen = args.only or SETS
    # every set's library, gallery and settings go in one folder, removed at the end
    with tempfile.TemporaryDirectory(prefix="lotlip-shots-", ignore_cleanup_errors=True) as tmp:
        if "app" in chosen:
            shoot_app(camera, args.scenes, args.steps, Path(tmp))
        if "sentences" in chosen:
            shoot_sentences(camera, args.scenes, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
