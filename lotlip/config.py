"""Model configurations: the official LoTLIP ViT-B/16 and ViT-B/32, and a small family.

Every model, official or small, is built by the same code from one of these dataclasses, so the
small bundled model exercises exactly the path the official checkpoints take.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

BERT_BASE_VOCAB = 30522


@dataclass(frozen=True)
class TowerConfig:
    """What both towers are: a transformer of ``layers`` blocks, ``width`` wide."""

    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    layer_norm_eps: float = 1e-6

    def transformer_options(self) -> dict[str, Any]:
        """The transformers config keywords both towers share (exact GELU, no dropout)."""
        return {
            "hidden_size": self.width,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "intermediate_size": self.mlp_dim,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
            "layer_norm_eps": self.layer_norm_eps,
        }


@dataclass(frozen=True)
class VisionConfig(TowerConfig):
    """A ViT image tower, numerically equal to timm's pre-norm ViT with a CLS token."""

    image_size: int = 224
    patch_size: int = 16


@dataclass(frozen=True)
class TextConfig(TowerConfig):
    """A BERT text tower with learnable corner tokens appended to the vocabulary."""

    vocab_size: int = BERT_BASE_VOCAB  # the tokenizer's base vocabulary, without corner tokens
    num_corner_tokens: int = 2
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    context_length: int = 128
    pad_token_id: int = 0

    @property
    def embedding_rows(self) -> int:
        """Rows of the word-embedding table: base vocabulary plus one per corner token."""
        return self.vocab_size + self.num_corner_tokens


@dataclass(frozen=True)
class LoTLIPConfig:
    """A whole dual encoder: its towers, the shared embedding width and the tokenizer it expects."""

    name: str
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    embed_dim: int = 768
    tokenizer: str = "bert-base-uncased"
    init_logit_scale: float = 2.659260036932778  # ln(1 / 0.07), as the reference initialises it

    def __post_init__(self) -> None:
        if self.embed_dim != self.vision.width:
            raise ValueError(
                f"embed_dim {self.embed_dim} must equal the vision width {self.vision.width}: "
                "the LoTLIP image tower has no projection"
            )
        if self.text.context_length > self.text.max_positions:
            raise ValueError("context_length cannot exceed max_positions")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoTLIPConfig:
        """Rebuild a config from :meth:`to_dict` output, ignoring unknown keys."""
        vision = _subset(VisionConfig, data.get("vision", {}))
        text = _subset(TextConfig, data.get("text", {}))
        top = {k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}
        top.update(vision=vision, text=text)
        return cls(**top)


def _subset(kind: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in data.items() if k in known})


def official_config(patch_size: int) -> LoTLIPConfig:
    """The released LoTLIP-ViT-B/{16,32} configuration (open_clip `lotlip_bert-ViT-B-*`)."""
    if patch_size not in (16, 32):
        raise ValueError("official LoTLIP models use patch size 16 or 32")
    return LoTLIPConfig(
        name=f"lotlip-vit-b{patch_size}",
        vision=VisionConfig(patch_size=patch_size),
        text=TextConfig(),
    )


def small_config(
    name: str = "lotlip-small",
    *,
    vocab_size: int,
    width: int = 128,
    layers: int = 4,
    heads: int = 4,
    image_size: int = 64,
    patch_size: int = 8,
    text_width: int | None = None,
    text_layers: int | None = None,
    context_length: int = 128,
    tokenizer: str = "bundled",
    corners: int = 2,
) -> LoTLIPConfig:
    """A small LoTLIP for tests and the bundled model: same code path, smaller everything."""
    tw = text_width or width
    return LoTLIPConfig(
        name=name,
        vision=VisionConfig(
            image_size=image_size,
            patch_size=patch_size,
            width=width,
            layers=layers,
            heads=heads,
            mlp_dim=4 * width,
        ),
        text=TextConfig(
            vocab_size=vocab_size,
            num_corner_tokens=corners,
            width=tw,
            layers=text_layers or layers,
            heads=heads,
            mlp_dim=4 * tw,
            max_positions=max(context_length, 128),
            context_length=context_length,
        ),
        embed_dim=width,
        tokenizer=tokenizer,
    )


def with_name(config: LoTLIPConfig, name: str) -> LoTLIPConfig:
    """A copy of ``config`` under another name (fine-tuned models keep their architecture)."""
    return replace(config, name=name)


OFFICIAL_CONFIGS = {
    "lotlip-vit-b16": official_config(16),
    "lotlip-vit-b32": official_config(32),
}
