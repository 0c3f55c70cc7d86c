"""Put photos into a folder the user chose: as copies, as symbolic links, or as a list of their
paths. Used by ``saved run --export`` and the app's export actions (no Qt; the app runs it in a
worker).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

EXPORT_MODES = ("copies", "links", "list")


@dataclass
class ExportReport:
    """What an export did: files written, how many photos they hold (a list holds them all),
    and photos that could not be put there (with why)."""

    written: list[Path] = field(default_factory=list)
    photos: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def free_name(folder: Path, name: str, taken: set[str]) -> Path:
    """``folder/name``, or ``name`` with ``-2``, ``-3``, ... before the suffix when that name
    exists (a dangling link too) or is ``taken``."""
    stem, suffix = os.path.splitext(name)
    candidate, n = name, 1
    while candidate in taken or os.path.lexists(folder / candidate):
        n += 1
        candidate = f"{stem}-{n}{suffix}"
    taken.add(candidate)
    return folder / candidate


def export_photos(
    paths: Iterable[str],
    folder: str | os.PathLike[str],
    mode: str = "copies",
    cancelled: Callable[[], bool] = lambda: False,
) -> ExportReport:
    """Put ``paths`` into ``folder`` (made when missing) as ``copies`` (with their dates) or
    symbolic ``links``, or write them, in order, to ``folder``/``results.txt`` (``list``).
    Existing files are never overwritten (see :func:`free_name`). A photo that cannot be put
    there is reported in ``failed`` and the others still go.

    Raises ``ValueError`` for an unknown mode, ``NotADirectoryError`` when ``folder`` is a file,
    and ``OSError`` when the folder or the list cannot be written.
    """
    if mode not in EXPORT_MODES:
        raise ValueError(f"unknown export mode {mode!r} (use one of {', '.join(EXPORT_MODES)})")
    out = Path(folder)
    if os.path.lexists(out) and not out.is_dir():
        raise NotADirectoryError(f"{out} is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    if mode == "list":
        target = free_name(out, "results.txt", set())
        listed = list(paths)
        with open(target, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.writelines(p + "\n" for p in listed)
        report.written.append(target)
        report.photos = len(listed)
        return report
    taken: set[str] = set()
    for path in paths:
        if cancelled():
            break
        target = free_name(out, os.path.basename(path), taken)
        try:
            if mode == "copies":
                shutil.copy2(path, target)
            else:
                os.symlink(os.path.abspath(path), target)
        except OSError as exc:
            report.failed.append((path, exc.strerror or str(exc)))
        else:
            report.written.append(target)
            report.photos += 1
    return report
