"""Our model folder format, the parts that need no torch: file names, recognising a folder and
reading its config.

``lotlip.checkpoints`` writes and loads these folders; this module lets the registry list
installed models (and the CLI's ``status`` and ``model list`` start) without importing torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import LoTLIPConfig

FORMAT = "lotlip-search/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.txt"
WEIGHTS_DIGEST_KEY = "weights_blake2b"
"""Metadata key: BLAKE2b-128 of every byte of model.safetensors, recorded when it is saved."""
WEIGHTS_BYTES_KEY = "weights_bytes"


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
