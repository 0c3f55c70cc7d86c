"""``lotlip-search-gui`` / ``python -m app``: start the desktop app.

The window appears before any heavy import: ``torch`` and the model load in a worker thread
while the status bar says "Loading model…".
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

APP_ID = "lotlip-search"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options (Qt's own options are left for QApplication)."""
    parser = argparse.ArgumentParser(
        prog="lotlip-search-gui", description="Find photos from paragraph-long descriptions."
    )
    parser.add_argument("--library", metavar="DIR", help="library folder (default: the usual one)")
    parser.add_argument("--debug", action="store_true", help="log debug messages to stderr")
    parser.add_argument("images", nargs="*", help="an image to search by example")
    args, _unknown = parser.parse_known_args(list(argv))
    return args


GIL_SWITCH_INTERVAL_S = 0.001


def tune_interpreter() -> None:
    """Hand the GIL around every millisecond (Python's default is 5 ms).

    Indexing and fine-tuning run Python code in worker threads; with the default interval the
    event loop may wait several 5 ms turns for the GIL behind them. A shorter interval keeps
    the window's worst-case reaction time low at a negligible cost in throughput.
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG
        if args.debug or os.environ.get("LOTLIP_SEARCH_DEBUG")
        else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    tune_interpreter()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from app.gui.config import GuiSettings
    from app.gui.icons import app_icon
    from app.gui.theme import apply_theme

    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    assert isinstance(app, QApplication)
    app.setApplicationName("LoTLIP Search")
    app.setOrganizationName(APP_ID)
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(app_icon())
    apply_theme(app)

    settings = GuiSettings()
    library_dir = args.library or settings.library_dir
    from app.gui.main_window import MainWindow
    from app.gui.session import Session

    try:
        session = Session(library_dir)
    except Exception as exc:  # a broken or too-new library: say so instead of a traceback
        logging.getLogger(__name__).exception("cannot open the library")
        QMessageBox.critical(
            None,
            "LoTLIP Search",
            f"The photo library{f' at {library_dir}' if library_dir else ''} cannot be opened:"
            f"\n\n{exc}",
        )
        return 1
    window = MainWindow(session, settings)
    window.show()
    images = [Path(p) for p in args.images if Path(p).is_file()]
    if images:
        window.search_like(images[0])

    # Ctrl+C in the terminal closes the window cleanly (Python handlers need the loop to wake).
    signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
