"""Small pieces: formatting, throttling, sorting, thumbnails (EXIF, disk cache), the loss curve,
background tasks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app.gui.finetune_dialog import metric_rows, steps_for
from app.gui.formatting import human_duration, human_size, rate_text, word_piece_counter
from app.gui.loss_curve import LossCurve, ema, nice_bounds
from app.gui.results import ResultItem, ResultsModel, sort_items
from app.gui.status import percent, progress_line
from app.gui.tasks import Task, Throttle
from app.gui.thumbnails import ThumbnailCache, make_thumbnail, thumbnail_file, thumbnail_key
from app.gui.wizard import parse_excludes
from app.library.indexer import IndexProgress


def test_formatting() -> None:
    assert human_size(999) == "999 bytes"
    assert human_size(1_536) == "1.5 KB"
    assert human_size(850_000_000) == "850 MB"
    assert human_duration(42.4) == "42 s"
    assert human_duration(3725) == "1 h 2 min"
    assert human_duration(0.2) == "under 1 s"
    assert human_duration(None) == "—"
    assert rate_text(12.34) == "12.3 photos/s"
    assert word_piece_counter(130, 124, True).level == "over"
    assert word_piece_counter(120, 124, False).level == "near"
    assert word_piece_counter(10, 124, False).level == "ok"
    assert word_piece_counter(None, None, False).level == "empty"


def test_progress_lines() -> None:
    assert progress_line(IndexProgress("scanning", 120, 0)) == "Looking for photos · 120 found"
    line = progress_line(IndexProgress("embedding", 120, 480, "x.jpg", 14.2, 25.0, 2))
    assert line == "Indexing 120 / 480 · 14.2 photos/s · 25 s left · 2 failed"
    assert percent(IndexProgress("embedding", 120, 480)) == 25
    assert percent(IndexProgress("scanning", 120, 0)) is None
    assert percent(IndexProgress("done", 3, 3)) == 100


def test_throttle_allows_at_most_the_rate() -> None:
    now = [0.0]
    throttle = Throttle(20, clock=lambda: now[0])
    assert throttle.ready()
    now[0] = 0.01
    assert not throttle.ready()
    now[0] = 0.051
    assert throttle.ready()


def test_task_delivers_batched_progress_and_result(qtbot: Any) -> None:
    def work(report: Any, cancelled: Any) -> int:
        for i in range(500):
            report(i)
        return 7

    task = Task(work, name="test", rate=20)
    batches: list[list[int]] = []
    task.progressed.connect(batches.append)
    with qtbot.waitSignal(task.succeeded, timeout=10_000) as blocker:
        task.start()
    task.wait(5_000)
    qtbot.waitUntil(lambda: sum(map(len, batches)) == 500, timeout=5_000)
    assert blocker.args == [7]
    assert [i for batch in batches for i in batch] == list(range(500))
    assert len(batches) < 50  # throttled, not one signal per report


def test_task_failure_and_cancel(qtbot: Any) -> None:
    failing = Task(lambda _r, _c: 1 / 0, name="fails")
    with qtbot.waitSignal(failing.failed, timeout=10_000) as blocker:
        failing.start()
    assert failing.wait(5_000)  # a QThread must outlive its run
    assert "division" in blocker.args[0]

    def forever(_report: Any, cancelled: Any) -> str:
        while not cancelled():
            pass
        return "stopped"

    endless = Task(forever, name="endless")
    with qtbot.waitSignal(endless.cancelled_, timeout=10_000) as blocker:
        endless.start()
        endless.cancel()
    assert blocker.args == ["stopped"]
    assert endless.wait(5_000)


def _item(i: int, score: float | None, day: int | None, name: str) -> ResultItem:
    date = datetime(2024, 1, day) if day else None
    return ResultItem(i, f"/p/{name}", score, taken_at=date)


def test_sorting_and_model_rows(qtbot: Any) -> None:
    items = [_item(1, 0.2, 3, "b.jpg"), _item(2, 0.9, None, "a.jpg"), _item(3, 0.5, 1, "c.jpg")]
    assert [i.id for i in sort_items(items, "relevance")] == [2, 3, 1]
    assert [i.id for i in sort_items(items, "newest")] == [1, 3, 2]
    assert [i.id for i in sort_items(items, "oldest")] == [3, 1, 2]
    assert [i.id for i in sort_items(items, "name")] == [2, 1, 3]
    model = ResultsModel()
    model.set_items(items * 1000, "relevance")  # thousands of rows are instant
    assert model.rowCount() == 3000
    model.set_order("name")
    assert model.item(0).name == "a.jpg"
    assert model.flags(model.index(0)) & model.flags(model.index(0)).ItemIsDragEnabled


def test_thumbnails_follow_exif_and_are_cached_on_disk(qtbot: Any, tmp_path: Path) -> None:
    photo = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90° clockwise
    Image.new("RGB", (80, 40), (200, 30, 30)).save(photo, exif=exif)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0not really")
    cache = ThumbnailCache(tmp_path / "thumbs", edge=64, threads=1)
    assert cache.pixmap(str(photo), 64) is None  # a miss queues it
    cache.request(str(broken))
    qtbot.waitUntil(lambda: cache.image(str(photo)) is not None, timeout=10_000)
    qtbot.waitUntil(lambda: cache.failure(str(broken)) is not None, timeout=10_000)
    image = cache.image(str(photo))
    assert (image.width(), image.height()) == (32, 64)  # upright: portrait
    stat = photo.stat()
    key = thumbnail_key(str(photo), stat.st_mtime_ns, stat.st_size, 64)
    assert (tmp_path / "thumbs" / key[:2] / f"{key}.jpg").is_file()
    pixmap = cache.pixmap(str(photo), 32)
    assert pixmap is not None and pixmap.height() == 32
    cache.shutdown()


def test_a_thumbnail_that_cannot_be_cached_leaves_no_partial_file(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (60, 30), (30, 200, 30)).save(photo)
    stat = photo.stat()
    target = thumbnail_file(
        tmp_path / "thumbs", thumbnail_key(str(photo), stat.st_mtime_ns, stat.st_size, 32)
    )
    target.mkdir(parents=True)  # the cache file's place is taken: the rename into it fails
    image = make_thumbnail(str(photo), tmp_path / "thumbs", 32)
    assert (image.width(), image.height()) == (32, 16)  # the thumbnail is still made
    assert list(target.parent.iterdir()) == [target]  # and no temporary file is left behind


def test_loss_curve_and_finetune_helpers(qtbot: Any) -> None:
    curve = LossCurve()
    qtbot.addWidget(curve)
    curve.clear(10)
    curve.add_points([(1, 2.0), (2, 1.5), (3, 1.2)])
    curve.resize(300, 160)
    assert not curve.grab().isNull()
    assert ema([1.0, 0.0], alpha=0.5) == [1.0, 0.5]
    low, high = nice_bounds([1.0, 2.0])
    assert low < 1.0 < 2.0 < high
    assert steps_for(pairs=8, epochs=3, batch_size=16) == 3
    assert steps_for(pairs=100, epochs=2, batch_size=16) == 14
    rows = metric_rows({"train_long_t2i_r1": 0.25}, {"train_long_t2i_r1": 0.5}, heldout=False)
    assert rows[0][1:] == (0.25, 0.5)


@pytest.mark.parametrize(
    ("text", "patterns"),
    [("*.tmp\n\n# comment\n private/ \n", ["*.tmp", "private/"]), ("", [])],
)
def test_parse_excludes(text: str, patterns: list[str]) -> None:
    assert parse_excludes(text) == patterns


def test_signals_and_empty_roles_never_exhaust_singletons(qtbot: Any) -> None:
    """PySide6 6.12 on Python 3.11 drops a reference to True per emit and to None per empty
    ``data()`` role; without ``app.gui.pyside_fix`` this aborts the process (bool_dealloc)."""
    from PySide6.QtCore import QObject, Qt, Signal

    class Pinger(QObject):
        ping = Signal(int)

    pinger = Pinger()
    pinger.ping.connect(lambda _n: None)
    for n in range(50_000):
        pinger.ping.emit(n)
    model = ResultsModel()
    model.set_items([_item(1, 0.5, 1, "a.jpg")])
    index = model.index(0)
    for _ in range(50_000):
        assert index.data(Qt.ItemDataRole.DecorationRole) is None


def test_layout_builders_place_items_as_listed(qapp: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel, QWidget

    from app.gui import widgets as ui

    host = QWidget()
    first, second, third = (QLabel(t, host) for t in "abc")
    inner = ui.vbox(third)
    row = ui.hbox(
        first, 12, (second, 2, Qt.AlignmentFlag.AlignTop), (ui.STRETCH, 3), inner,
        parent=host, margins=(1, 2, 3, 4), spacing=5,
    )  # fmt: skip
    assert host.layout() is row
    assert row.contentsMargins().left() == 1 and row.contentsMargins().bottom() == 4
    assert row.spacing() == 5
    assert [row.itemAt(i).widget() for i in (0, 2)] == [first, second]
    assert row.itemAt(1).spacerItem().sizeHint().width() == 12
    assert row.itemAt(2).alignment() == Qt.AlignmentFlag.AlignTop
    assert [row.stretch(i) for i in range(row.count())] == [0, 0, 2, 3, 0]
    assert row.itemAt(4).layout() is inner and inner.itemAt(0).widget() is third
