"""Fine-tune a model on personal captions (CLI ``finetune`` and the GUI's fine-tune dialog).

Modes: ``text`` freezes the image tower, so every image embedding (and so an existing photo
index) stays bit-identical and the new model can search it without re-indexing; ``last-n``
unfreezes the last N blocks of both towers; ``full`` trains everything. The result is a model
folder in our format with a record of its base model, data size and before/after metrics.
"""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lotlip.config import with_name

from .data import CaptionDataset, CaptionedImage, SkipStats, folder_records, manifest_records
from .data import load_image as load_record_image
from .evaluate import EvalSet, evaluate
from .train import StepReport, TrainConfig, TrainResult, load_initial_model, train

log = logging.getLogger(__name__)

MIN_HELDOUT = 5


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


def read_caption_records(data: str | Path, stats: SkipStats) -> list[CaptionedImage]:
    """Records of a folder with sidecar captions or a JSONL/CSV manifest."""
    path = Path(data)
    if path.is_dir():
        return folder_records(path, stats=stats, check_images=True)
    if path.suffix.lower() in (".jsonl", ".csv") and path.is_file():
        return manifest_records(path, stats=stats, check_images=True)
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
) -> FinetuneResult:
    """Fine-tune ``base`` on captioned images and save the model to ``config.out``.

    ``data`` is a folder with sidecar captions, a JSONL/CSV manifest, or records. Retrieval is
    measured before and after on held-out captions (when there are enough) and on the training
    captions. Returns a :class:`FinetuneResult`; ``model_dir`` is None when stopped early.
    """
    stats = SkipStats("fine-tune data")
    records = list(data) if not isinstance(data, str | Path) else read_caption_records(data, stats)
    if not records:
        raise ValueError("no captioned images to fine-tune on")
    train_records, heldout = split_heldout(records, heldout_fraction, config.seed)
    model = load_initial_model(str(base))
    base_name = model.name
    model.config = with_name(model.config, name or f"{base_name}-finetuned")
    dataset = CaptionDataset(
        train_records,
        model.preprocess,
        num_long=config.num_long,
        sentences_per_caption=config.extra.get("sentences", 0) or None,
        seed=config.seed,
        stats=stats,
    )
    batch = max(2, min(config.batch_size, len(dataset)))
    config = replace(config, batch_size=batch, model_subdir="")
    eval_sets = {"train": eval_set_from_records(train_records)}
    if heldout:
        eval_sets["heldout"] = eval_set_from_records(heldout)

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
        "mode": {"none": "full"}.get(config.freeze, config.freeze),
        "train_pairs": len(train_records),
        "heldout_pairs": len(heldout),
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
