"""Image + caption datasets for LoTLIP training.

Every sample has one short caption and one or more long captions. A dataset item is
``(pixels, short_caption, [long_caption_sample, ...])``: the long captions are cut to a random run
of consecutive sentences (the reference's "three consecutive sub-captions") and tokenization is
left to the training loop.

Sources (:func:`open_dataset` picks one from a path):

* **folder** of images with caption sidecars: ``photo.jpg`` + ``photo.json``
  (``{"short": "...", "long": ["...", ...]}``) or ``photo.txt`` (first non-empty line = short
  caption; the rest = long captions, separated by blank lines; a file with a single line is the
  long caption and its first sentence is the short caption);
* **manifest**: ``.jsonl`` (one object per line) or ``.csv`` with ``image`` (relative to the
  manifest), ``short`` and ``long`` (a string or a list; in CSV several long captions are joined
  with ``||``);
* **tar shards** in the webdataset layout (``key.jpg``/``key.png`` + ``key.txt``/``key.json``),
  streamed by :class:`training.shards.ShardDataset`;
* ``synthetic:COUNT`` or ``synthetic:START:COUNT``: scenes from :mod:`training.synthetic`
  rendered on the fly.

Broken samples (unreadable image, missing or empty caption) are skipped and counted in a
:class:`SkipStats`, never fatal.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from lotlip.transforms import load_image as lotlip_load_image
from training import synthetic

if TYPE_CHECKING:
    from .shards import ShardDataset

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
)

Transform = Callable[[Image.Image], torch.Tensor]
RandomSource = random.Random | np.random.Generator
Sample = tuple[torch.Tensor, str, list[str]]

# Skip reasons.
MISSING_IMAGE = "missing_image"
UNREADABLE_IMAGE = "unreadable_image"
MISSING_CAPTION = "missing_caption"
EMPTY_CAPTION = "empty_caption"
BAD_RECORD = "bad_record"
BAD_SHARD = "bad_shard"

DEFAULT_SENTENCES = 3
DEFAULT_SHUFFLE_BUFFER = 1000


# -- Skip accounting -------------------------------------------------------------------------------
class SkipStats:
    """Counts skipped samples by reason and logs them (the first few per reason as warnings).

    In DataLoader worker processes each worker counts into its own copy; the log lines still
    appear, the parent's counter does not see them.
    """

    def __init__(self, name: str = "data", log_limit: int = 10) -> None:
        self.name = name
        self.log_limit = log_limit
        self.counts: Counter[str] = Counter()

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        """Record one skipped sample: ``reason`` (e.g. ``"missing_caption"``) at ``where``."""
        self.counts[reason] += 1
        n = self.counts[reason]
        message = "%s: skipped %s (%s)%s"
        args = (self.name, where, reason, f": {detail}" if detail else "")
        if n <= self.log_limit:
            logger.warning(message, *args)
            if n == self.log_limit:
                logger.warning("%s: further %r skips are logged at DEBUG level", self.name, reason)
        else:
            logger.debug(message, *args)

    @property
    def total(self) -> int:
        """Number of skipped samples over all reasons."""
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        """Counts per reason."""
        return dict(self.counts)

    def __repr__(self) -> str:
        return f"SkipStats({self.name!r}, {dict(self.counts)!r})"


# -- Captions --------------------------------------------------------------------------------------
_SENTENCE_BREAK = re.compile(r"\.(?=\s|$)|\n|</s>")
_WHITESPACE = re.compile(r"\s+")


def split_sentences(text: str) -> list[str]:
    """Split a caption into sentences at ". ", a final ".", newlines and ``</s>``.

    Sentences are stripped (including stray periods) and empties dropped. A period inside a
    token (``3.5``) does not split.
    """
    sentences = []
    for part in _SENTENCE_BREAK.split(text):
        part = _WHITESPACE.sub(" ", part).strip().strip(".").strip()
        if part:
            sentences.append(part)
    return sentences


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (empty string if there is none)."""
    sentences = split_sentences(text)
    return sentences[0] if sentences else ""


def _randbelow(rng: RandomSource, n: int) -> int:
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(n))
    return rng.randrange(n)


def sample_subcaption(caption: str, rng: RandomSource, k: int | None = DEFAULT_SENTENCES) -> str:
    """A random run of ``k`` consecutive sentences of ``caption``, joined with ". ".

    The whole caption (re-joined) is returned when it has at most ``k`` sentences or ``k`` is
    None/0. No trailing period is added, matching the evaluation captions (§7 of LOTLIP.md).
    """
    sentences = split_sentences(caption)
    if not k or len(sentences) <= k:
        return ". ".join(sentences)
    start = _randbelow(rng, len(sentences) - k + 1)
    return ". ".join(sentences[start : start + k])


def choose_long_captions(
    longs: Sequence[str],
    num_long: int,
    rng: RandomSource,
    sentences: int | None = DEFAULT_SENTENCES,
) -> list[str]:
    """Pick ``num_long`` long captions (distinct when possible) and cut each to a sub-caption.

    If there are fewer captions than ``num_long``, every caption is used once (in random order)
    and the rest are drawn again; repeated captions usually get different sentence windows.
    """
    if not longs:
        raise ValueError("no long captions to choose from")
    n = len(longs)
    order = list(range(n))
    for i in range(n - 1, 0, -1):  # Fisher-Yates with the given RNG (either kind)
        j = _randbelow(rng, i + 1)
        order[i], order[j] = order[j], order[i]
    picks = order[:num_long] + [_randbelow(rng, n) for _ in range(max(0, num_long - n))]
    return [sample_subcaption(longs[i], rng, sentences) for i in picks]


def shuffle_sentences(text: str, rng: random.Random) -> str:
    """``text`` with its sentences in a random order, joined with ". "."""
    sentences = split_sentences(text)
    rng.shuffle(sentences)
    return ". ".join(sentences)


def sample_rng(seed: int, epoch: int, *index: int) -> random.Random:
    """A ``random.Random`` for one sample, derived from (seed, epoch, index...).

    Each epoch gives different draws, and the same triple always gives the same draws, so
    resuming mid-epoch reproduces the samples exactly.
    """
    words = np.random.SeedSequence([seed, epoch, *index]).generate_state(4, dtype=np.uint32)
    return random.Random(int.from_bytes(words.tobytes(), "little"))


def _clean(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _normalise_caption(short: Any, longs: Any) -> tuple[str, list[str]] | None:
    """Tidy a (short, long) pair; fill the missing half from the other; None if both empty."""
    if isinstance(longs, str):
        longs = [longs]
    if not isinstance(longs, (list, tuple)):
        longs = []
    long_list = [_clean(text) for text in longs if isinstance(text, str)]
    long_list = [text for text in long_list if split_sentences(text)]
    short_text = _clean(short) if isinstance(short, str) else ""
    if not short_text and long_list:
        short_text = first_sentence(long_list[0])
    if not long_list and short_text:
        long_list = [short_text]
    if not short_text:
        return None
    return short_text, long_list


def parse_caption_text(text: str) -> tuple[str, list[str]] | None:
    """Parse a ``.txt`` sidecar into ``(short, [long, ...])``; None if it holds no caption.

    * First non-empty line: the short caption. The remaining text: long captions, one per
      paragraph (paragraphs are separated by blank lines; lines inside one are joined).
    * A file with a single line: that line is the long caption and its first sentence the
      short caption.
    """
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    paragraphs: list[list[str]] = []
    for block in re.split(r"\n\s*\n", text):  # a blank line ends a paragraph
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        if lines:
            paragraphs.append(lines)
    if not paragraphs:
        return None
    if len(paragraphs) == 1 and len(paragraphs[0]) == 1:
        return _normalise_caption("", [paragraphs[0][0]])
    head = paragraphs[0]
    longs = [" ".join(head[1:])] if len(head) > 1 else []
    longs.extend(" ".join(paragraph) for paragraph in paragraphs[1:])
    return _normalise_caption(head[0], longs)


def parse_caption_json(obj: Any) -> tuple[str, list[str]] | None:
    """Parse a JSON sidecar: ``{"short": str, "long": str | [str, ...]}``.

    ``{"caption": str}`` or ``{"text": str}`` (common webdataset metadata) is read like a
    single-line text sidecar. Returns None when there is no usable caption.
    """
    if not isinstance(obj, dict):
        return None
    if obj.get("short") is None and obj.get("long") is None:
        text = obj.get("caption", obj.get("text"))
        return parse_caption_text(text) if isinstance(text, str) else None
    return _normalise_caption(obj.get("short"), obj.get("long"))


# -- Records and images ----------------------------------------------------------------------------
@dataclass
class CaptionedImage:
    """One image (a path or encoded bytes) with its short and long captions."""

    image: Path | bytes
    short: str
    long: list[str] = field(default_factory=list)
    key: str = ""


def load_image(source: Path | str | bytes) -> Image.Image:
    """Open an image file or encoded bytes as upright RGB (:func:`lotlip.transforms.load_image`).

    Raises :class:`lotlip.ImageLoadError` for unreadable data; callers skip such samples.
    """
    return lotlip_load_image(io.BytesIO(source) if isinstance(source, bytes) else source)


def _image_is_readable(source: Path | bytes) -> bool:
    """Cheap check (header + Pillow's verify) used when records are indexed."""
    try:
        fp: Any = io.BytesIO(source) if isinstance(source, bytes) else source
        with Image.open(fp) as image:
            image.verify()
    except Exception:  # Pillow raises many types for bad data
        return False
    return True


def _find_sidecar(image_path: Path) -> Path | None:
    for suffix in (".json", ".txt"):
        candidate = image_path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def _read_sidecar(path: Path) -> tuple[str, list[str]] | None:
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if path.suffix == ".json":
        try:
            return parse_caption_json(json.loads(text))
        except json.JSONDecodeError:
            return None
    return parse_caption_text(text)


def folder_records(
    folder: str | Path,
    *,
    stats: SkipStats | None = None,
    check_images: bool = False,
) -> list[CaptionedImage]:
    """Index a folder and its subfolders: images with ``.json``/``.txt`` caption sidecars, by path.

    Images without a sidecar, or whose sidecar holds no caption, are skipped and counted; with
    ``check_images`` unreadable images are also dropped here rather than at load time.
    """
    root = Path(folder)
    stats = stats if stats is not None else SkipStats(f"folder {root}")
    records = []
    for path in sorted(root.glob("**/*")):
        if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        where = str(path.relative_to(root))
        sidecar = _find_sidecar(path)
        if sidecar is None:
            stats.skip(MISSING_CAPTION, where, "no .txt or .json sidecar")
            continue
        try:
            caption = _read_sidecar(sidecar)
        except OSError as exc:
            stats.skip(MISSING_CAPTION, where, str(exc))
            continue
        if caption is None:
            stats.skip(EMPTY_CAPTION, where, f"{sidecar.name} holds no caption")
            continue
        if check_images and not _image_is_readable(path):
            stats.skip(UNREADABLE_IMAGE, where)
            continue
        records.append(CaptionedImage(path, caption[0], caption[1], key=where))
    logger.info("indexed %d captioned images in %s (%d skipped)", len(records), root, stats.total)
    return records


def _manifest_rows(path: Path, stats: SkipStats) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a JSONL or CSV manifest as dicts; CSV ``long`` cells are split on ``||``."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            for line_no, row in enumerate(csv.DictReader(fh), start=2):
                row = dict(row)
                longs = row.get("long")
                if isinstance(longs, str):
                    row["long"] = [part for part in longs.split("||") if part.strip()]
                yield line_no, row
        return
    with path.open(encoding="utf-8-sig") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                stats.skip(BAD_RECORD, f"{path.name}:{line_no}", str(exc))
                continue
            if not isinstance(row, dict):
                stats.skip(BAD_RECORD, f"{path.name}:{line_no}", "not a JSON object")
                continue
            yield line_no, row


def manifest_records(
    manifest: str | Path,
    *,
    stats: SkipStats | None = None,
    check_images: bool = False,
) -> list[CaptionedImage]:
    """Read a ``.jsonl`` or ``.csv`` manifest with fields ``image``, ``short`` and ``long``.

    ``image`` is relative to the manifest's folder (absolute paths also work). Rows with a
    missing image file or no caption are skipped and counted.
    """
    path = Path(manifest)
    stats = stats if stats is not None else SkipStats(f"manifest {path.name}")
    records = []
    for line_no, row in _manifest_rows(path, stats):
        where = f"{path.name}:{line_no}"
        image = row.get("image")
        if not isinstance(image, str) or not image.strip():
            stats.skip(BAD_RECORD, where, "no 'image' field")
            continue
        image_path = path.parent / image.strip()
        if not image_path.is_file():
            stats.skip(MISSING_IMAGE, where, str(image_path))
            continue
        caption = _normalise_caption(row.get("short"), row.get("long"))
        if caption is None:
            stats.skip(MISSING_CAPTION, where)
            continue
        if check_images and not _image_is_readable(image_path):
            stats.skip(UNREADABLE_IMAGE, where)
            continue
        records.append(CaptionedImage(image_path, caption[0], caption[1], key=image))
    logger.info("read %d captioned images from %s (%d skipped)", len(records), path, stats.total)
    return records


# -- Map-style datasets ----------------------------------------------------------------------------
class CaptionSampling:
    """What every dataset here shares: per sample, ``num_long`` sub-captions drawn afresh each
    epoch from ``(seed, epoch, index...)``, so a resumed run draws exactly what it would have.

    With ``shuffle_sentences`` each sub-caption's sentences also come in a random order (an
    augmentation for small fine-tuning sets).
    """

    shuffle_sentences = False

    def __init__(
        self,
        transform: Transform,
        *,
        num_long: int = 1,
        sentences_per_caption: int | None = DEFAULT_SENTENCES,
        seed: int = 0,
    ) -> None:
        if num_long < 1:
            raise ValueError("num_long must be >= 1")
        self.transform = transform
        self.num_long = num_long
        self.sentences_per_caption = sentences_per_caption
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the epoch, which re-draws the caption samples."""
        self.epoch = epoch

    def long_captions(self, longs: Sequence[str], epoch: int, *index: int) -> list[str]:
        """The sub-captions sample ``index`` gets in ``epoch`` from its long captions."""
        rng = sample_rng(self.seed, epoch, *index)
        chosen = choose_long_captions(longs, self.num_long, rng, self.sentences_per_caption)
        if self.shuffle_sentences:
            chosen = [shuffle_sentences(text, rng) for text in chosen]
        return chosen


class CaptionDataset(CaptionSampling, Dataset):
    """Map-style dataset over :class:`CaptionedImage` records (folder or manifest).

    Item ``i`` is ``(transform(image), short, [num_long sub-captions])``; caption sampling is
    seeded by ``(seed, epoch, i)`` (see :class:`CaptionSampling`). An image that fails to load
    is counted in ``stats`` and replaced by the next loadable record, so every index returns a
    sample.
    """

    def __init__(
        self,
        records: Sequence[CaptionedImage],
        transform: Transform,
        *,
        stats: SkipStats | None = None,
        max_retries: int = 50,
        shuffle_sentences: bool = False,
        **sampling: Any,
    ) -> None:
        super().__init__(transform, **sampling)
        self.shuffle_sentences = shuffle_sentences
        self.records = list(records)
        self.stats = stats if stats is not None else SkipStats("captions")
        self.max_retries = max_retries
        self._broken: set[int] = set()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        image, short, longs = self._item(index, with_image=True)
        return self.transform(image), short, longs

    def captions(self, index: int) -> tuple[str, list[str]]:
        """The captions item ``index`` has this epoch, without reading its image."""
        return self._item(index, with_image=False)[1:]

    def _item(self, index: int, with_image: bool) -> tuple[Image.Image | None, str, list[str]]:
        n = len(self.records)
        if not 0 <= index < n:
            raise IndexError(index)
        for attempt in range(min(self.max_retries, n)):
            i = (index + attempt) % n
            if i in self._broken:
                continue
            record = self.records[i]
            image = None
            if with_image:
                try:
                    image = load_image(record.image)
                except Exception as exc:  # Pillow raises many types for bad data
                    self._broken.add(i)
                    self.stats.skip(UNREADABLE_IMAGE, record.key or str(record.image), repr(exc))
                    continue
            return image, record.short, self.long_captions(record.long, self.epoch, i)
        raise RuntimeError(f"no loadable image within {self.max_retries} records of index {index}")


class SyntheticDataset(CaptionSampling, Dataset):
    """Map-style dataset of :mod:`training.synthetic` scenes rendered on the fly.

    Item ``i`` is scene ``start_seed + i`` rendered at ``image_size`` px, with its short caption
    and ``num_long`` sub-captions of its long captions.
    """

    def __init__(
        self,
        start_seed: int,
        count: int,
        transform: Transform,
        *,
        image_size: int = 224,
        **sampling: Any,
    ) -> None:
        super().__init__(transform, **sampling)
        self.start_seed = start_seed
        self.count = count
        self.image_size = image_size

    def scene(self, index: int) -> synthetic.Scene:
        """The scene behind item ``index`` (cheap: nothing is rendered)."""
        if not 0 <= index < self.count:
            raise IndexError(index)
        return synthetic.make_scene(self.start_seed + index)

    def labels(self) -> list[int]:
        """Zero-shot class index (see :func:`training.synthetic.label_index`) of every item."""
        return [synthetic.label_index(self.scene(i)) for i in range(self.count)]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        short, longs = self.captions(index)
        return self.transform(self.scene(index).render(self.image_size)), short, longs

    def captions(self, index: int) -> tuple[str, list[str]]:
        """The captions item ``index`` has this epoch, without rendering it."""
        scene = self.scene(index)
        return scene.short_caption, self.long_captions(scene.long_captions, self.epoch, index)


class ShapeTwinDataset(SyntheticDataset):
    """Synthetic scenes in pairs that differ only by one object's shape (hard negatives).

    Items ``2k`` and ``2k + 1`` are scene ``start_seed + k`` and its *twin*: the same scene with
    one object drawn as another shape, and the same sub-captions with that object's shape word
    changed (:func:`training.synthetic.swap_shape`). The object is drawn at random among those
    the sample's captions name (the short caption always names the large one), so in a batch
    that keeps pairs together (``group_size``) the only way to tell the two apart, image to
    text and text to image, is the shape. Without such pairs, colour, place and pattern already
    separate almost every in-batch negative, and the loss never asks for shapes.
    """

    #: consecutive indices the training sampler must keep in one batch
    group_size = 2

    def __len__(self) -> int:
        return 2 * self.count

    def scene(self, index: int) -> synthetic.Scene:
        """The scene behind item ``index``: a base scene or its shape twin (nothing rendered)."""
        return self._twin(index)[0]

    def captions(self, index: int) -> tuple[str, list[str]]:
        """The captions item ``index`` has this epoch; a twin's name its swapped shape."""
        return self._twin(index)[1:]

    def _twin(self, index: int) -> tuple[synthetic.Scene, str, list[str]]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        pair, is_twin = divmod(index, 2)
        scene = synthetic.make_scene(self.start_seed + pair)
        longs = self.long_captions(scene.long_captions, self.epoch, pair)
        if not is_twin:
            return scene, scene.short_caption, longs
        rng = sample_rng(self.seed, self.epoch, pair, 1)
        texts = [scene.short_caption, *longs]
        named = [
            i
            for i, obj in enumerate(scene.objects)
            if any(synthetic.names_label(text, obj.label) for text in texts)
        ]
        index_swapped = named[_randbelow(rng, len(named))]
        shapes = synthetic.free_shapes(scene, index_swapped)
        twin = synthetic.swap_shape(scene, index_swapped, shapes[_randbelow(rng, len(shapes))])
        old, new = scene.objects[index_swapped].label, twin.objects[index_swapped].label
        return twin, twin.short_caption, [synthetic.rename_label(t, old, new) for t in longs]


# -- Batching and dispatch -------------------------------------------------------------------------
class CaptionBatch(NamedTuple):
    """A collated batch: pixels ``[B, 3, H, W]``, B short captions, B lists of long captions."""

    pixels: torch.Tensor
    short: list[str]
    long: list[list[str]]


def collate_captions(batch: Sequence[Sample]) -> CaptionBatch:
    """DataLoader ``collate_fn``: stack the pixels, keep the captions as lists of strings."""
    if not batch:
        raise ValueError("empty batch")
    pixels = torch.stack([item[0] for item in batch])
    return CaptionBatch(pixels, [item[1] for item in batch], [list(item[2]) for item in batch])


_SYNTHETIC_SPEC = re.compile(r"synthetic:(\d+)(?::(\d+))?")


def open_dataset(
    spec: str | Path,
    transform: Transform,
    *,
    num_long: int = 1,
    sentences_per_caption: int | None = DEFAULT_SENTENCES,
    seed: int = 0,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    check_images: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
    stats: SkipStats | None = None,
    synthetic_size: int = 224,
) -> CaptionDataset | SyntheticDataset | ShardDataset:
    """Open a dataset from a path or pattern, choosing the source type from it.

    * ``synthetic:COUNT`` / ``synthetic:START:COUNT`` -> :class:`SyntheticDataset`
      (rendered at ``synthetic_size`` px);
    * a directory containing ``.tar`` files -> :class:`ShardDataset` over them;
    * any other directory -> :class:`CaptionDataset` over images with caption sidecars
      (:func:`folder_records`);
    * a ``.jsonl`` or ``.csv`` file -> :class:`CaptionDataset` over a manifest
      (:func:`manifest_records`);
    * a ``.tar`` file, or a brace/glob pattern of shards -> :class:`ShardDataset`.
    """
    from .shards import GLOB_MAGIC, ShardDataset  # shards build on this module

    common: dict[str, Any] = {
        "num_long": num_long,
        "sentences_per_caption": sentences_per_caption,
        "seed": seed,
    }
    text = str(spec)
    synthetic_match = _SYNTHETIC_SPEC.fullmatch(text)
    if synthetic_match:
        first, second = synthetic_match.groups()
        start, count = (0, int(first)) if second is None else (int(first), int(second))
        if start + count > synthetic.HELDOUT_SEED_OFFSET:
            logger.warning("synthetic seeds %d..%d reach the held-out range", start, start + count)
        return SyntheticDataset(start, count, transform, image_size=synthetic_size, **common)
    shard_options: dict[str, Any] = {
        "shuffle_buffer": shuffle_buffer,
        "rank": rank,
        "world_size": world_size,
        "stats": stats,
    }
    path = Path(spec)

    def captioned(read: Callable[..., list[CaptionedImage]], name: str) -> CaptionDataset:
        counter = stats if stats is not None else SkipStats(name)
        records = read(path, stats=counter, check_images=check_images)
        return CaptionDataset(records, transform, stats=counter, **common)

    if path.is_dir():
        tars = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(".tar"))
        if tars:
            return ShardDataset(tars, transform, **common, **shard_options)
        return captioned(folder_records, f"folder {path}")
    if path.suffix.lower() in (".jsonl", ".csv") and path.is_file():
        return captioned(manifest_records, f"manifest {path.name}")
    if path.is_file() or "{" in text or GLOB_MAGIC.search(text):
        return ShardDataset(text, transform, **common, **shard_options)
    raise FileNotFoundError(f"cannot open dataset {text!r}: no such file, folder or pattern")
