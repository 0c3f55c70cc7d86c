"""Date bounds with the file-date fallback: ``Store.image_ids(..., file_dates=True)``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from app.library.store import ImageRecord, Store


def _ns(year: int, month: int, day: int) -> int:
    """Nanoseconds since the epoch of local noon on that day (how file dates are kept)."""
    return int(datetime(year, month, day, 12, 0).timestamp() * 1e9)


def test_photos_without_exif_date_are_dated_by_their_file(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "library.db")
    rows = [
        ImageRecord("/p/exif-2001.jpg", 1, _ns(2024, 1, 1), taken_at="2001-06-01T10:00:00"),
        ImageRecord("/p/file-2001.png", 1, _ns(2001, 7, 2)),
        ImageRecord("/p/file-2024.png", 1, _ns(2024, 3, 3)),
        ImageRecord("/p/exif-2024-file-2001.jpg", 1, _ns(2001, 1, 1), taken_at="2024-05-05"),
    ]
    ids = store.upsert_images_with_embeddings(rows, "m", np.eye(4, dtype=np.float32))
    year = {"taken_from": "2001", "taken_to": "2001-12-31T23:59:59"}
    assert store.image_ids(**year).tolist() == [ids[0]]  # EXIF only: the undated one is out
    # the EXIF date wins over the file date; undated photos count by their file date
    assert store.image_ids(**year, file_dates=True).tolist() == [ids[0], ids[1]]
    assert store.image_ids(taken_from="2024-03-03", file_dates=True).tolist() == ids[2:]
    store.close()
