"""What the Folders panel shows and does, as plain functions over an ``app.library`` Library.

This is the GUI's one adapter to the library's folder bookkeeping (no Qt here; the panel calls
these from worker threads). Counts come from :meth:`Library.folder_status`; the photos waiting
for the next index run are planned as an index run would plan them
(:func:`app.library.scanner.plan_folders`, which the wizard's count uses too).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.library.library import FolderStatus, Library
    from app.library.store import Folder


def pending_counts(
    library: Library,
    model: str | None,
    folders: Sequence[Folder] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, int]:
    """Per root folder: how many files an index run with ``model`` would embed now
    (:func:`app.library.scanner.plan_folders`; empty when cancelled).

    Offline folders are left out. ``model`` None counts only files the library does not know
    at all.
    """
    from app.library.scanner import plan_folders

    chosen = folders if folders is not None else library.folders()
    roots = [f for f in chosen if os.path.isdir(f.path)]
    plan = plan_folders(library, roots, model, cancel=cancel)
    if plan.stats.cancelled:
        return {}
    counts = {root.path: 0 for root in roots}
    for info in plan.changes.to_embed():  # each file belongs to its innermost root
        counts[info.root] += 1
    return counts


def folder_statuses(
    library: Library, model: str | None = None, *, cancel: Callable[[], bool] | None = None
) -> list[FolderStatus]:
    """Every library folder with its counts and whether it is reachable now.

    ``pending`` counts what the next index run would embed (photos a stopped run left and
    photos that arrived since); None for an offline folder.
    """
    statuses = library.folder_status(model=model)
    online = {s.path for s in statuses if s.online}
    scanned = [f for f in library.folders() if f.path in online]
    counts = pending_counts(library, model, scanned, cancel)
    return [replace(s, pending=counts.get(s.path) if s.online else None) for s in statuses]


def roots_of(library: Library, paths: Iterable[str]) -> list[str]:
    """The library folders holding ``paths`` (each once, in order)."""
    roots: list[str] = []
    for path in paths:
        folder = library.folder_for(path)
        if folder is not None and folder.path not in roots:
            roots.append(folder.path)
    return roots


def exclude_subfolder(library: Library, subfolder: str) -> int:
    """Stop indexing ``subfolder`` of a library folder and drop its photos from the library.

    Raises ValueError when it is not strictly inside a library folder. Returns how many photos
    were removed.
    """
    text = os.path.abspath(subfolder)
    root = library.folder_for(text)
    if root is None or root.path == text:
        raise ValueError(f"{text} is not a subfolder of a library folder")
    return library.forget(text)  # forget inside a root = remove + exclude pattern
