"""Fine-tune a model on personal captions (CLI ``finetune`` and the GUI's fine-tune dialog).

Modes: ``text`` and ``text-last-n`` freeze the image tower, so every image embedding (and so
an existing photo index) stays bit-identical and the new model can search it without
re-indexing (the library checks this by the image tower's fingerprint, recorded for the base
here); ``last-n`` unfreezes the last N blocks of both towers; ``full`` trains everything.
The result is a model folder in our format with a record of its base model, data size and
before/after metrics.
"""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from lotlip.checkpoints import model_image_tower_fingerprint
from lotlip.config import with_name
from lotlip.folders import BASE_IMAGE_TOWER_KEY

from . import synthetic
from .augment import ShortPhrasings, short_phrasings
from .data import (
    CaptionDataset,
    CaptionedImage,
    Sample,
    SkipStats,
    SyntheticDataset,
    folder_records,
    manifest_records,
)
from .data import load_image as load_record_image
from .evaluate import EvalSet, evaluate
from .train import StepReport, TrainConfig, TrainResult, load_initial_model, train

log = logging.getLogger(__name__)

MIN_HELDOUT = 5
DEMO_SCENES = 60  # the app's demo gallery: held-out synthetic scenes (app.library.demo)
DEMO_CAPTION_VARIANT = 1


@dataclass(frozen=True)
class Recipe:
    """How a fine-tune uses its data, beyond the optimizer settings in :class:`TrainConfig`.

    ``shuffle_sentences``: present each long caption's sentences in a random order.
    ``replay``: mix this many of the base model's own synthetic training scenes into every
    epoch, to keep old skills. ``select_on_heldout``: score held-out text->image R@1 every
    ``config.select_every`` steps and keep the best weights (early stopping with
    ``config.patience``); the held-out numbers then took part in choosing the model.
    ``short_phrasings``: half the time, train on another short phrasing of a picture's short
    caption (rewrites and clauses of its paragraphs, :mod:`training.augment`).
    """

    shuffle_sentences: bool = False
    replay: int = 0
    select_on_heldout: bool = False
    short_phrasings: bool = False


@dataclass
class FinetuneResult:
    """The trained model folder and retrieval before/after on held-out and training captions."""

    train: TrainResult
    model_dir: Path | None
    before: dict[str, float]
    after: dict[str, float]
    train_pairs: int
    heldout_pairs: int
    skipped: dict[str, int]


def read_caption_records(
    data: str | Path, stats: SkipStats, *, check_images: bool = True
) -> list[CaptionedImage]:
    """Records of a folder with sidecar captions or a JSONL/CSV manifest (``check_images``:
    skip images that do not open)."""
    path = Path(data)
    if path.is_dir():
        return folder_records(path, stats=stats, check_images=check_images)
    if path.suffix.lower() in (".jsonl", ".csv") and path.is_file():
        return manifest_records(path, stats=stats, check_images=check_images)
    raise FileNotFoundError(f"{data}: expected a folder with sidecar captions or a .jsonl/.csv")


def split_heldout(
    records: Sequence[CaptionedImage], fraction: float, seed: int
) -> tuple[list[CaptionedImage], list[CaptionedImage]]:
    """(train, held-out): a seeded shuffle; nothing is held out below 2 * MIN_HELDOUT records."""
    items = list(records)
    random.Random(seed).shuffle(items)
    count = int(len(items) * fraction)
    if count < MIN_HELDOUT or len(items) - count < MIN_HELDOUT:
        return items, []
    return items[count:], items[:count]


def record_id(record: CaptionedImage) -> str:
    """What identifies a training picture in a model's metadata (its key, else its path)."""
    return record.key or str(record.image)


def unseen_records(
    records: Sequence[CaptionedImage], metadata: dict[str, Any]
) -> tuple[list[CaptionedImage], int]:
    """(records the model was not fine-tuned on, how many were dropped)."""
    seen = set(metadata.get("train_keys") or ())
    kept = [record for record in records if record_id(record) not in seen]
    return kept, len(records) - len(kept)


class _Concat(Dataset):
    """Datasets one after another, passing ``set_epoch`` and ``captions`` on."""

    def __init__(self, *parts: Dataset) -> None:
        self.parts = parts
        self.sizes = [len(part) for part in parts]  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        for part in self.parts:
            part.set_epoch(epoch)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return sum(self.sizes)

    def _locate(self, index: int) -> tuple[Dataset, int]:
        for part, size in zip(self.parts, self.sizes, strict=True):
            if index < size:
                return part, index
            index -= size
        raise IndexError(index)

    def __getitem__(self, index: int) -> Sample:
        part, local = self._locate(index)
        return part[local]

    def captions(self, index: int) -> tuple[str, list[str]]:
        part, local = self._locate(index)
        return part.captions(local)  # type: ignore[attr-defined]


def demo_eval_set(size: int, count: int = DEMO_SCENES) -> EvalSet:
    """The demo gallery's scenes with the caption the demo queries with (forgetting check)."""
    scenes = [synthetic.make_scene(seed) for seed in synthetic.heldout_seeds(count)]
    return EvalSet(
        images=[scene.render(size) for scene in scenes],
        long_texts=[scene.long_captions[DEMO_CAPTION_VARIANT] for scene in scenes],
        short_texts=[scene.short_caption for scene in scenes],
    )


def eval_set_from_records(records: Sequence[CaptionedImage]) -> EvalSet:
    """Images with their first long caption (or the short one) and short caption."""
    images, longs, shorts = [], [], []
    for record in records:
        try:
            images.append(load_record_image(record.image))
        except Exception as exc:  # Pillow raises many types for bad data
            log.warning("skipping %s in evaluation: %s", record.key or record.image, exc)
            continue
        longs.append(record.long[0] if record.long else record.short)
        shorts.append(record.short)
    return EvalSet(images=images, long_texts=longs, short_texts=shorts)


def finetune(
    base: str | Path,
    data: str | Path | Sequence[CaptionedImage],
    config: TrainConfig,
    *,
    name: str | None = None,
    heldout_fraction: float = 0.2,
    progress: Callable[[StepReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    recipe: Recipe | None = None,
) -> FinetuneResult:
    """Fine-tune ``base`` on captioned images and save the model to ``config.out``.

    ``data`` is a folder with sidecar captions, a JSONL/CSV manifest, or records. Retrieval is
    measured before and after on held-out captions (when there are enough), on the training
    captions and on the demo scenes (``demo_*``: what the base model knew, to see forgetting).
    Returns a :class:`FinetuneResult`; ``model_dir`` is None when stopped early.
    """
    stats = SkipStats("fine-tune data")
    records = list(data) if not isinstance(data, str | Path) else read_caption_records(data, stats)
    if not records:
        raise ValueError("no captioned images to fine-tune on")
    train_records, heldout = split_heldout(records, heldout_fraction, config.seed)
    model = load_initial_model(str(base))
    base_name = model.name
    model.config = with_name(model.config, name or f"{base_name}-finetuned")
    recipe = recipe or Recipe()
    sentences = config.extra.get("sentences", 0) or None
    dataset: Dataset = CaptionDataset(
        train_records,
        model.preprocess,
        num_long=config.num_long,
        sentences_per_caption=sentences,
        seed=config.seed,
        stats=stats,
        shuffle_sentences=recipe.shuffle_sentences,
    )
    if recipe.short_phrasings:
        phrasings = [short_phrasings(record.short, record.long) for record in train_records]
        dataset = ShortPhrasings(dataset, phrasings, config.seed)
    if recipe.replay:
        size = model.config.vision.image_size
        replay = SyntheticDataset(
            0,
            recipe.replay,
            model.preprocess,
            image_size=size,
            num_long=config.num_long,
            sentences_per_caption=sentences,
            seed=config.seed,
        )
        dataset = _Concat(dataset, replay)
    batch = max(2, min(config.batch_size, len(dataset)))  # type: ignore[arg-type]
    config = replace(config, batch_size=batch, model_subdir="")
    eval_sets = {"train": eval_set_from_records(train_records)}
    if heldout:
        eval_sets["heldout"] = eval_set_from_records(heldout)
    eval_sets["demo"] = demo_eval_set(max(224, model.config.vision.image_size))
    select = None
    if recipe.select_on_heldout and heldout:
        heldout_set = eval_sets["heldout"]
        select = lambda current: evaluate(current, heldout_set)["long_t2i_r1"]  # noqa: E731

    def measure(current: Any) -> dict[str, float]:
        return {
            f"{split}_{key}": value
            for split, eval_set in eval_sets.items()
            for key, value in evaluate(current, eval_set).items()
        }

    before = measure(model)
    metadata = {
        "kind": "fine-tuned",
        "base_model": base_name,
        "base_spec": str(base),
        # what the library compares to reuse the base's image vectors (bit-identical tower)
        BASE_IMAGE_TOWER_KEY: model_image_tower_fingerprint(model),
        "mode": config.trainable,
        "train_pairs": len(train_records),
        "heldout_pairs": len(heldout),
        "train_keys": sorted(record_id(record) for record in train_records),
        "recipe": asdict(recipe),
        "metrics_before": before,
    }
    result = train(
        config,
        model,
        dataset,
        progress=progress,
        should_stop=should_stop,
        metadata=metadata,
        evaluate=measure,
        select=select,
    )
    after = result.model_dir and _saved_metrics(result)
    if result.model_dir is not None:
        shutil.rmtree(Path(config.out) / "checkpoints", ignore_errors=True)
    return FinetuneResult(
        train=result,
        model_dir=result.model_dir,
        before=before,
        after=after or {},
        train_pairs=len(train_records),
        heldout_pairs=len(heldout),
        skipped=stats.as_dict(),
    )


def _saved_metrics(result: TrainResult) -> dict[str, float]:
    from lotlip.checkpoints import read_folder_config

    assert result.model_dir is not None
    _, meta = read_folder_config(result.model_dir)
    return meta.get("metrics", {})
