"""Indexing speed: is decoding and storage hidden behind the model? Is draft decoding worth it?

Two measurements, each printed as a ratio:

1. **Pipeline overhead** (ViT-B/16, random weights, CPU float32): end-to-end images/s of the
   :class:`~app.library.indexer.Indexer` (scan, parallel decode, embed, SQLite, HNSW) divided by
   the image tower alone on the very same preprocessed batches. Target: >= 0.85.
2. **12 MP JPEGs with the small model**: the indexer (JPEG draft decoding, decode threads)
   against a naive pipeline (full decode, one image after another, then the same model).
   Target: >= 4x.

    python bench/bench_index.py            # full run (minutes on 2 cores)
    python bench/bench_index.py --quick    # smoke run (seconds; small models and photos)
"""

from __future__ import annotations

import argparse
import tempfile
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


def overhead(args: argparse.Namespace, work: Path) -> float:
    """Measurement 1; returns the ratio."""
    if args.quick:
        model, count, size = small_random_model(), 32, (640, 480)
    else:
        model, count, size = official_random_model(16), args.images, (1600, 1200)
    header(f"pipeline overhead: {model.name}, {count} photos of {size[0]}x{size[1]}")
    folder = work / f"overhead_{size[0]}"
    paths = write_photos(folder, count, size)
    alone = tower_alone(model, paths, args.batch_size)
    full = indexer_rate(model, folder, args.batch_size, args.workers)
    ratio = full / alone
    print(f"   image tower alone   {alone:8.2f} images/s")
    print(f"   indexer end to end  {full:8.2f} images/s")
    print(f"   ratio               {ratio:8.3f}   (target >= 0.85)")
    return ratio


def draft(args: argparse.Namespace, work: Path) -> float:
    """Measurement 2; returns the ratio."""
    model = small_random_model()
    count, size = (6, (2000, 1500)) if args.quick else (args.large_images, (4000, 3000))
    header(f"{size[0] * size[1] / 1e6:.0f} MP JPEGs: {model.name}, {count} photos")
    folder = work / f"large_{size[0]}"
    paths = write_photos(folder, count, size)
    indexer = indexer_rate(model, folder, args.batch_size, args.workers)
    naive = naive_rate(model, paths, args.batch_size)
    ratio = indexer / naive
    print(f"   naive full decode   {naive:8.2f} images/s")
    print(f"   indexer (draft)     {indexer:8.2f} images/s")
    print(f"   ratio               {ratio:8.2f}x  (target >= 4x)")
    return ratio


def main() -> None:
    """Parse the options and run both measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--images", type=int, default=96, help="photos for measurement 1")
    parser.add_argument("--large-images", type=int, default=48, help="12 MP photos")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="decode threads")
    parser.add_argument("--work", type=Path, default=None, help="folder for the photos (kept)")
    args = parser.parse_args()
    if args.quick:
        args.batch_size = min(args.batch_size, 8)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        first = overhead(args, work)
        second = draft(args, work)
    print(f"\nsummary: overhead ratio {first:.3f} (>= 0.85), draft speed-up {second:.2f}x (>= 4x)")
    if args.quick:
        print("(quick mode only checks that the script works: too little work to judge speed)")


if __name__ == "__main__":
    main()
