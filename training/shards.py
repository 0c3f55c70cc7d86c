"""Tar shards in the webdataset layout, streamed for training.

``key.jpg``/``key.png`` + ``key.txt``/``key.json`` members are read with :mod:`tarfile`,
shuffled through a bounded buffer, dealt out to DDP ranks and DataLoader workers by shard,
and resumable from a small JSON-compatible state dict. Captions are parsed and sampled by
:mod:`training.data`, which also opens shards from a path in :func:`training.data.open_dataset`.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import posixpath
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .data import (
    BAD_SHARD,
    DEFAULT_SHUFFLE_BUFFER,
    EMPTY_CAPTION,
    IMAGE_EXTENSIONS,
    MISSING_CAPTION,
    MISSING_IMAGE,
    UNREADABLE_IMAGE,
    CaptionedImage,
    CaptionSampling,
    Sample,
    SkipStats,
    Transform,
    load_image,
    parse_caption_json,
    parse_caption_text,
    sample_rng,
)

logger = logging.getLogger(__name__)

GLOB_MAGIC = re.compile(r"[*?\[]")
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
        if GLOB_MAGIC.search(text):
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


def _iter_tar_samples(
    path: Path, want: Callable[[int], bool], stats: SkipStats
) -> Iterator[tuple[int, CaptionedImage | None]]:
    """Yield ``(sample_index, record)`` for each run of members sharing a key.

    Members are read only when ``want(sample_index)``; otherwise they are skipped without being
    read and ``record`` is None, as it is for a sample without an image or caption (counted).
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
                        yield index, _record_from_members(key, members, stats) if wanted else None
                    key, members, index = parts[0], {}, index + 1
                    wanted = want(index)
                if wanted and parts[1] in _MEMBER_EXTENSIONS:
                    handle = tar.extractfile(info)
                    if handle is not None:
                        members[parts[1]] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        stats.skip(BAD_SHARD, str(path), f"stopped reading after sample {index}: {exc!r}")
    if key is not None:
        yield index, _record_from_members(key, members, stats) if wanted else None


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
            for index, record in _iter_tar_samples(
                self.shards[pos], wanted.__contains__, self.stats
            ):
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
            for index, record in _iter_tar_samples(
                self.shards[pos], lambda i, start=start: i >= start, self.stats
            ):
                if index < start:
                    continue
                self.cursor = (pos, index + 1)
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


class ShardDataset(CaptionSampling, IterableDataset):
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
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
        rank: int | None = None,
        world_size: int | None = None,
        stats: SkipStats | None = None,
        **sampling: Any,
    ) -> None:
        super().__init__(transform, **sampling)
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
        self.shuffle_buffer = shuffle_buffer
        self.rank, self.world_size = _distributed_layout(rank, world_size)
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
            longs = self.long_captions(record.long, stream.epoch, shard_id, raw.loc[1])
            yield self.transform(image), record.short, longs
