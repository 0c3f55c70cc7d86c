"""Why the sentence explanation misses: candidate standings compared, and what the model sees.

Offline and quick (no library, no search): the gallery's photos are embedded straight from the
rendered scenes, and the first ``--queries`` scenes get the same falsified paragraphs as
``bench/bench_explain.py`` (same seeds, same random choices). It prints

* for several candidate standings (the shipped percentile, a z-score, cosine minus the library
  mean, the raw cosine, sentence vectors de-biased by the paragraph, other sentence encodings):
  the hit rate (the falsified sentence is the lowest for the scene's own photo) overall, when a
  colour and when a shape was changed, and, for the shape cases, how often the same standing
  puts the *unchanged* sentence lowest in the true paragraph (what a shape-blind model gets);
* how much the bundled model notices the change: the text cosine of the true sentence to the
  falsified one, the photo's cosine gap between them in library standard deviations, how often
  the false one scores at least as high; the image cosine of a scene to the same scene with its
  large shape's shape (or colour) changed; zero-shot shape and colour of the large shape.

    python bench/explain_standings.py [--start 7000000] [--gallery 1000] [--queries 60]

``--start 8000000 --queries 400`` and ``--start 9000000 --queries 400`` are the two sets the
standings were chosen on; the default is bench_explain.py's set, on which they are reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from collections.abc import Callable

import common  # noqa: F401  (puts the repository on sys.path)
import numpy as np
import torch
from bench_explain import GALLERY_START, falsify

import lotlip
from app.library.explain import standings
from lotlip.tokenizer import split_sentences
from training import synthetic

# A standing: (sentence vectors S [k, D], own photo v [D], library G [n, D]) -> [k], higher better.
Standing = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _z(S: np.ndarray, v: np.ndarray, G: np.ndarray) -> np.ndarray:
    lib = S @ G.T
    return (S @ v - lib.mean(axis=1)) / lib.std(axis=1)


STANDINGS: dict[str, Standing] = {
    "percentile (shipped)": lambda S, v, G: standings((S @ v)[None], S @ G.T)[0],
    "z-score (cos - mean) / sd": _z,
    "cosine - library mean": lambda S, v, G: S @ v - (S @ G.T).mean(axis=1),
    "raw cosine": lambda S, v, G: S @ v,
    "z, sentences minus their mean": lambda S, v, G: _z(S - S.mean(axis=0), v, G),
}


def _slot_mean(model: lotlip.LoTLIP, texts: list[str]) -> np.ndarray:
    """Mean of the unit [CLS] and corner-token outputs, renormalised."""
    with torch.inference_mode():
        ids = model.tokenizer(texts).input_ids
        x = model.encode_text_slots(ids).float().cpu().numpy()
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    m = x.mean(axis=1)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def encoders(model: lotlip.LoTLIP) -> dict[str, Callable[[list[str]], np.ndarray]]:
    """Ways to turn sentences into vectors (all scored with the shipped percentile)."""

    def embed(texts: list[str]) -> np.ndarray:
        return model.embed_texts(texts).astype(np.float64)

    return {
        "plain sentence (shipped)": embed,
        "'a photo of' prefix": lambda t: embed([f"a photo of {s[0].lower()}{s[1:]}" for s in t]),
        "sentence x3 (training length)": lambda t: embed([". ".join([s] * 3) for s in t]),
        "mean of [CLS] and corner slots": lambda t: _slot_mean(model, t),
    }


def lowest(score: np.ndarray, cosine: np.ndarray) -> int:
    """Index of the lowest score (ties: lower cosine), as bench_explain.py counts a hit."""
    return int(np.lexsort((cosine, score))[0])


def _line(name: str, hits: list[bool], kinds: list[str], blind: list[bool]) -> str:
    h, k = np.array(hits), np.array(kinds)
    return (
        f"  {name:34s} {h.mean():.3f}   colour {h[k == 'colour'].mean():.3f}   "
        f"shape {h[k == 'shape'].mean():.3f}   shape-blind {np.mean(blind):.3f}"
    )


def _swapped(scene: synthetic.Scene, field: str, choices: list[str]) -> synthetic.Scene:
    """The scene with its large shape's ``field`` changed to the first other choice."""
    big = scene.objects[0]
    new = next(c for c in choices if c != getattr(big, field))
    objects = (dataclasses.replace(big, **{field: new}), *scene.objects[1:])
    return dataclasses.replace(scene, objects=objects)


def main() -> None:
    """Embed the gallery, falsify paragraphs, print the standings table and the model's eye."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=GALLERY_START, help="first held-out seed")
    parser.add_argument("--gallery", type=int, default=1000, help="scenes in the library")
    parser.add_argument("--queries", type=int, default=60, help="scenes queried")
    args = parser.parse_args()
    rng = random.Random(0)
    model = lotlip.load("lotlip-tiny", device="cpu")
    scenes = synthetic.make_scenes(synthetic.HELDOUT_SEED_OFFSET + args.start, args.gallery)
    G = model.embed_images([s.render(160) for s in scenes], batch_size=64).astype(np.float64)
    G /= np.linalg.norm(G, axis=1, keepdims=True)
    embed = encoders(model)
    kinds: list[str] = []
    hits: dict[str, list[bool]] = {}
    blind: dict[str, list[bool]] = {}
    gap: dict[str, list[tuple[float, float]]] = {"colour": [], "shape": []}
    for q, scene in enumerate(scenes[: args.queries]):
        sentences, at, kind = falsify(scene, rng)
        true = split_sentences(scene.long_captions[0])
        kinds.append(kind)
        v = G[q]
        for ename, encode in embed.items():
            S, T = encode(sentences), encode(true)
            plain = ename == "plain sentence (shipped)"
            rows = STANDINGS if plain else {ename: STANDINGS["percentile (shipped)"]}
            for name, standing in rows.items():
                hits.setdefault(name, []).append(lowest(standing(S, v, G), S @ v) == at)
                if kind == "shape":
                    blind.setdefault(name, []).append(lowest(standing(T, v, G), T @ v) == at)
        pair = embed["plain sentence (shipped)"]([true[at], sentences[at]])
        spread = (pair[0] @ G.T).std()
        gap[kind].append((float(pair[0] @ pair[1]), float((pair[0] - pair[1]) @ v / spread)))
    n = args.queries
    print(f"lotlip-tiny, seeds from {args.start}: gallery {args.gallery}, {n} falsified paragraphs")
    print(f"  (colour changed {kinds.count('colour')}, shape changed {kinds.count('shape')})")
    print("hit rate by standing (shape-blind: unchanged sentence lowest in the true paragraph)")
    for name in hits:
        print(_line(name, hits[name], kinds, blind[name]))
    shipped_blind = np.mean(blind["percentile (shipped)"])
    ceiling = (kinds.count("colour") + shipped_blind * kinds.count("shape")) / n
    print(f"ceiling while shapes are invisible (colours all right, shapes as blind): {ceiling:.3f}")
    print("how much the model notices the changed word (true sentence vs falsified)")
    for kind, values in gap.items():
        a = np.array(values)
        print(
            f"  {kind:6s} text cosine {a[:, 0].mean():.4f}   photo's gap {a[:, 1].mean():+.3f} "
            f"library sd   false >= true for {np.mean(a[:, 1] <= 0):.2f}"
        )
    probe = scenes[: min(300, len(scenes))]
    first = G[: len(probe)]
    off = (first @ first.T)[~np.eye(len(probe), dtype=bool)].mean()
    for field, choices in (("shape", list(synthetic.SHAPES)), ("colour", list(synthetic.COLOURS))):
        alt = model.embed_images([_swapped(s, field, choices).render(160) for s in probe])
        alt = alt.astype(np.float64) / np.linalg.norm(alt, axis=1, keepdims=True)
        same = np.sum(first * alt, axis=1).mean()
        print(f"  image cosine, large shape's {field} changed: {same:.4f} (other scenes {off:.4f})")
    shape_ok = colour_ok = 0
    for s, v in zip(probe, first, strict=True):
        big = s.objects[0]
        labels = [f"a {big.size} {big.colour} {x}" for x in synthetic.SHAPES]
        shape_ok += synthetic.SHAPES[int(np.argmax(model.embed_texts(labels) @ v))] == big.shape
        names = list(synthetic.COLOURS)
        labels = [f"a {big.size} {c} {big.shape}" for c in names]
        colour_ok += names[int(np.argmax(model.embed_texts(labels) @ v))] == big.colour
    m = len(probe)
    print(
        f"  zero-shot, large shape of {m} scenes: its shape among 8 {shape_ok / m:.3f} "
        f"(chance 0.125), its colour among 10 {colour_ok / m:.3f} (chance 0.100)"
    )


if __name__ == "__main__":
    main()
