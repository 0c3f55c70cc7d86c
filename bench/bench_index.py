"""Indexing speed: is decoding and storage hidden behind the model? Is draft decoding worth it?

Two measurements, each printed as a ratio:

1. **Pipeline overhead** (ViT-B/16, random weights, fp32 on the CPU, fp16 on CUDA): end-to-end
   images/s of the :class:`~app.library.indexer.Indexer` (scan, parallel decode, embed, SQLite,
   HNSW) divided by the image tower alone on the very same preprocessed batches. Both are warm,
   see the same batch shapes and torch threads, and alternate over ``--repeats``; the ratio
   printed is the median of the per-repeat ratios with its min..max. Target: >= 0.85 (a ratio
   above 1 would mean the baseline was measured unfairly: a pipeline cannot beat its model).
2. **12 MP JPEGs with the small model**: the indexer (JPEG draft decoding, decode threads)
   against a naive pipeline (full decode, one image after another, then the same model).
   Target: >= 4x.

    python bench/bench_index.py                 # full run (minutes on 2 cores)
    python bench/bench_index.py --quick         # smoke run (seconds; small models and photos)
    python bench/bench_index.py --device cuda   # on a GPU: fp16 images/s, and the number of
                                                # decode threads at which decoding stops being
                                                # the bottleneck
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from common import header, official_random_model, small_random_model, timed, write_photos
from PIL import Image, ImageOps

from app.library.indexer import Indexer
from app.library.library import Library
from lotlip.model import LoTLIP
from lotlip.transforms import load_image


def tower_alone(model: LoTLIP, paths: list[Path], batch_size: int) -> float:
    """Images/s of ``model.embed_pixels`` on preprocessed batches (decoding not timed)."""
    size = model.config.vision.image_size
    pixels = [model.preprocess(load_image(p, size)) for p in paths]
    batches = [torch.stack(pixels[i : i + batch_size]) for i in range(0, len(pixels), batch_size)]
    model.embed_pixels(batches[0])  # warm-up
    seconds = timed(lambda: [model.embed_pixels(b) for b in batches])
    return len(paths) / seconds


def warm_up(model: LoTLIP, batch_size: int) -> None:
    """One forward pass, so that no measurement pays for the first call."""
    size = model.config.vision.image_size
    model.embed_pixels(torch.zeros(batch_size, 3, size, size))


def indexer_rate(model: LoTLIP, folder: Path, batch_size: int, workers: int | None) -> float:
    """Images/s of a full indexing run of ``folder`` into a fresh library (all of it timed:
    opening the library, scanning, decoding, embedding, SQLite, the HNSW index and its save)."""
    warm_up(model, batch_size)
    with tempfile.TemporaryDirectory() as tmp, Library.open(tmp) as lib:
        indexer = Indexer(lib, model, batch_size=batch_size, workers=workers)
        report = indexer.run([folder])
        assert report.failed == 0 and report.embedded > 0
        return report.embedded / report.elapsed_s


def naive_rate(model: LoTLIP, paths: list[Path], batch_size: int) -> float:
    """Images/s of the obvious pipeline: full decode, one by one, then batches to the model."""

    def run() -> None:
        batch: list[torch.Tensor] = []
        for path in paths:
            with Image.open(path) as im:
                im.load()
                upright = ImageOps.exif_transpose(im).convert("RGB")
            batch.append(model.preprocess(upright))
            if len(batch) == batch_size:
                model.embed_pixels(torch.stack(batch))
                batch = []
        if batch:
            model.embed_pixels(torch.stack(batch))

    warm_up(model, batch_size)
    return len(paths) / timed(run)


def bench_model(args: argparse.Namespace, quick_model: bool) -> LoTLIP:
    """The model measured, on ``--device`` at its default precision (fp16 on CUDA)."""
    model = small_random_model() if quick_model else official_random_model(16)
    precision = "fp16" if args.device == "cuda" else "fp32"
    return model.to_device(args.device, precision)


def indexer_against(
    args: argparse.Namespace,
    work: Path,
    model: LoTLIP,
    photos: tuple[int, tuple[int, int]],
    labels: tuple[str, str],
    baseline: Callable[[LoTLIP, list[Path], int], float],
    target: str,
) -> float:
    """The indexer's images/s on ``photos`` (count, size) against ``baseline``'s, the two taking
    turns over ``--repeats`` so that load changes hit both alike. Prints both medians (under
    ``labels``: baseline, indexer) and returns the median per-repeat ratio indexer / baseline."""
    count, size = photos
    folder = work / f"photos_{size[0]}x{size[1]}"
    paths = write_photos(folder, count, size)
    base, indexed = [], []
    for _ in range(args.repeats):
        base.append(baseline(model, paths, args.batch_size))
        indexed.append(indexer_rate(model, folder, args.batch_size, args.workers))
    ratios = [i / b for i, b in zip(indexed, base, strict=True)]
    for label, rates in zip(labels, (base, indexed), strict=True):
        print(f"   {label:<19} {statistics.median(rates):8.2f} images/s")
    ratio = statistics.median(ratios)
    print(f"   ratio               {ratio:8.3f}   [{min(ratios):.3f}-{max(ratios):.3f}] "
          f"over {args.repeats} repeats (target {target})")  # fmt: skip
    return ratio


def overhead(args: argparse.Namespace, work: Path) -> float:
    """Measurement 1; returns the median ratio."""
    model = bench_model(args, args.quick)
    count, size = (32, (640, 480)) if args.quick else (args.images, (1600, 1200))
    header(f"pipeline overhead: {model.name} ({model.precision} on {model.device}), "
           f"{count} photos of {size[0]}x{size[1]}")  # fmt: skip
    labels = ("image tower alone", "indexer end to end")
    return indexer_against(args, work, model, (count, size), labels, tower_alone, ">= 0.85")


def decode_threads(args: argparse.Namespace, work: Path) -> None:
    """GPU only: images/s by decode threads; where adding threads stops paying."""
    model = bench_model(args, quick_model=False)
    paths = write_photos(work / "photos_4000x3000", args.large_images, (4000, 3000))
    header(f"decode threads: {model.name} fp16 on {model.device}, {len(paths)} 12 MP JPEGs")
    alone = tower_alone(model, paths, args.batch_size)
    print(f"   image tower alone          {alone:8.1f} images/s")
    best, knee = 0.0, None
    for workers in (1, 2, 4, 8, 12, 16):
        rate = indexer_rate(model, paths[0].parent, args.batch_size, workers)
        print(f"   indexer, {workers:2d} decode threads {rate:8.1f} images/s "
              f"({rate / alone:.2f} of the tower)")  # fmt: skip
        if knee is None and best and rate < best * 1.05:
            knee = workers
        best = max(best, rate)
    print(f"   decoding stops being the bottleneck at about {knee or 16} threads")


def draft(args: argparse.Namespace, work: Path) -> float:
    """Measurement 2; returns the ratio."""
    model = small_random_model()
    count, size = (6, (2000, 1500)) if args.quick else (args.large_images, (4000, 3000))
    header(f"{size[0] * size[1] / 1e6:.0f} MP JPEGs: {model.name}, {count} photos")
    labels = ("naive full decode", "indexer (draft)")
    return indexer_against(args, work, model, (count, size), labels, naive_rate, ">= 4")


def main() -> None:
    """Parse the options and run both measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--images", type=int, default=96, help="photos for measurement 1")
    parser.add_argument("--large-images", type=int, default=48, help="12 MP photos")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="decode threads")
    parser.add_argument("--work", type=Path, default=None, help="folder for the photos (kept)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.batch_size = min(args.batch_size, 8)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        first = overhead(args, work)
        second = draft(args, work)
        if args.device == "cuda":
            decode_threads(args, work)
    print(f"\nsummary: overhead ratio {first:.3f} (>= 0.85), draft speed-up {second:.2f}x (>= 4x)")
    if args.quick:
        print("(quick mode only checks that the script works: too little work to judge speed)")


if __name__ == "__main__":
    main()
