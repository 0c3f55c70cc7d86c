"""Near-duplicate grouping: results that are copies of one picture share one tile.

Two signals decide. The image vectors propose: results are taken in rank order, and each may
join an earlier group only when its cosine to *every* member is at least the threshold
(complete linkage: no chain of look-alikes joins unrelated photos). A small picture signature
confirms: the photo must also look like at least one member of that group at
:data:`SIGNATURE_SIDE` px (:func:`difference` at most :data:`SIGNATURE_LIMIT`). Of the groups
that pass both, it joins the one whose least similar member is most similar to it; else it
starts a new group. The confirmation is what a small model lacks: ``lotlip-tiny`` sees a scene
mostly as its background and main object, so two different pictures with the same palette can
have nearly the same vector, while their pixels differ wherever their other objects are.

A signature is the photo shrunk to :data:`SIGNATURE_SIDE` x :data:`SIGNATURE_SIDE` (box
filter, JPEG draft decoding). Two signatures differ in a cell when the colour of either one
there (after scaling both pictures to the same mean brightness) has no match within
:data:`COLOUR_TOLERANCE` among the other's cells up to :data:`SHIFT` cells away; the shift
tolerance absorbs crops of a few percent and nudged objects, the brightness scaling a change
of light, the tolerance JPEG noise. :func:`difference` is the fraction of cells that differ.

The threshold is calibrated per model on generated sets (:func:`calibration_set`):
procedural scenes, each with near copies (resized, recompressed as JPEG, slightly cropped, and
burst-like: objects nudged and the light changed a little), plus distinct scenes with an
original's background and main object but other objects. :func:`calibrate` picks the centre of
the region of best worst-set F1. :data:`DEFAULT_THRESHOLD` and :data:`SIGNATURE_LIMIT` are those
values for the bundled ``lotlip-tiny`` (``bench/bench_duplicates.py`` prints them with
precision and recall per set). A library may hold its own threshold per model in the setting
``duplicate_threshold:<model>`` (``bench/bench_duplicates.py --model NAME --library DIR``
calibrates and stores one). A fine-tune with neither whose image tower is bit-identical to its
base's (a text fine-tune) makes its base's image vectors, so it takes its base's threshold; any
other model with neither is not grouped.

Signatures are read when grouping, only for results with a look-alike above the threshold,
in parallel and cached (:class:`SignatureCache`); a photo that cannot be read (moved, offline,
damaged) is not grouped.
"""

from __future__ import annotations

import functools
import io
import os
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageEnhance

from lotlip.transforms import ImageLoadError, load_image, to_rgb

if TYPE_CHECKING:
    from app.library.store import Store
    from lotlip.model import LoTLIP

DEFAULT_THRESHOLD = 0.78  # bench/bench_duplicates.py with lotlip-tiny
CALIBRATED = {"lotlip-tiny": DEFAULT_THRESHOLD}
"""Cosine thresholds measured by bench/bench_duplicates.py, per model name."""
SETTING = "duplicate_threshold:{model}"

SIGNATURE_SIDE = 48
"""Side of the picture signature in cells (the photo shrunk to this many pixels square)."""
SHIFT = 3
"""Cells (6 % of the side) a colour may move between copies: crops and nudged objects."""
COLOUR_TOLERANCE = 0.25
"""Largest RGB distance (0-1 scale, after brightness matching) of colours that still match."""
SIGNATURE_LIMIT = 0.02  # bench/bench_duplicates.py
"""Largest fraction of differing cells for two photos to count as copies."""

Confirm = Callable[[int, int], bool]
"""``confirm(i, j)``: do rows ``i`` and ``j`` look like copies (beyond their vectors)?"""


def threshold_for(store: Store | None, model: str, image_base: str | None = None) -> float | None:
    """The duplicate threshold for ``model``: the library's setting (none without ``store``:
    the code's rule alone, as the benchmark's reference), else a calibrated value; else, when
    ``model``'s image vectors are those of ``image_base`` (a fine-tune with its base's image
    tower, :func:`app.library.library.image_tower_base`), the base's threshold the same way;
    else ``None`` (not calibrated: grouping with a guessed value could fold distinct photos; an
    untrained model, for one, gives every photo nearly the same vector)."""
    for name in (model, image_base):
        if not name:
            continue
        value = store.get_setting(SETTING.format(model=name)) if store is not None else None
        if value is not None:
            return float(value)
        if name in CALIBRATED:
            return CALIBRATED[name]
    return None


def group_indices(
    vectors: np.ndarray, threshold: float, confirm: Confirm | None = None
) -> list[list[int]]:
    """Group rows of ``vectors`` [m, D] (unit length, rank order); each group lists row indices,
    leader first; groups are in the order of their leaders.

    A row may join a group when its cosine to every member is at least ``threshold`` (complete
    linkage: one look-alike cannot pull two groups together) and, with ``confirm``, when
    ``confirm(member, row)`` holds for at least one member. Of those groups it joins the one
    whose least similar member is most similar to it.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    groups: list[list[int]] = []
    for i, vector in enumerate(vectors):
        scores = [float((vectors[members] @ vector).min()) for members in groups]
        candidates = sorted(
            (g for g, score in enumerate(scores) if score >= threshold), key=lambda g: -scores[g]
        )
        chosen = next(
            (
                g
                for g in candidates
                if confirm is None or any(confirm(member, i) for member in groups[g])
            ),
            None,
        )
        if chosen is None:
            groups.append([i])
        else:
            groups[chosen].append(i)
    return groups


# --------------------------------------------------------------------------- signatures


def signature(image: Image.Image) -> np.ndarray:
    """The picture signature of ``image``: [SIGNATURE_SIDE, SIGNATURE_SIDE, 3] uint8 RGB."""
    side = (SIGNATURE_SIDE, SIGNATURE_SIDE)
    return np.asarray(to_rgb(image).resize(side, Image.BOX), dtype=np.uint8)


def load_signature(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The signature of the photo at ``path`` (JPEG draft-decoded), or ``None`` when it cannot
    be read (moved, deleted, damaged): such a photo is not grouped."""
    from app.library import decode  # noqa: F401  (registers the HEIC opener, as for indexing)

    try:
        return signature(load_image(path, SIGNATURE_SIDE))
    except (ImageLoadError, OSError):
        return None


def _brightness_matched(sig: np.ndarray) -> np.ndarray:
    cells = sig.astype(np.float32) / 255.0
    return cells * (0.5 / max(float(cells.mean()), 1.0 / 255.0))


def _unmatched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cells of ``a`` whose colour has no match in ``b`` within :data:`SHIFT` cells (``b``
    extended at its edges). Most cells match in place, so only the others are searched."""
    tolerance = COLOUR_TOLERANCE**2
    far = ((a - b) ** 2).sum(axis=-1) > tolerance
    ys, xs = np.nonzero(far)
    if len(ys):
        padded = np.pad(b, ((SHIFT, SHIFT), (SHIFT, SHIFT), (0, 0)), mode="edge")
        steps = np.arange(2 * SHIFT + 1)
        near = padded[ys[:, None, None] + steps[:, None], xs[:, None, None] + steps]  # [n,k,k,3]
        gaps = ((near - a[ys, xs][:, None, None, :]) ** 2).sum(axis=-1)
        far[ys, xs] = gaps.min(axis=(1, 2)) > tolerance
    return far


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """The fraction of cells where signatures ``a`` and ``b`` differ: a cell differs when, in
    either picture, its colour has no match within :data:`COLOUR_TOLERANCE` in the other
    picture up to :data:`SHIFT` cells away (both scaled to the same mean brightness)."""
    a, b = _brightness_matched(a), _brightness_matched(b)
    return float((_unmatched(a, b) | _unmatched(b, a)).mean())


class Differences:
    """:func:`difference` between rows' signatures, each pair computed once (``inf`` where a
    signature is missing: such a photo confirms nothing)."""

    def __init__(self, signatures: Sequence[np.ndarray | None]) -> None:
        self.signatures = signatures
        self._known: dict[tuple[int, int], float] = {}

    def __call__(self, i: int, j: int) -> float:
        key = (min(i, j), max(i, j))
        if key not in self._known:
            a, b = self.signatures[i], self.signatures[j]
            self._known[key] = np.inf if a is None or b is None else difference(a, b)
        return self._known[key]

    def __len__(self) -> int:
        """Pairs compared so far."""
        return len(self._known)

    def confirm(self, limit: float = SIGNATURE_LIMIT) -> Confirm:
        """A ``confirm`` for :func:`group_indices`: signatures differing in <= ``limit``."""
        return lambda i, j: self(i, j) <= limit


class SignatureCache:
    """Signatures of recently grouped photos, by ``(path, size)`` (thread-safe, bounded: about
    7 KB each)."""

    def __init__(self, capacity: int = 4096, workers: int | None = None) -> None:
        self.capacity = capacity
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._cached = functools.lru_cache(maxsize=capacity)(
            lambda path, size: load_signature(path)
        )

    def get(self, path: str, size: int) -> np.ndarray | None:
        """The signature of ``path`` (``size`` bytes), loaded on first use; ``None``: unreadable."""
        return self._cached(path, size)

    def get_many(self, files: Sequence[tuple[str, int]]) -> list[np.ndarray | None]:
        """Signatures of ``(path, size)`` pairs, the missing ones decoded in parallel (Pillow
        releases the GIL while decoding)."""
        if len(files) < 2 or self.workers < 2:
            return [self.get(path, size) for path, size in files]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(lambda item: self.get(*item), files))


def candidates(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of rows with another row at cosine >= ``threshold``: the only rows whose
    signatures grouping can need."""
    vectors = np.asarray(vectors, dtype=np.float32)
    close = (vectors @ vectors.T) >= threshold
    return np.flatnonzero(close.sum(axis=1) > 1)


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


def _one_swapped(scene, rng: random.Random):
    """A harder look-alike: ``scene`` with one of its other objects replaced by another
    scene's object in a free place (a stress test beyond the issue's similar scenes)."""
    from training.synthetic import make_scene

    used = {o.position for o in scene.objects}
    while True:
        other = make_scene(scene.seed + 1 + rng.randrange(10**6))
        free = [o for o in other.objects[1:] if o.position not in used]
        if free:
            objects = list(scene.objects)
            objects[rng.randrange(1, len(objects))] = free[0]
            return replace(scene, objects=tuple(objects))


@dataclass(frozen=True)
class CalibrationSet:
    """Generated images and the true group of each (copies share their original's group)."""

    images: list[Image.Image]
    groups: list[int]


def calibration_set(
    originals: int = 24,
    copies: int = 4,
    similar: int = 20,
    start: int = 0,
    size: int = 160,
    one_swapped: bool = False,
) -> CalibrationSet:
    """``originals`` held-out scenes with ``copies`` near copies each, plus ``similar`` distinct
    scenes each close to one of the originals (``one_swapped``: differing in one object only).
    ``start`` picks a disjoint slice of seeds."""
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
        look_alike = _one_swapped if one_swapped else _similar_scene
        images.append(look_alike(scenes[k % len(scenes)], rng).render(size))
        groups.append(len(scenes) + k)
    return CalibrationSet(images, groups)


@dataclass(frozen=True)
class Calibration:
    """Grouping values and the pairwise precision/recall they give on a set (``limit`` is
    ``None`` for the vectors alone)."""

    threshold: float
    limit: float | None
    precision: float
    recall: float

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def evaluate(
    vectors: np.ndarray,
    groups: Sequence[int],
    threshold: float,
    signatures: Sequence[np.ndarray | None] | Differences | None = None,
    limit: float = SIGNATURE_LIMIT,
) -> Calibration:
    """Group ``vectors`` (in the given order) at ``threshold``, confirmed by ``signatures``
    (or a :class:`Differences` over them) unless ``None``, and score against ``groups``."""
    if signatures is None:
        found, used = group_indices(vectors, threshold), None
    else:
        differences = signatures if isinstance(signatures, Differences) else Differences(signatures)
        found, used = group_indices(vectors, threshold, differences.confirm(limit)), limit
    precision, recall = pair_scores(labels_of(found, len(groups)), groups)
    return Calibration(threshold, used, precision, recall)


THRESHOLD_GRID = tuple(np.round(np.arange(0.70, 0.995, 0.01), 3))
LIMIT_GRID = tuple(np.round(np.arange(0.005, 0.0501, 0.0025), 4))


def calibrate(
    sets: Sequence[tuple[np.ndarray, Sequence[int], Sequence[np.ndarray | None] | None]],
    thresholds: Sequence[float] = THRESHOLD_GRID,
    limits: Sequence[float] = (SIGNATURE_LIMIT,),
) -> tuple[float, float]:
    """The ``(threshold, limit)`` of the grid with the best worst-set F1 over ``sets`` of
    ``(vectors, groups, signatures)`` (signatures ``None``: the vectors alone; then the best
    mean F1): of the cells that tie, the one
    furthest from every worse cell, i.e. from both failure modes."""
    memos = [(v, g, None if sigs is None else Differences(sigs)) for v, g, sigs in sets]
    score = np.zeros((len(thresholds), len(limits), 2))
    for r, threshold in enumerate(thresholds):
        for c, limit in enumerate(limits):
            f1 = [evaluate(v, g, threshold, d, limit).f1 for v, g, d in memos]
            score[r, c] = min(f1), float(np.mean(f1))
    best = np.isclose(score[..., 0], score[..., 0].max())
    best &= np.isclose(score[..., 1], score[best, 1].max())
    r, c = _centre(best)
    return float(thresholds[r]), float(limits[c])


def _centre(mask: np.ndarray) -> tuple[int, int]:
    """The true cell of a 2-D ``mask`` furthest (in grid steps) from any false cell, the edges
    of an axis longer than one counting as false; among equals, the one most central along its
    own row and column; then the first."""
    pads = [(1, 1) if n > 1 else (0, 0) for n in mask.shape]
    padded = np.pad(mask, pads, constant_values=False)
    false, cells = np.argwhere(~padded), np.argwhere(padded)
    if not len(false):
        return 0, 0
    reach = np.abs(cells[:, None, :] - false[None, :, :]).max(axis=2).min(axis=1)

    def along(r: int, c: int) -> int:  # steps to the nearest false cell in its row and column
        return _line_reach(padded[r], c) + _line_reach(padded[:, c], r)

    order = sorted(range(len(cells)), key=lambda k: (-reach[k], -along(*cells[k]), k))
    r, c = cells[order[0]] - [p[0] for p in pads]
    return int(r), int(c)


def _line_reach(line: np.ndarray, k: int) -> int:
    """Steps from ``k`` to the nearest false entry of a 1-D ``line`` (0 when there is none)."""
    false = np.flatnonzero(~line)
    return int(np.abs(false - k).min()) if len(false) else 0


def set_signatures(data: CalibrationSet) -> list[np.ndarray]:
    """Picture signatures of a calibration set's images."""
    return [signature(image) for image in data.images]


def embed_set(model: LoTLIP, data: CalibrationSet, batch: int = 64) -> np.ndarray:
    """Image vectors of a calibration set (unit length)."""
    parts = [
        model.embed_images(data.images[i : i + batch]) for i in range(0, len(data.images), batch)
    ]
    return np.concatenate(parts).astype(np.float32)
