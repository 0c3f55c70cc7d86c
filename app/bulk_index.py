"""Bulk indexing across processes, GPUs and machines, under ``torchrun``.

    torchrun --nproc-per-node N -m app.bulk_index FOLDER... [--library DIR] [--model NAME]

The job uses the same engine as training (``torch.distributed``; gloo on CPUs, NCCL on GPUs):

1. **Rank 0** takes the library's write lock, scans and plans exactly as ``lotlip-search
   index`` does (moves, touches and removals are applied there and then), and broadcasts the
   files that need a vector.
2. **Every rank**, rank 0 included, takes ``files[rank::world_size]`` of that sorted list,
   decodes and embeds it on its own device, and writes *shards*: ``rRRR-JOB-SSSSSS.npy`` (the
   vectors) plus ``rRRR-JOB-SSSSSS.json`` (the file records, decode failures, the model), the
   ``.json`` renamed into place last, so a shard exists whole or not at all.
3. **Rank 0**, the single writer, merges the shards into the library after a barrier: one
   SQLite transaction per shard, then the ANN index; a merged shard is deleted.

Exactly once, and resumable: images are keyed by path (an upsert), so merging a shard twice
(a crash between its commit and its deletion) stores nothing twice. Kill any rank, and
torchrun stops the job; run the same command again and rank 0 first merges the whole shards
left behind (the ones whose files are still unchanged on disk), then plans only what is still
missing. Nothing embedded by a finished shard is embedded again.

Several machines: every node must see the photo folders and the library folder at the same
paths (a shared filesystem); use torchrun's usual rendezvous, e.g. on each of two nodes
``torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500
--rdzv-id photos -m app.bulk_index /mnt/photos --library /mnt/library``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

from app.library.decode import DecodeFailure, decode_ahead
from app.library.indexer import Indexer, IndexProgress, _Run
from app.library.scanner import FileInfo
from app.library.store import ImageRecord
from lotlip.files import write_atomic, write_text_atomic
from training.distributed import (
    DistInfo,
    all_gather_objects,
    barrier,
    cleanup,
    init_distributed,
    local_device,
)

if TYPE_CHECKING:
    from app.library.library import Library
    from lotlip.model import LoTLIP

logger = logging.getLogger(__name__)

SHARD_DIR = "bulk-shards"
"""Folder inside the library where ranks leave their shards for rank 0."""


@dataclass
class RankStats:
    """What one rank did: files decoded and embedded, and the seconds it took."""

    rank: int
    files: int
    seconds: float

    @property
    def rate(self) -> float:
        """Files per second."""
        return self.files / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Work:
    """What rank 0 sends every rank: the files to embed and how to label their records."""

    files: list[FileInfo]
    hashes: dict[str, str] = field(default_factory=dict)
    folder_ids: dict[str, int] = field(default_factory=dict)

    def share(self, info: DistInfo) -> list[FileInfo]:
        """This rank's files: a fixed stride of the sorted list (the same on every rank)."""
        ordered = sorted(self.files, key=lambda f: f.path)
        return ordered[info.rank :: info.world_size]


def _broadcast(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (pickled by torch.distributed among our own processes)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# -- shards ------------------------------------------------------------------------------------


def write_shard(
    folder: Path,
    name: str,
    model: str,
    records: Sequence[ImageRecord],
    vectors: np.ndarray,
    failures: Sequence[DecodeFailure],
) -> None:
    """Write one shard atomically: the vectors first, then the ``.json`` that completes it."""

    def save_vectors(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.save(fh, np.ascontiguousarray(vectors, dtype=np.float32))

    write_atomic(folder / f"{name}.npy", save_vectors)
    body = {
        "model": model,
        "records": [asdict(r) for r in records],
        "failures": [
            {"path": f.info.path, "root": f.info.root, "reason": f.reason,
             "size": f.size, "mtime_ns": f.mtime_ns}
            for f in failures
        ],
    }  # fmt: skip
    write_text_atomic(folder / f"{name}.json", json.dumps(body))


def complete_shards(folder: Path) -> list[Path]:
    """The ``.json`` files of whole shards, in name order; half-written leftovers are removed.

    Call it only while no rank writes (before the work is sent, or after the barrier).
    """
    if not folder.is_dir():
        return []
    for stale in folder.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    for vectors in folder.glob("r*.npy"):  # killed between its two renames
        if not vectors.with_suffix(".json").is_file():
            vectors.unlink(missing_ok=True)
    return sorted(p for p in folder.glob("r*.json") if p.with_suffix(".npy").is_file())


def embed_share(
    model: LoTLIP,
    work: Work,
    info: DistInfo,
    folder: Path,
    batch_size: int,
    workers: int,
    run_id: str,
) -> RankStats:
    """Decode and embed this rank's share of ``work`` into shards."""
    started = time.monotonic()
    share = work.share(info)
    records: list[ImageRecord] = []
    pixels: list[torch.Tensor] = []
    failures: list[DecodeFailure] = []
    written = 0

    def flush() -> None:
        nonlocal records, pixels, failures, written
        if not records and not failures:
            return
        if pixels:
            vectors = model.embed_pixels(torch.stack(pixels))
        else:
            vectors = np.zeros((0, model.embed_dim), dtype=np.float32)
        name = f"r{info.rank:03d}-{run_id}-{written:06d}"
        write_shard(folder, name, model.name, records, vectors, failures)
        written += 1
        records, pixels, failures = [], [], []

    decoded = decode_ahead(
        share, model, batch_size=batch_size, workers=workers,
        hashes=work.hashes, folder_ids=work.folder_ids,
    )  # fmt: skip
    for item in decoded:
        if isinstance(item, DecodeFailure):
            failures.append(item)
        else:
            records.append(item.record)
            pixels.append(item.pixels)
        if len(records) + len(failures) >= batch_size:
            flush()
    flush()
    logger.info("rank %d embedded %d files into %d shards", info.rank, len(share), written)
    return RankStats(info.rank, len(share), time.monotonic() - started)


# -- rank 0: plan, distribute, merge -------------------------------------------------------------


class BulkIndexer(Indexer):
    """An :class:`Indexer` whose embedding step is spread over the ranks of a torchrun job.

    Everything else (lock, scan, plan, moves and removals, ANN save) is the plain indexer's.
    Runs on rank 0; the other ranks run :func:`serve`.
    """

    def __init__(
        self, lib: Library, model: LoTLIP, info: DistInfo, run_id: str, **kwargs: Any
    ) -> None:
        super().__init__(lib, model, **kwargs)
        self.info = info
        self.run_id = run_id
        self.shard_dir = lib.dir / SHARD_DIR
        self.sent = False
        self.ranks: list[RankStats] = []
        self.merge_s = 0.0

    def _embed_all(self, todo: list[FileInfo], run: _Run) -> None:
        wanted = {f.path: f for f in todo}
        run.tick(IndexProgress("embedding", 0, len(todo)), force=True)
        done = self.merge(wanted, run)  # left by a killed run
        remaining = [f for f in todo if f.path not in done]
        if done:
            logger.info("merged %d files from shards of an earlier run", len(done))
        work = Work(remaining, run.hashes, run.folder_ids)
        self.sent = True
        _broadcast(work, self.info)
        mine = embed_share(self.model, work, self.info, self.shard_dir, self.batch_size,
                           self.workers, self.run_id)  # fmt: skip
        barrier()
        self.ranks = all_gather_objects(mine)
        merging = time.monotonic()
        self.merge(wanted, run)
        self.merge_s = time.monotonic() - merging
        report = run.report
        run.tick(IndexProgress("embedding", report.embedded, len(todo), failed=report.failed),
                 force=True)  # fmt: skip

    def merge(self, wanted: dict[str, FileInfo], run: _Run) -> set[str]:
        """Merge every whole shard into the store and the ANN index; returns the paths done.

        Only records of files still wanted as they are now (same size and mtime) are taken:
        a shard from an earlier run may describe a file that has changed since.
        """
        done: set[str] = set()
        for meta_path in complete_shards(self.shard_dir):
            body = json.loads(meta_path.read_text(encoding="utf-8"))
            vectors = np.load(meta_path.with_suffix(".npy"), allow_pickle=False)
            if body.get("model") != self.model.name or (
                len(vectors) and vectors.shape[1] != self.model.embed_dim
            ):
                logger.info("dropping shard %s of another model", meta_path.name)
            else:
                keep = [i for i, r in enumerate(body["records"]) if _current(wanted, r)]
                if keep:
                    records = [ImageRecord(**body["records"][i]) for i in keep]
                    self._store(records, vectors[keep], run)
                    done.update(r.path for r in records)
                for f in body["failures"]:
                    if (info := _current(wanted, f)) is not None:
                        self._record_failure(
                            DecodeFailure(info, f["reason"], f["size"], f["mtime_ns"]), run
                        )
                        done.add(info.path)
            meta_path.unlink()
            meta_path.with_suffix(".npy").unlink(missing_ok=True)
        return done


def _current(wanted: dict[str, FileInfo], entry: dict[str, Any]) -> FileInfo | None:
    """The wanted file a shard's record or failure describes, if it is still as it was then."""
    info = wanted.get(entry["path"])
    same = info is not None and (info.size, info.mtime_ns) == (entry["size"], entry["mtime_ns"])
    return info if same else None


def serve(model: LoTLIP, info: DistInfo, shard_dir: Path, batch_size: int, workers: int,
          run_id: str) -> None:  # fmt: skip
    """Ranks other than 0: receive the work, embed this rank's share, wait for the others."""
    work = _broadcast(None, info)
    if work is None:  # rank 0 stopped before the embedding step (nothing to do, or an error)
        return
    mine = embed_share(model, work, info, shard_dir, batch_size, workers, run_id)
    barrier()
    all_gather_objects(mine)  # rank 0 reports them


# -- command line ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m app.bulk_index`` (each rank parses the same command line)."""
    parser = argparse.ArgumentParser(
        prog="torchrun --nproc-per-node N -m app.bulk_index",
        description="Index photo folders with every process of a torchrun job; rank 0 writes.",
    )
    parser.add_argument("folders", nargs="+", metavar="FOLDER", help="folders to index")
    parser.add_argument("--library", metavar="DIR", help="library folder (as lotlip-search)")
    parser.add_argument("--model", metavar="NAME", help="model name or folder")
    parser.add_argument(
        "--device", help="auto, cpu or cuda (one GPU per rank; default: the library's setting)"
    )
    parser.add_argument(
        "--precision", help="auto, fp32, bf16, fp16 or int8 (default: the library's setting)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument("--workers", type=int, default=None, help="decode threads per rank")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of every rank; returns the process exit status."""
    from app.library.indexer import default_workers
    from app.library.library import Library
    from app.library.models import load_model, resolve_model_spec
    from lotlip.devices import resolve_device

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    device_name, precision = _runtime_settings(args)
    info = init_distributed(resolve_device(device_name))
    device = local_device(resolve_device(device_name), info)
    workers = args.workers or default_workers()
    lib = Library.open(args.library) if info.is_main else None
    try:
        job = None
        if lib is not None:
            # one id per job, so shards of a killed run never collide with this run's names
            job = (resolve_model_spec(lib, args.model)[0], f"{os.getpid():x}", str(lib.dir))
        spec, run_id, library_dir = _broadcast(job, info)
        model = load_model(spec, str(device), precision)
        if lib is None:
            serve(model, info, Path(library_dir) / SHARD_DIR, args.batch_size, workers, run_id)
            return 0
        return _run_main(lib, model, info, run_id, args, workers)
    finally:
        if lib is not None:
            lib.close()
        cleanup()


def _runtime_settings(args: argparse.Namespace) -> tuple[str, str]:
    """``(device, precision)`` by the rule of ``lotlip-search`` (the flags, else the library's
    settings: :func:`~app.library.models.runtime_settings`). Every rank reads them before the
    job starts, since the device decides how the ranks talk (NCCL or gloo)."""
    from app.library.library import Library
    from app.library.models import runtime_settings
    from app.library.store import DatabaseNotFoundError

    try:
        lib = Library.open(args.library, create=False)
    except DatabaseNotFoundError:  # a new library: no settings yet
        return runtime_settings(None, args.device, args.precision)
    with lib:
        return runtime_settings(lib, args.device, args.precision)


def _run_main(
    lib: Library, model: LoTLIP, info: DistInfo, run_id: str, args: argparse.Namespace,
    workers: int,
) -> int:  # fmt: skip
    indexer = BulkIndexer(lib, model, info, run_id, batch_size=args.batch_size, workers=workers)
    try:
        report = indexer.run([os.path.abspath(f) for f in args.folders])
    finally:
        if not indexer.sent:  # release the other ranks, which wait for work
            _broadcast(None, info)
    ranks = [asdict(r) | {"rate": round(r.rate, 2)} for r in indexer.ranks]
    if args.json:
        print(json.dumps({**report.as_dict(), "ranks": ranks, "merge_s": indexer.merge_s}))
    else:
        from app.commands.index import summary

        print(f"indexed with {info.world_size} rank(s): {summary(report)}")
        for r in indexer.ranks:
            print(f"  rank {r.rank}: {r.files} files in {r.seconds:.1f} s ({r.rate:.1f}/s)")
        print(f"  merge: {indexer.merge_s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
