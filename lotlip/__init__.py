"""LoTLIP: long-text CLIP with corner tokens, as a small, Qt-free model library.

This room holds the model and everything needed to use it: configs, the two towers, the
tokenizer, image loading and preprocessing, checkpoint formats, the registry of known models,
devices and precisions. It imports only third-party libraries (torch, transformers, safetensors,
Pillow, huggingface_hub), never ``training`` or ``app``.

>>> import lotlip
>>> model = lotlip.load("lotlip-tiny")
>>> model.embed_texts(["a large red circle in the centre. a small blue star at the top"])
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The names below are imported on first use (PEP 562), so `import lotlip` and the registry
# do not load torch: commands that only list models or read the library start in a blink.
_LAZY = {
    "CheckpointError": "folders",
    "UnsafeCheckpointError": "checkpoints",
    "LoTLIPConfig": "config",
    "TextConfig": "config",
    "VisionConfig": "config",
    "official_config": "config",
    "small_config": "config",
    "LoTLIP": "model",
    "PRECISION_CHOICES": "precision",
    "PrecisionError": "precision",
    "cpu_has_native_bf16": "precision",
    "BUNDLED_MODEL": "registry",
    "OFFICIAL_MODELS": "registry",
    "DownloadError": "registry",
    "ModelNotFoundError": "registry",
    "download": "registry",
    "installed_models": "registry",
    "LoTLIPTokenizer": "tokenizer",
    "TokenCount": "tokenizer",
    "TokenizedBatch": "tokenizer",
    "ImageLoadError": "transforms",
    "Preprocess": "transforms",
    "load_image": "transforms",
}

if TYPE_CHECKING:  # the public names (``__all__``) for type checkers and editors
    import torch

    from .checkpoints import UnsafeCheckpointError
    from .config import LoTLIPConfig, TextConfig, VisionConfig, official_config, small_config
    from .folders import CheckpointError
    from .model import LoTLIP
    from .precision import PRECISION_CHOICES, PrecisionError, cpu_has_native_bf16
    from .registry import (
        BUNDLED_MODEL,
        OFFICIAL_MODELS,
        DownloadError,
        ModelNotFoundError,
        download,
        installed_models,
    )
    from .tokenizer import LoTLIPTokenizer, TokenCount, TokenizedBatch
    from .transforms import ImageLoadError, Preprocess, load_image


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lotlip' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BUNDLED_MODEL",
    "OFFICIAL_MODELS",
    "PRECISION_CHOICES",
    "CheckpointError",
    "DownloadError",
    "ImageLoadError",
    "LoTLIP",
    "LoTLIPConfig",
    "LoTLIPTokenizer",
    "ModelNotFoundError",
    "PrecisionError",
    "Preprocess",
    "TextConfig",
    "TokenCount",
    "TokenizedBatch",
    "UnsafeCheckpointError",
    "VisionConfig",
    "cpu_has_native_bf16",
    "download",
    "installed_models",
    "load",
    "load_image",
    "official_config",
    "small_config",
]


def load(
    spec: str | Path,
    device: str | torch.device = "auto",
    *,
    vocab: str | Path | None = None,
    precision: str = "auto",
) -> LoTLIP:
    """Load a model by registry name, official ``.pt`` path, or our-format folder.

    ``device`` is ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
    ``precision`` is ``auto`` (fp16 on GPUs, bf16 on CPUs with native bfloat16, else fp32),
    ``fp32``, ``bf16``, ``fp16`` (GPU) or ``int8`` (CPU, dynamic int8 Linear layers); see
    :mod:`lotlip.precision`. An official ``.pt`` needs the BERT ``vocab.txt``: pass
    ``vocab=``, put it next to the file, or have it in the Hugging Face cache. Nothing is ever
    downloaded here: use :func:`lotlip.download` (or ``lotlip-search model download``).
    """
    return _load_cpu(spec, vocab).to_device(device, precision)


def _load_cpu(spec: str | Path, vocab: str | Path | None) -> LoTLIP:
    from .checkpoints import load_official, load_pretrained
    from .folders import is_pretrained_folder
    from .registry import (
        BUNDLED_MODEL,
        OFFICIAL_MODELS,
        ModelNotFoundError,
        cached_official_files,
        installed_models,
        offline_instructions,
        resolve_folder,
    )
    from .tokenizer import LoTLIPTokenizer

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
    from .registry import ModelNotFoundError
    from .tokenizer import LoTLIPTokenizer

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
