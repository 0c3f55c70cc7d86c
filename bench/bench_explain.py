"""Does the sentence explanation tell the truth? Measured with the bundled lotlip-tiny.

A gallery of held-out generated scenes is indexed into a temporary library. For each of the
first ``--queries`` scenes, its true paragraph (its first long caption) gets exactly one object
sentence falsified: that object's colour or shape is changed to one no object in the scene
has. Then, searching the library through :class:`app.library.search.Searcher`:

* **hit rate**: how often the falsified sentence has the lowest standing (ties: lower cosine)
  for the scene's own photo; chance is the mean of 1 / number of sentences;
* **refinement gain**: the scene's rank with the whole falsified paragraph against its rank
  with the falsified sentence set to ``ignore`` (no re-encoding); the median must improve.

    python bench/bench_explain.py [--gallery 1000] [--queries 60]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

import numpy as np
from common import clocked

import lotlip
from app.library.indexer import Indexer
from app.library.library import Library
from app.library.search import Searcher
from lotlip.tokenizer import split_sentences
from training import synthetic

GALLERY_START = 7_000_000  # held-out seeds used by no test and no other bench


def falsify(scene: synthetic.Scene, rng: random.Random) -> tuple[list[str], int, str]:
    """The scene's true sentences with one object sentence made false; returns the sentences,
    the index of the false one and what changed (``colour`` or ``shape``). The object's colour
    (or shape) becomes one that no object in the scene has."""
    sentences = split_sentences(scene.long_captions[0])
    labels = {o.label for o in scene.objects}
    candidates = []
    for i, text in enumerate(sentences):
        named = [o for o in scene.objects if o.label in text.lower()]
        if len(named) == 1 and f" {named[0].size} " in f" {text.lower()} ":
            candidates.append((i, named[0]))
    i, obj = rng.choice(candidates)
    if rng.random() < 0.5:
        used = {o.colour for o in scene.objects}
        visible = [c for c in synthetic.COLOURS if c not in used]
        new, kind = f"{rng.choice(visible)} {obj.shape}", "colour"
    else:
        used = {o.shape for o in scene.objects}
        new = f"{obj.colour} {rng.choice([s for s in synthetic.SHAPES if s not in used])}"
        kind = "shape"
    assert new not in labels
    sentences[i] = sentences[i].replace(obj.label, new)
    return sentences, i, kind


def rank_of(searcher: Searcher, text: str, path: str, top: int, **kwargs: object) -> int:
    """1-based rank of ``path`` among the results (``top + 1`` when missing)."""
    results = searcher.search(text, top=top, **kwargs).results
    return next((k for k, r in enumerate(results, 1) if r.path == path), top + 1)


def main() -> None:
    """Index the gallery, falsify one sentence per query scene, print hit rate and ranks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=1000, help="scenes in the library")
    parser.add_argument("--queries", type=int, default=60, help="scenes queried (>= 50)")
    args = parser.parse_args()
    rng = random.Random(0)
    model = lotlip.load("lotlip-tiny", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        scenes = synthetic.make_scenes(synthetic.HELDOUT_SEED_OFFSET + GALLERY_START, args.gallery)
        for scene in scenes:
            scene.render(160).save(photos / f"{synthetic.scene_file_stem(scene.seed)}.png")
        lib = Library.open(Path(tmp) / "library")
        Indexer(lib, model, batch_size=64).run([photos])
        searcher = Searcher(lib, model)
        hits, chance, before, after = {"colour": [], "shape": []}, [], [], []
        timings: dict[str, list[float]] = {
            name: [] for name in ("plain", "explain (new text)", "refine (cached)")
        }
        for scene in scenes[: args.queries]:
            path = str(photos / f"{synthetic.scene_file_stem(scene.seed)}.png")
            sentences, false_at, kind = falsify(scene, rng)
            paragraph = ". ".join(sentences) + "."
            response, seconds = clocked(searcher.search, paragraph, top=args.gallery, explain=True)
            timings["explain (new text)"].append(seconds)
            own = next(r for r in response.results if r.path == path)
            standing = np.array([s.standing for s in own.sentences])
            cosine = np.array([s.score for s in own.sentences])
            lowest = int(np.lexsort((cosine, standing))[0])
            hits[kind].append(lowest == false_at)
            chance.append(1.0 / len(sentences))
            rank, seconds = clocked(rank_of, searcher, paragraph, path, args.gallery)
            before.append(rank)
            timings["plain"].append(seconds)
            ignored = {sentences[false_at]: "ignore"}
            rank, seconds = clocked(
                rank_of, searcher, paragraph, path, args.gallery, sentences=ignored
            )
            after.append(rank)
            timings["refine (cached)"].append(seconds)
        lib.close()
    n = args.queries
    print(f"lotlip-tiny, gallery {args.gallery} held-out scenes, {n} falsified paragraphs")
    rate = (sum(hits["colour"]) + sum(hits["shape"])) / n
    print(f"hit rate (falsified sentence has the lowest standing): {rate:.3f}")
    for kind, found in hits.items():
        print(f"  {kind} changed: {np.mean(found):.3f} of {len(found)}")
    print(f"chance (mean 1/sentences):                             {np.mean(chance):.3f}")
    print(f"median rank, whole falsified paragraph:  {statistics.median(before):.1f}")
    print(f"median rank, falsified sentence ignored: {statistics.median(after):.1f}")
    better = sum(a < b for a, b in zip(after, before, strict=True))
    worse = sum(a > b for a, b in zip(after, before, strict=True))
    print(f"rank improved for {better}, worse for {worse}, same for {n - better - worse}")
    print(f"mean rank: {np.mean(before):.2f} -> {np.mean(after):.2f}")
    plain = statistics.median(timings["plain"])
    for name, values in timings.items():
        p50 = statistics.median(values)
        print(f"search p50 {name:18s} {p50 * 1000:7.1f} ms  ({p50 / plain:.2f}x plain)")


if __name__ == "__main__":
    main()
