"""Captions attached to photos, for fine-tuning (the ``captions`` table of the library).

:class:`CaptionStore` is part of :class:`app.library.store.Store` (mixed in), so callers write
``store.add_caption(...)``; it lives here to keep the store module about folders, images and
vectors. No path is bound here, so sqlite-utils does all of it (``insert``, ``rows_where``,
``update``, ``delete``), under the store's lock and write transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlite_utils import Database
from sqlite_utils.db import NotFoundError

CAPTION_KINDS = ("short", "long", "user")


@dataclass(frozen=True, slots=True)
class Caption:
    """A caption attached to an image; ``kind`` is ``short``, ``long`` or ``user``."""

    id: int
    image_id: int
    text: str
    kind: str
    created_at: str


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in CAPTION_KINDS:
        raise ValueError(f"caption kind must be one of {CAPTION_KINDS}")


class CaptionStore:
    """The caption methods of :class:`app.library.store.Store`."""

    db: Database
    _lock: threading.RLock
    _write: Callable[[], AbstractContextManager[Any]]  # the Store's write transaction

    def add_caption(self, image_id: int, text: str, kind: str = "user") -> int:
        """Attach a caption to an image; returns the caption id."""
        _check_kind(kind)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._write():
            table = self.db["captions"]
            table.insert({"image_id": image_id, "text": text, "kind": kind, "created_at": created})
            return int(table.last_rowid)  # type: ignore[union-attr]

    def captions(self, image_id: int | None = None, kind: str | None = None) -> list[Caption]:
        """Captions, optionally of one image and/or one kind, by id."""
        wanted = {k: v for k, v in (("image_id", image_id), ("kind", kind)) if v is not None}
        where = " AND ".join(f"{k} = :{k}" for k in wanted) or None
        with self._lock:
            rows: Iterator[dict[str, Any]] = self.db["captions"].rows_where(
                where, wanted, order_by="id"
            )
            return [Caption(**r) for r in rows]

    def update_caption(
        self, caption_id: int, text: str | None = None, kind: str | None = None
    ) -> bool:
        """Change a caption's text and/or kind; true if it exists."""
        _check_kind(kind)
        changes = {k: v for k, v in (("text", text), ("kind", kind)) if v is not None}
        with self._write():
            try:
                self.db["captions"].update(caption_id, changes)
            except NotFoundError:
                return False
            return True

    def delete_caption(self, caption_id: int) -> bool:
        """Delete a caption; true if it existed."""
        with self._write():
            try:
                self.db["captions"].delete(caption_id)
            except NotFoundError:
                return False
            return True
