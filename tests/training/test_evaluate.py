"""Retrieval recall@k, zero-shot accuracy and the printed report (training.evaluate)."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from lotlip.model import LoTLIP
from training.evaluate import (
    EvalSet,
    evaluate,
    format_table,
    recall_at_k,
    to_json,
    zero_shot_accuracy,
)
from training.synthetic import make_scene

pytestmark = pytest.mark.usefixtures("single_thread")


def brute_force_recall(similarity: np.ndarray, k: int) -> tuple[float, float]:
    """(text->image, image->text) R@k by sorting each query's candidates.

    Candidates are sorted by score, highest first; among equal scores the true match comes
    last (pessimistic), so a tie with the true match never counts as a hit.
    """
    n = similarity.shape[0]

    def hits(matrix: np.ndarray) -> float:
        found = 0
        for query in range(n):
            order = sorted(range(n), key=lambda c: (-matrix[query, c], c == query))
            found += order.index(query) < k
        return found / n

    return hits(similarity), hits(similarity.T)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recall_at_k_matches_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 23
    # coarse values: plenty of ties, including ties with the true match
    similarity = rng.integers(0, 5, size=(n, n)).astype(np.float32) / 4
    ks = (1, 2, 5, 10)
    scores = recall_at_k(similarity, ks)
    assert set(scores) == {f"{d}_r{k}" for d in ("t2i", "i2t") for k in ks}
    for k in ks:
        t2i, i2t = brute_force_recall(similarity, k)
        assert scores[f"t2i_r{k}"] == pytest.approx(t2i), k
        assert scores[f"i2t_r{k}"] == pytest.approx(i2t), k
    # the two directions really differ on a non-symmetric matrix
    assert any(scores[f"t2i_r{k}"] != scores[f"i2t_r{k}"] for k in ks)


def test_recall_at_k_on_a_worked_example() -> None:
    similarity = np.array(
        [
            [0.9, 0.1, 0.2],  # text 0: its image is best -> rank 0
            [0.8, 0.5, 0.9],  # text 1: two images score higher -> rank 2
            [0.3, 0.3, 0.3],  # text 2: a three-way tie ranks it last -> rank 2
        ]
    )
    scores = recall_at_k(similarity, (1, 2, 3))
    assert scores["t2i_r1"] == pytest.approx(1 / 3)
    assert scores["t2i_r2"] == pytest.approx(1 / 3)
    assert scores["t2i_r3"] == pytest.approx(1.0)
    # columns: image 0 -> [0.9, 0.8, 0.3] rank 0; image 1 -> [0.1, 0.5, 0.3] rank 0;
    # image 2 -> [0.2, 0.9, 0.3] rank 1
    assert scores["i2t_r1"] == pytest.approx(2 / 3)
    assert scores["i2t_r2"] == pytest.approx(1.0)


def test_recall_at_k_on_a_hand_computed_matrix() -> None:
    # 4 texts x 4 images; the true match of text i is image i (the diagonal)
    similarity = np.array(
        [
            [0.50, 0.40, 0.60, 0.10],  # text 0: image 2 above -> rank 1
            [0.20, 0.70, 0.10, 0.00],  # text 1: best -> rank 0
            [0.90, 0.80, 0.30, 0.95],  # text 2: three above -> rank 3
            [0.10, 0.20, 0.30, 0.40],  # text 3: best -> rank 0
        ]
    )
    scores = recall_at_k(similarity, (1, 2, 3, 4))
    assert [scores[f"t2i_r{k}"] for k in (1, 2, 3, 4)] == pytest.approx([0.5, 0.75, 0.75, 1.0])
    # image columns: 0 -> [.5,.2,.9,.1] rank 1; 1 -> [.4,.7,.8,.2] rank 1;
    # 2 -> [.6,.1,.3,.3] rank 2 (the .3 tie counts against it); 3 -> [.1,0,.95,.4] rank 1
    assert [scores[f"i2t_r{k}"] for k in (1, 2, 3, 4)] == pytest.approx([0.0, 0.75, 1.0, 1.0])


@pytest.mark.parametrize("value", [0.0, 0.37, np.nan])
def test_constant_or_nan_similarity_never_scores_hits(value: float) -> None:
    n = 8
    scores = recall_at_k(np.full((n, n), value), (1, 5, 8))
    # every candidate ties with (or, for NaN, cannot be compared to) the true one: ranked last
    assert scores["t2i_r1"] == scores["i2t_r1"] == 0.0
    assert scores["t2i_r5"] == scores["i2t_r5"] == 0.0
    # only a cutoff covering the whole set finds it (as any ranking would)
    expected_full = 0.0 if np.isnan(value) else 1.0
    assert scores["t2i_r8"] == scores["i2t_r8"] == expected_full


def test_nan_scores_are_misses_and_never_outrank_by_accident() -> None:
    similarity = np.eye(4)
    similarity[1, 1] = np.nan  # text 1's own score is undefined: a miss
    similarity[2, 0] = np.nan  # a NaN rival of text 2 counts as above it
    scores = recall_at_k(similarity, (1,))
    assert scores["t2i_r1"] == pytest.approx(2 / 4)
    # image columns: 0 -> [1, 0, nan, 0] NaN rival -> miss; 1 -> own NaN -> miss; 2, 3 hits
    assert scores["i2t_r1"] == pytest.approx(2 / 4)


def test_recall_at_k_edge_cases() -> None:
    with pytest.raises(ValueError):
        recall_at_k(np.zeros((3, 4)))
    assert recall_at_k(np.eye(4)) == {f"{d}_r{k}": 1.0 for k in (1, 5, 10) for d in ("t2i", "i2t")}
    empty = recall_at_k(np.zeros((0, 0)))
    assert all(value == 0.0 for value in empty.values())


def test_zero_shot_accuracy() -> None:
    rng = np.random.default_rng(0)
    images = rng.normal(size=(40, 8)).astype(np.float32)
    prompts = rng.normal(size=(5, 8)).astype(np.float32)
    labels = rng.integers(0, 5, size=40).tolist()
    expected = np.mean(
        [
            max(range(5), key=lambda p, i=i: float(images[i] @ prompts[p])) == labels[i]
            for i in range(40)
        ]
    )
    assert zero_shot_accuracy(images, prompts, labels) == pytest.approx(expected)
    # prompts equal to the images' own class direction -> everything right
    centres = np.eye(5, 8, dtype=np.float32)
    members = centres[labels] + 0.01 * rng.normal(size=(40, 8)).astype(np.float32)
    assert zero_shot_accuracy(members, centres, labels) == 1.0
    assert zero_shot_accuracy(members, centres, [(x + 1) % 5 for x in labels]) == 0.0
    assert zero_shot_accuracy(np.zeros((0, 8)), centres, []) == 0.0


def test_format_table_and_json_contain_the_numbers() -> None:
    metrics = {
        "n": 250.0,
        "long_t2i_r1": 0.1234,
        "long_t2i_r5": 0.4567,
        "long_t2i_r10": 0.7891,
        "long_i2t_r1": 0.2222,
        "long_i2t_r5": 0.3333,
        "long_i2t_r10": 0.4444,
        "short_t2i_r1": 0.0505,
        "short_t2i_r5": 0.0606,
        "short_t2i_r10": 0.0707,
        "short_i2t_r1": 0.9876,
        "short_i2t_r5": 0.9911,
        "short_i2t_r10": 1.0,
        "zeroshot_acc": 0.4321,
        "zeroshot_chance": 0.02,
    }
    table = format_table(metrics)
    lines = table.splitlines()
    assert "R@1" in lines[0] and "R@10" in lines[0]
    long_t2i = next(line for line in lines if line.startswith("long") and "text->image" in line)
    assert long_t2i.split()[-3:] == ["12.34", "45.67", "78.91"]
    short_i2t = next(line for line in lines if line.startswith("short") and "image->text" in line)
    assert short_i2t.split()[-3:] == ["98.76", "99.11", "100.00"]
    assert "43.21%" in table and "chance 2.00%" in table
    assert "pairs: 250" in table
    # rows whose numbers are missing are left out rather than printed as garbage
    partial = format_table({"n": 3.0, "long_t2i_r1": 0.5, "long_t2i_r5": 1.0, "long_t2i_r10": 1.0})
    assert "long" in partial and "short" not in partial and "zero-shot" not in partial
    decoded = json.loads(to_json({"a": 0.123456, "b": 1.0}))
    assert decoded == {"a": 0.1235, "b": 1.0}


def test_evaluate_agrees_with_the_model_embeddings(make_model: Callable[..., LoTLIP]) -> None:
    model = make_model(seed=2, spread=0.1)
    scenes = [make_scene(seed) for seed in range(12)]
    images: list[Image.Image] = [scene.render(32) for scene in scenes]
    data = EvalSet(
        images=images,
        long_texts=[scene.long_captions[0] for scene in scenes],
        short_texts=[scene.short_caption for scene in scenes],
        labels=[i % 3 for i in range(12)],
        prompts=["a red circle", "a blue square", "a green star"],
    )
    model.train()
    metrics = evaluate(model, data, batch_size=5)
    assert model.training, "evaluate must restore the training mode"
    assert metrics["n"] == 12
    image_vecs = model.embed_images(images)
    long_vecs = model.embed_texts(data.long_texts)
    expected = recall_at_k(long_vecs @ image_vecs.T)
    for key, value in expected.items():
        assert metrics[f"long_{key}"] == pytest.approx(value)
    short = recall_at_k(model.embed_texts(data.short_texts) @ image_vecs.T)
    assert metrics["short_t2i_r5"] == pytest.approx(short["t2i_r5"])
    prompt_vecs = model.embed_texts(data.prompts)
    assert metrics["zeroshot_acc"] == pytest.approx(
        zero_shot_accuracy(image_vecs, prompt_vecs, data.labels)
    )
    assert metrics["zeroshot_chance"] == pytest.approx(1 / 3)
    assert all(0.0 <= v <= 1.0 for k, v in metrics.items() if k != "n")
