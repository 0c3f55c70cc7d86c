"""LoTLIP: long-text CLIP with corner tokens, as a small, Qt-free model library.

>>> import lotlip
>>> model = lotlip.load("lotlip-tiny")
>>> model.embed_texts(["a large red circle in the centre. a small blue star at the top"])
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoints import (
    CheckpointError,
    UnsafeCheckpointError,
    is_pretrained_folder,
    load_official,
    load_pretrained,
)
from .config import LoTLIPConfig, TextConfig, VisionConfig, official_config, small_config
from .model import LoTLIP
from .registry import (
    BUNDLED_MODEL,
    OFFICIAL_MODELS,
    DownloadError,
    ModelNotFoundError,
    cached_official_files,
    download,
    installed_models,
    offline_instructions,
    resolve_folder,
)
from .tokenizer import LoTLIPTokenizer, TokenCount, TokenizedBatch
from .transforms import ImageLoadError, Preprocess, load_image

__all__ = [
    "BUNDLED_MODEL",
    "OFFICIAL_MODELS",
    "CheckpointError",
    "DownloadError",
    "ImageLoadError",
    "LoTLIP",
    "LoTLIPConfig",
    "LoTLIPTokenizer",
    "ModelNotFoundError",
    "Preprocess",
    "TextConfig",
    "TokenCount",
    "TokenizedBatch",
    "UnsafeCheckpointError",
    "VisionConfig",
    "download",
    "installed_models",
    "load",
    "load_image",
    "official_config",
    "small_config",
]


def load(
    spec: str | Path, device: str | torch.device = "auto", *, vocab: str | Path | None = None
) -> LoTLIP:
    """Load a model by registry name, official ``.pt`` path, or our-format folder.

    ``device`` is ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``; GPUs run in
    half precision, the CPU in float32. An official ``.pt`` needs the BERT ``vocab.txt``: pass
    ``vocab=``, put it next to the file, or have it in the Hugging Face cache. Nothing is ever
    downloaded here: use :func:`lotlip.download` (or ``lotlip-search model download``).
    """
    return _load_cpu(spec, vocab).to_device(device)


def _load_cpu(spec: str | Path, vocab: str | Path | None) -> LoTLIP:
    path = Path(spec)
    if path.exists():
        if path.is_dir():
            if not is_pretrained_folder(path):
                raise ModelNotFoundError(
                    f"{path} is not a model folder (no config.json + model.safetensors)"
                )
            return load_pretrained(path)
        return load_official(path, _official_tokenizer(path, vocab))
    name = str(spec)
    folder = resolve_folder(name)
    if folder is not None:
        return load_pretrained(folder, name=name)  # installed as `name`: that is its name
    if name in OFFICIAL_MODELS:
        cached = cached_official_files(name)
        if cached is None:
            raise ModelNotFoundError(
                f"{name} is not installed. Download it with `lotlip-search model download {name}` "
                f"(about {OFFICIAL_MODELS[name].approx_mb} MB), or install it by hand.\n"
                + offline_instructions(name)
            )
        ckpt, vocab_file = cached
        return load_official(ckpt, LoTLIPTokenizer.from_vocab_file(vocab_file), name=name)
    known = sorted({BUNDLED_MODEL, *OFFICIAL_MODELS, *(m.name for m in installed_models())})
    raise ModelNotFoundError(f"unknown model {name!r}; known models: {', '.join(known)}")


def _official_tokenizer(checkpoint: Path, vocab: str | Path | None) -> LoTLIPTokenizer:
    candidates = [Path(vocab)] if vocab else [checkpoint.with_name("vocab.txt")]
    if not vocab:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache("google-bert/bert-base-uncased", "vocab.txt")
        if isinstance(cached, str):
            candidates.append(Path(cached))
    for candidate in candidates:
        if candidate.is_file():
            return LoTLIPTokenizer.from_vocab_file(candidate)
    raise ModelNotFoundError(
        f"{checkpoint.name} needs the bert-base-uncased vocabulary: pass vocab=..., or put "
        "vocab.txt next to the checkpoint"
    )
