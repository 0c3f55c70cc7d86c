"""What every command shares: exit codes, output helpers, progress bars, Ctrl-C handling."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
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
  {EXIT_OK}  success (files that could not be read are reported, not fatal; also when the
     reader of the output went away, as with `| head`)
  {EXIT_ERROR}  error (no or damaged library, read-only library for a writing command, full
     disk, failed download, bad checkpoint, ...)
  {EXIT_USAGE}  usage error (unknown option, malformed date, bad value, missing argument)
  {EXIT_CANCELLED}  cancelled or interrupted (Ctrl-C); run the same command again to resume
  {EXIT_NO_MODEL}  the model is not installed (see `lotlip-search model --help`)
every failure prints one "error: ..." line on stderr; with --json also
{{"error": {{"message": ..., "exit_status": N}}}} on stdout"""


class UsageError(Exception):
    """A problem with the command line (exit status 2); ``usage``: the parser's usage line."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage


class CommandError(Exception):
    """A failure explained to the user in one line, with its exit status (default 1)."""

    def __init__(self, message: str, status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.status = status


ACCESS_READ = "read"  # the library must exist; opened read-only when it is not writable
ACCESS_WRITE = "write"  # the library must exist and be writable
ACCESS_CREATE = "create"  # created in a new or empty folder; must be writable
ACCESS_INIT = "init"  # created in any folder (``lotlip-search init``)
ACCESS_OPTIONAL = "optional"  # used when it exists (``ctx.existing_lib``), never created


def _is_instance(exc: BaseException, *names: str) -> bool:
    """Whether ``exc`` is one of the classes ``names`` (dotted) whose module is already
    imported: mapping an error must not load torch."""
    for dotted in names:
        module, _, name = dotted.rpartition(".")
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


NEARLY_FULL_BYTES = 1 << 20
"""Free space under which SQLite's bare "disk I/O error" is taken to mean a full disk."""


def _io_error_on_full_disk(exc: BaseException, db: Path) -> bool:
    """SQLite reports some writes that fail for want of space (its -shm map, for one) as a
    plain I/O error; tell the user the real cause when the disk is as good as full."""
    import shutil

    if not getattr(exc, "sqlite_errorname", "").startswith("SQLITE_IOERR"):
        return False
    folder = next((p for p in (db.parent, *db.parents) if p.exists()), None)
    try:
        return folder is not None and shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def describe_error(exc: BaseException, library: Path) -> tuple[str, int]:
    """A one-line message and the exit status for an exception that ended a command.

    Names the file and the cause: a full disk, a read-only or damaged library, a missing
    model; anything unexpected keeps its type name.
    """
    import errno
    import sqlite3

    from app.library.store import StoreError, damaged_message, is_damage

    db = library / "library.db"
    if isinstance(exc, CommandError):
        return str(exc), exc.status
    if isinstance(exc, UsageError) or _is_instance(exc, "lotlip.precision.PrecisionError"):
        return str(exc), EXIT_USAGE
    if _is_instance(exc, "lotlip.registry.ModelNotFoundError"):
        return str(exc), EXIT_NO_MODEL
    if isinstance(exc, StoreError) or _is_instance(
        exc,
        "app.library.library.LibraryBusyError",
        "lotlip.devices.DeviceUnavailableError",
        "lotlip.transforms.ImageLoadError",
        "app.library.models.LibrarySettingError",
    ):
        return str(exc), EXIT_ERROR
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "")
        if is_damage(exc):
            return damaged_message(db, str(exc)), EXIT_ERROR
        if name == "SQLITE_FULL" or "disk is full" in str(exc) or _io_error_on_full_disk(exc, db):
            return disk_full_message(db), EXIT_ERROR
        if name.startswith("SQLITE_READONLY") or "readonly database" in str(exc):
            return f"cannot write to {db}: it is read-only ({exc})", EXIT_ERROR
        return f"{db}: {exc}", EXIT_ERROR
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else library
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return disk_full_message(where), EXIT_ERROR
        if exc.errno is not None and exc.strerror:
            return f"{show_path(os.fsdecode(where))}: {exc.strerror}", EXIT_ERROR
        return str(exc), EXIT_ERROR
    return f"{type(exc).__name__}: {exc} (run with -v for details)", EXIT_ERROR


def disk_full_message(path: str | os.PathLike[str]) -> str:
    """The message for a full disk (or quota) while writing ``path``."""
    return (
        f"no space left on the disk holding {show_path(os.fsdecode(path))}: free some space and "
        "run the command again (everything written before is kept)"
    )


def error_json(message: str, status: int) -> dict[str, object]:
    """The ``--json`` shape of a failure: ``{"error": {"message": ..., "exit_status": ...}}``."""
    return {"error": {"message": message, "exit_status": status}}


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


LIBRARY_PARTS = ("ann", "demo", "thumbnails", "write.lock")
"""What a library folder holds besides ``library.db`` (see :mod:`app.library.library`)."""


def _library_leftover(name: str) -> bool:
    """True for what a library leaves behind, e.g. after its damaged database was moved aside."""
    return name in LIBRARY_PARTS or name.lstrip(".").startswith("library.db")


@dataclass
class Context:
    """The global options and the library, opened on first use (``--help`` opens nothing).

    ``access`` (one of the ``ACCESS_*`` values) says what the command needs of the library:
    only ``index``, ``demo`` and ``init`` create one, so a mistyped ``--library`` never leaves
    a new ``library.db`` behind. ``device`` and ``precision`` None: the library's settings.
    """

    library_dir: str | None
    model: str | None
    device: str | None
    verbose: bool
    access: str = ACCESS_READ
    command: str = ""
    precision: str | None = None
    _lib: Library | None = field(default=None, init=False, repr=False)

    @property
    def directory(self) -> Path:
        """The library folder (``--library``, ``$LOTLIP_SEARCH_LIBRARY`` or the default)."""
        from app.library.library import default_library_dir

        chosen = Path(self.library_dir).expanduser() if self.library_dir else default_library_dir()
        return Path(os.path.abspath(chosen))

    @property
    def lib(self) -> Library:
        """The open library; raises :class:`CommandError` when there is none to open."""
        if self._lib is None:
            self._lib = self._open()
        return self._lib

    @property
    def existing_lib(self) -> Library | None:
        """The library if there is one at the chosen place, else ``None`` (nothing created)."""
        from app.library.library import DB_FILE

        if self._lib is None:
            directory = self.directory
            if not directory.exists():
                return None
            if directory.is_dir() and not (directory / DB_FILE).is_file():
                return None
        return self.lib  # an existing library, or the error for a file

    def _open(self) -> Library:
        from app.library.library import DB_FILE, Library
        from app.library.store import DatabaseNotFoundError

        directory = self.directory
        if directory.exists() and not directory.is_dir():
            raise UsageError(
                f"the library must be a folder, but {show_path(str(directory))} is a file "
                "(see --library)"
            )
        create = self.access in (ACCESS_CREATE, ACCESS_INIT)
        if (
            self.access == ACCESS_CREATE
            and directory.is_dir()
            and not (directory / DB_FILE).exists()
            and any(not _library_leftover(entry.name) for entry in directory.iterdir())
        ):
            raise CommandError(
                f"{show_path(str(directory))} is not a library: it holds other files but no "
                f"{DB_FILE}. Choose a new or empty folder with --library, or make this one a "
                f'library with: lotlip-search --library "{directory}" init'
            )
        try:
            lib = Library.open(directory, create=create)
        except DatabaseNotFoundError:
            raise CommandError(
                f"no library at {show_path(str(directory))} (there is no {DB_FILE}); "
                "create one by indexing a folder: lotlip-search index FOLDER"
                + (" (or check the --library path)" if self.library_dir else "")
            ) from None
        if lib.store.read_only and self.access != ACCESS_READ:
            lib.close()
            raise CommandError(
                f"the library {show_path(str(directory))} is read-only: `{self.command}` needs "
                "to write to it. Copy it to a writable place and use --library, or run "
                "read-only commands (search, status, errors)"
            )
        return lib

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
