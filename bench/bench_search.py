"""Search speed and ANN quality at 100k and 1M photos.

For each library size the library is written and its HNSW index built in this process; then
two fresh processes measure themselves, one after the other:

* **a search process** (what the app's search process holds: the model, the library, the
  saved index): its RSS after the model, after loading the index, at the end and at its peak
  (target: peak - model <= 1.5x the raw vector bytes); **text encoding alone** and
  **end-to-end search** (``Searcher.search``: tokenize, encode, HNSW k-NN, SQLite rows) for
  16- and 128-token queries, taking turns query by query, and their ratio (target <= 1.2x;
  BERT-base text tower of a ViT-B/16 LoTLIP with random weights); retrieval alone (vector
  -> rows); **ANN recall@10** against exact search (target >= 0.98) at a few ``ef`` values;
* **rclip's method** (the peer baseline): every vector of the model read from SQLite into one
  numpy matrix, a dot product per query; the same RSS figures, encoding and search times.

Also printed: the SQLite write rate (target >= 10k vectors/s) and the build time.

``--concurrent`` measures instead how searching behaves while **another process indexes**:
a writer process (``nice 19``, paced at ``--write-rate`` new vectors per second, removing a
quarter as many, saving the index on the indexer's :class:`~app.library.ann.SaveCadence`)
changes the library while this process searches it. Printed: p50/p95 of end-to-end searches
(16-token text) and of the retrieval alone (query vector -> results) while idle and while
the writer runs, their ratio (target: <= 1.5x), and recall@10 before and after (the
reader's index after the run: the saved file plus the changes it caught up on, against
exact search over the store as it is then).

The library's vectors are shaped like real ones, not uniform noise (which defeats every graph
index and proves nothing): generated scenes are embedded by a small LoTLIP (the bundled model
when installed, else a random small one), lifted into 768 dimensions by a random orthonormal
map, and each library vector is a mix of two scene embeddings plus a little noise. The result
is clustered with a low intrinsic dimension. Held-out mixes serve as recall queries.

    python bench/bench_search.py                    # 100k and 1M (long: builds 1M-vector HNSW)
    cd bench && OMP_NUM_THREADS=1 python -u bench_search.py --sizes 1000000 --queries 20 \
        --recall-queries 100                        # the recorded 1M run
    python bench/bench_search.py --sizes 100000     # 100k only
    python bench/bench_search.py --quick            # smoke run (seconds)
    python bench/bench_search.py --concurrent --sizes 100000   # search while indexing
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from common import header, official_random_model, percentiles, small_random_model, timed

from app.library.ann import AnnIndex, AnnParams, SaveCadence
from app.library.library import Library
from app.library.search import Searcher
from app.library.store import ImageRecord
from lotlip.model import LoTLIP
from training import synthetic

CHUNK = 20_000
WINDOW_S = 2.5  # concurrent case: idle and busy windows alternate at this length


# -- data ------------------------------------------------------------------------------------


def scene_embeddings(count: int) -> np.ndarray:
    """Embeddings of ``count`` generated scenes by a small model (bundled if installed)."""
    from lotlip import registry

    if registry.is_installed(registry.BUNDLED_MODEL):
        import lotlip

        model = lotlip.load(registry.BUNDLED_MODEL, device="cpu")
    else:
        model = small_random_model()
    size = model.config.vision.image_size
    images = [synthetic.make_scene(seed).render(size) for seed in range(count)]
    print(f"   base: {count} scenes embedded by {model.name} ({model.embed_dim}-d)")
    return model.embed_images(images, batch_size=64)


class Generator:
    """Deterministic chunks of library vectors: mixes of two scene embeddings plus noise."""

    def __init__(self, base: np.ndarray, dim: int, noise: float = 0.15, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        lift, _ = np.linalg.qr(rng.standard_normal((dim, base.shape[1])))
        self.base = (base @ lift.T).astype(np.float32)  # orthonormal: norms and angles kept
        self.dim, self.noise, self.seed = dim, noise, seed

    def chunk(self, index: int, size: int = CHUNK, salt: int = 0) -> np.ndarray:
        """Chunk ``index`` of the library (``salt`` != 0: held-out query vectors)."""
        rng = np.random.default_rng((self.seed, salt, index))
        n = len(self.base)
        a, b = rng.integers(0, n, size), rng.integers(0, n, size)
        mix = rng.uniform(0.55, 1.0, (size, 1)).astype(np.float32)
        vectors = mix * self.base[a] + (1 - mix) * self.base[b]
        vectors += rng.standard_normal((size, self.dim)).astype(np.float32) * (
            self.noise / np.sqrt(self.dim)
        )
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def chunks(self, total: int) -> Iterator[tuple[int, np.ndarray]]:
        """(start, vectors) covering ``total`` library vectors."""
        for index, start in enumerate(range(0, total, CHUNK)):
            yield start, self.chunk(index, min(CHUNK, total - start))


def exact_top(gen: Generator, total: int, queries: np.ndarray, k: int) -> np.ndarray:
    """Row numbers (0-based) of the exact top-``k`` of each query, streaming the chunks."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    for start, vectors in gen.chunks(total):
        scores = queries @ vectors.T
        rows = np.broadcast_to(np.arange(start, start + len(vectors)), scores.shape)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_rows = np.concatenate([best_rows, rows], axis=1)
        top = np.argpartition(-all_scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(all_scores, top, axis=1)
        best_rows = np.take_along_axis(all_rows, top, axis=1)
    return best_rows


def fill_library(lib: Library, model_name: str, gen: Generator, total: int) -> np.ndarray:
    """Write ``total`` vectors into the store; returns image ids by row number."""
    ids = np.zeros(total, dtype=np.int64)
    writing = 0.0
    for start, vectors in gen.chunks(total):
        rows = [ImageRecord(f"/bench/{start + i:08d}.jpg", 1, 1) for i in range(len(vectors))]
        started = time.perf_counter()
        ids[start : start + len(vectors)] = lib.store.upsert_images_with_embeddings(
            rows, model_name, vectors
        )
        writing += time.perf_counter() - started
    print(
        f"   store: {total:,} vectors written in {writing:.1f} s "
        f"({total / writing:,.0f} vectors/s; target >= 10,000/s)"
    )
    return ids


def work_folder(args: argparse.Namespace) -> tempfile.TemporaryDirectory:
    """A temporary folder for the library, under ``--work`` when given."""
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=args.work)


def build_library(folder: str, model_name: str, gen: Generator, total: int) -> np.ndarray:
    """A library of ``total`` vectors in ``folder`` with its HNSW index built and saved;
    returns image ids by row number."""
    with Library.open(folder) as lib, lib.writing():
        ids = fill_library(lib, model_name, gen, total)
        started = time.perf_counter()
        lib.ann(model_name, gen.dim)
        threads = len(os.sched_getaffinity(0))
        print(f"   HNSW: built and saved in {time.perf_counter() - started:.1f} s "
              f"({threads} threads, saving as it went)")  # fmt: skip
    return ids


# -- queries ---------------------------------------------------------------------------------


def text_of_length(model: LoTLIP, tokens: int, seed: int) -> str:
    """A query that tokenizes to exactly ``tokens`` ids (incl. [CLS], corners and [SEP])."""
    from common import WORDS

    rng = np.random.default_rng(seed)
    words: list[str] = []
    while True:
        candidate = " ".join([*words, str(rng.choice(WORDS))])
        length = model.tokenizer([candidate]).input_ids.shape[1]
        if length > tokens:
            return " ".join(words)
        words = candidate.split(" ")
        if length == tokens:
            return candidate


def latency(fn: Callable[[str], object], texts: list[str]) -> list[float]:
    """Milliseconds of ``fn(text)`` for each text (after one warm-up call)."""
    fn(texts[0])
    return [1000.0 * timed(fn, text) for text in texts]


def show(label: str, samples: list[float]) -> float:
    """Print p50/p95 of ``samples``; returns p50."""
    p50, p95 = percentiles(samples)
    print(f"   {label:<34} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms")
    return p50


# -- one library size ------------------------------------------------------------------------


def make_model(quick: bool) -> LoTLIP:
    """The query model: BERT-base of a ViT-B/16 LoTLIP with random weights (small if quick)."""
    if quick:
        return small_random_model(name="bench-small")
    return official_random_model(16, name="bench-b16")


def warm_model(quick: bool) -> LoTLIP:
    """:func:`make_model` after one 128-token encoding (its working memory counts as model)."""
    model = make_model(quick)
    model.embed_texts([text_of_length(model, 128, 0)])
    return model


def memory() -> dict[str, float]:
    """This process's resident memory now (``rss``) and at its peak (``peak``), in GB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024 / 1e9
    return {"rss": fields["VmRSS"], "peak": fields["VmHWM"]}


def paired(first: Callable[[str], object], second: Callable[[str], object], texts: list[str]):
    """Milliseconds of ``first(t)`` and ``second(t)`` per text, taking turns on which goes
    first (both warm), so a change of machine load falls on both alike."""
    first(texts[0]), second(texts[0])
    times: tuple[list[float], list[float]] = ([], [])
    for n, text in enumerate(texts):
        order = ((0, first), (1, second)) if n % 2 == 0 else ((1, second), (0, first))
        for slot, fn in order:
            times[slot].append(1000.0 * timed(fn, text))
    return times


def ratio_spread(top: list[float], bottom: list[float]) -> str:
    """Median of the per-query ratios ``top / bottom`` with their min-max."""
    ratios = np.asarray(top) / np.asarray(bottom)
    return f"{np.median(ratios):.3f}x [{ratios.min():.2f}-{ratios.max():.2f}]"


def search_process(lib_dir: str, args: argparse.Namespace, recall: tuple, out) -> None:
    """A process that only searches (what the app's search process does), measuring itself."""
    torch.set_grad_enabled(False)
    torch.set_num_threads(args.threads)
    model = warm_model(args.quick)
    report: dict[str, object] = {"model": memory()}
    with Library.open(lib_dir) as lib:
        searcher = Searcher(lib, model)
        started = time.perf_counter()
        index = lib.ann(model.name, refresh=True)
        report["load_s"] = time.perf_counter() - started
        report["loaded"] = memory()
        for tokens in (16, 128):
            texts = [text_of_length(model, tokens, seed) for seed in range(args.queries)]
            report[tokens] = paired(
                lambda t: model.embed_texts([t]), lambda t: searcher.search(t, top=20), texts
            )
        queries, truth = recall
        report["retrieval"] = latency(
            lambda n: searcher.search_vector(queries[n], top=20), list(range(len(queries)))
        )
        report["recall"] = {}
        for ef in (64, 128, 256):
            index.params = AnnParams(ef_search=ef)
            times = [1000.0 * timed(index.search, q, 10) for q in queries]
            report["recall"][ef] = (recall_at_10(index, queries, truth), percentiles(times))
        report["end"] = memory()
    out.put(report)


def gen_queries(args: argparse.Namespace) -> np.ndarray:
    """Unit query vectors for timing retrieval alone (random directions: the cost of an
    exact product does not depend on them)."""
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((args.queries, 768 if not args.quick else 128)).astype("f4")
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def rclip_process(lib_dir: str, args: argparse.Namespace, out) -> None:
    """The peer's method (rclip): every vector of the model from SQLite into one numpy matrix
    (a row at a time, then ``np.stack``), and per query a dot product with all of it. Its
    top-k is taken with ``argpartition`` (rclip sorts every score in Python: we leave that
    cost out, in the peer's favour)."""
    import sqlite3

    torch.set_grad_enabled(False)
    torch.set_num_threads(args.threads)
    model = warm_model(args.quick)
    report: dict[str, object] = {"model": memory()}
    started = time.perf_counter()
    conn = sqlite3.connect(Path(lib_dir) / "library.db")
    ids, features = [], []
    for image_id, blob in conn.execute(
        "SELECT image_id, vector FROM embeddings WHERE model = ?", (model.name,)
    ):
        ids.append(image_id)
        features.append(np.frombuffer(blob, np.float32))
    matrix, id_arr = np.stack(features), np.asarray(ids)
    del features, ids
    conn.close()
    report["load_s"] = time.perf_counter() - started
    report["loaded"] = memory()

    def retrieve(vector: np.ndarray) -> np.ndarray:
        scores = matrix @ vector
        top = np.argpartition(-scores, 19)[:20]
        return id_arr[top[np.argsort(-scores[top])]]

    for tokens in (16, 128):
        texts = [text_of_length(model, tokens, seed) for seed in range(args.queries)]
        report[tokens] = paired(
            lambda t: model.embed_texts([t]), lambda t: retrieve(model.embed_texts([t])[0]), texts
        )
    vectors = gen_queries(args)
    report["retrieval"] = latency(lambda n: retrieve(vectors[n]), list(range(len(vectors))))
    report["end"] = memory()
    out.put(report)


def in_child(target: Callable[..., None], *args: object) -> dict:
    """Run ``target(*args, queue)`` in a fresh process; returns what it put on the queue."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    process = ctx.Process(target=target, args=(*args, out))
    process.start()
    report = out.get(timeout=3600)
    process.join(timeout=600)
    return report


def run_size(args: argparse.Namespace, gen: Generator, total: int) -> None:
    """Build a library of ``total`` vectors, then measure a search process and the peer's."""
    name = "bench-small" if args.quick else "bench-b16"
    header(f"search at {total:,} photos ({gen.dim}-d vectors, model {name})")
    raw_gb = total * gen.dim * 4 / 1e9
    with work_folder(args) as tmp:
        ids = build_library(tmp, name, gen, total)
        queries = gen.chunk(0, args.recall_queries, salt=1)
        truth = ids[exact_top(gen, total, queries, 10)]
        del ids
        ours = in_child(search_process, tmp, args, (queries, truth))
        peer = in_child(rclip_process, tmp, args)

    print(f"   raw vectors: {raw_gb:.2f} GB (float32); search processes: {args.threads} torch "
          f"thread(s), load average {os.getloadavg()[0]:.1f} now")  # fmt: skip
    for label, rep in (("ours (HNSW file)", ours), ("rclip's method", peer)):
        model_gb, loaded, end = rep["model"]["rss"], rep["loaded"], rep["end"]
        extra = (end["peak"] - model_gb) / raw_gb
        print(
            f"   {label:<17} RSS model {model_gb:.2f} GB, vectors loaded {loaded['rss']:.2f} GB "
            f"in {rep['load_s']:.1f} s, steady {end['rss']:.2f} GB, peak {end['peak']:.2f} GB: "
            f"(peak - model) / raw = {extra:.2f}x (target <= 1.5x)"
        )
    for tokens in (16, 128):
        encode, search = ours[tokens]
        p_encode, p_search = (
            show(f"text encoding, {tokens} tokens", encode),
            show(f"end-to-end search, {tokens} tokens", search),
        )
        print(f"   ratio end-to-end / encoding, {tokens} tokens: {p_search / p_encode:.3f}x "
              f"(per query: {ratio_spread(search, encode)})   (target <= 1.2x)")  # fmt: skip
        peer_encode, peer_search = peer[tokens]
        p_peer_encode = show(f"rclip's method: encoding, {tokens} tokens", peer_encode)
        p_peer = show(f"rclip's method: search, {tokens} tokens", peer_search)
        spread = ratio_spread(peer_search, peer_encode)
        print(f"   rclip's method, end-to-end / encoding, {tokens} tokens: "
              f"{p_peer / p_peer_encode:.3f}x (per query: {spread})")  # fmt: skip
    ours_p50 = show("ours: retrieval alone (vector -> rows)", ours["retrieval"])
    peer_p50 = show("rclip's method: retrieval alone (vector -> ids)", peer["retrieval"])
    print(f"   retrieval p50, rclip's method / ours: {peer_p50 / ours_p50:.1f}x")
    for ef, (recall, (p50, p95)) in ours["recall"].items():
        default = " (default)" if ef == AnnParams().ef_search else ""
        print(
            f"   recall@10 ef={ef:<4}{recall:.4f}   ANN p50 {p50:.2f} ms p95 {p95:.2f} ms{default}"
        )


# -- searching while another process indexes ------------------------------------------------


def exact_top_of(ids: np.ndarray, matrix: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids of the exact top-``k`` of each query over ``matrix`` (rows are ``ids``)."""
    scores = queries @ matrix.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return ids[top]


def recall_at_10(index: AnnIndex, queries: np.ndarray, truth: np.ndarray) -> float:
    """Share of the exact top-10 that ``index.search`` finds."""
    hits = sum(
        len(set(index.search(q, 10)[0].tolist()) & set(t.tolist()))
        for q, t in zip(queries, truth, strict=True)
    )
    return hits / (10 * len(queries))


class RebuildCounter(logging.Handler):
    """Counts the reader's index rebuilds (``Library`` logs each one) while in a ``with``."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0
        self._logger = logging.getLogger("app.library.library")

    def emit(self, record: logging.LogRecord) -> None:
        self.count += record.getMessage().startswith("building the")

    def __enter__(self) -> RebuildCounter:
        self._level = self._logger.level
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)


class BenchWriter:
    """Indexer-like writes: batches of new vectors, some removals, saves on the cadence."""

    batch, removals = 32, 8

    def __init__(self, lib: Library, model_name: str, gen: Generator) -> None:
        self.lib, self.model_name, self.gen = lib, model_name, gen
        self.index = lib.ann(model_name, gen.dim)
        self.live = lib.store.embedding_ids(model_name)
        self.cadence = SaveCadence()
        self.rng = np.random.default_rng(7)
        self.batches = 0
        self.stats = {"added": 0, "removed": 0, "saves": 0, "save_s": 0.0, "seconds": 0.0}

    def write_batch(self) -> None:
        """Store and index one batch (one transaction each, as the indexer does)."""
        n = self.batches
        vectors = self.gen.chunk(n, self.batch, salt=2)
        rows = [ImageRecord(f"/bench/new/{n:06d}-{i:02d}.jpg", 1, 1) for i in range(self.batch)]
        new_ids = self.lib.store.upsert_images_with_embeddings(rows, self.model_name, vectors)
        self.index.add(np.asarray(new_ids), vectors)
        gone = self.rng.choice(self.live, self.removals, replace=False)
        self.live = np.setdiff1d(self.live, gone)
        self.lib.store.remove_images(gone)
        self.index.delete(gone)
        self.batches += 1
        self.stats["added"] += self.batch
        self.stats["removed"] += self.removals
        self.cadence.note(self.batch + self.removals)
        if self.cadence.due():
            started = time.monotonic()
            self.index.save(prune=True)
            self.cadence.saved(time.monotonic() - started)
            self.stats["saves"] += 1
            self.stats["save_s"] += time.monotonic() - started


def writer_process(
    lib_dir: str, model_name: str, gen: Generator, rate: float, go, stop, out
) -> None:
    """The other process: writes at ``rate`` vectors/s while ``go`` is set, until ``stop``."""
    os.nice(19)  # a background indexer: the searches measured here have the CPU first
    with Library.open(lib_dir) as lib, lib.writing():
        writer = BenchWriter(lib, model_name, gen)
        out.put("ready")
        while not stop.is_set():
            if not go.wait(0.05):  # paused: the reader is measuring an idle window
                continue
            started, first = time.monotonic(), writer.batches
            while go.is_set() and not stop.is_set():
                writer.write_batch()
                due = started + (writer.batches - first) * writer.batch / rate
                time.sleep(max(0.0, due - time.monotonic()))
            writer.stats["seconds"] += time.monotonic() - started
        out.put(writer.stats)


def timed_searches(
    searcher: Searcher, texts: list[str], vectors: np.ndarray, seconds: float
) -> tuple[list[float], list[float]]:
    """Milliseconds of end-to-end searches and of retrievals, alternating, for ``seconds``."""
    full, retrieval = [], []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline or n < 5:
        full.append(1000.0 * timed(searcher.search, texts[n % len(texts)], top=20))
        for q in vectors[(4 * n) % len(vectors) :][:4]:
            retrieval.append(1000.0 * timed(searcher.search_vector, q, top=20))
        n += 1
    return full, retrieval


def run_concurrent(args: argparse.Namespace, model: LoTLIP, gen: Generator, total: int) -> None:
    """Search a library of ``total`` vectors while another process indexes into it."""
    header(f"search while another process indexes: {total:,} photos ({gen.dim}-d, {model.name})")
    with work_folder(args) as tmp:
        ids = build_library(tmp, model.name, gen, total)
        texts = [text_of_length(model, 16, seed) for seed in range(20)]
        vectors = gen.chunk(0, 200, salt=3)
        queries = gen.chunk(0, args.recall_queries, salt=1)
        truth = ids[exact_top(gen, total, queries, 10)]

        ctx = multiprocessing.get_context("spawn")
        go, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
        writer = ctx.Process(
            target=writer_process, args=(tmp, model.name, gen, args.write_rate, go, stop, out)
        )
        builds = RebuildCounter()
        with Library.open(tmp) as lib, builds:
            searcher = Searcher(lib, model)
            searcher.search(texts[0])  # loads the saved index
            idle_recall = recall_at_10(lib.ann(model.name, refresh=True), queries, truth)
            writer.start()
            assert out.get(timeout=600) == "ready"
            fresh = timed_searches(searcher, texts, vectors, args.phase_seconds / 3)
            # idle and busy windows alternate, so both see the same background load
            idle: tuple[list[float], list[float]] = ([], [])
            busy: tuple[list[float], list[float]] = ([], [])
            for _ in range(max(1, round(args.phase_seconds / WINDOW_S))):
                for target, running in ((idle, False), (busy, True)):
                    (go.set if running else go.clear)()
                    time.sleep(0.2)  # the writer finishes or starts its batch
                    window = timed_searches(searcher, texts, vectors, WINDOW_S)
                    target[0].extend(window[0])
                    target[1].extend(window[1])
            stop.set()
            stats = out.get(timeout=600)
            writer.join(timeout=600)

            index = lib.ann(model.name, refresh=True)
            current_ids, current = lib.store.embedding_matrix(model.name)
            busy_recall = recall_at_10(
                index, queries, exact_top_of(current_ids, current, queries, 10)
            )
            stale = set(index.labels()) ^ set(current_ids.tolist())
            print(
                f"   writer: +{stats['added']:,} / -{stats['removed']:,} vectors in "
                f"{stats['seconds']:.0f} s, {stats['saves']} saves ({stats['save_s']:.1f} s), "
                f"nice 19"
            )
            print(
                f"   reader: {builds.count} index rebuilds; at the end {index.delta_count:,} "
                f"vectors searched exactly on top of the file, {len(stale)} labels differing "
                "from the store"
            )
        for n, label in enumerate(("end-to-end search, 16 tokens", "retrieval (vector -> rows)")):
            p50_fresh = show(f"{label}: idle, fresh file", fresh[n])
            p50_idle = show(f"{label}: idle windows", idle[n])
            p50_busy = show(f"{label}: writer windows", busy[n])
            print(
                f"   ratio p50 writer running / idle: {p50_busy / p50_idle:.3f}x "
                f"(/ fresh file: {p50_busy / p50_fresh:.3f}x)   (target <= 1.5x)"
            )
        print(
            f"   recall@10 (ef {AnnParams().ef_search}): idle {idle_recall:.4f}, after the run "
            f"{busy_recall:.4f}   (target: unchanged)"
        )


def main() -> None:
    """Parse the options and run every size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--sizes", default="100000,1000000", help="library sizes, comma-separated")
    parser.add_argument("--queries", type=int, default=50, help="timed queries per length")
    parser.add_argument("--recall-queries", type=int, default=200)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the search processes"
    )
    parser.add_argument("--scenes", type=int, default=1000, help="base scene embeddings")
    parser.add_argument("--work", type=Path, default=None, help="folder for the temp library")
    parser.add_argument(
        "--concurrent", action="store_true", help="search while another process indexes"
    )
    parser.add_argument("--write-rate", type=float, default=200.0, help="vectors/s (concurrent)")
    parser.add_argument(
        "--phase-seconds", type=float, default=20.0, help="idle and busy time each (concurrent)"
    )
    args = parser.parse_args()
    if args.quick:
        sizes, args.queries, args.recall_queries, args.scenes = [3000], 8, 50, 150
        args.phase_seconds = 3.0
    else:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    model = make_model(args.quick)
    gen = Generator(scene_embeddings(args.scenes), model.embed_dim)
    for total in sizes:
        if args.concurrent:
            run_concurrent(args, model, gen, total)
        else:
            run_size(args, gen, total)  # searches in a process of its own
    if args.quick:
        print("(quick mode only checks that the script works: too small to judge speed)")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
