"""Which fine-tune settings a user gets by default, per base model (CLI, GUI and the study).

One table, :data:`RECOMMENDED`: a recipe measured for a base model (docs/TRAINING.md, "Short
phrasings and low-rank adapters") becomes that model's default. Replay draws the base's own
synthetic training captions, so a recipe holds only for the model it was measured on and for
fine-tunes of it (followed through the ``base_spec`` / ``base_model`` chain of their metadata).
Every other base gets :data:`GENERIC`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lotlip import registry
from lotlip.folders import read_folder_config

from .finetune import Recipe

MAX_CHAIN = 16  # fine-tunes of fine-tunes followed before giving up (a cycle, a broken chain)


@dataclass(frozen=True)
class FinetuneDefaults:
    """Optimizer settings (names of :class:`training.train.TrainConfig` fields) and data recipe."""

    trainable: str = "text"
    last_n: int = 2
    lr: float = 5e-5
    steps: int = 200
    warmup: int = 20
    batch_size: int = 32
    weight_decay: float = 0.1
    recipe: Recipe = field(default_factory=Recipe)
    measured_on: str = ""  # the base model the settings were measured for ("": generic)
    source: str = "generic defaults"  # where the settings come from, for the user

    def settings(self) -> dict[str, Any]:
        """The TrainConfig fields these defaults set."""
        names = ("trainable", "last_n", "lr", "steps", "warmup", "batch_size", "weight_decay")
        return {name: getattr(self, name) for name in names}


GENERIC = FinetuneDefaults()
RECOMMENDED: dict[str, FinetuneDefaults] = {
    # study trial 22: held-out short-caption R@1 0.46 (mean of 7 seeds), demo forgetting < 5 pts
    "lotlip-tiny": FinetuneDefaults(
        trainable="text-last-n",
        last_n=2,
        lr=1e-3,
        steps=200,
        warmup=10,
        recipe=Recipe(shuffle_sentences=True, replay=256, short_phrasings=True),
        measured_on="lotlip-tiny",
        source="docs/TRAINING.md, fine-tune study trial 22",
    ),
}


def _folder(spec: str) -> Path | None:
    path = Path(spec)
    if path.is_dir():
        return path
    return registry.resolve_folder(spec)


def root_base(spec: str) -> str | None:
    """The model a fine-tune chain starts from: follows each fine-tuned folder's recorded base.

    Returns the root's name (for anything that is not one of our folders: ``spec`` itself), or
    None when the chain cannot be followed (unreadable folder, no recorded base, too long).
    """
    for _ in range(MAX_CHAIN):
        folder = _folder(spec)
        if folder is None:
            return spec  # not one of our folders (an official name or file): its own root
        try:
            config, metadata = read_folder_config(folder)
        except Exception:  # a broken folder: no chain to follow
            return None
        if metadata.get("kind") != "fine-tuned":
            return config.name
        parent = metadata.get("base_spec") or metadata.get("base_model")
        if not isinstance(parent, str) or not parent:
            return None
        spec = parent
    return None


def defaults_for(base: str) -> FinetuneDefaults:
    """The recommended defaults of ``base``'s root model, else :data:`GENERIC`."""
    return RECOMMENDED.get(root_base(base) or "", GENERIC)
