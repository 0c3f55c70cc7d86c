"""What every command shares: exit codes, output helpers, progress bars, Ctrl-C handling."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from tqdm import tqdm

if TYPE_CHECKING:  # the heavy modules (torch) load only when a command needs them
    from app.library.indexer import IndexProgress
    from app.library.library import Library
    from app.library.models import ModelChoice

PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16", "int8")
"""``--precision`` values; equal to ``lotlip.precision.PRECISION_CHOICES`` (kept here so the
parser needs no torch import)."""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_NO_MODEL = 4

EXIT_CODES_HELP = f"""\
exit status:
  {EXIT_OK}  success (files that could not be read are reported, not fatal)
  {EXIT_ERROR}  error (unreadable library, failed download, bad checkpoint, ...)
  {EXIT_USAGE}  usage error (unknown option, malformed date, missing argument)
  {EXIT_CANCELLED}  cancelled or interrupted (Ctrl-C); run the same command again to resume
  {EXIT_NO_MODEL}  the model is not installed (see `lotlip-search model --help`)"""


class UsageError(Exception):
    """A problem with the command line that argparse cannot see (exit status 2)."""


def say(*parts: object, file: TextIO | None = None) -> None:
    """Print a line for people (stdout unless ``file``)."""
    print(*parts, file=file or sys.stdout)


def warn(message: str) -> None:
    """Print a warning on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout.

    Readable UTF-8, except when a path is not valid UTF-8: then the whole document is ASCII
    with ``\\udcNN`` escapes, which ``json.loads`` + ``os.fsencode`` turn back into the bytes.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, indent=2, ensure_ascii=True, default=str)
    print(text)


def show_path(path: str) -> str:
    """A path for a terminal: undecodable bytes shown as ``\\xNN`` instead of failing."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class ProgressBars:
    """Turns :class:`IndexProgress` callbacks into tqdm bars on stderr (only on a terminal)."""

    LABELS: ClassVar[dict[str, str]] = {"scanning": "scanning", "embedding": "indexing"}

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: tqdm | None = None
        self._phase: str | None = None

    def __call__(self, progress: IndexProgress) -> None:
        if not self.enabled:
            return
        if progress.phase != self._phase:
            self.close()
            self._phase = progress.phase
            label = self.LABELS.get(progress.phase)
            if label is None:
                return
            self._bar = tqdm(
                desc=label,
                total=progress.total or None,
                unit="file",
                file=sys.stderr,
                dynamic_ncols=True,
                leave=False,
            )
        bar = self._bar
        if bar is None:
            return
        if progress.total and bar.total != progress.total:
            bar.total = progress.total
        bar.n = progress.done
        if progress.failed:
            bar.set_postfix_str(f"{progress.failed} failed", refresh=False)
        bar.refresh()

    def close(self) -> None:
        """Remove the current bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def graceful_interrupts() -> Iterator[threading.Event]:
    """Turn the first Ctrl-C (or SIGTERM) into a cancel request; the second one interrupts.

    Yields an event that is set once a stop was requested; pass ``event.is_set`` as the
    indexer's ``cancel`` callback so it finishes the batch at hand and saves its index.
    """
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print(
            "\nstopping after the current batch (press Ctrl-C again to stop at once)...",
            file=sys.stderr,
        )

    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signals alone
            break
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Context:
    """The global options and the library, opened on first use (``--help`` opens nothing)."""

    def __init__(
        self,
        library: str | None,
        model: str | None,
        device: str,
        verbose: bool,
        precision: str = "auto",
    ) -> None:
        self.library_dir = library
        self.model = model
        self.device = device
        self.precision = precision
        self.verbose = verbose
        self._lib: Library | None = None

    @property
    def lib(self) -> Library:
        """The open library (``--library``, ``$LOTLIP_SEARCH_LIBRARY`` or the default)."""
        if self._lib is None:
            from app.library.library import Library

            self._lib = Library.open(self.library_dir)
        return self._lib

    def choose_model(self) -> ModelChoice:
        """Load the model to use; print the bundled-model warning on stderr when it applies."""
        from app.library.models import choose_model

        choice = choose_model(self.lib, self.model, self.device, self.precision)
        if choice.warning:
            warn(choice.warning)
        return choice

    def close(self) -> None:
        """Close the library if it was opened."""
        if self._lib is not None:
            self._lib.close()
            self._lib = None
