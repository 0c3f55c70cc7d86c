"""The paper's long-text retrieval benchmarks, read in the reference repository's public layout.

Each loader returns image paths with one caption per image, in the order the reference
(``wuw2019/LoTLIP``, ``dataloaders/*.py``; LOTLIP.md §7) builds them. Captions get the
reference's handling: split on newlines, ``</s>`` and every '.', strip, drop empties, rejoin
with ". ". The model's tokenizer then truncates each caption at its context (128 tokens for the
official models); there is no chunking. Scoring is :func:`training.evaluate.recall_at_k` on
``S = T @ I.T`` over the whole set.

Layouts under ``--data DIR``:

* ``urban1k``: ``DIR/image/<name>.jpg`` and ``DIR/caption/<name>.txt`` (first line);
* ``dci``: ``DIR/densely_captioned_images/{splits.json,annotations/,photos/}`` (every split),
  text = ``short_caption`` + newline + ``extra_caption``;
* ``iiw``: ``DIR/{dci,docci,docci_aar}/`` images and the annotation files
  ``<DCI_Test|DOCCI_Test|IIW-400>/data.jsonl`` under ``DIR`` or ``DIR/imageinwords`` (the
  reference keeps them in ``dataloaders/imageinwords``), field ``IIW``; 612 pairs in full;
* ``docci``: ``DIR/docci_descriptions.jsonlines`` (split ``test``) and ``DIR/images/``;
* ``sharegpt4v-1k`` / ``-10k``: the first 1k / 10k entries of ``share4v_sam_10k.json`` (in
  ``DIR`` or ``DIR/share4v``), text = ``conversations[1].value``, images relative to ``DIR``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lotlip.model import LoTLIP

from .data import load_image
from .evaluate import KS, recall_at_k

# Published LoTLIP-B/16 R@1 (image->text, text->image), in %, from the paper's table.
PUBLISHED: dict[str, tuple[float, float]] = {
    "dci": (64.11, 62.63),
    "iiw": (94.28, 92.65),
    "sharegpt4v-10k": (88.40, 82.72),
    "urban1k": (88.80, 84.80),
}
TITLES = {
    "urban1k": "Urban-1k",
    "dci": "DCI",
    "iiw": "IIW",
    "docci": "DOCCI",
    "sharegpt4v-1k": "ShareGPT4V-1k",
    "sharegpt4v-10k": "ShareGPT4V-10k",
}
_CAPTION_BREAK = re.compile(r"\n|</s>|\.")
_IIW_PARTS = (("DOCCI_Test", "docci"), ("IIW-400", "docci_aar"), ("DCI_Test", "dci"))


@dataclass
class BenchmarkPairs:
    """One caption per image, already in the reference's caption form."""

    name: str
    images: list[Path]
    texts: list[str]


def reference_caption(text: str) -> str:
    """Split on newline, ``</s>`` or any '.', strip, drop empties, rejoin with ". "."""
    return ". ".join(part.strip() for part in _CAPTION_BREAK.split(text) if part.strip())


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: benchmark annotation file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: benchmark annotation file not found")
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({exc})") from exc


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[0]


def load_urban1k(root: Path) -> list[tuple[Path, str]]:
    """Urban-1k: ``caption/<name>.txt`` (first line) with ``image/<name>.jpg``."""
    captions = root / "caption"
    if not captions.is_dir():
        raise FileNotFoundError(f"{captions}: Urban-1k caption folder not found")
    pairs = []
    for path in sorted(captions.glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines()
        pairs.append((root / "image" / f"{path.stem}.jpg", lines[0] if lines else ""))
    return pairs


def load_dci(root: Path) -> list[tuple[Path, str]]:
    """DCI: every annotation listed in ``splits.json`` (all splits, in file order)."""
    base = _first_existing(root / "densely_captioned_images", root)
    splits = _read_json(base / "splits.json")
    pairs = []
    for files in splits.values():
        for name in files:
            anno = _read_json(base / "annotations" / name)
            text = f"{anno['short_caption']}\n{anno.get('extra_caption', '')}"
            pairs.append((base / "photos" / anno["image"], text))
    return pairs


def load_iiw(root: Path) -> list[tuple[Path, str]]:
    """IIW: DOCCI_Test, IIW-400 and DCI_Test annotations (field ``IIW``), in that order."""
    annotations = _first_existing(root / "imageinwords", root)
    pairs = []
    for part, subfolder in _IIW_PARTS:
        for row in _read_jsonl(annotations / part / "data.jsonl"):
            name = row.get("image", row.get("image/key"))
            if not isinstance(name, str):
                raise ValueError(f"{part}: a row has no 'image' or 'image/key' field")
            if ".jpg" not in name:
                name += ".jpg"
            pairs.append((root / subfolder / name, row["IIW"]))
    return pairs


def load_docci(root: Path) -> list[tuple[Path, str]]:
    """DOCCI: the ``test`` split of ``docci_descriptions.jsonlines``."""
    rows = _read_jsonl(root / "docci_descriptions.jsonlines")
    return [
        (root / "images" / row["image_file"], row["description"])
        for row in rows
        if row.get("split") == "test"
    ]


def load_sharegpt4v(root: Path, count: int) -> list[tuple[Path, str]]:
    """ShareGPT4V: the first ``count`` entries of ``share4v_sam_10k.json``."""
    name = "share4v_sam_10k.json"
    entries = _read_json(_first_existing(root / name, root / "share4v" / name))
    if len(entries) < count:
        raise ValueError(f"{name} has {len(entries)} entries, fewer than {count}")
    return [
        (root / entry["image"], entry["conversations"][1]["value"]) for entry in entries[:count]
    ]


LOADERS: dict[str, Callable[[Path], list[tuple[Path, str]]]] = {
    "urban1k": load_urban1k,
    "dci": load_dci,
    "iiw": load_iiw,
    "docci": load_docci,
    "sharegpt4v-1k": lambda root: load_sharegpt4v(root, 1000),
    "sharegpt4v-10k": lambda root: load_sharegpt4v(root, 10000),
}


def load_benchmark(name: str, root: str | Path) -> BenchmarkPairs:
    """Read benchmark ``name`` from ``root``; a missing image or annotation is a clear error."""
    if name not in LOADERS:
        raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(LOADERS)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: benchmark folder not found")
    try:
        pairs = LOADERS[name](root)
    except KeyError as exc:
        raise ValueError(f"{name}: annotation without the field {exc}") from exc
    if not pairs:
        raise ValueError(f"{name}: no image-caption pairs found under {root}")
    missing = [str(path) for path, _ in pairs if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{name}: {len(missing)} of {len(pairs)} images missing, e.g. {missing[0]}"
        )
    return BenchmarkPairs(
        name, [path for path, _ in pairs], [reference_caption(text) for _, text in pairs]
    )


def run_benchmark(model: LoTLIP, pairs: BenchmarkPairs, batch_size: int = 64) -> dict[str, float]:
    """R@1/5/10 both ways, in [0, 1], plus ``n``; images are read one batch at a time."""
    was_training = model.training
    model.eval()
    chunks = []
    for start in range(0, len(pairs.images), batch_size):
        batch = [load_image(path) for path in pairs.images[start : start + batch_size]]
        chunks.append(model.embed_images(batch, batch_size=batch_size))
    images = np.concatenate(chunks)
    texts = model.embed_texts(pairs.texts, batch_size=batch_size)
    model.train(was_training)
    return {"n": float(len(pairs.texts)), **recall_at_k(texts @ images.T)}


def paper_table(name: str, metrics: dict[str, float], model_name: str) -> str:
    """The paper's layout (I2T / T2I R@1) with the published LoTLIP-B/16 row beside ours."""
    title = TITLES.get(name, name)
    published = PUBLISHED.get(name)
    lines = [
        f"{title} long-text retrieval ({int(metrics['n'])} pairs), R@1 in %",
        f"{'model':<28} {'I2T':>7} {'T2I':>7}",
        f"{'LoTLIP-B/16 (paper)':<28} "
        + (f"{published[0]:7.2f} {published[1]:7.2f}" if published else f"{'-':>7} {'-':>7}"),
        f"{model_name[:28]:<28} {100 * metrics['i2t_r1']:7.2f} {100 * metrics['t2i_r1']:7.2f}",
        "",
        f"{'direction':<28} " + " ".join(f"{f'R@{k}':>7}" for k in KS),
    ]
    for key, label in (("i2t", "image->text"), ("t2i", "text->image")):
        cells = " ".join(f"{100 * metrics[f'{key}_r{k}']:7.2f}" for k in KS)
        lines.append(f"{label:<28} {cells}")
    return "\n".join(lines)


def benchmark_json(name: str, metrics: dict[str, float], model_name: str) -> str:
    """Measured metrics and the published R@1 as JSON."""
    published = PUBLISHED.get(name)
    payload = {
        "benchmark": name,
        "model": model_name,
        "metrics": {key: round(value, 4) for key, value in metrics.items()},
        "published_lotlip_b16": (
            {"i2t_r1": published[0] / 100, "t2i_r1": published[1] / 100} if published else None
        ),
    }
    return json.dumps(payload, indent=2)
