"""The LoTLIP dual encoder and its convenience API (PIL images / strings -> numpy vectors)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from .config import LoTLIPConfig
from .devices import resolve_device
from .files import file_digest, write_atomic, write_text_atomic
from .folders import CONFIG_FILE, FORMAT, WEIGHTS_BYTES_KEY, WEIGHTS_DIGEST_KEY, WEIGHTS_FILE
from .precision import PrecisionError, apply_precision, compute_dtype, resolve_precision
from .text import TextTower
from .tokenizer import LoTLIPTokenizer
from .transforms import Preprocess
from .vision import VisionTower


class LoTLIP(nn.Module):
    """Image tower + text tower with corner tokens + a learnable temperature.

    ``encode_*`` are the tensor-level forwards (not normalized); ``embed_*`` take PIL images or
    strings and return L2-normalized float32 numpy arrays, batched on the model's device.
    """

    def __init__(self, config: LoTLIPConfig, tokenizer: LoTLIPTokenizer) -> None:
        super().__init__()
        if tokenizer.vocab_size != config.text.vocab_size:
            raise ValueError(
                f"tokenizer has {tokenizer.vocab_size} tokens but the model expects "
                f"{config.text.vocab_size}"
            )
        if tokenizer.num_corner_tokens != config.text.num_corner_tokens:
            raise ValueError("tokenizer and model disagree on the number of corner tokens")
        self.config = config
        self.tokenizer = tokenizer
        self.preprocess = Preprocess(config.vision.image_size)
        self.visual = VisionTower(config.vision)
        self.text = TextTower(config.text, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(config.init_logit_scale))
        self.metadata: dict[str, Any] = {}
        self.precision = "fp32"

    # -- identity ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The model's name (registry name, or the name given when it was saved)."""
        return self.config.name

    @property
    def embed_dim(self) -> int:
        """Width of the joint embedding space."""
        return self.config.embed_dim

    @property
    def device(self) -> torch.device:
        """Where the weights live."""
        return self.logit_scale.device

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype of the towers (float16 on GPUs; bf16 or float32 on the CPU)."""
        return compute_dtype(self.precision)

    # -- tensor level --------------------------------------------------------------------------
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] preprocessed pixels -> [B, D] image features (not normalized)."""
        return self.visual(pixels.to(self.device, self.dtype))

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, L] token ids -> [B, D] text features of the [CLS] slot (not normalized)."""
        return self.text(input_ids.to(self.device))

    def encode_text_slots(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, L] token ids -> [B, K+1, D]: [CLS] then each corner token (for training)."""
        return self.text.forward_slots(input_ids.to(self.device))

    # -- convenience -----------------------------------------------------------------------------
    @torch.inference_mode()
    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """PIL images -> L2-normalized float32 array [N, D]."""
        chunks = [
            self.embed_pixels(self.preprocess.batch(images[i : i + batch_size]))
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.embed_dim), np.float32)

    @torch.inference_mode()
    def embed_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Preprocessed [B, 3, S, S] pixels -> L2-normalized float32 array [B, D]."""
        return _normalized_numpy(self.encode_image(pixels))

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Strings -> L2-normalized float32 array [N, D].

        Texts are batched by length and padded only to the longest in their batch: trailing
        padding is masked, so this equals padding to 128 tokens and is much faster for queries.
        """
        if isinstance(texts, str):
            raise TypeError("embed_texts takes a list of strings")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.embed_dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = self.tokenizer([texts[i] for i in idx])
            out[idx] = _normalized_numpy(self.encode_text(batch.input_ids))
        return out

    def to_device(self, device: str | torch.device = "auto", precision: str = "auto") -> LoTLIP:
        """Move to ``device`` (``auto`` = CUDA, MPS, CPU) at ``precision``; eval mode.

        ``precision`` is one of :data:`lotlip.precision.PRECISION_CHOICES`; ``auto`` is fp16 on
        GPUs, bf16 on CPUs with native bfloat16 and fp32 elsewhere. An int8 model stays int8.
        """
        target = resolve_device(device)
        concrete = resolve_precision(precision, target)
        if self.precision == "int8" and concrete != "int8":
            raise PrecisionError("an int8 model cannot change precision; load it again")
        if not (self.precision == "int8" and concrete == "int8"):
            apply_precision(self, concrete, target)
        self.precision = concrete
        return self.eval()

    def save(self, folder: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write this model in our format: model.safetensors, config.json and vocab.txt.

        Reading the folder back is :func:`lotlip.checkpoints.load_pretrained`.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        digest: dict[str, Any] = {}

        def write_weights(tmp: Path) -> None:
            save_file(state, str(tmp), {"format": FORMAT})
            digest[WEIGHTS_DIGEST_KEY], digest[WEIGHTS_BYTES_KEY] = file_digest(tmp)

        write_atomic(folder / WEIGHTS_FILE, write_weights)
        self.tokenizer.save(folder)
        meta = {**self.metadata, **(metadata or {}), **digest}
        document = {"format": FORMAT, "config": self.config.to_dict(), "metadata": meta}
        # config.json last: a folder is a model only once it is complete (is_pretrained_folder)
        write_text_atomic(folder / CONFIG_FILE, json.dumps(document, indent=2) + "\n")
        return folder


def _normalized_numpy(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    features = nn.functional.normalize(features, dim=-1)
    return features.cpu().numpy().astype(np.float32, copy=False)
