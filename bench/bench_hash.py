"""What does hashing a whole photo cost next to decoding it for the model?

The indexer fingerprints every embedded file with BLAKE2b over its whole content (so that a
same-size edit is never mistaken for a touch). This measures, in one run on the same files:

* the whole-file hash (``content_hash``) from disk and from the bytes in memory (``hash_bytes``,
  what the decoder does);
* the old sampled hash (three 64 KiB blocks) for comparison;
* the decode the indexer does anyway (``load_image`` at 224 px: JPEG draft mode, EXIF, resize).

    python bench/bench_hash.py                  # 20 photos of 12 MP
    python bench/bench_hash.py --images 10 --megapixels 24

Prints milliseconds per photo and the ratios; nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path

import numpy as np
from common import timed
from PIL import Image


def sampled_hash(path: Path, block: int = 64 * 1024) -> str:
    """The hash the scanner used before: size plus start, middle and end blocks."""
    h = hashlib.blake2b(digest_size=16)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        h.update(size.to_bytes(8, "little"))
        for offset in (0, max(0, (size - block) // 2), max(0, size - block)):
            fh.seek(offset)
            h.update(fh.read(block))
    return h.hexdigest()


def write_photos(folder: Path, count: int, megapixels: float) -> list[Path]:
    """``count`` JPEGs with photo-like detail (smooth gradients plus noise), quality 90."""
    rng = np.random.default_rng(0)
    height = int((megapixels * 1e6 * 3 / 4) ** 0.5)
    width = height * 4 // 3
    y, x = np.mgrid[0:height, 0:width]
    paths = []
    for i in range(count):
        base = np.stack([(x + i * 50) % 256, (y * 2) % 256, (x + y) % 256], axis=-1)
        noise = rng.integers(-20, 20, size=(height, width, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        path = folder / f"photo_{i:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def per_file_ms(fn, paths: list[Path], repeat: int = 3) -> float:
    """Best of ``repeat`` passes over all files, in milliseconds per file."""
    best = min(timed(lambda: [fn(path) for path in paths]) for _ in range(repeat))
    return best * 1000 / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--megapixels", type=float, default=12.0)
    args = parser.parse_args()

    from app.library.scanner import content_hash, hash_bytes
    from lotlip.transforms import load_image

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_photos(Path(tmp), args.images, args.megapixels)
        mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
        data = {p: p.read_bytes() for p in paths}
        whole = per_file_ms(content_hash, paths)
        in_memory = per_file_ms(lambda p: hash_bytes(data[p]), paths)
        sampled = per_file_ms(sampled_hash, paths)
        decode = per_file_ms(lambda p: load_image(p, 224), paths)
    print(f"{args.images} JPEGs of {args.megapixels:g} MP, {mb:.1f} MB each (warm page cache)")
    print(f"  decode for the model (load_image 224): {decode:8.2f} ms/photo")
    print(f"  whole-file hash from disk:             {whole:8.2f} ms/photo")
    print(f"  whole-file hash of bytes in memory:    {in_memory:8.2f} ms/photo")
    print(f"  sampled hash (old, 3 x 64 KiB):        {sampled:8.2f} ms/photo")
    print(f"ratio whole-file hash / decode:           {whole / decode:.3f}")
    print(f"ratio in-memory hash / decode:            {in_memory / decode:.3f}")
    print(f"ratio whole-file / sampled hash:          {whole / sampled:.1f}")


if __name__ == "__main__":
    main()
