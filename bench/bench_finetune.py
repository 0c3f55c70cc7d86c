"""Text-mode fine-tune time with and without the cached image features, on the same set.

    python bench/bench_finetune.py [--pictures 300] [--steps 100]

Writes ``--pictures`` captioned synthetic pictures (224 px PNG + sidecar) to a temporary folder,
then fine-tunes ``lotlip-tiny`` in text mode twice with identical settings: once encoding every
batch's images at every step (the old path) and once encoding each image once up front
(``TrainConfig.cache_image_features``). Prints both wall times and their ratio, and checks that
the two runs end with the same text tower (the cache changes the cost, not the result).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from common import timed

import lotlip
from training.data import CaptionDataset, folder_records
from training.study import write_pictures
from training.train import TrainConfig, train


def run(folder: Path, out: Path, steps: int, cache: bool) -> float:
    """Seconds of ``train()`` for one text-mode fine-tune (with the caching pass, if any)."""
    model = lotlip.load("lotlip-tiny", device="cpu").float()
    records = folder_records(folder)
    dataset = CaptionDataset(records, model.preprocess, num_long=1, sentences_per_caption=3)
    config = TrainConfig(
        out=str(out), steps=steps, lr=3e-4, warmup=10, batch_size=32, weight_decay=0.1,
        num_long=1, trainable="text", device="cpu", workers=0, log_every=1000,
        save_every=100_000, cache_image_features=cache, extra={"sentences": 3},
    )  # fmt: skip
    return timed(lambda: train(config, model, dataset))


def step_parts(folder: Path) -> tuple[float, float, float]:
    """Seconds of one step's parts on 32 pictures: decode + preprocess, image tower forward,
    text tower forward + backward (short caption + a 3-sentence paragraph each)."""
    model = lotlip.load("lotlip-tiny", device="cpu").float()
    dataset = CaptionDataset(folder_records(folder)[:32], model.preprocess, sentences_per_caption=3)
    items: list = []
    decode = timed(lambda: items.extend(dataset[i] for i in range(32)))
    pixels = torch.stack([item[0] for item in items])
    texts = [text for item in items for text in (item[1], item[2][0])]
    ids = model.tokenizer(texts).input_ids
    with torch.no_grad():
        best_image = min(timed(lambda: model.encode_image(pixels)) for _ in range(3))
    best_text = min(timed(lambda: model.encode_text_slots(ids).sum().backward()) for _ in range(3))
    return decode, best_image, best_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pictures", type=int, default=300)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = write_pictures(root / "pictures", range(30_000_000, 30_000_000 + args.pictures))
        decode, image, text = step_parts(folder)
        slow = run(folder, root / "per-step", args.steps, cache=False)
        fast = run(folder, root / "cached", args.steps, cache=True)
        a = lotlip.load(root / "per-step" / "model", device="cpu").state_dict()
        b = lotlip.load(root / "cached" / "model", device="cpu").state_dict()
        worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    print(f"{args.pictures} pictures, {args.steps} steps of 32, text mode, lotlip-tiny, CPU")
    print(f"threads: {torch.get_num_threads()}")
    print(f"image tower every step: {slow:8.1f} s")
    print(f"image features cached:  {fast:8.1f} s")
    print(f"speed-up: {slow / fast:.2f}x  (largest weight difference {worst:.2e})")
    print(
        f"one step's parts: decode+preprocess {decode:.3f} s, image tower {image:.3f} s, "
        f"text tower fwd+bwd {text:.3f} s (image side {(decode + image) / text:.2f}x the text)"
    )


if __name__ == "__main__":
    main()
