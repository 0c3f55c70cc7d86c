"""Screenshots of the real app for the README: main window, wizard, fine-tune dialog, ...

Runs the actual widgets on an X display: under ``xvfb-run`` when no ``$DISPLAY`` is set
(``apt-get install xvfb``). A temporary library is filled with generated scenes, indexed
through the wizard, searched with a paragraph, and a fine-tune runs on the scenes' captions.

    python bench/screenshots.py                   # writes docs/screenshots/*.png
    python bench/screenshots.py --out /tmp/shots --scenes 60 --steps 40

The model is ``--model``, else the bundled ``lotlip-tiny``.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZE = (1280, 820)


def process_until(app: Any, condition: Any, timeout: float = 600.0, settle: float = 0.0) -> None:
    """Run Qt's event loop until ``condition()`` holds, then ``settle`` seconds more."""
    from PySide6.QtCore import QEventLoop

    deadline = time.monotonic() + timeout
    while not condition():
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {condition}")
    end = time.monotonic() + settle
    while time.monotonic() < end:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)


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


def write_gallery(folder: Path, count: int) -> list[int]:
    """Held-out scenes (320 px PNG + caption sidecars), plus one damaged file."""
    from app.library.demo_gallery import write_gallery as write

    seeds = write(folder, count, 320)
    (folder / "IMG_2041.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64)
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--model", default="lotlip-tiny", help="model name (default: bundled)")
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--steps", type=int, default=40, help="fine-tune steps")
    args = parser.parse_args(argv)
    ensure_display([__file__, *(argv if argv is not None else sys.argv[1:])])

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lotlip-shots-"))
    os.environ["LOTLIP_SEARCH_LIBRARY"] = str(work / "library")
    os.environ["LOTLIP_SEARCH_GUI_CONFIG"] = str(work / "gui.ini")
    os.environ.setdefault("LOTLIP_MODELS_DIR", str(work / "models"))  # only the bundled model
    gallery = work / "Pictures" / "Scenes"
    seeds = write_gallery(gallery, args.scenes)
    model = args.model

    from PySide6.QtWidgets import QApplication, QWidget

    from app.gui.captions import start_caption_import
    from app.gui.config import GuiSettings
    from app.gui.icons import app_icon
    from app.gui.main import tune_interpreter
    from app.gui.main_window import MainWindow
    from app.gui.session import Session
    from app.gui.theme import apply_theme
    from training.synthetic import make_scene

    tune_interpreter()
    app = QApplication([sys.argv[0]])
    app.setApplicationName("LoTLIP Search")
    app.setWindowIcon(app_icon())
    apply_theme(app)

    wait = functools.partial(process_until, app)

    def shot(widget: QWidget, name: str) -> None:
        wait(lambda: True, settle=0.4)
        path = out / f"{name}.png"
        widget.grab().save(str(path))
        print(f"wrote {path}")

    session = Session()
    session.set_setting("model", model)
    session.set_setting("device", "cpu")
    window = MainWindow(session, GuiSettings())
    window.resize(*SIZE)
    window.show()
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
    seed = seeds[len(seeds) // 3]
    paragraph = make_scene(seed).long_captions[1]
    wait(lambda: session.choice is not None and session.choice.name == model)
    window.query.set_text(paragraph)
    window.counter.update_count()
    window.search_text(paragraph)
    wait(lambda: window.outcome is not None and window.outcome.request.mode == "text")
    window.view.setFocus()
    wait(lambda: window.thumbnails.pending_count() == 0 and window.preview.image.has_image(),
         settle=0.5)  # fmt: skip
    # (main-window.png is a real screenshot of the whole screen: bench/desktop_shots.py)

    # fine-tune on the scenes' own captions (as if the user had described them)
    task = start_caption_import(session, gallery, show_result=False)
    wait(task.isFinished)
    session.refresh_info()
    dialog = window.open_finetune()
    dialog.resize(780, 1040)  # room for every choice and the results, no scrolling
    wait(dialog.start_button.isEnabled)
    dialog.start(steps=args.steps)
    wait(lambda: dialog.task is None, timeout=1800, settle=0.3)
    shot(dialog, "finetune")
    dialog.close()

    models = window.open_models()
    models.resize(860, 420)
    wait(lambda: models.panel.loaded, settle=0.3)
    shot(models, "models")
    models.close()

    window.close()
    wait(lambda: not window.isVisible(), timeout=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
