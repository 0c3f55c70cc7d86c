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
    if document.get("format") != FORMAT:
        raise CheckpointError(f"{folder} is not a {FORMAT} model folder")
    return LoTLIPConfig.from_dict(document["config"]), document.get("metadata", {})
