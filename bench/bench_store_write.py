"""How fast do vectors go into SQLite? The old write path against the current one, in one run.

``Store.upsert_images_with_embeddings`` used to look every image up with its own ``SELECT``
(once before the insert for the stale check, once after it for the id) and clear failures
row by row; it now reads them in chunks of 500 paths per query. Both paths write the same rows
through the same triggers (the change record), one transaction per batch. Measured:

* ``fill``: ``--total`` new 768-d vectors into an empty library, in batches of ``--batch``
  (20,000 is what ``bench/bench_search.py`` uses to fill its store);
* ``indexer``: the indexer's shape, 16,384 new images in batches of 32 into a library that
  already holds the fill, each batch then ``clear_pending`` (as ``Indexer._store`` does);
* ``re-embed``: the fill's paths written again (every vector replaced).

Each repeat runs each path on a fresh library, in rotating order; printed are the median
vectors/s of each, the median of the per-repeat ratios (new / old) with its range, and the
load average before and after (other processes share the CPU). Also run, for information:
the current path without the change-record triggers (the record's share of the write time)::

    python bench/bench_store_write.py                     # 100k vectors, 3 repeats
    python bench/bench_store_write.py --total 20000 --repeats 5
    python bench/bench_store_write.py --repeats 0 --profile   # time by statement kind only
"""

from __future__ import annotations

import argparse
import collections
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import timed

from app.library.store import ImageRecord, Store, _enc, _id_at, _now, _vectors

DIM = 768
MODEL = "bench-write"
INDEXER = 16_384  # vectors written in the indexer's batch shape
Upsert = Callable[[Store, Sequence[ImageRecord], str, np.ndarray], list[int]]


def old_upsert(store: Store, records: Sequence[ImageRecord], model: str, vectors: Any) -> list[int]:
    """The write path before the chunked look-ups: one ``SELECT`` per image, twice."""
    arr = _vectors(vectors, len(records))
    now = _now()
    with store._write() as conn:
        store._ensure_model(conn, model, arr.shape[1])
        stale = []
        for rec in records:
            old = conn.execute(
                "SELECT id, size, mtime_ns, hash FROM images WHERE path = CAST(? AS TEXT)",
                (_enc(rec.path),),
            ).fetchone()
            if old is not None and (
                old[1] != rec.size
                or old[2] != rec.mtime_ns
                or (old[3] and rec.hash and old[3] != rec.hash)
            ):
                stale.append(old[0])
        if stale:
            store._drop_other_models(conn, stale, model)
        conn.executemany(
            "INSERT INTO images(path, folder_id, size, mtime_ns, hash, width, height, "
            "taken_at, indexed_at) VALUES (CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(path) DO UPDATE SET "
            "folder_id = COALESCE(excluded.folder_id, folder_id), "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash, "
            "width = excluded.width, height = excluded.height, "
            "taken_at = excluded.taken_at, indexed_at = excluded.indexed_at",
            [
                (_enc(r.path), r.folder_id, r.size, r.mtime_ns, r.hash, r.width, r.height,
                 r.taken_at, now)
                for r in records
            ],
        )  # fmt: skip
        ids = [_id_at(conn, r.path) for r in records]
        conn.executemany(
            "INSERT INTO embeddings(image_id, model, vector) VALUES (?, ?, ?) "
            "ON CONFLICT(image_id, model) DO UPDATE SET vector = excluded.vector",
            [(i, model, arr[n].tobytes()) for n, i in enumerate(ids)],
        )
        conn.executemany(
            "DELETE FROM failures WHERE path = CAST(? AS TEXT)",
            [(_enc(r.path),) for r in records],
        )
        store._bump(conn, [model])
    return ids  # type: ignore[return-value]


def new_upsert(store: Store, records: Sequence[ImageRecord], model: str, vectors: Any) -> list[int]:
    """The current write path."""
    return store.upsert_images_with_embeddings(records, model, vectors)


PATHS: dict[str, Upsert] = {"old": old_upsert, "new": new_upsert, "unrecorded": new_upsert}
"""``unrecorded``: the current path with the change-record triggers dropped (not a valid
library: it shows what the record costs)."""
RECORD_TRIGGERS = ("embedding_added", "embedding_replaced")


def records(prefix: str, start: int, count: int, size: int = 1) -> list[ImageRecord]:
    """``count`` image records with distinct paths (size changes make a re-embed stale)."""
    return [ImageRecord(f"/bench/{prefix}/{start + i:08d}.jpg", size, 1) for i in range(count)]


Batch = tuple[list[ImageRecord], np.ndarray]


def write(store: Store, upsert: Upsert, batches: list[Batch]) -> float:
    """Seconds spent writing ``batches``, one transaction each."""
    return timed(lambda: [upsert(store, rows, MODEL, vectors) for rows, vectors in batches])


def one_repeat(name: str, total: int, batch: int, small: int, vectors: np.ndarray) -> dict:
    """Vectors/s of each scenario with the write path ``name`` on a fresh library."""
    rates, upsert = {}, PATHS[name]
    os.sync()  # the previous run's writeback must not land in this one
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "library.db") as store:
        if name == "unrecorded":
            for trigger in RECORD_TRIGGERS:
                store.conn.execute(f"DROP TRIGGER {trigger}")
        fill = [
            (records("fill", s, min(batch, total - s)), vectors[s : s + batch])
            for s in range(0, total, batch)
        ]
        rates["fill"] = total / write(store, upsert, fill)
        starts = range(0, INDEXER, small)
        indexer = [(records("new", s, small), vectors[s : s + small]) for s in starts]
        started = time.perf_counter()
        for rows, vecs in indexer:
            upsert(store, rows, MODEL, vecs)
            store.clear_pending(MODEL, [r.path for r in rows])
        rates["indexer"] = INDEXER / (time.perf_counter() - started)
        again = [(records("fill", s, len(rows), size=2), v[::-1]) for (rows, v), s in
                 zip(fill, range(0, total, batch), strict=True)]  # fmt: skip
        rates["re-embed"] = total / write(store, upsert, again)
    return rates


class TimedConnection:
    """Wraps a connection: seconds spent in each kind of statement (first three words)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.seconds = conn, collections.Counter()

    def _timed(self, method: str, sql: str, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return getattr(self.conn, method)(sql, *args)
        finally:
            self.seconds[" ".join(sql.split()[:3])] += time.perf_counter() - started

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed("execute", sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self._timed("executemany", sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def profile(name: str, total: int, batch: int, vectors: np.ndarray) -> None:
    """Where the fill with the write path ``name`` spends its time, by statement (one run)."""
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "library.db") as store:
        timed = TimedConnection(store.conn)
        store.conn = timed  # type: ignore[assignment]
        fill = [
            (records("fill", s, min(batch, total - s)), vectors[s : s + batch])
            for s in range(0, total, batch)
        ]
        seconds = write(store, PATHS[name], fill)
        store.conn = timed.conn
    print(f"   profile of the {name} fill: {total / seconds:,.0f} vectors/s")
    for kind, spent in timed.seconds.most_common():
        print(f"      {spent / seconds:6.1%}  {kind}")
    print(f"      {1 - sum(timed.seconds.values()) / seconds:6.1%}  Python outside SQLite calls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=100_000, help="vectors in the fill")
    parser.add_argument("--batch", type=int, default=20_000, help="vectors per fill transaction")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also time each statement kind")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((max(args.total, INDEXER), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    load_before = os.getloadavg()
    print(
        f"SQLite writes: {args.total:,} x {DIM}-d vectors, batches of {args.batch:,} "
        f"(indexer: {INDEXER:,} in batches of 32), {args.repeats} repeats, interleaved"
    )
    results: dict[str, list[dict]] = {name: [] for name in PATHS}
    for repeat in range(args.repeats):
        order = list(PATHS)[repeat % len(PATHS) :] + list(PATHS)[: repeat % len(PATHS)]
        for name in order:
            results[name].append(one_repeat(name, args.total, args.batch, 32, vectors))
    for scenario in ("fill", "indexer", "re-embed") if args.repeats else ():
        old = [r[scenario] for r in results["old"]]
        new = [r[scenario] for r in results["new"]]
        bare = [r[scenario] for r in results["unrecorded"]]
        ratios = [n / o for n, o in zip(new, old, strict=True)]
        share = [1 - n / b for n, b in zip(new, bare, strict=True)]
        print(
            f"   {scenario:9s} old {statistics.median(old):8,.0f} /s   "
            f"new {statistics.median(new):8,.0f} /s   new/old {statistics.median(ratios):.3f}x "
            f"(range {min(ratios):.3f}-{max(ratios):.3f});   without the change record "
            f"{statistics.median(bare):8,.0f} /s (record's share of the new time "
            f"{statistics.median(share):.0%})"
        )
    if args.profile:
        for name in ("old", "new"):
            profile(name, args.total, args.batch, vectors)
    load = ", ".join(f"{a:.1f}->{b:.1f}" for a, b in zip(load_before, os.getloadavg(), strict=True))
    print(f"   load average (1/5/15 min) before->after: {load} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
