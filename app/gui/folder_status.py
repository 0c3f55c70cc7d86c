"""What the Folders panel shows and does, as plain functions over an ``app.library`` Library.

This is the GUI's one adapter to the library's folder bookkeeping (no Qt here; the panel calls
these from worker threads). Where the library offers a call of its own (``folder_status``,
``pending_counts``), it is used; otherwise the same answer is put together from the public
scanner and store API, exactly as an index run would plan it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.library.library import Library
    from app.library.store import Failure, Folder


@dataclass(frozen=True)
class FolderStatus:
    """One library folder as the panel lists it.

    ``pending``: photos on disk that the next index run would (re)embed; ``None`` when not
    counted (the folder is offline, or counting was skipped).
    """

    path: str
    photos: int
    failures: int
    online: bool
    pending: int | None = None
    excludes: tuple[str, ...] = ()


def _is_online(path: str) -> bool:
    return os.path.isdir(path)


def pending_counts(
    library: Library,
    model: str | None,
    folders: Sequence[Folder] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, int]:
    """Per root folder: how many files an index run with ``model`` would embed now.

    Walks the folders (stat and a few header bytes per file, no decoding). Offline folders are
    left out. ``model`` None counts only files the library does not know at all.
    """
    native = getattr(library, "pending_counts", None)
    if callable(native):
        return dict(native(model=model, folders=folders))
    from app.library.scanner import Scanner, plan_changes

    store = library.store
    chosen = folders if folders is not None else library.folders()
    roots = [f for f in chosen if _is_online(f.path)]
    scanner = Scanner(roots, skip_paths=[library.ann_dir, library.thumbnails_dir], cancel=cancel)
    by_root: dict[str, list[Any]] = {root.path: [] for root in roots}
    for info in scanner:  # each file belongs to its innermost root
        by_root.setdefault(info.root, []).append(info)
    if scanner.stats.cancelled:
        return {}
    counts: dict[str, int] = {}
    for root in roots:
        known = store.known_files(root, model=model)
        failures = {f.path: f for f in store.failures(root)}
        changes = plan_changes(
            by_root[root.path], known, failures=failures, incomplete=scanner.incomplete_paths
        )
        counts[root.path] = len(changes.to_embed())
    return counts


def folder_statuses(
    library: Library,
    model: str | None = None,
    *,
    count_pending: bool = True,
    cancel: Callable[[], bool] | None = None,
) -> list[FolderStatus]:
    """Every library folder with its counts and whether it is reachable now."""
    native = getattr(library, "folder_status", None)
    if callable(native):
        statuses = [_from_native(item) for item in native(model=model)]
        if not count_pending:
            return statuses
        # the library counts what a stopped run left; the panel also counts photos that
        # arrived since, as the next index run would plan them
        online = {s.path for s in statuses if s.online}
        scanned = [f for f in library.folders() if f.path in online]
        counts = pending_counts(library, model, scanned, cancel)
        return [replace(s, pending=counts.get(s.path) if s.online else None) for s in statuses]
    store = library.store
    folders = library.folders()
    pending = pending_counts(library, model, folders, cancel) if count_pending else {}
    result = []
    for folder in folders:
        online = _is_online(folder.path)
        result.append(
            FolderStatus(
                path=folder.path,
                photos=len(store.image_ids(folder)),
                failures=len(store.failures(folder)),
                online=online,
                pending=pending.get(folder.path) if online and count_pending else None,
                excludes=tuple(folder.excludes),
            )
        )
    return result


def _from_native(item: Any) -> FolderStatus:
    """Read the library's own status record (attribute names as the disk work names them)."""

    def pick(*names: str, default: Any = None) -> Any:
        for name in names:
            if hasattr(item, name):
                return getattr(item, name)
            if isinstance(item, dict) and name in item:
                return item[name]
        return default

    return FolderStatus(
        path=str(pick("path")),
        photos=int(pick("photos", "images", default=0) or 0),
        failures=int(pick("failures", "failed", default=0) or 0),
        online=bool(pick("online", "exists", default=True)),
        pending=pick("pending"),
        excludes=tuple(pick("excludes", default=()) or ()),
    )


def total_pending(statuses: Iterable[FolderStatus]) -> int:
    """Photos waiting in all folders that were counted."""
    return sum(s.pending or 0 for s in statuses)


def failures(library: Library, folder: str | None = None) -> list[Failure]:
    """Files that could not be read (all, or one folder's), by path."""
    store = library.store
    if folder is None:
        return store.failures()
    return store.failures(folder) if store.get_folder(folder) is not None else []


def clear_failures(library: Library, paths: Iterable[str]) -> int:
    """Forget failure records so the next index run reads those files again."""
    return library.store.clear_failures(list(paths))


def roots_of(library: Library, paths: Iterable[str]) -> list[str]:
    """The library folders holding ``paths`` (each once, in order)."""
    roots: list[str] = []
    for path in paths:
        folder = library.folder_for(path)
        if folder is not None and folder.path not in roots:
            roots.append(folder.path)
    return roots


def forget_folder(library: Library, path: str) -> int:
    """Remove a folder (or a path inside one) from the library, as ``lotlip-search forget``."""
    return library.forget(path)


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
