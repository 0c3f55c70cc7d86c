"""Personal captions between the library and ``training`` (no Qt; runs in worker threads).

* :func:`import_captions` reads a caption file (JSONL/CSV manifest) or a folder of sidecar
  captions with ``training.data`` and attaches them to the matching library photos.
* :func:`caption_records` turns the library's captions into ``training.data.CaptionedImage``
  records for :func:`training.finetune.finetune`.

Caption kinds in the store: ``short`` (one line), ``long`` (a paragraph), ``user`` (written in
the GUI: a paragraph whose first sentence doubles as the short caption).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


def read_caption_source(source: Path) -> tuple[list[Any], dict[str, int]]:
    """Records of a manifest (``.jsonl``/``.csv``) or sidecar folder, and skip counts."""
    from training.data import SkipStats, folder_records, manifest_records

    stats = SkipStats(f"captions {source.name}")
    if source.is_dir():
        records = folder_records(source, stats=stats)
    elif source.suffix.lower() in (".jsonl", ".csv"):
        records = manifest_records(source, stats=stats)
    else:
        raise ValueError(f"{source}: expected a .jsonl or .csv file, or a folder of sidecars")
    return records, stats.as_dict()


def import_captions(store: Any, source: Path) -> CaptionImportReport:
    """Attach the captions in ``source`` to the library photos they describe.

    Photos are matched by path; captions already present are not added twice. Photos not in the
    library are listed in ``unmatched`` (index their folder first).
    """
    records, skipped = read_caption_source(source)
    report = CaptionImportReport(records=len(records), skipped=skipped)
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
