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
  streamed with :mod:`tarfile`, shuffled through a bounded buffer, split across DDP ranks and
  DataLoader workers by shard, and resumable from a small state dict;
* ``synthetic:COUNT`` or ``synthetic:START:COUNT``: scenes from :mod:`training.synthetic`
  rendered on the fly.

Broken samples (unreadable image, missing or empty caption) are skipped and counted in a
:class:`SkipStats`, never fatal.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import os
import posixpath
import random
import re
import tarfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from lotlip.transforms import load_image as lotlip_load_image
from training import synthetic

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "CaptionBatch",
    "CaptionDataset",
    "CaptionedImage",
    "ShardDataset",
    "SkipStats",
    "SyntheticDataset",
    "choose_long_captions",
    "collate_captions",
    "expand_shard_spec",
    "first_sentence",
    "folder_records",
    "load_image",
    "manifest_records",
    "open_dataset",
    "parse_caption_json",
    "parse_caption_text",
    "sample_rng",
    "sample_subcaption",
    "split_sentences",
]

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


# --------------------------------------------------------------------------------------------
# Skip accounting
# --------------------------------------------------------------------------------------------


class SkipStats:
    """Counts skipped samples by reason and logs them (the first few per reason as warnings).

    In DataLoader worker processes each worker counts into its own copy; the log lines still
    appear, the parent's counter does not see them.
    """

    def __init__(self, name: str = "data", log_limit: int = 10) -> None:
        self.name = name
        self.log_limit = log_limit
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        """Record one skipped sample: ``reason`` (e.g. ``"missing_caption"``) at ``where``."""
        self.counts[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(where)
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

    def merge(self, other: SkipStats) -> None:
        """Add another counter's counts (e.g. gathered from workers) to this one."""
        self.counts.update(other.counts)

    def __repr__(self) -> str:
        return f"SkipStats({self.name!r}, {dict(self.counts)!r})"


# --------------------------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------------------------

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
    current: list[str] = []
    for line in text.split("\n"):
        line = line.strip()
        if line:
            current.append(line)
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
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


# --------------------------------------------------------------------------------------------
# Records and images
# --------------------------------------------------------------------------------------------


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
    recursive: bool = True,
) -> list[CaptionedImage]:
    """Index a folder of images with ``.json`` or ``.txt`` caption sidecars (sorted by path).

    Images without a sidecar, or whose sidecar holds no caption, are skipped and counted; with
    ``check_images`` unreadable images are also dropped here rather than at load time.
    """
    root = Path(folder)
    stats = stats if stats is not None else SkipStats(f"folder {root}")
    pattern = "**/*" if recursive else "*"
    records = []
    for path in sorted(root.glob(pattern)):
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


# --------------------------------------------------------------------------------------------
# Map-style datasets
# --------------------------------------------------------------------------------------------


class CaptionDataset(Dataset):
    """Map-style dataset over :class:`CaptionedImage` records (folder or manifest).

    Item ``i`` is ``(transform(image), short, [num_long sub-captions])``; caption sampling is
    seeded by ``(seed, epoch, i)``. An image that fails to load is counted in ``stats`` and
    replaced by the next loadable record, so every index returns a sample.
    """

    def __init__(
        self,
        records: Sequence[CaptionedImage],
        transform: Transform,
        *,
        num_long: int = 1,
        sentences_per_caption: int | None = DEFAULT_SENTENCES,
        seed: int = 0,
        stats: SkipStats | None = None,
        max_retries: int = 50,
    ) -> None:
        if num_long < 1:
            raise ValueError("num_long must be >= 1")
        self.records = list(records)
        self.transform = transform
        self.num_long = num_long
        self.sentences_per_caption = sentences_per_caption
        self.seed = seed
        self.epoch = 0
        self.stats = stats if stats is not None else SkipStats("captions")
        self.max_retries = max_retries
        self._broken: set[int] = set()

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        transform: Transform,
        *,
        check_images: bool = False,
        stats: SkipStats | None = None,
        **kwargs: Any,
    ) -> CaptionDataset:
        """Dataset over a folder of images with caption sidecars (see :func:`folder_records`)."""
        stats = stats if stats is not None else SkipStats(f"folder {folder}")
        records = folder_records(folder, stats=stats, check_images=check_images)
        return cls(records, transform, stats=stats, **kwargs)

    @classmethod
    def from_manifest(
        cls,
        manifest: str | Path,
        transform: Transform,
        *,
        check_images: bool = False,
        stats: SkipStats | None = None,
        **kwargs: Any,
    ) -> CaptionDataset:
        """Dataset over a JSONL/CSV manifest (see :func:`manifest_records`)."""
        stats = stats if stats is not None else SkipStats(f"manifest {Path(manifest).name}")
        records = manifest_records(manifest, stats=stats, check_images=check_images)
        return cls(records, transform, stats=stats, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Change the epoch, which re-draws the caption samples."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        n = len(self.records)
        if not 0 <= index < n:
            raise IndexError(index)
        for attempt in range(min(self.max_retries, n)):
            i = (index + attempt) % n
            if i in self._broken:
                continue
            record = self.records[i]
            try:
                image = load_image(record.image)
            except Exception as exc:  # Pillow raises many types for bad data
                self._broken.add(i)
                self.stats.skip(UNREADABLE_IMAGE, record.key or str(record.image), repr(exc))
                continue
            rng = sample_rng(self.seed, self.epoch, i)
            longs = choose_long_captions(
                record.long, self.num_long, rng, self.sentences_per_caption
            )
            return self.transform(image), record.short, longs
        raise RuntimeError(f"no loadable image within {self.max_retries} records of index {index}")


class SyntheticDataset(Dataset):
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
        num_long: int = 1,
        sentences_per_caption: int | None = DEFAULT_SENTENCES,
        seed: int = 0,
    ) -> None:
        if num_long < 1:
            raise ValueError("num_long must be >= 1")
        self.start_seed = start_seed
        self.count = count
        self.transform = transform
        self.image_size = image_size
        self.num_long = num_long
        self.sentences_per_caption = sentences_per_caption
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the epoch, which re-draws the caption samples."""
        self.epoch = epoch

    def scene(self, index: int) -> synthetic.Scene:
        """The scene behind item ``index`` (cheap: nothing is rendered)."""
        if not 0 <= index < self.count:
            raise IndexError(index)
        return synthetic.make_scene(self.start_seed + index)

    def labels(self) -> list[int]:
        """Zero-shot class index (into :func:`training.synthetic.label_names`) of every item."""
        return [synthetic.label_index(self.scene(i)) for i in range(self.count)]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        scene = self.scene(index)
        rng = sample_rng(self.seed, self.epoch, index)
        longs = choose_long_captions(
            scene.long_captions, self.num_long, rng, self.sentences_per_caption
        )
        return self.transform(scene.render(self.image_size)), scene.short_caption, longs


# --------------------------------------------------------------------------------------------
# Tar shards
# --------------------------------------------------------------------------------------------

_GLOB_MAGIC = re.compile(r"[*?\[]")
_CAPTION_EXTENSIONS = ("json", "txt")
_SHARD_IMAGE_EXTENSIONS = tuple(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)
_MEMBER_EXTENSIONS = frozenset(_CAPTION_EXTENSIONS + _SHARD_IMAGE_EXTENSIONS)
_BUFFER_SALT = 0x5EED


def expand_shard_spec(spec: str | Path) -> list[Path]:
    """Expand ``{000..009}`` ranges, ``{a,b}`` lists and glob patterns into shard paths.

    Brace expansions keep their order; glob matches are sorted. Duplicates are dropped.
    """
    pending = [str(spec)]
    expanded: list[str] = []
    while pending:
        text = pending.pop(0)
        match = re.search(r"\{([^{}]*)\}", text)
        if match is None:
            expanded.append(text)
            continue
        inner = match.group(1)
        numeric = re.fullmatch(r"(\d+)\.\.(\d+)", inner)
        if numeric:
            lo, hi = numeric.groups()
            width = len(lo) if len(lo) == len(hi) or lo.startswith("0") else 0
            step = 1 if int(hi) >= int(lo) else -1
            options = [f"{n:0{width}d}" for n in range(int(lo), int(hi) + step, step)]
        else:
            options = inner.split(",")
        head, tail = text[: match.start()], text[match.end() :]
        pending[0:0] = [head + option + tail for option in options]
    paths: list[Path] = []
    for text in expanded:
        if _GLOB_MAGIC.search(text):
            paths.extend(Path(p) for p in sorted(glob.glob(text)))
        else:
            paths.append(Path(text))
    return list(dict.fromkeys(paths))


@dataclass
class _RawSample:
    """A shard sample before decoding: its location and its record (image bytes)."""

    loc: tuple[int, int]  # (position in the stream's shard list, sample index in the shard)
    record: CaptionedImage


def _split_member_name(name: str) -> tuple[str, str] | None:
    """webdataset naming: ``dir/key.ext.ext2`` -> (``dir/key``, ``ext.ext2``)."""
    base = posixpath.basename(name)
    if base.startswith(".") or "." not in base:
        return None
    stem, ext = base.split(".", 1)
    return posixpath.join(posixpath.dirname(name), stem), ext.lower()


def _check_tar_end(tar: tarfile.TarFile, path: Path, index: int, stats: SkipStats) -> None:
    """tarfile treats a cut-off header as the end of the archive; count that as a bad shard."""
    fileobj = tar.fileobj
    if fileobj is None:
        return
    fileobj.seek(tar.offset)
    if fileobj.read(1024).strip(b"\0"):
        stats.skip(BAD_SHARD, str(path), f"truncated or corrupt after sample {index}")


def _iter_tar_groups(
    path: Path, want: Callable[[int], bool], stats: SkipStats
) -> Iterator[tuple[int, str, dict[str, bytes] | None]]:
    """Yield ``(sample_index, key, members)`` for each run of members sharing a key.

    ``members`` maps extension -> bytes, read only when ``want(sample_index)``; otherwise it is
    None and the data are skipped without being read.
    """
    key: str | None = None
    members: dict[str, bytes] = {}
    index = -1
    wanted = False
    try:
        with tarfile.open(path, "r:*") as tar:
            while True:
                info = tar.next()
                if info is None:
                    _check_tar_end(tar, path, index, stats)
                    break
                tar.members = []  # keep memory flat on big shards; we never look back
                if not info.isfile():
                    continue
                parts = _split_member_name(info.name)
                if parts is None:
                    continue
                if parts[0] != key:
                    if key is not None:
                        yield index, key, members if wanted else None
                    key, members, index = parts[0], {}, index + 1
                    wanted = want(index)
                if wanted and parts[1] in _MEMBER_EXTENSIONS:
                    handle = tar.extractfile(info)
                    if handle is not None:
                        members[parts[1]] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        stats.skip(BAD_SHARD, str(path), f"stopped reading after sample {index}: {exc!r}")
    if key is not None:
        yield index, key, members if wanted else None


def _record_from_members(
    key: str, members: dict[str, bytes], stats: SkipStats
) -> CaptionedImage | None:
    image_ext = next((ext for ext in _SHARD_IMAGE_EXTENSIONS if ext in members), None)
    if image_ext is None:
        stats.skip(MISSING_IMAGE, key)
        return None
    caption = None
    if "json" in members:
        try:
            caption = parse_caption_json(json.loads(members["json"].decode("utf-8-sig")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            caption = None
    if caption is None and "txt" in members:
        caption = parse_caption_text(members["txt"].decode("utf-8-sig", errors="replace"))
    if caption is None:
        has_file = any(ext in members for ext in _CAPTION_EXTENSIONS)
        stats.skip(EMPTY_CAPTION if has_file else MISSING_CAPTION, key)
        return None
    return CaptionedImage(members[image_ext], caption[0], caption[1], key=key)


def _rng_state_to_json(state: tuple[Any, ...]) -> list[Any]:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_state_from_json(state: Sequence[Any]) -> tuple[Any, ...]:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


class _ShardStream:
    """One worker's pass over its shards through a bounded shuffle buffer.

    The stream reads samples in order into a buffer of ``buffer_size``; once it is full, each
    new sample replaces a uniformly chosen one, which is emitted. At the end the remaining
    buffer is shuffled and drained. ``state_dict()`` captures the position (next shard and
    sample to read), the RNG state and the *locations* of the buffered samples; restoring
    re-reads those from the shards, so a resumed stream emits exactly what the original would.
    """

    def __init__(
        self,
        shards: Sequence[Path],
        shard_ids: Sequence[int],
        *,
        epoch: int,
        slot: int,
        num_slots: int,
        seed: int,
        buffer_size: int,
        stats: SkipStats,
    ) -> None:
        self.shards = list(shards)
        self.shard_ids = list(shard_ids)
        self.epoch = epoch
        self.slot = slot
        self.num_slots = num_slots
        self.buffer_size = max(1, buffer_size)
        self.stats = stats
        self.rng = sample_rng(seed, epoch, slot, num_slots, _BUFFER_SALT)
        self.cursor: tuple[int, int] = (0, 0)
        self.buffer: list[_RawSample] = []
        self.draining = False
        self.emitted = 0

    # ---- state -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "slot": self.slot,
            "num_slots": self.num_slots,
            "shards": [str(path) for path in self.shards],
            "cursor": list(self.cursor),
            "buffer": [list(raw.loc) for raw in self.buffer],
            "draining": self.draining,
            "rng": _rng_state_to_json(self.rng.getstate()),
            "emitted": self.emitted,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = (self.epoch, self.slot, self.num_slots, [str(p) for p in self.shards])
        found = (state["epoch"], state["slot"], state["num_slots"], list(state["shards"]))
        if expected != found:
            raise ValueError(
                "shard stream state does not match this dataset (epoch, slot, number of "
                f"slots or shard list changed): expected {expected[:3]}, found {found[:3]}"
            )
        self.cursor = (int(state["cursor"][0]), int(state["cursor"][1]))
        self.draining = bool(state["draining"])
        self.rng.setstate(_rng_state_from_json(state["rng"]))
        self.emitted = int(state["emitted"])
        locations = [(int(a), int(b)) for a, b in state["buffer"]]
        fetched = self._fetch(locations)
        self.buffer = [fetched[loc] for loc in locations if loc in fetched]

    def _fetch(self, locations: Iterable[tuple[int, int]]) -> dict[tuple[int, int], _RawSample]:
        """Re-read the samples at ``locations`` (used when restoring the buffer)."""
        by_shard: dict[int, set[int]] = {}
        for pos, index in locations:
            by_shard.setdefault(pos, set()).add(index)
        found: dict[tuple[int, int], _RawSample] = {}
        for pos, wanted in sorted(by_shard.items()):
            last = max(wanted)
            for index, key, members in _iter_tar_groups(
                self.shards[pos], wanted.__contains__, self.stats
            ):
                if members is not None:
                    record = _record_from_members(key, members, self.stats)
                    if record is not None:
                        found[(pos, index)] = _RawSample((pos, index), record)
                if index >= last:
                    break
        return found

    @property
    def finished(self) -> bool:
        """True once every sample of this epoch has been emitted."""
        return self.draining and not self.buffer

    # ---- iteration ---------------------------------------------------------------------

    def _read(self) -> Iterator[_RawSample]:
        """Valid samples from the cursor on; the cursor always points past the last read."""
        first_pos, first_index = self.cursor
        for pos in range(first_pos, len(self.shards)):
            start = first_index if pos == first_pos else 0
            for index, key, members in _iter_tar_groups(
                self.shards[pos], lambda i, start=start: i >= start, self.stats
            ):
                if index < start:
                    continue
                self.cursor = (pos, index + 1)
                record = (
                    _record_from_members(key, members, self.stats) if members is not None else None
                )
                if record is not None:
                    yield _RawSample((pos, index), record)
            self.cursor = (pos + 1, 0)

    def __iter__(self) -> Iterator[_RawSample]:
        if not self.draining:
            for raw in self._read():
                if len(self.buffer) < self.buffer_size:
                    self.buffer.append(raw)
                    continue
                j = self.rng.randrange(self.buffer_size)
                out, self.buffer[j] = self.buffer[j], raw
                self.emitted += 1
                yield out
            self.draining = True
            self.rng.shuffle(self.buffer)
        while self.buffer:
            out = self.buffer.pop()
            self.emitted += 1
            yield out


def _distributed_layout(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        found = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        found = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    return (
        rank if rank is not None else found[0],
        world_size if world_size is not None else found[1],
    )


class ShardDataset(IterableDataset):
    """Streams webdataset-style tar shards: ``key.jpg``/``key.png`` + ``key.txt``/``key.json``.

    * Shards are shuffled per epoch (the same order on every rank) and dealt out round-robin
      to the ``world_size * num_workers`` slots: slot ``rank * num_workers + worker_id`` reads
      ``order[slot::num_slots]``. Use at least as many shards as slots; ranks may see
      different sample counts when shards differ in size.
    * Samples go through a bounded shuffle buffer (``shuffle_buffer`` samples).
    * ``state_dict()`` / ``load_state_dict()`` save and restore the position of the streams
      iterated in this process (``num_workers=0``): for each slot the epoch, next shard/sample
      index, RNG state and buffered sample locations. It is plain JSON-compatible data.
    * Iterating again after a complete pass starts the next epoch (in the iterating process);
      :meth:`set_epoch` sets it explicitly.

    Items are ``(transform(image), short, [num_long sub-captions])``; caption sampling is
    seeded by ``(seed, epoch, shard, sample)``.
    """

    def __init__(
        self,
        shards: Sequence[str | Path] | str | Path,
        transform: Transform,
        *,
        num_long: int = 1,
        sentences_per_caption: int | None = DEFAULT_SENTENCES,
        seed: int = 0,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
        shuffle_shards: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        stats: SkipStats | None = None,
    ) -> None:
        super().__init__()
        if num_long < 1:
            raise ValueError("num_long must be >= 1")
        if isinstance(shards, (str, Path)):
            paths = expand_shard_spec(shards)
        else:
            paths = [Path(p) for p in shards]
        self.stats = stats if stats is not None else SkipStats("shards")
        self.shards: list[Path] = []
        for path in paths:
            if path.is_file():
                self.shards.append(path)
            else:
                self.stats.skip(BAD_SHARD, str(path), "no such file")
        if not self.shards:
            raise FileNotFoundError(f"no tar shards found in {shards!r}")
        self.transform = transform
        self.num_long = num_long
        self.sentences_per_caption = sentences_per_caption
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.shuffle_shards = shuffle_shards
        self.rank, self.world_size = _distributed_layout(rank, world_size)
        self.epoch = 0
        self._streams: dict[int, _ShardStream] = {}
        self._resume: dict[int, dict[str, Any]] = {}

    def set_epoch(self, epoch: int) -> None:
        """Start a new epoch: a new shard order and new shuffle/caption draws.

        Setting the epoch a resumed state belongs to keeps that state pending.
        """
        if epoch != self.epoch:
            self._streams.clear()
            self._resume.clear()
        self.epoch = epoch

    def shard_order(self, epoch: int | None = None) -> list[int]:
        """Indices into ``self.shards`` in the order used for ``epoch`` (same on all ranks)."""
        order = list(range(len(self.shards)))
        if self.shuffle_shards:
            epoch = self.epoch if epoch is None else epoch
            sample_rng(self.seed, epoch, _BUFFER_SALT + 1).shuffle(order)
        return order

    def state_dict(self) -> dict[str, Any]:
        """Positions of this process's streams: ``{"epoch", "slots": {slot: state}}``."""
        slots = {str(slot): state for slot, state in self._resume.items()}
        slots.update({str(slot): stream.state_dict() for slot, stream in self._streams.items()})
        return {"version": 1, "epoch": self.epoch, "slots": slots}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`; the next iteration continues where it stopped."""
        self.epoch = int(state["epoch"])
        self._streams.clear()
        self._resume = {int(slot): slot_state for slot, slot_state in state["slots"].items()}

    def __iter__(self) -> Iterator[Sample]:
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.iter_slot(worker_id, num_workers)

    def iter_slot(self, worker_id: int = 0, num_workers: int = 1) -> Iterator[Sample]:
        """Iterate the samples of DataLoader worker ``worker_id`` of ``num_workers``."""
        slot = self.rank * num_workers + worker_id
        num_slots = self.world_size * num_workers
        pending = self._resume.pop(slot, None)
        previous = self._streams.get(slot)
        if pending is None and previous is not None and previous.finished:
            # Iterating again after a full pass: move on to the next epoch.
            self.set_epoch(self.epoch + 1)
        if len(self.shards) < num_slots:
            logger.warning(
                "%d shards for %d rank x worker slots: some slots get no data",
                len(self.shards),
                num_slots,
            )
        mine = self.shard_order()[slot::num_slots]
        stream = _ShardStream(
            [self.shards[i] for i in mine],
            mine,
            epoch=self.epoch,
            slot=slot,
            num_slots=num_slots,
            seed=self.seed,
            buffer_size=self.shuffle_buffer,
            stats=self.stats,
        )
        if pending is not None:
            stream.load_state_dict(pending)
        self._streams[slot] = stream
        return self._decode(stream)

    def _decode(self, stream: _ShardStream) -> Iterator[Sample]:
        for raw in stream:
            record = raw.record
            shard_id = stream.shard_ids[raw.loc[0]]
            try:
                image = load_image(record.image)
            except Exception as exc:  # Pillow raises many types for bad data
                where = f"{stream.shards[raw.loc[0]].name}:{record.key}"
                self.stats.skip(UNREADABLE_IMAGE, where, repr(exc))
                continue
            rng = sample_rng(self.seed, stream.epoch, shard_id, raw.loc[1])
            longs = choose_long_captions(
                record.long, self.num_long, rng, self.sentences_per_caption
            )
            yield self.transform(image), record.short, longs


# --------------------------------------------------------------------------------------------
# Batching and dispatch
# --------------------------------------------------------------------------------------------


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
) -> CaptionDataset | ShardDataset | SyntheticDataset:
    """Open a dataset from a path or pattern, choosing the source type from it.

    * ``synthetic:COUNT`` / ``synthetic:START:COUNT`` -> :class:`SyntheticDataset`
      (rendered at ``synthetic_size`` px);
    * a directory containing ``.tar`` files -> :class:`ShardDataset` over them;
    * any other directory -> images with caption sidecars (:meth:`CaptionDataset.from_folder`);
    * a ``.jsonl`` or ``.csv`` file -> manifest (:meth:`CaptionDataset.from_manifest`);
    * a ``.tar`` file, or a brace/glob pattern of shards -> :class:`ShardDataset`.
    """
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
    if path.is_dir():
        tars = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(".tar"))
        if tars:
            return ShardDataset(tars, transform, **common, **shard_options)
        return CaptionDataset.from_folder(
            path, transform, check_images=check_images, stats=stats, **common
        )
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".csv") and path.is_file():
        return CaptionDataset.from_manifest(
            path, transform, check_images=check_images, stats=stats, **common
        )
    if path.is_file() or "{" in text or _GLOB_MAGIC.search(text):
        return ShardDataset(text, transform, **common, **shard_options)
    raise FileNotFoundError(f"cannot open dataset {text!r}: no such file, folder or pattern")
