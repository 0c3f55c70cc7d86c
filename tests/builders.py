"""Small models, vocabularies and official-layout checkpoints that several test rooms build.

Import as ``from tests.builders import ...``. Torch and ``training`` are imported inside the
functions, so a conftest that only needs a vocabulary stays cheap to import.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from lotlip.config import LoTLIPConfig
    from lotlip.model import LoTLIP

BERT_VOCAB_SIZE = 30522
# Real words placed in the synthetic 30522-token vocabulary so captions tokenize to varied ids.
BERT_REAL_WORDS = [
    "a", "the", "photo", "of", "dog", "cat", "on", "grass", "red", "car", "parked", "near", "house",
    "with", "blue", "door", "and", "two", "windows", "tree", "in", "front", "sky", "is", "clear",
    ".", ",", "!", "big", "small", "man", "woman", "holding", "umbrella", "street", "at", "night",
]  # fmt: skip


def caption_vocab(words: int = 300) -> list[str]:
    """A WordPiece vocabulary learned from 200 synthetic scene captions."""
    from training.synthetic import caption_corpus
    from training.vocab import build_wordpiece_vocab

    return build_wordpiece_vocab(caption_corpus(200), words)


def bert_like_vocab() -> list[str]:
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


def new_micro_model(
    name: str,
    vocab: list[str],
    *,
    seed: int = 0,
    width: int = 32,
    layers: int = 1,
    heads: int = 2,
    corners: int = 2,
) -> LoTLIP:
    """A random LoTLIP small enough to run in milliseconds (32 px images, 8 px patches)."""
    import torch

    from lotlip.config import small_config
    from lotlip.model import LoTLIP
    from lotlip.tokenizer import LoTLIPTokenizer

    torch.manual_seed(seed)
    config = small_config(
        name,
        vocab_size=len(vocab),
        width=width,
        layers=layers,
        heads=heads,
        image_size=32,
        patch_size=8,
        corners=corners,
    )
    return LoTLIP(config, LoTLIPTokenizer(vocab, num_corner_tokens=corners)).eval()


def released_as(config: LoTLIPConfig) -> str | None:
    """The official release a config equals in everything but its name (shape, not identity)."""
    from dataclasses import replace

    from lotlip.config import OFFICIAL_CONFIGS

    named = {key: replace(official, name=config.name) for key, official in OFFICIAL_CONFIGS.items()}
    return next((key for key, official in named.items() if official == config), None)


# -- official (open_clip) layout, written independently of our model ------------------------------
SMALL_OFFICIAL = dict(
    patch=8, image_size=32, width=64, vision_layers=2, vision_mlp=128,
    text_width=64, text_layers=2, text_mlp=128, text_positions=160, embed_dim=64,
)  # fmt: skip


def official_state_dict(
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

    Written from the key names and shapes of LOTLIP.md §1, never from our model's state dict.
    ``meta=True`` gives shape-only tensors (for tests of shape inference, at no cost).
    """
    import torch

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
