"""The demo: a small gallery of synthetic scenes, indexed and searched with paragraphs.

Works offline with any model (the bundled one knows these scenes best): held-out scenes from
:mod:`training.synthetic` (never used for training) are written to the library's ``demo``
folder, indexed, and a few of their own long captions are used as queries. Each query reports
the rank at which its scene came back and the top hits.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.library.indexer import CancelCallback, Indexer, IndexReport, ProgressCallback
from app.library.search import Searcher, SearchResult
from training import synthetic

if TYPE_CHECKING:
    from app.library.library import Library
    from lotlip.model import LoTLIP
    from lotlip.tokenizer import TokenCount

logger = logging.getLogger(__name__)

DEFAULT_COUNT = 60
DEFAULT_QUERIES = 4
CAPTION_VARIANT = 1
"""Which of a scene's long captions is used as its query (they are paraphrases)."""
CHUNK = 10  # scenes written between two progress reports


@dataclass
class DemoQuery:
    """One paragraph query and where its scene came back (``rank`` 1 = first; ``None`` = not
    among the results)."""

    seed: int
    path: str
    text: str
    tokens: TokenCount | None
    rank: int | None
    top: list[SearchResult]


@dataclass
class DemoResult:
    """Everything the demo did, for display."""

    folder: Path
    model: str
    count: int
    index: IndexReport
    queries: list[DemoQuery] = field(default_factory=list)
    cancelled: bool = False

    @property
    def first(self) -> int:
        """How many queries found their scene first."""
        return sum(1 for q in self.queries if q.rank == 1)


def query_seeds(seeds: list[int], n: int) -> list[int]:
    """``n`` seeds spread evenly over the gallery."""
    n = max(1, min(n, len(seeds)))
    return [seeds[(i * len(seeds)) // n + len(seeds) // (2 * n)] for i in range(n)]


def write_gallery(
    folder: Path,
    count: int,
    size: int,
    report: Callable[[tuple[int, int]], None] | None = None,
    cancelled: CancelCallback | None = None,
) -> list[int]:
    """Render ``count`` held-out scenes as PNGs (with caption sidecars) into ``folder``,
    :data:`CHUNK` at a time: ``report`` gets ``(done, count)`` after each chunk, and the
    writing stops early once ``cancelled()``. Returns the gallery's seeds."""
    seeds = list(synthetic.heldout_seeds(count))
    for start in range(0, count, CHUNK):
        if cancelled is not None and cancelled():
            break
        chunk = seeds[start : start + CHUNK]
        synthetic.write_scenes(folder, chunk[0], len(chunk), size=size)
        if report is not None:
            report((start + len(chunk), count))
    (folder / "manifest.jsonl").unlink(missing_ok=True)  # each chunk rewrote it: not the gallery
    return seeds


def scene_query(seed: int) -> str:
    """The long caption of scene ``seed`` that the demo searches for."""
    captions = synthetic.make_scene(seed).long_captions
    return captions[CAPTION_VARIANT % len(captions)]


def scene_path(folder: Path, seed: int) -> Path:
    """Where :func:`write_gallery` put scene ``seed``."""
    return folder / f"{synthetic.scene_file_stem(seed)}.png"


def run_demo(
    lib: Library,
    model: LoTLIP,
    *,
    count: int = DEFAULT_COUNT,
    queries: int = DEFAULT_QUERIES,
    top: int = 3,
    batch_size: int = 32,
    workers: int | None = None,
    on_stage: Callable[[str], None] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> DemoResult:
    """Write, index and search the demo gallery in ``lib.demo_dir`` (see the module doc)."""
    if count < 2:
        raise ValueError("the demo needs at least 2 scenes")
    folder = lib.demo_dir
    stage = on_stage or (lambda message: None)
    size = max(128, model.config.vision.image_size)
    stage(f"writing {count} synthetic scenes to {folder}")
    seeds = write_gallery(folder, count, size)
    stage("indexing them")
    root = lib.add_folder(folder)
    report = Indexer(lib, model, batch_size=batch_size, workers=workers).run(
        [root], progress=progress, cancel=cancel
    )
    result = DemoResult(folder, model.name, count, report, cancelled=report.cancelled)
    if report.cancelled:
        return result
    searcher = Searcher(lib, model)
    stage("searching")
    for seed in query_seeds(seeds, queries):
        text = scene_query(seed)
        response = searcher.search(text, top=count, folders=[folder])
        target = str(scene_path(folder, seed))
        paths = [r.path for r in response.results]
        rank = paths.index(target) + 1 if target in paths else None
        result.queries.append(
            DemoQuery(seed, target, text, response.tokens, rank, response.results[:top])
        )
    return result


def remove_demo(lib: Library) -> int:
    """Forget the demo folder's images and delete its files; returns how many were forgotten."""
    removed = lib.forget(lib.demo_dir)
    shutil.rmtree(lib.demo_dir, ignore_errors=True)
    return removed
