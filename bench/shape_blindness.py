"""Why a tiny model trained on the synthetic scenes sees colours but not shapes.

Offline, a few minutes on a CPU. Prints

1. how big the objects are at the model's input size, in pixels and patches;
2. how often the training sub-captions name a shape and a colour, and whether a shape word
   ever comes without its colour;
3. for batches drawn by the training sampler, how many in-batch negatives of a sample only
   the shape tells apart: for the short caption (same colour of the large object, other
   shape) and for the long sub-caption (every object it names has a counterpart of the same
   colour, size, pattern and place);
4. the text tower: shape and colour words' token ids, how far their embeddings moved from a
   fresh initialisation, and the cosine between sentences that differ by a shape or a colour;
5. the image tower: a linear probe (multinomial logistic regression, 1800 train / 600 test
   held-out scenes) for the large object's shape and colour, on the model's image
   embedding, on a freshly initialised model's, and on the raw pixels at 24 x 24.

    python bench/shape_blindness.py [--model lotlip-tiny] [--batches 20]
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

import common  # noqa: F401  (puts the repository on sys.path)
import numpy as np
import torch
import torch.nn.functional as F

import lotlip
from training import synthetic
from training.data import SyntheticDataset
from training.distributed import DistInfo
from training.recipes import new_tiny_model
from training.train import StepSampler

SHAPES, COLOURS = synthetic.SHAPES, list(synthetic.COLOURS)
PROBE_TRAIN, PROBE_TEST = 1800, 600


def object_sizes(image_size: int, patch: int) -> None:
    """Section 1: object diameters at the model's input size."""
    print(f"1. object size at {image_size} px (patch {patch} px)")
    for name, radius in synthetic.SIZES.items():
        d = 2 * radius * image_size
        print(f"   {name:6s} diameter {d:5.1f} px = {d / patch:.1f} patches")


def caption_mentions(data: SyntheticDataset, n: int = 3000) -> None:
    """Section 2: shape and colour words in the training sub-captions."""
    shape_re = re.compile(r"\b(" + "|".join(SHAPES) + r")\b")
    colour_re = re.compile(r"\b(" + "|".join(COLOURS) + r")\b")
    with_shape = with_colour = bare = 0
    for i in range(n):
        text = data.captions(i)[1][0].lower()
        with_shape += bool(shape_re.search(text))
        with_colour += bool(colour_re.search(text))
        for m in shape_re.finditer(text):
            bare += not colour_re.fullmatch((text[: m.start()].split() or [""])[-1])
    print(
        f"2. {n} training sub-captions: naming a shape {with_shape / n:.3f}, a colour "
        f"{with_colour / n:.3f}; shape words without a colour word before them: {bare}"
    )


def shape_only_negatives(data: SyntheticDataset, batches: int, batch_size: int = 128) -> None:
    """Section 3: in-batch negatives that differ from the positive only by shape."""
    sampler = StepSampler(len(data), batch_size, DistInfo(), seed=0)
    short_shape = short_same = long_colour = long_all = samples = 0
    for b in range(batches):
        scenes = [data.scene(i) for i in sampler.batch_indices(b)[1]]
        subs = [data.captions(i)[1][0] for i in sampler.batch_indices(b)[1]]
        for a, (scene, sub) in enumerate(zip(scenes, subs, strict=True)):
            samples += 1
            named = [o for o in scene.objects if synthetic.names_label(sub, o.label)]
            for j, other in enumerate(scenes):
                if j == a:
                    continue
                if other.salient.colour == scene.salient.colour:
                    same = other.salient.shape == scene.salient.shape
                    short_same += same
                    short_shape += not same
                long_colour += all(any(p.colour == o.colour for p in other.objects) for o in named)
                long_all += all(any(_look(p) == _look(o) for p in other.objects) for o in named)
    print(f"3. in-batch negatives per sample ({batches} training batches of {batch_size})")
    print(
        f"   short caption: differ only by shape {short_shape / samples:.2f}, "
        f"identical caption {short_same / samples:.2f}"
    )
    print(
        "   long sub-caption: hold every named object's colour "
        f"{long_colour / samples:.2f}, and its size, pattern and place {long_all / samples:.3f}"
    )


def _look(obj: synthetic.SceneObject) -> tuple[str, str, str, str]:
    """What a caption says of an object, apart from its shape."""
    return obj.colour, obj.size, obj.pattern, obj.position


def _word_stats(model: lotlip.LoTLIP, words: Sequence[str]) -> tuple[float, float]:
    """Mean pairwise cosine and mean norm of the words' input embeddings."""
    vocab = model.tokenizer.vocab
    table = model.text.transformer.embeddings.word_embeddings.weight.detach()
    x = table[[vocab.index(w) for w in words]]
    sim = F.normalize(x, dim=1) @ F.normalize(x, dim=1).T
    return float(sim[~torch.eye(len(words), dtype=torch.bool)].mean()), float(x.norm(dim=1).mean())


def text_tower(model: lotlip.LoTLIP, fresh: lotlip.LoTLIP) -> None:
    """Section 4: are shape words distinct tokens, and does the text tower tell them apart?"""
    vocab = model.tokenizer.vocab
    print("4. text tower")
    for name, words in (("shape", SHAPES), ("colour", COLOURS)):
        ids = [vocab.index(w) if w in vocab else None for w in words]
        (cos, norm), (cos0, norm0) = _word_stats(model, words), _word_stats(fresh, words)
        print(f"   {name} words are single tokens: {all(i is not None for i in ids)}; embeddings")
        print(
            f"   pairwise cosine {cos:.3f} (fresh {cos0:.3f}), norm {norm:.3f} (fresh {norm0:.3f})"
        )
    for name, texts in (
        ("the 8 shapes", [f"a large red {s}" for s in SHAPES]),
        ("the 10 colours", [f"a large {c} circle" for c in COLOURS]),
    ):
        x = model.embed_texts(texts)
        off = (x @ x.T)[~np.eye(len(texts), dtype=bool)].mean()
        print(f"   mean sentence cosine across {name}: {off:.4f}")


def probe(features: np.ndarray, labels: np.ndarray, classes: int) -> float:
    """Test accuracy of a multinomial logistic regression (L-BFGS, small L2), standardised."""
    x = torch.tensor(features, dtype=torch.float32)
    y = torch.tensor(labels)
    x = (x - x[:PROBE_TRAIN].mean(0)) / (x[:PROBE_TRAIN].std(0) + 1e-6)
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = x[:PROBE_TRAIN] @ w + b
        loss = F.cross_entropy(logits, y[:PROBE_TRAIN]) + 1e-3 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((x[PROBE_TRAIN:] @ w + b).argmax(1) == y[PROBE_TRAIN:]).float().mean())


def image_tower(model: lotlip.LoTLIP, fresh: lotlip.LoTLIP, size: int) -> None:
    """Section 5: linear probes for the large object's shape and colour."""
    scenes = synthetic.make_scenes(synthetic.HELDOUT_SEED_OFFSET + 50_000, PROBE_TRAIN + PROBE_TEST)
    images = [s.render(size) for s in scenes]
    shapes = np.array([SHAPES.index(s.salient.shape) for s in scenes])
    colours = np.array([COLOURS.index(s.salient.colour) for s in scenes])
    print("5. linear probe of the large object (chance: shape 0.125, colour 0.100)")
    pixels = np.stack([np.asarray(im.resize((24, 24)), np.float32).ravel() for im in images])
    for name, feats in (
        ("the model's image embedding", model.embed_images(images, batch_size=64)),
        ("a fresh model's image embedding", fresh.embed_images(images, batch_size=64)),
        ("raw pixels at 24 x 24", pixels),
    ):
        print(
            f"   {name:32s} shape {probe(feats, shapes, 8):.3f}   "
            f"colour {probe(feats, colours, 10):.3f}"
        )


def main() -> None:
    """Run the five sections on ``--model`` (default: the bundled lotlip-tiny)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lotlip-tiny", help="name or model folder")
    parser.add_argument("--batches", type=int, default=20, help="training batches in section 3")
    args = parser.parse_args()
    model = lotlip.load(args.model, device="cpu", precision="fp32")
    fresh = new_tiny_model()
    vision = model.config.vision
    data = SyntheticDataset(0, 200_000, lambda image: image, image_size=vision.image_size)
    object_sizes(vision.image_size, vision.patch_size)
    caption_mentions(data)
    shape_only_negatives(data, args.batches)
    text_tower(model, fresh)
    image_tower(model, fresh, vision.image_size)


if __name__ == "__main__":
    main()
