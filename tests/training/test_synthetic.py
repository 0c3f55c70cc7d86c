"""Tests for the procedural scenes of training.synthetic."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from training import synthetic
from training.synthetic import (
    COLOURS,
    HELDOUT_SEED_OFFSET,
    POSITIONS,
    SHAPES,
    caption_corpus,
    heldout_seeds,
    label_index,
    make_scene,
    make_scenes,
    write_scenes,
    zero_shot_prompts,
)

SEEDS = range(150)
# Words that identify each pattern in every phrasing the captions use.
PATTERN_KEYWORDS = {"solid": "solid", "striped": "stripe", "dotted": "dot", "outlined": "outline"}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def test_same_seed_gives_identical_scene_and_pixels() -> None:
    a, b = make_scene(1234), make_scene(1234)
    assert a == b
    assert a.long_captions == b.long_captions
    assert a.short_caption == b.short_caption
    for size in (64, 224):
        assert a.render(size).tobytes() == b.render(size).tobytes()


def test_different_seeds_give_different_scenes() -> None:
    scenes = make_scenes(0, 40)
    assert [s.seed for s in scenes] == list(range(40))
    assert len({s.long_captions[0] for s in scenes}) == 40
    assert len({s.render(32).tobytes() for s in scenes}) == 40


def test_heldout_seeds_lie_above_every_training_seed() -> None:
    held = heldout_seeds(5000)
    assert min(held) == HELDOUT_SEED_OFFSET and len(held) == 5000
    assert list(heldout_seeds(3, start=7)) == [HELDOUT_SEED_OFFSET + 7 + i for i in range(3)]
    with pytest.raises(ValueError):
        heldout_seeds(3, start=-1)


def test_scene_structure() -> None:
    for seed in SEEDS:
        scene = make_scene(seed)
        objects = scene.objects
        assert 2 <= len(objects) <= 5
        assert scene.salient is objects[0]
        assert scene.salient.size == "large"
        assert all(o.size in ("medium", "small") for o in objects[1:])
        assert all(scene.salient.radius > o.radius for o in objects[1:])
        assert len({o.position for o in objects}) == len(objects)
        assert len({o.label for o in objects}) == len(objects)
        for obj in objects:
            assert obj.shape in SHAPES and obj.colour in COLOURS
            # Every object stays inside the image.
            assert obj.radius <= obj.x <= 1 - obj.radius
            assert obj.radius <= obj.y <= 1 - obj.radius
            distance = np.linalg.norm(np.subtract(obj.rgb, scene.background.rgb))
            assert distance > 100


def test_long_captions_describe_every_object() -> None:
    for seed in SEEDS:
        scene = make_scene(seed)
        assert len(scene.long_captions) == 3
        for caption in scene.long_captions:
            assert caption.endswith(".")
            sentences = caption[:-1].split(". ")
            assert len(sentences) >= len(scene.objects) + 1
            assert all(s and s[0].isupper() for s in sentences)
            assert scene.background.colour in caption
            for obj in scene.objects:
                matching = [
                    s
                    for s in sentences
                    if f"{obj.colour} {obj.shape}" in s
                    and obj.size in _words(s)
                    and PATTERN_KEYWORDS[obj.pattern] in s
                    and all(w in _words(s) for w in obj.position.split())
                ]
                assert matching, (seed, obj, caption)


def test_short_caption_names_only_the_salient_object() -> None:
    for seed in SEEDS:
        scene = make_scene(seed)
        sal = scene.salient
        assert scene.short_caption == f"a large {sal.colour} {sal.shape}"
        words = _words(scene.short_caption)
        assert [w for w in words if w in COLOURS] == [sal.colour]
        assert [w for w in words if w in SHAPES] == [sal.shape]
        assert not any(w in POSITIONS for w in words)


def test_paraphrases_vary() -> None:
    varied = sum(len(set(make_scene(seed).long_captions)) == 3 for seed in SEEDS)
    assert varied > 0.9 * len(SEEDS)


@pytest.mark.parametrize("size", [64, 224, 300])
def test_render_size_and_salient_colour(size: int) -> None:
    checked = 0
    for seed in range(60):
        scene = make_scene(seed)
        image = scene.render(size)
        assert image.mode == "RGB" and image.size == (size, size)
        sal = scene.salient
        if sal.pattern != "solid" or sal.shape == "ring":
            continue
        x, y = int(sal.x * size), int(sal.y * size)
        pixel = np.asarray(image)[y, x].astype(int)
        assert np.abs(pixel - np.asarray(sal.rgb)).max() <= 12, (seed, pixel, sal)
        checked += 1
    assert checked >= 5


def test_render_anti_aliased_and_large() -> None:
    scene = make_scene(7)
    big = np.asarray(scene.render(512))
    assert big.shape == (512, 512, 3)
    small = np.asarray(scene.render(64))
    # Anti-aliasing produces intermediate colours along edges, far more than a palette.
    assert len(np.unique(small.reshape(-1, 3), axis=0)) > 20


def test_zero_shot_labels() -> None:
    names = zero_shot_prompts("{colour} {shape}")
    prompts = zero_shot_prompts()
    assert len(names) == len(set(names)) == len(COLOURS) * len(SHAPES)
    assert len(prompts) == len(names)
    assert prompts[names.index("red circle")] == "a photo of a red circle"
    assert zero_shot_prompts("a {colour} {shape}")[0] == f"a {names[0]}"
    for seed in range(50):
        scene = make_scene(seed)
        assert scene.label == f"{scene.salient.colour} {scene.salient.shape}"
        assert names[label_index(scene)] == scene.label


def test_a_small_corpus_holds_every_word_of_any_caption() -> None:
    """Every phrase the generator knows is in the corpus, not only those 5 scenes happen to use."""
    corpus_words = {w for text in caption_corpus(5) for w in _words(text)}
    for seed in SEEDS:
        scene = make_scene(seed)
        for text in [*scene.long_captions, scene.short_caption]:
            assert set(_words(text)) <= corpus_words, set(_words(text)) - corpus_words
    for prompt in zero_shot_prompts():
        assert set(_words(prompt)) <= corpus_words


def test_write_scenes(tmp_path) -> None:
    manifest = write_scenes(tmp_path / "scenes", 5, 3, size=32)
    folder = tmp_path / "scenes"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["seed"] for r in rows] == [5, 6, 7]
    for row in rows:
        scene = make_scene(row["seed"])
        stem = synthetic.scene_file_stem(row["seed"])
        assert row["image"] == f"{stem}.png"
        assert row["short"] == scene.short_caption
        assert row["long"] == scene.long_captions
        assert row["label"] == scene.label
        with Image.open(folder / row["image"]) as image:
            assert image.tobytes() == scene.render(32).tobytes()
        sidecar = (folder / f"{stem}.txt").read_text()
        paragraphs = sidecar.strip().split("\n\n")
        assert paragraphs[0] == scene.short_caption
        assert paragraphs[1:] == scene.long_captions
