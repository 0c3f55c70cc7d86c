"""Captions attached to photos, for fine-tuning (the ``captions`` table of the library).

:class:`CaptionStore` is part of :class:`app.library.store.Store` (mixed in), so callers write
``store.add_caption(...)``; it lives here to keep the store module about folders, images and
vectors. No path is bound here, so sqlite-utils does all of it (``insert``, ``rows_where``,
``update``, ``delete``), under the store's lock and write transaction.

Between the library and ``training`` (imported when called, so the store stays torch-free):
:func:`import_captions` attaches the captions of a manifest (JSONL/CSV) or a folder of sidecars
to the matching photos; :func:`caption_records` turns the library's captions into
``training.data.CaptionedImage`` records for :func:`training.finetune.finetune`. Kinds:
``short`` (one line), ``long`` (a paragraph), ``user`` (written in the app: a paragraph whose
first sentence doubles as the short caption).
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
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


@dataclass
class CaptionImportReport:
    """What an import did."""

    records: int = 0
    matched: int = 0
    added: int = 0
    duplicates: int = 0
    unmatched: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def _image_id(store: Any, path: Path) -> int | None:
    for candidate in (os.path.abspath(path), os.path.realpath(path)):
        found = store.image_id(candidate)
        if found is not None:
            return int(found)
    return None


def import_captions(store: Any, source: Path) -> CaptionImportReport:
    """Attach the captions in ``source`` to the library photos they describe.

    Photos are matched by path; captions already present are not added twice. Photos not in the
    library are listed in ``unmatched`` (index their folder first).
    """
    from training.data import SkipStats
    from training.finetune import read_caption_records

    stats = SkipStats(f"captions {source.name}")
    records = read_caption_records(source, stats, check_images=False)
    report = CaptionImportReport(records=len(records), skipped=stats.as_dict())
    for record in records:
        if not isinstance(record.image, Path):
            continue
        image_id = _image_id(store, record.image)
        if image_id is None:
            report.unmatched.append(str(record.image))
            continue
        report.matched += 1
        existing = {(c.kind, c.text) for c in store.captions(image_id)}
        wanted = [("short", record.short)] + [("long", text) for text in record.long]
        for kind, text in wanted:
            text = text.strip()
            if not text or (kind, text) in existing:
                report.duplicates += 1
                continue
            store.add_caption(image_id, text, kind)
            existing.add((kind, text))
            report.added += 1
    return report


def caption_records(store: Any) -> list[Any]:
    """``CaptionedImage`` records for every library photo that has captions (by image id)."""
    from training.data import CaptionedImage, first_sentence

    by_image: dict[int, list[Any]] = defaultdict(list)
    for caption in store.captions():
        by_image[caption.image_id].append(caption)
    if not by_image:
        return []
    rows = {row.id: row for row in store.rows_for(sorted(by_image))}
    records = []
    for image_id in sorted(by_image):
        row = rows.get(image_id)
        if row is None or not os.path.isfile(row.path):
            continue
        captions = by_image[image_id]
        shorts = [c.text for c in captions if c.kind == "short"]
        longs = [c.text for c in captions if c.kind in ("long", "user")]
        short = shorts[0] if shorts else first_sentence(longs[0]) if longs else ""
        if not short:
            continue
        records.append(CaptionedImage(Path(row.path), short, longs or [short], key=str(image_id)))
    return records


def captioned_count(store: Any) -> int:
    """How many photos have at least one caption."""
    return len({c.image_id for c in store.captions()})
