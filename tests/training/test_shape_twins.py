"""Shape twins: scene pairs differing by one shape, kept in one batch (``--shape-twins``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import lotlip
from training.cli import main
from training.data import ShapeTwinDataset
from training.distributed import DistInfo
from training.synthetic import (
    SHAPES,
    Background,
    Scene,
    SceneObject,
    free_shapes,
    make_scene,
    swap_shape,
)
from training.train import StepSampler, TrainConfig, _batches

SHAPE_WORD = re.compile(r"\b(" + "|".join(SHAPES) + r")\b")


def _blind(text: str) -> str:
    """The text as a shape-blind reader sees it."""
    return SHAPE_WORD.sub("shape", text)


def _hand_made() -> Scene:
    """A large red circle and a small red square: two labels sharing a colour."""
    objects = (
        SceneObject("circle", "red", "large", "centre", "solid", 0.5, 0.5, 0.16),
        SceneObject("square", "red", "small", "top left", "solid", 1 / 6, 1 / 6, 0.07),
    )
    return Scene(
        seed=0,
        background=Background("cream", "plain"),
        objects=objects,
        long_captions=[
            "A large solid red circle sits in the centre. The red square is below the red circle"
        ],
        short_caption="a large red circle",
    )


def test_swap_shape_on_a_hand_made_scene() -> None:
    scene = _hand_made()
    assert free_shapes(scene, 0) == [s for s in SHAPES if s not in ("circle", "square")]
    twin = swap_shape(scene, 0, "star")
    assert [o.label for o in twin.objects] == ["red star", "red square"]
    assert twin.short_caption == "a large red star"
    assert twin.long_captions == [
        "A large solid red star sits in the centre. The red square is below the red star"
    ]
    assert scene.objects[0].shape == "circle"  # the original is untouched
    with pytest.raises(ValueError, match="already has a red square"):
        swap_shape(scene, 0, "square")
    with pytest.raises(ValueError, match="unknown shape"):
        swap_shape(scene, 0, "blob")


def test_swap_shape_changes_pixels_only_where_the_object_is() -> None:
    scene = make_scene(7)
    obj = scene.objects[0]
    twin = swap_shape(scene, 0, free_shapes(scene, 0)[0])
    a = np.asarray(scene.render(96), dtype=np.int16)
    b = np.asarray(twin.render(96), dtype=np.int16)
    changed = np.argwhere(np.abs(a - b).max(axis=2) > 0)
    assert len(changed) > 20  # the shape really changed
    centre = np.array([obj.y, obj.x]) * 96
    assert np.abs(changed - centre).max() <= obj.radius * 96 + 2


def test_twin_items_differ_by_exactly_one_named_shape() -> None:
    data = ShapeTwinDataset(0, 40, lambda image: image, image_size=32, seed=3)
    assert len(data) == 80 and data.group_size == 2
    for pair in range(40):
        base, twin = data.scene(2 * pair), data.scene(2 * pair + 1)
        short_a, longs_a = data.captions(2 * pair)
        short_b, longs_b = data.captions(2 * pair + 1)
        pairs = enumerate(zip(base.objects, twin.objects, strict=True))
        diff = [i for i, (a, b) in pairs if a != b]
        assert len(diff) == 1
        i = diff[0]
        old, new = base.objects[i], twin.objects[i]
        assert (old.colour, old.size, old.position) == (new.colour, new.size, new.position)
        assert old.shape != new.shape
        texts_a, texts_b = [short_a, *longs_a], [short_b, *longs_b]
        # a shape-blind reader cannot tell the two captions apart ...
        assert [_blind(t) for t in texts_a] == [_blind(t) for t in texts_b]
        # ... and the difference is the swapped object's label, which the captions name
        assert texts_a != texts_b
        assert any(old.label in t.lower() for t in texts_a)
        assert any(new.label in t.lower() for t in texts_b)
        assert base == make_scene(pair)  # the even item is the plain scene


def test_twin_captions_follow_the_epoch_and_stay_deterministic() -> None:
    data = ShapeTwinDataset(0, 30, lambda image: image, image_size=32, seed=1)
    first = [data.captions(i) for i in range(60)]
    assert first == [data.captions(i) for i in range(60)]
    data.set_epoch(1)
    assert first != [data.captions(i) for i in range(60)]


def test_step_sampler_keeps_groups_whole() -> None:
    length, batch = 40, 8
    plain = StepSampler(length, batch, DistInfo(), seed=5)
    paired = StepSampler(length, batch, DistInfo(), seed=5, group=2)
    for b in range(12):  # spans several epochs
        epoch_p, indices = paired.batch_indices(b)
        assert epoch_p == plain.batch_indices(b)[0]
        pairs = [(indices[k], indices[k + 1]) for k in range(0, batch, 2)]
        assert all(a % 2 == 0 and b == a + 1 for a, b in pairs)
    seen = [i for b in range(length // batch) for i in paired.batch_indices(b)[1]]
    assert sorted(seen) == list(range(length))  # one epoch is a permutation
    with pytest.raises(ValueError, match="multiples of its group size"):
        StepSampler(length, 7, DistInfo(), seed=5, group=2)


def test_pretrain_with_shape_twins_resumes_exactly(tmp_path: Path) -> None:
    argv = ["pretrain", "--recipe", "micro", "--synthetic", "16", "--shape-twins"]
    argv += ["--batch-size", "8", "--steps", "3", "--workers", "0", "--eval-scenes", "0"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert main([*argv, "--out", str(straight)]) == 0
    meta = json.loads((straight / "model" / "config.json").read_text())["metadata"]
    assert "shape twin" in meta["data"] and meta["samples"] == 32
    assert main([*argv, "--out", str(stopped), "--max-minutes", "0"]) == 3  # after one step
    assert main([*argv, "--out", str(stopped)]) == 0
    a = lotlip.load(straight / "model", device="cpu", precision="fp32").state_dict()
    b = lotlip.load(stopped / "model", device="cpu", precision="fp32").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    real_data = ["pretrain", "--recipe", "micro", "--data", str(tmp_path), "--shape-twins"]
    assert main([*real_data, "--out", str(tmp_path / "x")]) == 2


def test_training_batches_hold_whole_twin_pairs() -> None:
    data = ShapeTwinDataset(0, 20, lambda image: torch.zeros(1), image_size=32)
    batches = _batches(TrainConfig(out="unused", batch_size=8), data, DistInfo(), start_step=3)
    for _ in range(6):  # crosses an epoch boundary (5 batches per epoch)
        _, shorts, longs = next(batches)
        texts = [_blind(" ".join([s, *ls])) for s, ls in zip(shorts, longs, strict=True)]
        assert all(texts[k] == texts[k + 1] for k in range(0, 8, 2))
        assert len(set(texts)) == 4
