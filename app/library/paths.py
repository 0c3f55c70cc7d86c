"""The one rule for "is this path inside that folder", shared by the scanner, indexer and library.

The check is *lexical*: it compares the spelling of two absolute paths, component by
component, and never touches the disk. Callers that must not be fooled by symlinks (the
scanner, before following a link) resolve both sides with ``os.path.realpath`` first.

* ``/photos/2020`` is inside ``/photos`` and inside itself; ``/photos2020`` is not inside
  ``/photos`` (a name that merely starts the same is another folder).
* Trailing separators do not matter (``/photos/`` is ``/photos``), and ``/`` holds everything.
* Case follows the platform (``os.path.normcase``): exact on POSIX, folded on Windows.
* ``str`` (with ``surrogateescape`` for bytes that are not UTF-8) and ``bytes`` both work, as
  long as both arguments have the same type.

Queries that must run inside SQLite (the store's ``under`` filters, forgetting a subtree) use
the same rule as an index range on the path bytes: ``app.library.store._under_sql``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import AnyStr, Protocol, TypeVar


class _HasPath(Protocol):
    @property
    def path(self) -> str: ...


F = TypeVar("F", bound=_HasPath | str)


def absolute(path: str | os.PathLike[str]) -> str:
    """``path`` as the library spells it: absolute text (not resolved)."""
    return os.path.abspath(os.fsdecode(os.fspath(path)))


def is_within(path: AnyStr, folder: AnyStr) -> bool:
    """True when ``path`` is ``folder`` or lies below it (both absolute, not resolved)."""
    path = os.path.normcase(path)
    folder = os.path.normcase(folder)
    seps = os.sep + (os.altsep or "")
    if isinstance(path, bytes):
        seps = os.fsencode(seps)  # type: ignore[assignment]
    stripped = folder.rstrip(seps)
    if path.rstrip(seps) == stripped:
        return True
    return path.startswith(stripped + seps[:1])


def is_within_any(path: AnyStr, folders: Iterable[AnyStr]) -> bool:
    """True when ``path`` is inside (or is) at least one of ``folders``."""
    return any(is_within(path, folder) for folder in folders)


def innermost(path: str, folders: Iterable[F]) -> F | None:
    """Of ``folders`` (paths, or anything with a ``path``), the one that holds ``path`` most
    closely."""
    holders = [folder for folder in folders if is_within(path, _spelling(folder))]
    return max(holders, key=lambda folder: len(_spelling(folder)), default=None)


def _spelling(folder: _HasPath | str) -> str:
    return folder if isinstance(folder, str) else folder.path
