"""Screenshot of paragraph-aware search for the README: a paragraph with one false sentence,
the sentence strips under the thumbnails, the ✓/✗ list in the preview, a saved search.

    python bench/screenshot_sentences.py          # writes docs/screenshots/sentences.png

Same set-up as ``bench/screenshots.py`` (real widgets on an X display, ``xvfb-run`` when there
is none; generated held-out scenes; the bundled ``lotlip-tiny``), but indexed directly.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_explain import falsify  # noqa: E402
from bench.screenshots import SIZE, ensure_display, process_until, write_gallery  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Index a gallery, search a falsified paragraph in the window, save the picture."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots" / "sentences.png"))
    parser.add_argument("--scenes", type=int, default=60)
    args = parser.parse_args(argv)
    ensure_display([__file__, *(argv if argv is not None else sys.argv[1:])])

    work = Path(tempfile.mkdtemp(prefix="lotlip-shots-"))
    os.environ["LOTLIP_SEARCH_LIBRARY"] = str(work / "library")
    os.environ["LOTLIP_SEARCH_GUI_CONFIG"] = str(work / "gui.ini")
    gallery = work / "Pictures" / "Scenes"
    seeds = write_gallery(gallery, args.scenes)
    (gallery / "IMG_2041.jpg").unlink()

    from PySide6.QtWidgets import QApplication

    import lotlip
    from app.gui.config import GuiSettings
    from app.gui.main_window import MainWindow
    from app.gui.sentences import saved_from_request
    from app.gui.session import Session
    from app.gui.theme import apply_theme
    from app.library.indexer import Indexer
    from app.library.library import Library
    from training.synthetic import make_scene, scene_file_stem

    with Library.open(work / "library") as lib:
        lib.add_folder(gallery)
        Indexer(lib, lotlip.load("lotlip-tiny", device="cpu")).run()

    app = QApplication([sys.argv[0]])
    apply_theme(app)

    wait = functools.partial(process_until, app, timeout=300.0)

    session = Session()
    session.set_setting("model", "lotlip-tiny")
    session.set_setting("device", "cpu")
    window = MainWindow(session, GuiSettings())
    window.resize(SIZE[0] + 200, SIZE[1])
    window.show()
    wait(lambda: session.choice is not None)
    rng = random.Random(3)
    for seed in seeds[5:]:  # a scene whose false sentence changes a colour (clear to see)
        sentences, _, kind = falsify(make_scene(seed), rng)
        if kind == "colour" and len(sentences) <= 6:
            break
    paragraph = ". ".join(sentences) + "."
    window.query.set_text(paragraph)
    window.counter.update_count()
    window.search_text(paragraph)
    wait(lambda: window.outcome is not None and window.outcome.request.mode == "text")
    window.paragraph.saved.save(saved_from_request("scene with a wrong colour", window.request))
    # show the described scene itself: its false sentence is the one marked ✗
    own = str(gallery / f"{scene_file_stem(seed)}.png")
    row = window.results.row_of(own)
    if row >= 0:
        window.view.setCurrentIndex(window.results.index(row))
    window.view.setFocus()
    wait(lambda: window.thumbnails.pending_count() == 0 and window.preview.image.has_image(),
         settle=0.5)  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(out))
    print(f"wrote {out}")
    session.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
