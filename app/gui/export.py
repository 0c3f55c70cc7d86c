"""Copy photos out of the library into a folder the user chose (no Qt; runs in a worker)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ExportReport:
    """What an export did: files written, and files that could not be copied (with why)."""

    copied: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def free_name(folder: Path, name: str, taken: set[str]) -> Path:
    """``folder/name``, or ``folder/stem (2).ext`` ... when that name exists or is taken."""
    stem, ext = os.path.splitext(name)
    candidate, n = name, 1
    while candidate in taken or (folder / candidate).exists():
        n += 1
        candidate = f"{stem} ({n}){ext}"
    taken.add(candidate)
    return folder / candidate


def export_files(
    paths: Sequence[str],
    folder: str | os.PathLike[str],
    cancelled: Callable[[], bool] = lambda: False,
) -> ExportReport:
    """Copy ``paths`` into ``folder`` with their dates; never overwrites (see :func:`free_name`)."""
    target = Path(folder)
    if not target.is_dir():
        raise NotADirectoryError(f"{target} is not a folder")
    report = ExportReport()
    taken: set[str] = set()
    for path in paths:
        if cancelled():
            break
        destination = free_name(target, os.path.basename(path), taken)
        try:
            shutil.copy2(path, destination)
        except OSError as exc:
            report.failed.append((path, exc.strerror or str(exc)))
        else:
            report.copied.append(destination)
    return report
