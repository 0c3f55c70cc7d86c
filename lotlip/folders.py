"""Our model folder format, the parts that need no torch: file names, recognising a folder and
reading its config.

``lotlip.checkpoints`` writes and loads these folders; this module lets the registry list
installed models (and the CLI's ``status`` and ``model list`` start) without importing torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, BinaryIO

from .config import LoTLIPConfig

FORMAT = "lotlip-search/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.txt"
WEIGHTS_DIGEST_KEY = "weights_blake2b"
"""Metadata key: BLAKE2b-128 of every byte of model.safetensors, recorded when it is saved."""
WEIGHTS_BYTES_KEY = "weights_bytes"
IMAGE_TOWER_PREFIX = "visual."
"""State-dict prefix of the image tower: what makes a model's image vectors."""
BASE_IMAGE_TOWER_KEY = "base_image_tower_blake2b"
"""Metadata key of a fine-tune: :func:`tower_digest` of its base model's image tower."""
_tower_digests: dict[tuple[str, int, int], str] = {}  # (file, size, mtime) -> digest


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message says what is wrong."""


def is_pretrained_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder in our format."""
    path = Path(path)
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def read_folder_config(folder: str | Path) -> tuple[LoTLIPConfig, dict[str, Any]]:
    """The config and metadata of a model folder, without loading its weights."""
    folder = Path(folder)
    try:
        document = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE} is unreadable: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"{folder / CONFIG_FILE} is not a {FORMAT} model config")
    try:
        config = LoTLIPConfig.from_dict(document["config"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE} has an invalid config: {exc!r}") from exc
    metadata = document.get("metadata", {})
    return config, metadata if isinstance(metadata, dict) else {}


def folder_problem(folder: str | Path) -> str:
    """Why ``folder`` is not a loadable model in our format, or ``""`` when it looks whole.

    Cheap and torch-free (no weights are loaded): the three files exist, config.json parses,
    and the safetensors header is readable and matches the file's size.
    """
    from safetensors import safe_open

    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file():
        return f"no {CONFIG_FILE} (an unfinished save or import?)"
    for name in (WEIGHTS_FILE, VOCAB_FILE):
        if not (folder / name).is_file():
            return f"no {name}"
    try:
        read_folder_config(folder)
    except CheckpointError as exc:
        return str(exc)
    try:
        with safe_open(str(folder / WEIGHTS_FILE), "numpy") as weights:
            weights.keys()
    except Exception as exc:  # safetensors raises its own error types
        return f"{WEIGHTS_FILE} is damaged: {exc}"
    return ""


def weights_fingerprint(folder: str | Path, metadata: dict[str, Any]) -> str | None:
    """The digest of every byte of a folder's weights, as recorded when they were saved.

    ``None`` when the folder predates the record or its weights file is not the one recorded
    (another size): callers then hash the file themselves.
    """
    recorded = metadata.get(WEIGHTS_DIGEST_KEY)
    try:
        size = (Path(folder) / WEIGHTS_FILE).stat().st_size
    except OSError:
        return None
    if isinstance(recorded, str) and metadata.get(WEIGHTS_BYTES_KEY) == size:
        return recorded
    return None


def tower_digest(weights: BinaryIO, prefix: str = IMAGE_TOWER_PREFIX) -> str:
    """BLAKE2b-128 of the tensors under ``prefix`` in safetensors data (an open file).

    Covers each tensor's name, dtype, shape and bytes, in name order, so it does not depend on
    how the file is laid out: two models have the same digest exactly when those tensors are
    bit-identical. Raises ``CheckpointError`` for data that is not safetensors.
    """
    try:
        length = int.from_bytes(weights.read(8), "little")
        header = json.loads(weights.read(length))
        start = 8 + length
        digest = hashlib.blake2b(digest_size=16)
        for name in sorted(k for k in header if k.startswith(prefix)):
            info = header[name]
            begin, end = info["data_offsets"]
            weights.seek(start + begin)
            data = weights.read(end - begin)
            if len(data) != end - begin:
                raise ValueError(f"{name} is cut short")
            described = [name, info["dtype"], info["shape"], len(data)]
            digest.update(json.dumps(described).encode("utf-8"))
            digest.update(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"unreadable safetensors data: {exc}") from exc
    return digest.hexdigest()


def image_tower_fingerprint(folder: str | Path) -> str | None:
    """:func:`tower_digest` of a model folder's image tower (``None`` if it cannot be read).

    Read from the weights file itself, so it says what the folder holds; remembered per
    file, size and mtime.
    """
    path = Path(folder) / WEIGHTS_FILE
    try:
        st = path.stat()
        key = (os.fspath(path), st.st_size, st.st_mtime_ns)
        if key not in _tower_digests:
            with open(path, "rb") as fh:
                _tower_digests[key] = tower_digest(fh)
    except (OSError, CheckpointError):
        return None
    return _tower_digests[key]


GENERIC_STEMS = frozenset(
    {"model", "pytorch_model", "open_clip_pytorch_model", "open_clip_model", "checkpoint", "last"}
)
"""Checkpoint file names that say nothing about the model (its folder names it instead)."""


def checkpoint_name(path: str | Path) -> str:
    """The name a checkpoint file goes by when the user gave none: its file name without the
    extension, or its folder's name for generic file names like ``model.pt``."""
    path = Path(path)
    if path.stem.lower() in GENERIC_STEMS and path.resolve().parent.name:
        return path.resolve().parent.name
    return path.stem
