"""CPU precision: how much faster are bf16 and int8 than fp32, and do they rank the same?

For ViT-B/16 + BERT-base with random official-shape weights and for the bundled lotlip-tiny,
each low precision is compared with fp32 *in one run*:

1. **Throughput**: images/s (batches of 16) and queries/s (one query at a time, as a user
   searches) at 16 and 128 tokens. All precisions are warm and see the same inputs, batch shapes
   and threads; the precisions take turns within every repeat (interleaved), and the printed
   ratio is the median over repeats of fp32-time / variant-time, with its min..max spread.
2. **Fidelity**: the minimum cosine between the variant's and fp32's embeddings over the
   64 images and 64 texts of the throughput runs.
3. **Ranking agreement** (lotlip-tiny): recall@10 of the variant's ranking against the fp32
   ranking, on the demo gallery (60 scenes, their paragraphs as queries) and on 10k rendered
   scenes (their paragraphs of 500 scenes as queries). "mixed" = variant queries against fp32
   image vectors: a library indexed at one precision and searched at another.

    python bench/bench_precision.py            # full run (about 10 minutes on 2 busy cores)
    python bench/bench_precision.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
from common import header, official_random_model, photo

import lotlip
from lotlip.model import LoTLIP
from lotlip.precision import cpu_has_native_bf16
from training import synthetic

VARIANTS = ("bf16", "int8")
BATCH = 16


def variants_of(model: LoTLIP) -> dict[str, LoTLIP]:
    """fp32 plus a copy of ``model`` at each low precision."""
    out = {"fp32": model.to_device("cpu", "fp32")}
    for name in VARIANTS:
        out[name] = copy.deepcopy(model).to_device("cpu", name)
    return out


def interleaved(
    models: dict[str, LoTLIP], inputs: Sequence[object], run: Callable[[LoTLIP, object], np.ndarray]
) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Time ``run(model, item)`` for every item, the precisions taking turns on each item.

    Returns seconds per item and precision, and every precision's stacked outputs.
    """
    for model in models.values():  # warm-up: first calls pay for allocation and packing
        run(model, inputs[0])
    seconds: dict[str, list[float]] = {name: [] for name in models}
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in models}
    names = list(models)
    for i, item in enumerate(inputs):
        for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate who goes first
            start = time.perf_counter()
            result = run(models[name], item)
            seconds[name].append(time.perf_counter() - start)
            outputs[name].append(result)
    return seconds, {name: np.concatenate(chunks) for name, chunks in outputs.items()}


def speedups(seconds: dict[str, list[float]], name: str) -> tuple[float, float, float]:
    """Median, min and max over repeats of fp32 time / ``name`` time."""
    ratios = [a / b for a, b in zip(seconds["fp32"], seconds[name], strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest row-wise cosine (both are L2-normalized)."""
    return float((a * b).sum(axis=1).min())


def texts_of_length(model: LoTLIP, tokens: int, count: int, seed: int) -> list[str]:
    """``count`` texts that tokenize to exactly ``tokens`` ids (CLS, corners, pieces, SEP)."""
    words = [
        w
        for w in model.tokenizer.vocab
        if w.isalpha() and w.islower() and len(w) > 2 and model.tokenizer.count(w).word_pieces == 1
    ]
    pieces = tokens - 2 - model.config.text.num_corner_tokens
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, pieces)) for _ in range(count)]


def tower_report(title: str, model: LoTLIP, images: int, queries: int) -> None:
    """Throughput and fidelity of each precision against fp32 for one model."""
    header(title)
    models = variants_of(model)
    size = model.config.vision.image_size
    pixels = model.preprocess.batch([photo((size * 2, size * 2), i) for i in range(images)])
    batches = list(pixels.split(BATCH))
    img_s, img_out = interleaved(models, batches, lambda m, b: m.embed_pixels(b))
    texts = {n: texts_of_length(model, n, queries, n) for n in (16, 128)}
    txt_s, txt_out = {}, {}
    for n, items in texts.items():
        txt_s[n], txt_out[n] = interleaved(models, items, lambda m, t: m.embed_texts([t]))
    print(f"   {'':6}{'images/s':>22}{'16-token q/s':>22}{'128-token q/s':>22}"
          f"{'min cos img':>13}{'min cos txt':>13}")  # fmt: skip
    for name in models:
        cells = []
        for sec, count in ((img_s, BATCH), (txt_s[16], 1), (txt_s[128], 1)):
            rate = count / statistics.median(sec[name])
            if name == "fp32":
                cells.append(f"{rate:8.1f}{'':14}")
            else:
                mid, lo, hi = speedups(sec, name)
                cells.append(f"{rate:8.1f} {mid:4.2f}x [{lo:.2f}-{hi:.2f}]")
        text_vectors = np.concatenate([txt_out[16][name], txt_out[128][name]])
        fp32_text = np.concatenate([txt_out[16]["fp32"], txt_out[128]["fp32"]])
        print(
            f"   {name:6}" + "".join(f"{c:>22}" for c in cells)
            + f"{min_cosine(img_out[name], img_out['fp32']):13.4f}"
            + f"{min_cosine(text_vectors, fp32_text):13.4f}"
        )  # fmt: skip


def recall_at_10(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean overlap of the top 10 of ``candidate`` scores with the top 10 of ``reference``."""
    top_ref = np.argsort(-reference, axis=1)[:, :10]
    top_can = np.argsort(-candidate, axis=1)[:, :10]
    overlap = [len(set(a) & set(b)) / 10 for a, b in zip(top_ref, top_can, strict=True)]
    return float(np.mean(overlap))


def agreement_report(title: str, model: LoTLIP, gallery: int, queries: int) -> None:
    """Ranking agreement with fp32 on ``gallery`` rendered held-out scenes."""
    header(f"{title}: {gallery} scenes, {queries} paragraph queries")
    models = variants_of(model)
    seeds = list(synthetic.heldout_seeds(gallery))
    size = model.config.vision.image_size
    image_vectors = {name: [] for name in models}
    for start in range(0, gallery, 256):
        chunk = [synthetic.make_scene(s).render(size) for s in seeds[start : start + 256]]
        for name, m in models.items():
            image_vectors[name].append(m.embed_images(chunk, batch_size=64))
    images = {name: np.concatenate(v) for name, v in image_vectors.items()}
    step = max(1, gallery // queries)
    texts = [synthetic.make_scene(s).long_captions[0] for s in seeds[::step][:queries]]
    text_vectors = {name: m.embed_texts(texts) for name, m in models.items()}
    reference = text_vectors["fp32"] @ images["fp32"].T
    for name in VARIANTS:
        own = recall_at_10(reference, text_vectors[name] @ images[name].T)
        mixed = recall_at_10(reference, text_vectors[name] @ images["fp32"].T)
        print(f"   {name}: recall@10 vs fp32 ranking {own:.3f} (all {name}), {mixed:.3f} (mixed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = parser.parse_args()
    print(f"CPU with native bf16: {cpu_has_native_bf16()}")
    images, queries = (16, 8) if args.quick else (64, 32)
    if not args.quick:
        tower_report("ViT-B/16 + BERT-base, random official-shape weights", official_random_model(),
                     images, queries)  # fmt: skip
    tiny = lotlip.load(lotlip.BUNDLED_MODEL, device="cpu", precision="fp32")
    tower_report("lotlip-tiny", tiny, images, queries * 4)
    agreement_report("lotlip-tiny, demo gallery", tiny, 60, 60)
    big = 1000 if args.quick else 10_000
    agreement_report("lotlip-tiny, rendered scenes", tiny, big, 100 if args.quick else 500)


if __name__ == "__main__":
    main()
