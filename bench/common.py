"""Shared helpers for the benchmark scripts (not tests): models, photos, timing, printing."""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/...` from anywhere
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from lotlip.config import BERT_BASE_VOCAB, official_config, small_config, with_name  # noqa: E402
from lotlip.model import LoTLIP  # noqa: E402
from lotlip.tokenizer import LoTLIPTokenizer  # noqa: E402
from training import synthetic  # noqa: E402


def _caption_words(scenes: int = 20) -> list[str]:
    """The words of a few synthetic paragraphs (in order of first use), then "." and ","."""
    text = " ".join(synthetic.make_scene(seed).long_captions[0] for seed in range(scenes))
    return [*dict.fromkeys(re.findall(r"[a-z]+", text.lower())), ".", ","]


WORDS = _caption_words()
"""Real words for the BERT-like vocabulary and for queries, so texts tokenize to varied ids."""


def bert_like_vocab() -> list[str]:
    """30522 unique tokens with BERT's special tokens at their real ids and some real words."""
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list(dict.fromkeys(WORDS))
    vocab += [f"tok{i}" for i in range(BERT_BASE_VOCAB - len(vocab))]
    return vocab


def official_random_model(patch_size: int = 16, name: str | None = None) -> LoTLIP:
    """A ViT-B/{16,32} LoTLIP with random weights (same compute as the real one)."""
    config = with_name(official_config(patch_size), name) if name else official_config(patch_size)
    torch.manual_seed(0)
    return LoTLIP(config, LoTLIPTokenizer(bert_like_vocab())).eval()


def small_random_model(name: str = "bench-small", width: int = 128, image_size: int = 96) -> LoTLIP:
    """A small LoTLIP (the bundled model's size) with random weights."""
    from training.recipes import TINY_ARCH, tiny_vocab

    vocab = tiny_vocab()
    arch = {**TINY_ARCH, "width": width, "image_size": image_size}
    torch.manual_seed(0)
    return LoTLIP(small_config(name, vocab_size=len(vocab), **arch), LoTLIPTokenizer(vocab)).eval()


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A photo-like picture: soft gradients, shapes and grain (JPEG-compresses like a photo)."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), "RGB")
    image = small.resize(size, Image.Resampling.BICUBIC)
    pen = ImageDraw.Draw(image)
    w, h = size
    for _ in range(6):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(w // 20, w // 5))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        pen.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(2))
    grain = rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8), "RGB")


def write_photos(folder: Path, count: int, size: tuple[int, int], quality: int = 90) -> list[Path]:
    """``count`` JPEG photos of ``size`` in ``folder`` (reused when already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"photo_{size[0]}x{size[1]}_{i:05d}.jpg"
        if not path.exists():
            photo(size, i).save(path, "JPEG", quality=quality)
        paths.append(path)
    return paths


def clocked(fn: Callable[..., Any], *args: object, **kwargs: object) -> tuple[Any, float]:
    """What ``fn(*args, **kwargs)`` returned, and the seconds it took."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def timed(fn: Callable[..., object], *args: object, **kwargs: object) -> float:
    """Seconds ``fn(*args, **kwargs)`` took."""
    return clocked(fn, *args, **kwargs)[1]


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    """(p50, p95) of a list of milliseconds."""
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def header(title: str) -> None:
    """Print a section title with the machine it runs on."""
    print(f"\n== {title}")
    print(f"   torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
