"""Bulk indexing under torchrun: 2 ranks against 1 on the same files, in one run.

On a 2-core machine this shows correctness and the cost of sharding and merging rather than a
speed-up: each rank gets one torch thread and one decode thread, the two runs alternate
(1, 2, 1, 2 ranks ...), and the printed figures are medians over the repeats. Per rank it
prints files/s of decode + embed + shard writing; then rank 0's merge time, and whether both
runs stored the same vectors.

    python bench/bench_bulk_index.py                  # 600 photos of 1024x768, bundled model
    python bench/bench_bulk_index.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import ROOT, write_photos


def run(ranks: int, folder: Path, library: Path, model: str, batch: int) -> dict:
    """One torchrun job into a fresh ``library``; returns its JSON report plus wall seconds."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc-per-node", str(ranks), "-m", "app.bulk_index", str(folder),
        "--library", str(library), "--model", model, "--device", "cpu", "--precision", "fp32",
        "--batch-size", str(batch), "--workers", "1", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def vectors(library: Path) -> dict[str, bytes]:
    with sqlite3.connect(library / "library.db") as conn:
        rows = conn.execute(
            "SELECT i.path, e.vector FROM images i JOIN embeddings e ON e.image_id = i.id"
        )
        return dict(rows.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default="lotlip-tiny")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    count, repeats = (120, 1) if args.quick else (600, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        write_photos(folder, count, (1024, 768))
        results: dict[int, list[dict]] = {1: [], 2: []}
        libraries: dict[int, Path] = {}
        for repeat in range(repeats):
            for ranks in (1, 2):
                libraries[ranks] = Path(tmp) / f"lib-{ranks}-{repeat}"
                results[ranks].append(run(ranks, folder, libraries[ranks], args.model, 16))
        print(f"== bulk indexing, {count} photos 1024x768, {args.model}, {repeats} repeat(s)")
        for ranks, reports in results.items():
            rates = [r["rate"] for rep in reports for r in rep["ranks"]]
            merge = statistics.median(rep["merge_s"] for rep in reports)
            total = statistics.median(sum(r["rate"] for r in rep["ranks"]) for rep in reports)
            print(f"   {ranks} rank(s): per-rank {statistics.median(rates):6.1f} files/s "
                  f"[{min(rates):.1f}-{max(rates):.1f}], all ranks {total:6.1f} files/s, "
                  f"merge {merge:.2f} s ({count / merge:,.0f} files/s)")  # fmt: skip
        one, two = vectors(libraries[1]), vectors(libraries[2])
        same = one.keys() == two.keys() and all(
            np.allclose(np.frombuffer(one[p], np.float32), np.frombuffer(two[p], np.float32),
                        atol=1e-5)
            for p in one
        )  # fmt: skip
        print(f"   same {len(one)} paths and vectors from 1 and 2 ranks: {same}")


if __name__ == "__main__":
    main()
