"""Parity with the official LoTLIP checkpoints (open_clip layout), against plain-torch references.

The checkpoints are random but have the official key names and shapes (LOTLIP.md §1), built by
hand in ``tests.builders.official_state_dict``. The references below read those tensors by their
official names and compute, in float64, what timm's ViT and Hugging Face's BERT compute, with
LoTLIP's corner attention rules (LOTLIP.md §3) written out as explicit loops. None of this uses
the code under test.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import lotlip
from lotlip.checkpoints import (
    CheckpointError,
    infer_official_config,
)
from lotlip.config import OFFICIAL_CONFIGS, LoTLIPConfig
from tests.builders import released_as

TOL = 1e-5
REF_DTYPE = torch.float64
K = 2  # corner tokens
TEXTS = [
    "A red car parked near a house. Two windows and a blue door. The sky is clear!",
    "x",  # one word piece ([UNK]) between the corners and [SEP]
    " ".join(f"tok{2 * i}" for i in range(150)),  # longer than the 124 pieces the model reads
]


# -- independent float64 references ---------------------------------------------------------------
def _w(sd: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    return sd[key].to(REF_DTYPE)


def _layer_norm(x: torch.Tensor, sd: dict, prefix: str, eps: float) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * _w(sd, prefix + ".weight") + _w(
        sd, prefix + ".bias"
    )


def _linear(x: torch.Tensor, sd: dict, prefix: str, bias: bool = True) -> torch.Tensor:
    y = x @ _w(sd, prefix + ".weight").T
    return y + _w(sd, prefix + ".bias") if bias else y


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _attention(q, k, v, heads: int, allowed: torch.Tensor | None) -> torch.Tensor:
    """Multi-head attention; ``allowed`` [B, Lq, Lk] bool (None = everything)."""
    b, n, d = q.shape
    hd = d // heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, n, heads, hd).transpose(1, 2)

    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(hd)
    if allowed is not None:
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    scores = scores - scores.max(-1, keepdim=True).values
    probs = scores.exp()
    probs = probs / probs.sum(-1, keepdim=True)
    return (probs @ split(v)).transpose(1, 2).reshape(b, n, d)


def reference_vit(sd: dict, pixels: torch.Tensor, patch: int, heads: int) -> torch.Tensor:
    """timm ``VisionTransformer`` (pre-norm, fused qkv, exact GELU, eps 1e-6), final norm, CLS."""
    p = "visual.trunk."
    eps = 1e-6
    x = pixels.to(REF_DTYPE)
    b, c, h, w = x.shape
    gh, gw = h // patch, w // patch
    patches = x.reshape(b, c, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5)
    patches = patches.reshape(b, gh * gw, c * patch * patch)
    weight = _w(sd, p + "patch_embed.proj.weight")
    tokens = patches @ weight.reshape(weight.shape[0], -1).T + _w(sd, p + "patch_embed.proj.bias")
    cls = _w(sd, p + "cls_token").expand(b, 1, -1)
    x = torch.cat([cls, tokens], dim=1) + _w(sd, p + "pos_embed")
    width = x.shape[-1]
    layers = len({k.split(".")[3] for k in sd if k.startswith(p + "blocks.")})
    for i in range(layers):
        blk = f"{p}blocks.{i}."
        y = _layer_norm(x, sd, blk + "norm1", eps)
        qkv = _linear(y, sd, blk + "attn.qkv")
        q, k, v = qkv[..., :width], qkv[..., width : 2 * width], qkv[..., 2 * width :]
        x = x + _linear(_attention(q, k, v, heads, None), sd, blk + "attn.proj")
        y = _layer_norm(x, sd, blk + "norm2", eps)
        x = x + _linear(_gelu(_linear(y, sd, blk + "mlp.fc1")), sd, blk + "mlp.fc2")
    x = _layer_norm(x, sd, p + "norm", eps)
    return x[:, 0]


def reference_corner_mask(ids: torch.Tensor, corners: int, pad_id: int = 0) -> torch.Tensor:
    """LOTLIP.md §3, one (query, key) pair at a time."""
    batch, length = ids.shape
    rows = ids.tolist()
    allowed = torch.zeros(batch, length, length, dtype=torch.bool)
    for b in range(batch):
        for query in range(length):
            for key in range(length):
                if key <= corners:  # the CLS / corner columns
                    ok = (key == query) or (key == 0 and query > corners)
                else:
                    ok = rows[b][key] != pad_id
                allowed[b, query, key] = ok
    return allowed


def reference_text_slots(sd: dict, ids: torch.Tensor, heads: int, corners: int = K) -> torch.Tensor:
    """Post-norm BERT (eps 1e-12, exact GELU) with the corner mask; pooler dense+tanh; proj."""
    t = "text.transformer."
    eps = 1e-12
    length = ids.shape[1]
    x = (
        _w(sd, t + "embeddings.word_embeddings.weight")[ids]
        + _w(sd, t + "embeddings.position_embeddings.weight")[:length]
        + _w(sd, t + "embeddings.token_type_embeddings.weight")[0]
    )
    x = _layer_norm(x, sd, t + "embeddings.LayerNorm", eps)
    allowed = reference_corner_mask(ids, corners)
    layers = len({k.split(".")[4] for k in sd if k.startswith(t + "encoder.layer.")})
    for i in range(layers):
        lyr = f"{t}encoder.layer.{i}."
        q = _linear(x, sd, lyr + "attention.self.query")
        k = _linear(x, sd, lyr + "attention.self.key")
        v = _linear(x, sd, lyr + "attention.self.value")
        att = _linear(_attention(q, k, v, heads, allowed), sd, lyr + "attention.output.dense")
        x = _layer_norm(x + att, sd, lyr + "attention.output.LayerNorm", eps)
        hidden = _gelu(_linear(x, sd, lyr + "intermediate.dense"))
        x = _layer_norm(
            x + _linear(hidden, sd, lyr + "output.dense"), sd, lyr + "output.LayerNorm", eps
        )
    slots = x[:, : corners + 1]
    pooled = torch.tanh(_linear(slots, sd, t + "pooler.dense"))
    return _linear(pooled, sd, "text.proj", bias=False)


# -- checkpoint wrappings -------------------------------------------------------------------------
def save_wrapped(sd: dict[str, torch.Tensor], path: Path, wrapping: str) -> Path:
    if wrapping == "bare":
        torch.save(sd, path)
    elif wrapping == "training":  # what open_clip's training loop writes under DDP
        prefixed = {"module." + k: v for k, v in sd.items()}
        torch.save({"epoch": 3, "name": "lotlip", "state_dict": prefixed}, path)
    elif wrapping == "position_ids":
        extra = {"text.transformer.embeddings.position_ids": torch.arange(512)[None]}
        torch.save({**sd, **extra}, path)
    else:
        raise ValueError(wrapping)
    return path


def _case(sd: dict, patch: int, image_size: int, tokenizer: lotlip.LoTLIPTokenizer, seed: int):
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.rand(2, 3, image_size, image_size, generator=gen) * 2 - 1  # batch of exactly 2
    ids = tokenizer(TEXTS, pad_to=128).input_ids
    heads = sd["visual.trunk.cls_token"].shape[-1] // 64
    text_heads = sd["text.transformer.embeddings.word_embeddings.weight"].shape[-1] // 64
    with torch.no_grad():
        image_ref = reference_vit(sd, pixels, patch, heads)
        slots_ref = reference_text_slots(sd, ids, text_heads)
    return {"sd": sd, "pixels": pixels, "ids": ids, "image": image_ref, "slots": slots_ref}


def assert_matches_reference(model: lotlip.LoTLIP, case: dict, full: bool = True) -> None:
    """Tensor-level outputs equal the references; ``full`` also checks the convenience API."""
    with torch.no_grad():
        image = model.encode_image(case["pixels"])
        slots = model.encode_text_slots(case["ids"])
    assert image.dtype == torch.float32 and image.shape == case["image"].shape
    assert slots.shape == case["slots"].shape == (len(TEXTS), K + 1, model.embed_dim)
    torch.testing.assert_close(image.double(), case["image"], rtol=0, atol=TOL)
    torch.testing.assert_close(slots.double(), case["slots"], rtol=0, atol=TOL)
    # the references are not degenerate: corners, texts and images all differ
    assert (case["slots"][:, 1] - case["slots"][:, 0]).abs().max() > 0.01
    assert (case["slots"][:, 2] - case["slots"][:, 1]).abs().max() > 0.01
    assert (case["slots"][0, 0] - case["slots"][1, 0]).abs().max() > 0.1
    assert (case["image"][0] - case["image"][1]).abs().max() > 0.1
    assert model.logit_scale.item() == pytest.approx(case["sd"]["logit_scale"].item())
    if not full:
        return
    with torch.no_grad():
        cls = model.encode_text(case["ids"])
    torch.testing.assert_close(cls.double(), case["slots"][:, 0], rtol=0, atol=TOL)
    # the convenience API: padded only to the longest text, L2-normalized
    expected = torch.nn.functional.normalize(case["slots"][:, 0], dim=-1).numpy()
    np.testing.assert_allclose(model.embed_texts(TEXTS), expected, rtol=0, atol=TOL)


@pytest.fixture(scope="module")
def tokenizer(bert_vocab: list[str]) -> lotlip.LoTLIPTokenizer:
    return lotlip.LoTLIPTokenizer(bert_vocab)


@pytest.fixture(scope="module")
def b16(official_state_dict, tokenizer) -> dict:
    """Full-size ViT-B/16 + BERT-base official-layout weights and their reference outputs."""
    sd = official_state_dict(patch=16, image_size=224, seed=16)
    return _case(sd, 16, 224, tokenizer, seed=1)


@pytest.fixture(scope="module")
def b32(official_state_dict, tokenizer) -> dict:
    """ViT-B/32 layout (pos_embed (1, 50, 768)) with 2 vision and 3 text layers, to stay fast."""
    sd = official_state_dict(patch=32, image_size=224, vision_layers=2, text_layers=3, seed=32)
    return _case(sd, 32, 224, tokenizer, seed=2)


def test_official_config_builds_the_documented_layout(tokenizer) -> None:
    """The model built from the released config has the tensors LOTLIP.md §1 documents."""
    with torch.device("meta"):
        model = lotlip.LoTLIP(OFFICIAL_CONFIGS["lotlip-vit-b16"], tokenizer)
    sd = model.state_dict()
    # 351 official tensors; each of the 12 fused qkv weight/bias pairs is three pairs here
    assert len(sd) == 351 + 12 * 4
    assert sd["text.transformer.embeddings.word_embeddings.weight"].shape == (30524, 768)
    assert sd["text.transformer.embeddings.position_embeddings.weight"].shape == (512, 768)
    assert sd["visual.vit.embeddings.position_embeddings"].shape == (1, 197, 768)
    for piece in "qkv":
        assert sd[f"visual.vit.layers.11.attention.{piece}_proj.weight"].shape == (768, 768)
    assert sd["text.proj.weight"].shape == (768, 768) and "text.proj.bias" not in sd
    assert sd["logit_scale"].shape == ()


def test_reference_mask_rules() -> None:
    """The loop reference itself, on a hand-checked example (K=2, 2 text tokens, 2 pads)."""
    ids = torch.tensor([[101, 30522, 30523, 7, 102, 0, 0]])
    allowed = reference_corner_mask(ids, 2)[0].int().tolist()
    assert allowed == [
        [1, 0, 0, 1, 1, 0, 0],  # CLS: itself + text
        [0, 1, 0, 1, 1, 0, 0],  # corner 0: itself + text
        [0, 0, 1, 1, 1, 0, 0],  # corner 1: itself + text
        [1, 0, 0, 1, 1, 0, 0],  # text: CLS + text
        [1, 0, 0, 1, 1, 0, 0],  # [SEP]
        [1, 0, 0, 1, 1, 0, 0],  # padding rows too (their outputs are never used)
        [1, 0, 0, 1, 1, 0, 0],
    ]


@pytest.mark.parametrize("wrapping", ["bare", "training", "position_ids"])
def test_b16_parity(b16: dict, wrapping: str, tmp_path: Path, bert_vocab_file: Path) -> None:
    path = save_wrapped(b16["sd"], tmp_path / "model.pt", wrapping)
    model = lotlip.load(path, device="cpu", vocab=bert_vocab_file, precision="fp32")
    path.unlink()

    assert model.name == tmp_path.name  # named after its file (here: its folder), not its shape
    assert released_as(model.config) == "lotlip-vit-b16"
    assert model.device == torch.device("cpu") and model.dtype == torch.float32
    assert not model.training
    # the three wrappings share one path after unwrapping; check the convenience API once
    assert_matches_reference(model, b16, full=wrapping == "bare")


def test_b32_parity(b32: dict, tmp_path: Path, bert_vocab_file: Path) -> None:
    path = save_wrapped(b32["sd"], tmp_path / "model.pt", "training")
    model = lotlip.load(path, device="cpu", vocab=bert_vocab_file, precision="fp32")
    assert model.config.vision.patch_size == 32
    assert model.config.vision.image_size == 224
    assert model.config.vision.layers == 2 and model.config.text.layers == 3
    assert model.config.vision.heads == model.config.text.heads == 12
    assert model.name not in OFFICIAL_CONFIGS  # fewer layers: not the released architecture
    assert_matches_reference(model, b32)


@pytest.mark.parametrize(
    ("patch", "vision_layers", "text_layers", "expected"),
    [
        (16, 12, 12, "lotlip-vit-b16"),
        (32, 12, 12, "lotlip-vit-b32"),
        (32, 11, 12, None),
        (16, 12, 6, None),
    ],
)
def test_official_config_inferred_from_shapes(
    official_state_dict, patch: int, vision_layers: int, text_layers: int, expected: str | None
) -> None:
    sd = official_state_dict(
        patch=patch, vision_layers=vision_layers, text_layers=text_layers, meta=True
    )
    config = infer_official_config(sd)
    assert config.vision.patch_size == patch
    assert config.vision.image_size == 224  # read from the (224 / patch)² + 1 positions
    assert config.vision.layers == vision_layers and config.text.layers == text_layers
    assert config.text.embedding_rows == 30524 and config.text.num_corner_tokens == 2
    assert config.name == "lotlip-custom"  # shapes never name a model
    assert released_as(config) == expected
    if expected is not None:
        assert config == LoTLIPConfig.from_dict(
            {**OFFICIAL_CONFIGS[expected].to_dict(), "name": config.name}
        )


def test_heads_of_an_unreleased_as(official_state_dict) -> None:
    """Shapes do not show heads: 64-wide heads (as ViT and BERT) or a clear refusal."""
    sd = official_state_dict(
        width=128, embed_dim=128, vision_mlp=256, text_width=192, text_mlp=256, meta=True
    )
    config = infer_official_config(sd)
    assert (config.vision.heads, config.text.heads) == (2, 3)
    sd = official_state_dict(width=96, embed_dim=96, vision_mlp=256, meta=True)
    with pytest.raises(CheckpointError, match="attention heads the 96-wide image tower"):
        infer_official_config(sd)


# -- strict loading -------------------------------------------------------------------------------
def _small_sd(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def test_small_official_checkpoint_loads(
    small_official_checkpoint: Path, bert_vocab_file: Path
) -> None:
    """Control for the failures below: the untouched file loads."""
    model = lotlip.load(
        small_official_checkpoint, device="cpu", vocab=bert_vocab_file, precision="fp32"
    )
    assert model.config.vision.width == 64


def _load_edited(checkpoint: Path, vocab: Path, tmp_path: Path, edit) -> lotlip.LoTLIP:
    """Load a copy of ``checkpoint`` after ``edit(state_dict)`` changed it."""
    sd = _small_sd(checkpoint)
    edit(sd)
    torch.save(sd, tmp_path / "model.pt")
    return lotlip.load(tmp_path / "model.pt", device="cpu", vocab=vocab, precision="fp32")


@pytest.mark.parametrize(
    "missing",
    [
        "visual.trunk.blocks.1.attn.qkv.bias",
        "visual.trunk.norm.weight",
        "text.transformer.encoder.layer.0.attention.self.key.weight",
        "text.transformer.pooler.dense.bias",
        "text.proj.weight",
        "logit_scale",
    ],
)
def test_missing_tensor_is_an_error(
    small_official_checkpoint: Path, bert_vocab_file: Path, tmp_path: Path, missing: str
) -> None:
    with pytest.raises(lotlip.CheckpointError):
        _load_edited(
            small_official_checkpoint, bert_vocab_file, tmp_path, lambda sd: sd.pop(missing)
        )


@pytest.mark.parametrize(
    "stray",
    [
        "text.transformer.encoder.layer.0.attention.self.extra.weight",
        "visual.trunk.head.weight",
        "visual.trunk.fc_norm.weight",
        "visual.proj",
        "stray",
    ],
)
def test_stray_tensor_is_an_error(
    small_official_checkpoint: Path, bert_vocab_file: Path, tmp_path: Path, stray: str
) -> None:
    with pytest.raises(lotlip.CheckpointError):
        _load_edited(
            small_official_checkpoint,
            bert_vocab_file,
            tmp_path,
            lambda sd: sd.__setitem__(stray, torch.zeros(64)),
        )


def test_wrong_shape_is_an_error(
    small_official_checkpoint: Path, bert_vocab_file: Path, tmp_path: Path
) -> None:
    def widen(sd: dict[str, torch.Tensor]) -> None:
        sd["visual.trunk.blocks.0.mlp.fc2.bias"] = torch.zeros(65)

    with pytest.raises(lotlip.CheckpointError, match="shape"):
        _load_edited(small_official_checkpoint, bert_vocab_file, tmp_path, widen)
