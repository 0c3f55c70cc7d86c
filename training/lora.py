"""Low-rank adapters (LoRA-style) for the text tower's Linear layers, merged back on save.

``add_adapters(module, rank)`` wraps every ``nn.Linear`` under ``module`` whose name matches
:data:`TARGETS` in a :class:`LoRALinear`: the original layer stays frozen and a trainable
``scale * B @ A`` of rank ``rank`` is added to its output (``B`` starts at zero, so the model is
unchanged before training). ``merge_adapters(module)`` folds each adapter into its layer's
weight and puts plain ``nn.Linear`` layers back, so the saved model folder is a normal one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# BERT text tower: attention projections and the two MLP layers of every block
TARGETS = ("query", "key", "value", "output.dense", "intermediate.dense")
ADAPTER_PREFIX = "lora_"


class LoRALinear(nn.Module):
    """``base(x) + scale * x @ A^T @ B^T``: ``base`` frozen, ``A`` and ``B`` of rank ``rank``."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError("rank must be >= 1")
        self.base = base
        self.base.requires_grad_(False)
        like = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, **like))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, **like))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scale = (alpha if alpha is not None else rank) / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing the same function (the adapter folded in)."""
        base = self.base
        layer = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
        layer = layer.to(device=base.weight.device, dtype=base.weight.dtype)
        with torch.no_grad():
            delta = (self.lora_b.float() @ self.lora_a.float()) * self.scale
            layer.weight.copy_(base.weight.float() + delta)
            if base.bias is not None:
                layer.bias.copy_(base.bias)
        return layer


def _targets(module: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [
        (name, child)
        for name, child in module.named_modules()
        if type(child) is nn.Linear and name.endswith(TARGETS)
    ]


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)


def add_adapters(module: nn.Module, rank: int, alpha: float | None = None) -> int:
    """Wrap the matching Linear layers under ``module`` in adapters; return how many."""
    targets = _targets(module)
    if not targets:
        raise ValueError("no Linear layer to adapt (expected a BERT text tower)")
    for name, layer in targets:
        _replace(module, name, LoRALinear(layer, rank, alpha))
    return len(targets)


def has_adapters(module: nn.Module) -> bool:
    """Whether ``module`` holds any adapter."""
    return any(isinstance(child, LoRALinear) for child in module.modules())


def adapter_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The adapters' trainable matrices."""
    return [
        param
        for name, param in module.named_parameters()
        if name.rpartition(".")[2].startswith(ADAPTER_PREFIX)
    ]


def merge_adapters(module: nn.Module) -> int:
    """Fold every adapter under ``module`` into a plain Linear layer; return how many."""
    wrapped = [
        (name, child) for name, child in module.named_modules() if isinstance(child, LoRALinear)
    ]
    for name, adapter in wrapped:
        _replace(module, name, adapter.merged())
    return len(wrapped)
