"""Calibrate and check near-duplicate grouping on generated sets with the bundled lotlip-tiny.

Each set: 24 held-out scenes x 4 near copies (resized, recompressed, slightly cropped,
burst-like) + 20 distinct scenes sharing an original's background and main object
(:func:`app.library.duplicates.calibration_set`), in a shuffled order as results come. The
threshold is calibrated on the first sets and its pairwise precision/recall reported on the
others (disjoint seeds).

    python bench/bench_duplicates.py [--calibrate 3] [--test 3] [--model NAME [--library DIR]]

With ``--library``, the calibrated threshold is stored in that library for the model (the
setting ``duplicate_threshold:<model>``), and the test sets are scored with it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import lotlip  # noqa: E402
from app.library import duplicates  # noqa: E402


def load_set(model: lotlip.LoTLIP, start: int) -> tuple[np.ndarray, list[int]]:
    """Vectors and true groups of calibration set ``start``, shuffled like a result list."""
    data = duplicates.calibration_set(start=start)
    vectors = duplicates.embed_set(model, data)
    order = np.random.default_rng(start).permutation(len(vectors))
    return vectors[order], [data.groups[i] for i in order]


def main() -> None:
    """Calibrate on the first sets, report precision/recall on the next ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", type=int, default=3, help="sets to calibrate on")
    parser.add_argument("--test", type=int, default=3, help="held-out sets to report")
    parser.add_argument("--model", default="lotlip-tiny", help="model name or folder")
    parser.add_argument("--library", help="store the calibrated threshold in this library")
    args = parser.parse_args()
    model = lotlip.load(args.model, device="cpu")
    calib = [load_set(model, s) for s in range(args.calibrate)]
    threshold = duplicates.calibrate(calib)
    default = duplicates.CALIBRATED.get(model.name)
    print(f"{model.name}: calibrated threshold {threshold:.4f} (in code: {default})")
    if args.library:
        from app.library.library import Library

        with Library.open(args.library) as lib:
            lib.store.set_setting(duplicates.SETTING.format(model=model.name), threshold)
        print(f"stored in {args.library}")
    if args.library or default is None:
        default = threshold
    print("set  role       images  precision  recall")
    tested = []
    for start in range(args.calibrate + args.test):
        vectors, groups = calib[start] if start < args.calibrate else load_set(model, start)
        c = duplicates.evaluate(vectors, groups, default)
        role = "calibrate" if start < args.calibrate else "test"
        print(f"{start:3d}  {role:9s}  {len(groups):6d}  {c.precision:9.3f}  {c.recall:6.3f}")
        if role == "test":
            tested.append(c)
    if tested:
        precision = np.mean([c.precision for c in tested])
        recall = np.mean([c.recall for c in tested])
        print(f"test mean: precision {precision:.3f}, recall {recall:.3f} (target >= 0.95 both)")


if __name__ == "__main__":
    main()
