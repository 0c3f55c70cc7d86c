"""Near-duplicate grouping: results whose image vectors are nearly identical share one tile.

Results are taken in rank order; each joins the earlier group whose least similar member is
most similar to it, when that cosine is at least the threshold, else it starts a new group
(complete linkage: every pair in a group is above the threshold, so no chain of look-alikes
joins unrelated photos).

The threshold is calibrated per model on a generated set (:func:`calibration_set`): procedural
scenes, each with near copies (resized, recompressed as JPEG, slightly cropped, and burst-like:
objects nudged and the light changed a little), plus distinct scenes with an original's
background and main object but other objects. :func:`calibrate` picks the middle of the widest
threshold interval with the best mean pairwise F1; :data:`DEFAULT_THRESHOLD` is that value for
the bundled ``lotlip-tiny`` (``bench/bench_duplicates.py`` prints it with precision and
recall). A library may hold its own value per model in the setting ``duplicate_threshold:<model>``
(``bench/bench_duplicates.py --model NAME --library DIR`` calibrates and stores one); a model
with neither is not grouped.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageEnhance

if TYPE_CHECKING:
    from app.library.store import Store
    from lotlip.model import LoTLIP

DEFAULT_THRESHOLD = 0.915  # bench/bench_duplicates.py with lotlip-tiny
CALIBRATED = {"lotlip-tiny": DEFAULT_THRESHOLD}
"""Thresholds measured by bench/bench_duplicates.py, per model name."""
SETTING = "duplicate_threshold:{model}"


def threshold_for(store: Store, model: str) -> float | None:
    """The duplicate threshold for ``model``: the library's setting, else a calibrated value,
    else ``None`` (not calibrated: grouping with a guessed value could fold distinct photos;
    an untrained model, for one, gives every photo nearly the same vector)."""
    value = store.get_setting(SETTING.format(model=model))
    return float(value) if value is not None else CALIBRATED.get(model)


def group_indices(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Group rows of ``vectors`` [m, D] (unit length, rank order); each group lists row indices,
    leader first; groups are in the order of their leaders.

    A row joins the group whose *least* similar member is most similar to it, when that
    similarity is at least ``threshold`` (complete linkage): every pair in a group is then
    above the threshold, so one look-alike cannot pull two groups together.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    groups: list[list[int]] = []
    for i, vector in enumerate(vectors):
        best, best_score = -1, -np.inf
        for g, members in enumerate(groups):
            score = float((vectors[members] @ vector).min())
            if score > best_score:
                best, best_score = g, score
        if best >= 0 and best_score >= threshold:
            groups[best].append(i)
        else:
            groups.append([i])
    return groups


def pair_scores(predicted: Sequence[int], truth: Sequence[int]) -> tuple[float, float]:
    """Pairwise ``(precision, recall)`` of a grouping: a pair counts when both items share a
    group. With no predicted (or true) pairs, precision (or recall) is 1."""
    pred, true = np.asarray(predicted), np.asarray(truth)
    same_pred = pred[:, None] == pred[None, :]
    same_true = true[:, None] == true[None, :]
    upper = np.triu(np.ones_like(same_pred), k=1)
    tp = int((same_pred & same_true & upper).sum())
    n_pred, n_true = int((same_pred & upper).sum()), int((same_true & upper).sum())
    return (tp / n_pred if n_pred else 1.0), (tp / n_true if n_true else 1.0)


def labels_of(groups: list[list[int]], count: int) -> list[int]:
    """Group number of each of ``count`` items."""
    labels = [0] * count
    for g, members in enumerate(groups):
        for i in members:
            labels[i] = g
    return labels


# --------------------------------------------------------------------------- calibration


def _near_copies(scene, size: int, count: int, rng: random.Random) -> list[Image.Image]:
    """Resized, recompressed, cropped and burst-like copies of a scene (cycled to ``count``)."""
    original = scene.render(size)
    copies = []
    for k in range(count):
        kind = k % 4
        if kind == 0:  # resized down and back, as a shared/exported copy
            scale = rng.uniform(0.4, 0.7)
            small = original.resize((int(size * scale), int(size * scale)), Image.BICUBIC)
            copies.append(small.resize((size, size), Image.BICUBIC))
        elif kind == 1:  # recompressed
            buf = io.BytesIO()
            original.save(buf, "JPEG", quality=rng.randint(25, 60))
            copies.append(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        elif kind == 2:  # slightly cropped (a few percent off each side, uneven)
            box = [int(size * rng.uniform(0.0, 0.06)) for _ in range(4)]
            crop = original.crop((box[0], box[1], size - box[2], size - box[3]))
            copies.append(crop.resize((size, size), Image.BICUBIC))
        else:  # burst-like: objects nudged a little, slightly different light
            nudged = tuple(
                replace(
                    o,
                    x=o.x + rng.uniform(-0.015, 0.015),
                    y=o.y + rng.uniform(-0.015, 0.015),
                    rotation=o.rotation + rng.uniform(-3, 3),
                )
                for o in scene.objects
            )
            shot = replace(scene, objects=nudged).render(size)
            copies.append(ImageEnhance.Brightness(shot).enhance(rng.uniform(0.92, 1.08)))
    return copies


def _similar_scene(scene, rng: random.Random):
    """A distinct scene like ``scene``: the same background and the same salient object in the
    same place, with the other objects taken from another scene (a different photo of the same
    subject, not a copy)."""
    from training.synthetic import make_scene

    salient = scene.objects[0]
    while True:  # at least two other objects, so it really is another picture
        other = make_scene(scene.seed + 1 + rng.randrange(10**6))
        rest = [o for o in other.objects[1:] if o.position != salient.position]
        if len(rest) >= 2:
            return replace(scene, objects=(salient, *rest))


@dataclass(frozen=True)
class CalibrationSet:
    """Generated images and the true group of each (copies share their original's group)."""

    images: list[Image.Image]
    groups: list[int]


def calibration_set(
    originals: int = 24, copies: int = 4, similar: int = 20, start: int = 0, size: int = 160
) -> CalibrationSet:
    """``originals`` held-out scenes with ``copies`` near copies each, plus ``similar`` distinct
    scenes each close to one of the originals. ``start`` picks a disjoint slice of seeds."""
    from training.synthetic import heldout_seeds, make_scene

    rng = random.Random(start)
    seeds = list(heldout_seeds(originals, start=5_000_000 + start * 1000))
    images: list[Image.Image] = []
    groups: list[int] = []
    scenes = [make_scene(s) for s in seeds]
    for g, scene in enumerate(scenes):
        images.append(scene.render(size))
        images.extend(_near_copies(scene, size, copies, rng))
        groups.extend([g] * (1 + copies))
    for k in range(similar):
        images.append(_similar_scene(scenes[k % len(scenes)], rng).render(size))
        groups.append(len(scenes) + k)
    return CalibrationSet(images, groups)


@dataclass(frozen=True)
class Calibration:
    """A chosen threshold and the pairwise precision/recall it gives on its set."""

    threshold: float
    precision: float
    recall: float


def evaluate(vectors: np.ndarray, groups: Sequence[int], threshold: float) -> Calibration:
    """Group ``vectors`` (in the given order) at ``threshold`` and score against ``groups``."""
    found = group_indices(vectors, threshold)
    precision, recall = pair_scores(labels_of(found, len(groups)), groups)
    return Calibration(threshold, precision, recall)


def calibrate(
    sets: Sequence[tuple[np.ndarray, Sequence[int]]], low: float = 0.8, steps: int = 77
) -> float:
    """The threshold in [low, 0.99] with the best mean pairwise F1 over ``sets`` of
    ``(vectors, groups)``: the middle of the longest run of best thresholds, which is the
    furthest from both failure modes."""
    grid = np.linspace(low, 0.99, steps)
    f1 = []
    for t in grid:
        runs = [evaluate(vectors, groups, float(t)) for vectors, groups in sets]
        f1.append(np.mean([2 * c.precision * c.recall / (c.precision + c.recall) for c in runs]))
    best = np.flatnonzero(np.isclose(f1, max(f1)))
    run = max(np.split(best, np.flatnonzero(np.diff(best) > 1) + 1), key=len)
    return float(grid[run[len(run) // 2]])


def embed_set(model: LoTLIP, data: CalibrationSet, batch: int = 64) -> np.ndarray:
    """Image vectors of a calibration set (unit length)."""
    parts = [
        model.embed_images(data.images[i : i + batch]) for i in range(0, len(data.images), batch)
    ]
    return np.concatenate(parts).astype(np.float32)
