"""Text tower: BERT with LoTLIP corner tokens and the corner attention mask (LOTLIP.md §1, §3).

The mask is built as a boolean "may attend" matrix and handed to BERT as a 4-D additive float
mask (0 where allowed, the dtype's minimum elsewhere): the form transformers 5 treats correctly
under both SDPA and eager attention.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertModel

from .config import TextConfig


def bert_config(cfg: TextConfig) -> BertConfig:
    """The transformers config for ``cfg`` with the word embedding sized for the corners."""
    return BertConfig(
        **cfg.transformer_options(),
        vocab_size=cfg.embedding_rows,
        max_position_embeddings=cfg.max_positions,
        type_vocab_size=cfg.type_vocab_size,
        pad_token_id=cfg.pad_token_id,
    )


def corner_attention_allowed(
    input_ids: torch.Tensor, num_corner_tokens: int, pad_token_id: int = 0
) -> torch.Tensor:
    """Boolean [B, L, L] matrix, rows = queries, True where the query may attend to the key.

    Every key that is padding or a corner/CLS slot (positions 0..K) is hidden; text and padding
    rows get [CLS] back; each of rows 0..K gets itself back. So no token attends to a corner, and
    [CLS] and the text never depend on the corner embeddings.
    """
    batch, length = input_ids.shape
    k = num_corner_tokens
    allowed = (input_ids != pad_token_id)[:, None, :].expand(batch, length, length).clone()
    allowed[:, :, : k + 1] = False
    allowed[:, k + 1 :, 0] = True
    slots = torch.arange(min(k + 1, length), device=input_ids.device)
    allowed[:, slots, slots] = True
    return allowed


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, L, L] bool -> [B, 1, L, L] additive float mask (0 allowed, finfo.min hidden)."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


class TextTower(nn.Module):
    """BERT + pooler + bias-free projection; outputs the CLS and corner slots."""

    def __init__(self, cfg: TextConfig, embed_dim: int) -> None:
        super().__init__()
        self.config = cfg
        self.transformer = BertModel(bert_config(cfg), add_pooling_layer=True)
        # The reference replaces the word embedding with one that has no padding_idx.
        self.transformer.embeddings.word_embeddings.padding_idx = None
        self.proj = nn.Linear(cfg.width, embed_dim, bias=False)

    def forward_slots(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``input_ids`` [B, L] -> [B, K+1, D]: CLS, corner 0, ..., corner K-1 embeddings."""
        cfg = self.config
        dtype = self.transformer.embeddings.word_embeddings.weight.dtype
        allowed = corner_attention_allowed(input_ids, cfg.num_corner_tokens, cfg.pad_token_id)
        hidden = self.transformer(
            input_ids=input_ids, attention_mask=additive_mask(allowed, dtype)
        ).last_hidden_state
        slots = hidden[:, : cfg.num_corner_tokens + 1]
        pooled = torch.tanh(self.transformer.pooler.dense(slots))
        return self.proj(pooled)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``input_ids`` [B, L] -> [CLS] embedding [B, D] (what inference uses)."""
        return self.forward_slots(input_ids)[:, 0]

    def blocks(self) -> list[nn.Module]:
        """The BERT layers in order (fine-tuning unfreezes the last N)."""
        return list(self.transformer.encoder.layer)
