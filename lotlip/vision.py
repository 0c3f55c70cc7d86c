"""Image tower: a transformers ``ViTModel`` configured to be numerically timm's ViT.

The official checkpoints hold timm weights (``visual.trunk.*``: pre-norm blocks with a fused
``qkv``, LayerNorm eps 1e-6, exact GELU, final norm, CLS pooling, no head). ``ViTModel`` with the
same settings and ``add_pooling_layer=False`` computes the same function; only the key names
differ, and :func:`timm_to_vit_state_dict` converts them.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import ViTConfig, ViTModel

from .config import VisionConfig

TIMM_PREFIX = "visual.trunk."
OUR_PREFIX = "visual.vit."


def vit_config(cfg: VisionConfig) -> ViTConfig:
    """The transformers config equal to timm's ``vit_*_patch*`` with ``cfg``'s sizes."""
    return ViTConfig(
        **cfg.transformer_options(),  # exact (erf) GELU, as timm
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        num_channels=3,
        qkv_bias=True,
    )


class VisionTower(nn.Module):
    """ViT image encoder returning the final-norm CLS token (no pooler, no projection)."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.config = cfg
        self.vit = ViTModel(vit_config(cfg), add_pooling_layer=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``pixels`` [B, 3, S, S] normalized -> features [B, width]."""
        out = self.vit(pixel_values=pixels)
        return out.last_hidden_state[:, 0]

    def blocks(self) -> list[nn.Module]:
        """The transformer blocks in order (fine-tuning unfreezes the last N)."""
        return list(self.vit.layers)


def timm_to_vit_state_dict(
    timm_sd: dict[str, torch.Tensor], src_prefix: str = TIMM_PREFIX, dst_prefix: str = OUR_PREFIX
) -> dict[str, torch.Tensor]:
    """Convert timm ViT keys (under ``src_prefix``) to ``ViTModel`` keys (under ``dst_prefix``).

    Raises ``KeyError`` on a key it does not understand, so nothing is silently dropped.
    """
    out: dict[str, torch.Tensor] = {}
    direct = {
        "cls_token": "embeddings.cls_token",
        "pos_embed": "embeddings.position_embeddings",
        "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
        "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
        "norm.weight": "layernorm.weight",
        "norm.bias": "layernorm.bias",
    }
    block_parts = {
        "norm1": "layernorm_before",
        "norm2": "layernorm_after",
        "attn.proj": "attention.o_proj",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
    }
    for key, value in timm_sd.items():
        if not key.startswith(src_prefix):
            raise KeyError(f"not a vision key: {key}")
        name = key[len(src_prefix) :]
        if name in direct:
            out[dst_prefix + direct[name]] = value
            continue
        parts = name.split(".")
        if parts[0] != "blocks" or len(parts) < 4:
            raise KeyError(f"unexpected timm ViT key: {key}")
        index, rest = parts[1], ".".join(parts[2:])
        module, leaf = rest.rsplit(".", 1)
        layer = f"{dst_prefix}layers.{index}."
        if module == "attn.qkv":
            for piece, tensor in zip(("q", "k", "v"), value.chunk(3, dim=0), strict=True):
                out[f"{layer}attention.{piece}_proj.{leaf}"] = tensor.clone()
        elif module in block_parts:
            out[f"{layer}{block_parts[module]}.{leaf}"] = value
        else:
            raise KeyError(f"unexpected timm ViT key: {key}")
    return out
