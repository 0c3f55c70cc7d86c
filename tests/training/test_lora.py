"""Low-rank adapters on the text tower: merge round trip, what trains, saved folders load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lotlip
from lotlip.model import LoTLIP
from training.lora import LoRALinear, add_adapters, has_adapters, merge_adapters
from training.train import TrainConfig, set_trainable, train

from .conftest import CaptionTensorDataset, state_of

pytestmark = pytest.mark.usefixtures("single_thread")
TEXTS = ["a large red circle on a pale blue background", "two small stars", "a ring"]
RANK = 2


def randomise_adapters(model: nn.Module, seed: int = 0) -> None:
    """Give every adapter's B a non-zero value (it starts at zero: no change)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.lora_b.copy_(torch.randn(module.lora_b.shape, generator=generator) * 0.2)


def test_merged_model_embeds_texts_as_the_adapter_model(
    make_model: Callable[..., LoTLIP],
) -> None:
    model = make_model(seed=3, layers=2)
    plain = model.embed_texts(TEXTS)
    keys = set(model.state_dict())
    # 2 blocks x (query, key, value, attention output, intermediate, output)
    assert add_adapters(model.text, RANK) == 12
    np.testing.assert_allclose(model.embed_texts(TEXTS), plain, rtol=0, atol=1e-6)  # B = 0
    randomise_adapters(model)
    adapted = model.embed_texts(TEXTS)
    assert np.abs(adapted - plain).max() > 1e-2  # the adapters do change the text tower
    assert merge_adapters(model.text) == 12
    assert not has_adapters(model) and set(model.state_dict()) == keys
    np.testing.assert_allclose(model.embed_texts(TEXTS), adapted, rtol=0, atol=1e-5)


def test_text_lora_trains_only_adapters_embeddings_and_heads(
    make_model: Callable[..., LoTLIP],
) -> None:
    model = make_model(layers=2)
    add_adapters(model.text, RANK)
    set_trainable(model, "text-lora")
    names = {name for name, p in model.named_parameters() if p.requires_grad}
    adapters = {n for n in names if n.endswith((".lora_a", ".lora_b"))}
    assert len(adapters) == 24
    heads = {n for n in names if n.startswith(("text.transformer.pooler.", "text.proj."))}
    embeddings = {n for n in names if n.startswith("text.transformer.embeddings.")}
    assert embeddings and heads
    assert names == adapters | heads | embeddings | {"logit_scale"}


def test_a_text_lora_run_saves_a_plain_folder_with_low_rank_changes(
    tmp_path: Path, make_model: Callable[..., LoTLIP]
) -> None:
    model = make_model(seed=4, layers=2, spread=0.1)
    before = state_of(model)
    cfg = TrainConfig(
        out=str(tmp_path / "lora"), steps=6, batch_size=4, lr=1e-2, warmup=0, num_long=1,
        trainable="text-lora", lora_rank=RANK, device="cpu", log_every=1,
    )  # fmt: skip
    result = train(cfg, model, CaptionTensorDataset(12, num_long=1))
    loaded = lotlip.load(result.model_dir, device="cpu", precision="fp32")
    after = state_of(loaded)
    assert set(after) == set(before)
    for name, value in before.items():
        if name.startswith("visual."):
            assert torch.equal(after[name], value), name  # image vectors unchanged
    query = "text.transformer.encoder.layer.0.attention.self.query.weight"
    delta = after[query] - before[query]
    assert delta.abs().max() > 0
    assert torch.linalg.matrix_rank(delta, atol=1e-6) <= RANK  # a low-rank update
    np.testing.assert_allclose(
        loaded.embed_texts(TEXTS), model.embed_texts(TEXTS), rtol=0, atol=1e-5
    )
