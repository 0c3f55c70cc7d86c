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
from typing import Any

APP_ID = "lotlip-search"


def parse_args(argv: Sequence[str], *, exit_on_error: bool = True) -> argparse.Namespace:
    """Command-line options (Qt's own options are left for QApplication).

    The same parser checks the arguments a second launch hands over (``exit_on_error``
    False: a bad one raises instead of ending the app).
    """
    parser = argparse.ArgumentParser(
        prog="lotlip-search-gui",
        description="Find photos from paragraph-long descriptions.",
        exit_on_error=exit_on_error,
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


def library_location(args: argparse.Namespace, configured: str | None) -> Path:
    """The library folder this launch is about (``--library``, the settings, or the default)."""
    from app.library.library import default_library_dir

    chosen = args.library or configured
    return Path(os.path.abspath(Path(chosen).expanduser())) if chosen else default_library_dir()


def receive_arguments(window: Any, argv: list[str]) -> bool:
    """A later launch's command line, checked like our own: raise the window, search by an
    example image if one was named. Returns false for arguments that do not parse."""
    from PySide6.QtCore import Qt

    try:
        args = parse_args(argv, exit_on_error=False)
    except (argparse.ArgumentError, SystemExit, ValueError) as exc:
        logging.getLogger(__name__).warning("ignored arguments from another launch: %s", exc)
        return False
    window.setWindowState(window.windowState() & ~Qt.WindowState.WindowMinimized)
    window.show()
    window.raise_()
    window.activateWindow()
    search_first_image(window, args)
    return True


def search_first_image(window: Any, args: argparse.Namespace) -> None:
    """Search by the first of the named images that is a file (if any)."""
    images = [Path(p) for p in args.images if Path(p).is_file()]
    if images:
        window.search_like(images[0])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app; returns the exit code (or ends the process, see :func:`end_process`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG
        if args.debug or os.environ.get("LOTLIP_SEARCH_DEBUG")
        else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from app.gui.platform_check import platform_problem

    problem = platform_problem()
    if problem:  # instead of Qt's abort and its paragraph about plugins
        print(problem, file=sys.stderr)
        return 1
    tune_interpreter()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from app.gui.config import GuiSettings
    from app.gui.icons import app_icon
    from app.gui.single_instance import claim, server_name
    from app.gui.theme import apply_theme

    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    assert isinstance(app, QApplication)
    app.setApplicationName("LoTLIP Search")
    app.setOrganizationName(APP_ID)
    app.setDesktopFileName(APP_ID)

    settings = GuiSettings()
    library_dir = library_location(args, settings.library_dir)
    server, handed_over = claim(server_name(library_dir), argv, app)
    if handed_over:
        print("LoTLIP Search is already running for this library; it has your request.")
        return 0

    app.setWindowIcon(app_icon())
    apply_theme(app)
    from app.gui.main_window import MainWindow
    from app.gui.session import Session

    try:
        session = Session(library_dir)
    except Exception as exc:  # a broken or too-new library: say so instead of a traceback
        logging.getLogger(__name__).exception("cannot open the library")
        QMessageBox.critical(
            None,
            "LoTLIP Search",
            f"The photo library at {library_dir} cannot be opened:\n\n{exc}",
        )
        return 1
    window = MainWindow(session, settings)
    window.show()
    if server is not None:
        server.argumentsReceived.connect(lambda received: receive_arguments(window, received))
    search_first_image(window, args)

    # Ctrl+C in the terminal closes the window cleanly (Python handlers need the loop to wake).
    signal.signal(signal.SIGINT, lambda *_: window.close())
    signal.signal(signal.SIGTERM, lambda *_: window.close())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    code = int(app.exec())
    if server is not None:
        server.close()
    settings.sync()  # the process ends without destructors
    return end_process(code, session)


def end_process(code: int, session: Any) -> int:
    """Leave at once: Quit must end the app within a second.

    The window's close already stopped the background work at a safe point or shut the
    library so that leftover threads cannot write (see ``Session.shutdown``). What remains
    (a batch being embedded, a model being loaded) is dropped by ending the process here
    instead of waiting for it and for the interpreter's slow teardown of torch; the next start
    resumes the indexing.
    """
    session.shutdown(0)  # no-op when the window did it; closes the library otherwise
    if session.leftover_work():
        logging.getLogger(__name__).info("quitting with %s still running", session.leftover_work())
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
