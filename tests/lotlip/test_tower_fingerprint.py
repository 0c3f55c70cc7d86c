"""The image-tower fingerprint: the same from a model in memory and from its saved folder, and
it changes exactly when an image-tower tensor does."""

from __future__ import annotations

from pathlib import Path

import torch

from lotlip.checkpoints import model_image_tower_fingerprint
from lotlip.folders import WEIGHTS_FILE, image_tower_fingerprint
from tests.builders import new_micro_model


def test_memory_and_file_agree_and_only_the_image_tower_counts(tiny_vocab, tmp_path: Path):
    model = new_micro_model("fp", tiny_vocab, seed=0)
    model.save(tmp_path / "a")
    digest = model_image_tower_fingerprint(model)
    assert image_tower_fingerprint(tmp_path / "a") == digest

    with torch.no_grad():
        model.text.proj.weight.add_(0.5)
        model.logit_scale.add_(1.0)
    model.save(tmp_path / "b")  # other text weights: another file, the same image tower
    assert (tmp_path / "a" / WEIGHTS_FILE).read_bytes() != (
        tmp_path / "b" / WEIGHTS_FILE
    ).read_bytes()
    assert image_tower_fingerprint(tmp_path / "b") == digest

    with torch.no_grad():
        model.visual.vit.layernorm.bias[0] += 1e-3  # one number of the image tower
    model.save(tmp_path / "c")
    assert image_tower_fingerprint(tmp_path / "c") == model_image_tower_fingerprint(model) != digest


def test_an_unreadable_weights_file_has_no_fingerprint(tmp_path: Path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / WEIGHTS_FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    assert image_tower_fingerprint(tmp_path / "m") is None
    assert image_tower_fingerprint(tmp_path / "missing") is None
