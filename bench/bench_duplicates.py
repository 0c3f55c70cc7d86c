"""Calibrate and check near-duplicate grouping on generated sets with the bundled lotlip-tiny.

Each set: 24 held-out scenes x 4 near copies (resized, recompressed, slightly cropped,
burst-like) + 20 distinct scenes sharing an original's background and main object
(:func:`app.library.duplicates.calibration_set`), in a shuffled order as results come. The
cosine threshold and the signature limit are calibrated on the first sets and pairwise
precision/recall reported for every other set (disjoint seeds), next to the vectors alone
(their own calibrated threshold), and for stress sets whose look-alikes differ from their
original in one object only (``--swapped``, beyond the issue's similar scenes). Then the
cost: loading signatures per 100 photos (a 12 MP JPEG, draft-decoded, and the 160 px PNGs of
the sets) and grouping time with and without them.

    python bench/bench_duplicates.py [--calibrate 5] [--test 15] [--test-from N] [--swapped 3]
        [--model NAME [--library DIR]]

With ``--library``, the cosine threshold calibrated at the code's signature limit is stored in
that library for the model (the setting ``duplicate_threshold:<model>``), and the test sets are
scored with it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import timed
from PIL import Image, ImageFilter

import lotlip
from app.library import duplicates
from app.library.library import Library, image_tower_base

Set = tuple[np.ndarray, list[int], list[np.ndarray]]


def load_set(model: lotlip.LoTLIP, start: int, one_swapped: bool = False) -> Set:
    """Vectors, true groups and signatures of calibration set ``start``, shuffled like a
    result list."""
    data = duplicates.calibration_set(start=start, one_swapped=one_swapped)
    vectors = duplicates.embed_set(model, data)
    signatures = duplicates.set_signatures(data)
    order = np.random.default_rng(start).permutation(len(vectors))
    return vectors[order], [data.groups[i] for i in order], [signatures[i] for i in order]


def photo_like(path: Path, width: int = 4000, height: int = 3000) -> None:
    """A 12 MP JPEG with photo-like detail (smooth structure plus sensor-like noise)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 255, (height // 10, width // 10, 3), dtype=np.uint8)
    base = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
    noise = Image.fromarray(rng.integers(0, 40, (height, width, 3), dtype=np.uint8))
    Image.blend(base.filter(ImageFilter.GaussianBlur(3)), noise, 0.2).save(path, quality=90)


def load_signatures(paths: list[Path]) -> None:
    """Load the signatures of ``paths`` one after another (no cache)."""
    for path in paths:
        if duplicates.load_signature(path) is None:
            raise RuntimeError(f"cannot read {path}")


def cost(sets: list[Set], threshold: float, limit: float) -> None:
    """Print what signatures cost per 100 results, measured in this run."""
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "photo.jpg"
        photo_like(big)
        small = []
        for i, image in enumerate(duplicates.calibration_set(originals=20, copies=4).images):
            small.append(Path(tmp) / f"{i}.png")
            image.save(small[-1])
        per_big = timed(load_signatures, [big] * 20) / 20
        per_small = timed(load_signatures, small[:100]) / 100
    print(f"loading signatures per 100 photos: {per_big * 100:.2f} s from 12 MP JPEGs (draft), ")
    print(f"  {per_small * 100 * 1000:.0f} ms from 160 px PNGs (one thread; grouping uses several)")
    alone = confirmed = 0.0
    pairs = 0
    for vectors, groups, signatures in sets:
        alone += timed(duplicates.evaluate, vectors, groups, threshold)
        differences = duplicates.Differences(signatures)
        confirmed += timed(duplicates.evaluate, vectors, groups, threshold, differences, limit)
        pairs += len(differences)
    rows = sum(len(g) for _, g, _ in sets)
    print(
        f"grouping per 100 results: {alone / rows * 100 * 1000:.1f} ms with the vectors alone, "
        f"{confirmed / rows * 100 * 1000:.1f} ms with signature checks "
        f"({confirmed / alone:.1f}x; {pairs / rows * 100:.0f} pairs compared per 100 results, "
        f"{confirmed / max(pairs, 1) * 1000:.1f} ms each)"
    )


def main() -> None:
    """Calibrate on the first sets, report precision/recall on the next ones, then the cost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", type=int, default=5, help="sets to calibrate on")
    parser.add_argument("--test", type=int, default=15, help="held-out sets to report")
    parser.add_argument("--test-from", type=int, help="first held-out set (default: next one)")
    parser.add_argument(
        "--swapped", type=int, default=3, help="stress sets: look-alikes differ in one object"
    )
    parser.add_argument("--model", default="lotlip-tiny", help="model name or folder")
    parser.add_argument("--library", help="store the calibrated threshold in this library")
    args = parser.parse_args()
    model = lotlip.load(args.model, device="cpu")
    first = args.calibrate if args.test_from is None else max(args.calibrate, args.test_from)
    end = first + args.test
    plan = [(n, "calibrate") for n in range(args.calibrate)]
    plan += [(n, "test") for n in range(first, end)]
    plan += [(n, "swapped") for n in range(end, end + args.swapped)]
    sets = [load_set(model, n, one_swapped=role == "swapped") for n, role in plan]
    calib = sets[: args.calibrate]
    alone_threshold, _ = duplicates.calibrate([(v, g, None) for v, g, _ in calib])
    threshold, limit = duplicates.calibrate(calib, limits=duplicates.LIMIT_GRID)
    image_base = image_tower_base(model)  # a text fine-tune takes its base's, as in the app
    default = duplicates.threshold_for(None, model.name, image_base)
    own = duplicates.threshold_for(None, model.name)
    inherited = "" if default == own else f" of {image_base}"
    print(f"{model.name}: vectors alone: calibrated threshold {alone_threshold:.3f}")
    print(
        f"with signatures: calibrated threshold {threshold:.3f}, signature limit {limit:.4f} "
        f"(in code: {default}{inherited}, {duplicates.SIGNATURE_LIMIT})"
    )
    if args.library:
        stored, _ = duplicates.calibrate(calib)
        with Library.open(args.library) as lib:
            lib.store.set_setting(duplicates.SETTING.format(model=model.name), stored)
            default = duplicates.threshold_for(lib.store, model.name, image_base)
        print(f"stored {stored:.3f} in {args.library}")
    if default is None:
        default = threshold
    limit = duplicates.SIGNATURE_LIMIT
    print("set  role       images  alone: precision recall  signatures: precision recall")
    scored: dict[str, list[tuple[duplicates.Calibration, duplicates.Calibration]]] = {}
    for (number, role), (vectors, groups, signatures) in zip(plan, sets, strict=True):
        alone = duplicates.evaluate(vectors, groups, alone_threshold)
        both = duplicates.evaluate(vectors, groups, default, signatures, limit)
        print(
            f"{number:3d}  {role:9s}  {len(groups):6d}  {alone.precision:16.3f} {alone.recall:6.3f}"
            f"  {both.precision:21.3f} {both.recall:6.3f}"
        )
        scored.setdefault(role, []).append((alone, both))
    for role in ("test", "swapped"):
        for name, k in (("vectors alone", 0), ("with signatures", 1)):
            p = [t[k].precision for t in scored.get(role, [])]
            r = [t[k].recall for t in scored.get(role, [])]
            if p:
                print(
                    f"{role} sets, {name}: worst precision {min(p):.3f}, worst recall "
                    f"{min(r):.3f}; mean {np.mean(p):.3f} / {np.mean(r):.3f}"
                )
    print("target: precision and recall >= 0.95 on every test set")
    tested = [d for (_, role), d in zip(plan, sets, strict=True) if role == "test"]
    cost(tested or sets, default, limit)


if __name__ == "__main__":
    main()
