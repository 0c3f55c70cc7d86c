"""Long- and short-text retrieval recall@k (both directions) and zero-shot accuracy.

Scoring follows the reference (LOTLIP.md §7): L2-normalized features, ``S = T @ I.T`` over the
whole set; text->image R@k is the fraction of texts whose own image is among the top k, and
image->text the same on ``S.T``. No temperature is applied. Ranks are pessimistic: a candidate
that ties with the true match counts as above it, and NaN scores are never hits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lotlip.model import LoTLIP

KS = (1, 5, 10)


def pessimistic_ranks(similarity: np.ndarray) -> np.ndarray:
    """0-based rank of each row's diagonal entry: how many other entries score at least as high.

    Ties count against the true match, and NaN is never a hit: a NaN true score ranks last,
    and a NaN rival ranks above it. So a constant or all-NaN matrix scores no hits below k = n.
    """
    n = similarity.shape[0]
    own = similarity[np.arange(n), np.arange(n)]
    scores = np.where(np.isnan(similarity), np.inf, similarity)
    at_least = (scores >= own[:, None]) | np.isnan(similarity)
    ranks = at_least.sum(axis=1) - 1  # minus the true match itself
    return np.where(np.isnan(own), n, ranks)


def recall_at_k(similarity: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """Recall of the diagonal in a square [texts, images] similarity matrix, both directions."""
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError("retrieval needs one text per image")
    n = similarity.shape[0]
    t2i_rank = pessimistic_ranks(similarity)
    i2t_rank = pessimistic_ranks(similarity.transpose())
    scores: dict[str, float] = {}
    for k in ks:
        scores[f"t2i_r{k}"] = float((t2i_rank < k).mean()) if n else 0.0
        scores[f"i2t_r{k}"] = float((i2t_rank < k).mean()) if n else 0.0
    return scores


def zero_shot_accuracy(
    image_features: np.ndarray, prompt_features: np.ndarray, labels: Sequence[int]
) -> float:
    """Fraction of images whose best-matching prompt is their label."""
    predicted = (image_features @ prompt_features.T).argmax(axis=1)
    return float((predicted == np.asarray(labels)).mean()) if len(labels) else 0.0


@dataclass
class EvalSet:
    """Images with one long and one short caption each, plus optional zero-shot labels."""

    images: list[Image.Image]
    long_texts: list[str]
    short_texts: list[str]
    labels: list[int] | None = None
    prompts: list[str] | None = None


def evaluate(model: LoTLIP, data: EvalSet, batch_size: int = 64) -> dict[str, float]:
    """All metrics of ``model`` on ``data`` as a flat dict (fractions in [0, 1])."""
    was_training = model.training
    model.eval()
    images = model.embed_images(data.images, batch_size=batch_size)
    metrics: dict[str, float] = {"n": float(len(data.images))}
    for name, texts in (("long", data.long_texts), ("short", data.short_texts)):
        scores = recall_at_k(model.embed_texts(texts, batch_size=batch_size) @ images.T)
        metrics.update({f"{name}_{key}": value for key, value in scores.items()})
    if data.labels is not None and data.prompts:
        prompts = model.embed_texts(data.prompts)
        metrics["zeroshot_acc"] = zero_shot_accuracy(images, prompts, data.labels)
        metrics["zeroshot_chance"] = 1.0 / len(data.prompts)
    model.train(was_training)
    return metrics


def synthetic_eval_set(count: int = 500, start: int = 0, size: int = 224) -> EvalSet:
    """Held-out synthetic scenes (seeds disjoint from training ones)."""
    from .synthetic import heldout_seeds, label_index, make_scene, zero_shot_prompts

    scenes = [make_scene(seed) for seed in heldout_seeds(count, start)]
    return EvalSet(
        images=[scene.render(size) for scene in scenes],
        long_texts=[scene.long_captions[0] for scene in scenes],
        short_texts=[scene.short_caption for scene in scenes],
        labels=[label_index(scene) for scene in scenes],
        prompts=zero_shot_prompts(),
    )


def format_table(metrics: dict[str, float]) -> str:
    """A plain-text table of the recall metrics (percentages)."""
    lines = [f"{'captions':<8} {'direction':<12} {'R@1':>7} {'R@5':>7} {'R@10':>7}"]
    for caption in ("long", "short"):
        for direction, label in (("t2i", "text->image"), ("i2t", "image->text")):
            cells = [metrics.get(f"{caption}_{direction}_r{k}") for k in KS]
            if any(c is None for c in cells):
                continue
            lines.append(f"{caption:<8} {label:<12} " + " ".join(f"{100 * c:7.2f}" for c in cells))
    if "zeroshot_acc" in metrics:
        lines.append(
            f"zero-shot accuracy of the salient object: {100 * metrics['zeroshot_acc']:.2f}% "
            f"(chance {100 * metrics.get('zeroshot_chance', 0):.2f}%)"
        )
    lines.append(f"pairs: {int(metrics.get('n', 0))}")
    return "\n".join(lines)


def to_json(metrics: dict[str, float]) -> str:
    """Metrics as indented JSON (rounded to 4 decimals)."""
    return json.dumps({k: round(v, 4) for k, v in metrics.items()}, indent=2)
