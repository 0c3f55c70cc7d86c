"""The recipe of the small model we ship (``lotlip-tiny``) and of the ablation runs.

Everything here is deterministic from seeds: the WordPiece vocabulary is learned from synthetic
captions; the training data are procedural scenes rendered on the fly
(:class:`training.data.SyntheticDataset`).
"""

from __future__ import annotations

import torch

from lotlip.config import small_config
from lotlip.model import LoTLIP
from lotlip.tokenizer import LoTLIPTokenizer

from .synthetic import caption_corpus, zero_shot_prompts
from .vocab import build_wordpiece_vocab

TINY_NAME = "lotlip-tiny"
TINY_VOCAB_SIZE = 1024
# The bundled model: about 1.8 M parameters, 7 MB in float32.
TINY_ARCH = {"width": 128, "layers": 4, "heads": 4, "image_size": 96, "patch_size": 12}
# For tests and smoke runs only (``pretrain --recipe micro``): trains in seconds on a CPU and
# learns next to nothing. Same vocabulary as tiny.
MICRO_ARCH = {"width": 32, "layers": 2, "heads": 2, "image_size": 32, "patch_size": 8}
RECIPES = {"tiny": TINY_ARCH, "micro": MICRO_ARCH}


def tiny_vocab() -> list[str]:
    """The bundled model's vocabulary, learned from synthetic captions (deterministic)."""
    corpus = caption_corpus(3000) + zero_shot_prompts()
    return build_wordpiece_vocab(corpus, TINY_VOCAB_SIZE)


def new_tiny_model(
    seed: int = 0, corners: int = 2, name: str = TINY_NAME, recipe: str = "tiny"
) -> LoTLIP:
    """A randomly initialised model of ``recipe`` (see :data:`RECIPES`), tiny vocabulary."""
    vocab = tiny_vocab()
    torch.manual_seed(seed)
    config = small_config(name, vocab_size=len(vocab), corners=corners, **RECIPES[recipe])
    return LoTLIP(config, LoTLIPTokenizer(vocab, num_corner_tokens=corners))
