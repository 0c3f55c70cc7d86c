"""Shared fixtures for the ``lotlip`` model-library tests.

Nothing here touches the network. Official-layout checkpoints are built from key names and
shapes written out by hand (LOTLIP.md §1), never from our own model's ``state_dict``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lotlip.config import small_config
from lotlip.model import LoTLIP
from lotlip.tokenizer import LoTLIPTokenizer

# -- vocabularies ---------------------------------------------------------------------------------
TINY_WORDS = [
    "a", "an", "the", "photo", "of", "cat", "dog", "red", "blue", "green", "car", "on", "grass",
    "sky", "##s", "##ing", "run", "big", "small", "house", "tree", "with", "and", "is", "in", "sun",
    "cafe", "&", ".", ",", "!", "[", "]", "corner", "0", "1", "##0", "##1", "x", "y", "z",
]  # fmt: skip
TINY_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

BERT_VOCAB_SIZE = 30522
# Real words placed in the synthetic 30522-token vocabulary so captions tokenize to varied ids.
BERT_REAL_WORDS = [
    "a", "the", "photo", "of", "dog", "cat", "on", "grass", "red", "car", "parked", "near", "house",
    "with", "blue", "door", "and", "two", "windows", "tree", "in", "front", "sky", "is", "clear",
    ".", ",", "!", "big", "small", "man", "woman", "holding", "umbrella", "street", "at", "night",
]  # fmt: skip


def make_bert_like_vocab() -> list[str]:
    """30522 unique tokens with the bert-base-uncased special tokens at their real ids."""
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)]
    vocab += ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert vocab.index("[UNK]") == 100 and vocab.index("[MASK]") == 103
    vocab += BERT_REAL_WORDS
    n = 0
    while len(vocab) < BERT_VOCAB_SIZE:
        vocab.append(f"tok{n}" if n % 2 == 0 else f"##piece{n}")
        n += 1
    assert len(set(vocab)) == BERT_VOCAB_SIZE
    return vocab


@pytest.fixture(scope="session")
def tiny_vocab() -> list[str]:
    return TINY_SPECIALS + TINY_WORDS


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_vocab: list[str]) -> LoTLIPTokenizer:
    return LoTLIPTokenizer(tiny_vocab)


@pytest.fixture(scope="session")
def bert_vocab() -> list[str]:
    return make_bert_like_vocab()


@pytest.fixture(scope="session")
def bert_vocab_file(tmp_path_factory: pytest.TempPathFactory, bert_vocab: list[str]) -> Path:
    path = tmp_path_factory.mktemp("bert_vocab") / "vocab.txt"
    path.write_text("\n".join(bert_vocab) + "\n", encoding="utf-8")
    return path


# -- models ---------------------------------------------------------------------------------------
def randomize_(module: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    """Add seeded noise to every parameter so outputs are far from the near-constant init."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


@pytest.fixture
def make_tiny_model(tiny_vocab: list[str]) -> Callable[..., LoTLIP]:
    """Factory: a small random LoTLIP (64 wide, 2 layers, 32 px images) on the tiny vocabulary."""

    def factory(seed: int = 0, **overrides: object) -> LoTLIP:
        torch.manual_seed(seed)
        kwargs: dict = dict(width=64, layers=2, heads=4, image_size=32, patch_size=8)
        kwargs.update(overrides)
        config = small_config("lotlip-test", vocab_size=len(tiny_vocab), **kwargs)
        model = LoTLIP(config, LoTLIPTokenizer(tiny_vocab))
        randomize_(model, seed)
        return model.eval()

    return factory


# -- official (open_clip) layout, written independently of our model ------------------------------
def make_official_state_dict(
    *,
    patch: int = 16,
    image_size: int = 224,
    width: int = 768,
    vision_layers: int = 12,
    vision_mlp: int = 3072,
    text_width: int = 768,
    text_layers: int = 12,
    text_mlp: int = 3072,
    word_rows: int = BERT_VOCAB_SIZE + 2,
    text_positions: int = 512,
    type_vocab: int = 2,
    embed_dim: int = 768,
    seed: int = 0,
    meta: bool = False,
) -> dict[str, torch.Tensor]:
    """A random state dict in the open_clip ``CustomTextCLIP`` (timm ViT + HF BERT) key layout.

    ``meta=True`` gives shape-only tensors (for tests of shape inference, at no cost).
    """
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int, std: float) -> torch.Tensor:
        if meta:
            return torch.empty(*shape, device="meta")
        return torch.randn(*shape, generator=gen) * std

    def linear(prefix: str, out_f: int, in_f: int, bias: bool = True) -> None:
        sd[prefix + ".weight"] = randn(out_f, in_f, std=1.0 / math.sqrt(in_f))
        if bias:
            sd[prefix + ".bias"] = randn(out_f, std=0.05)

    def norm(prefix: str, dim: int) -> None:
        sd[prefix + ".weight"] = 1.0 + randn(dim, std=0.1)
        sd[prefix + ".bias"] = randn(dim, std=0.05)

    sd: dict[str, torch.Tensor] = {}
    v = "visual.trunk."
    grid = image_size // patch
    # The token embeddings are tiny (std ~1e-3), so the first LayerNorm of each tower sees an
    # input variance comparable to its eps: a wrong eps (1e-6 for timm, 1e-12 for BERT) shows.
    sd[v + "cls_token"] = randn(1, 1, width, std=1e-3)
    sd[v + "pos_embed"] = randn(1, grid * grid + 1, width, std=1e-3)
    sd[v + "patch_embed.proj.weight"] = randn(
        width, 3, patch, patch, std=1e-3 / math.sqrt(3 * patch**2)
    )
    sd[v + "patch_embed.proj.bias"] = randn(width, std=1e-3)
    for i in range(vision_layers):
        b = f"{v}blocks.{i}."
        norm(b + "norm1", width)
        linear(b + "attn.qkv", 3 * width, width)
        linear(b + "attn.proj", width, width)
        norm(b + "norm2", width)
        linear(b + "mlp.fc1", vision_mlp, width)
        linear(b + "mlp.fc2", width, vision_mlp)
    norm(v + "norm", width)

    t = "text.transformer."
    sd[t + "embeddings.word_embeddings.weight"] = randn(word_rows, text_width, std=1e-3)
    sd[t + "embeddings.position_embeddings.weight"] = randn(text_positions, text_width, std=1e-3)
    sd[t + "embeddings.token_type_embeddings.weight"] = randn(type_vocab, text_width, std=1e-3)
    norm(t + "embeddings.LayerNorm", text_width)
    for i in range(text_layers):
        b = f"{t}encoder.layer.{i}."
        for part in ("query", "key", "value"):
            linear(b + "attention.self." + part, text_width, text_width)
        linear(b + "attention.output.dense", text_width, text_width)
        norm(b + "attention.output.LayerNorm", text_width)
        linear(b + "intermediate.dense", text_mlp, text_width)
        linear(b + "output.dense", text_width, text_mlp)
        norm(b + "output.LayerNorm", text_width)
    linear(t + "pooler.dense", text_width, text_width)
    linear("text.proj", embed_dim, text_width, bias=False)
    sd["logit_scale"] = torch.tensor(math.log(1 / 0.07) + 0.3)
    return sd


@pytest.fixture(scope="session")
def official_state_dict() -> Callable[..., dict[str, torch.Tensor]]:
    """Factory for random official-layout state dicts (see :func:`make_official_state_dict`)."""
    return make_official_state_dict


SMALL_OFFICIAL = dict(
    patch=8, image_size=32, width=64, vision_layers=2, vision_mlp=128,
    text_width=64, text_layers=2, text_mlp=128, text_positions=160, embed_dim=64,
)  # fmt: skip


@pytest.fixture(scope="session")
def small_official_sizes() -> dict[str, int]:
    """Sizes of a small official-layout model (the word embedding keeps its 30524 rows)."""
    return dict(SMALL_OFFICIAL)


@pytest.fixture(scope="session")
def small_official_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small (64 wide, 2+2 layers) official-layout ``.pt`` with the real 30524-row embedding."""
    path = tmp_path_factory.mktemp("small_official") / "model.pt"
    torch.save(make_official_state_dict(**SMALL_OFFICIAL, seed=7), path)
    return path


# -- images ---------------------------------------------------------------------------------------
def gradient_array(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful uint8 RGB image [H, W, 3] (resizes and JPEG-codes gracefully)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    channels = [
        127.5 + 127.5 * np.sin(xx / width * np.pi * 2 + phase[0]),
        127.5 + 127.5 * np.cos(yy / height * np.pi * 3 + phase[1]),
        127.5 + 127.5 * np.sin((xx + yy) / (width + height) * np.pi * 4 + phase[2]),
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 255).round().astype(np.uint8)


@pytest.fixture
def make_image() -> Callable[..., Image.Image]:
    """Factory: a smooth RGB test image of the given size."""

    def factory(width: int, height: int, seed: int = 0) -> Image.Image:
        return Image.fromarray(gradient_array(width, height, seed), mode="RGB")

    return factory


@pytest.fixture
def encode_image() -> Callable[..., bytes]:
    """Factory: the bytes of ``image`` saved in ``fmt`` with Pillow ``save`` options."""

    def factory(image: Image.Image, fmt: str, **options: object) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        return buffer.getvalue()

    return factory


@pytest.fixture
def isolated_model_homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point ``LOTLIP_MODELS_DIR`` and the Hugging Face cache at empty temporary folders."""
    import huggingface_hub.constants as hf_constants

    models = tmp_path / "models_home"
    hf_home = tmp_path / "hf_home"
    hub_cache = hf_home / "hub"
    models.mkdir()
    hub_cache.mkdir(parents=True)
    monkeypatch.setenv("LOTLIP_MODELS_DIR", str(models))
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    # huggingface_hub reads these once at import time; patch the module values as well.
    monkeypatch.setattr(hf_constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hub_cache))
    return {"models": models, "hf_home": hf_home, "hub_cache": hub_cache}
