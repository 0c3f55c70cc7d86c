"""Contrastive losses for LoTLIP: one symmetric InfoNCE per text slot (LOTLIP.md §4).

Text slots per image: slot 0 is the short caption's [CLS]; each long caption adds its [CLS] and
one slot per corner token. Every slot is a separate positive for the image, and the total is
``(w_short * L_0 + w_long * sum_{i>=1} L_i) / T``. Under DDP the features of every rank are
gathered so each rank sees the global batch as negatives; the local part keeps its gradient.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def select_text_slots(slots: torch.Tensor, has_short: bool = True) -> torch.Tensor:
    """[B, N, K+1, D] encoder outputs of N captions -> [B, T, D] training slots.

    The short caption (caption 0 when ``has_short``) contributes only its [CLS]; every long
    caption contributes [CLS] and all of its corner outputs.
    """
    batch, _, _, dim = slots.shape
    parts = []
    if has_short:
        parts.append(slots[:, 0, :1])
        slots = slots[:, 1:]
    parts.append(slots.reshape(batch, -1, dim))
    return torch.cat(parts, dim=1)


def gather_features(features: torch.Tensor) -> torch.Tensor:
    """Concatenate ``features`` [b, ...] of every rank along dim 0; only the local part has grad."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return features
    gathered = [torch.zeros_like(features) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, features.detach().contiguous())
    gathered[dist.get_rank()] = features
    return torch.cat(gathered, dim=0)


def infonce(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of matched rows of normalized ``image`` [B, D] and ``text`` [B, D]."""
    logits = scale * image @ text.t()
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def lotlip_loss(
    image: torch.Tensor,
    text_slots: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    has_short: bool = True,
    short_weight: float = 1.0,
    long_weight: float = 1.0,
    gather: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The LoTLIP loss and the per-slot losses.

    Args:
        image: [B, D] image features (normalized here).
        text_slots: [B, T, D] from :func:`select_text_slots` (normalized here).
        logit_scale: the model's log temperature (exponentiated here).
        has_short: slot 0 is the short caption (weighted ``short_weight``); all other slots are
            weighted ``long_weight``.
        gather: all-gather features across DDP ranks (no-op in a single process).
    Returns:
        (total, per_slot) where ``per_slot`` has shape [T].
    """
    image = F.normalize(image.float(), dim=-1)
    text_slots = F.normalize(text_slots.float(), dim=-1)
    if gather:
        image = gather_features(image)
        text_slots = gather_features(text_slots)
    scale = logit_scale.float().exp()
    per_slot = torch.stack(
        [infonce(image, text_slots[:, i], scale) for i in range(text_slots.shape[1])]
    )
    weights = torch.full_like(per_slot, long_weight)
    if has_short:
        weights[0] = short_weight
    total = (weights * per_slot).sum() / per_slot.shape[0]
    return total, per_slot.detach()
