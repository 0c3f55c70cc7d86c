"""Shared fixtures for the ``lotlip`` model-library tests.

Nothing here touches the network. Official-layout checkpoints are built from key names and
shapes written out by hand (LOTLIP.md §1), never from our own model's ``state_dict``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lotlip.model import LoTLIP
from lotlip.tokenizer import LoTLIPTokenizer
from tests.builders import SMALL_OFFICIAL, bert_like_vocab, new_micro_model
from tests.builders import official_state_dict as make_official_state_dict

# -- vocabularies ---------------------------------------------------------------------------------
TINY_WORDS = [
    "a", "an", "the", "photo", "of", "cat", "dog", "red", "blue", "green", "car", "on", "grass",
    "sky", "##s", "##ing", "run", "big", "small", "house", "tree", "with", "and", "is", "in", "sun",
    "cafe", "&", ".", ",", "!", "[", "]", "corner", "0", "1", "##0", "##1", "x", "y", "z",
]  # fmt: skip
TINY_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="session")
def tiny_vocab() -> list[str]:
    return TINY_SPECIALS + TINY_WORDS


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_vocab: list[str]) -> LoTLIPTokenizer:
    return LoTLIPTokenizer(tiny_vocab)


@pytest.fixture(scope="session")
def bert_vocab() -> list[str]:
    return bert_like_vocab()


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

    def factory(seed: int = 0) -> LoTLIP:
        model = new_micro_model("lotlip-test", tiny_vocab, seed=seed, width=64, layers=2, heads=4)
        randomize_(model, seed)
        return model

    return factory


# -- official (open_clip) layout, written independently of our model ------------------------------
@pytest.fixture(scope="session")
def official_state_dict() -> Callable[..., dict[str, torch.Tensor]]:
    """Factory: random official-layout state dicts (:func:`tests.builders.official_state_dict`)."""
    return make_official_state_dict


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
