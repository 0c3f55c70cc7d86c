"""Text-mode fine-tune time with and without the cached image features, on the same set.

    python bench/bench_finetune.py [--pictures 300] [--steps 100] [--batch 32]
    python bench/bench_finetune.py --arch vit-b16 --pictures 8 --steps 6 --batch 4

Writes ``--pictures`` captioned synthetic pictures (224 px PNG + sidecar) to a temporary folder,
then fine-tunes a model in text mode twice with identical settings: ``lotlip-tiny``, or with
``--arch vit-b16`` a randomly initialised model of the official LoTLIP-ViT-B/16 shape (ViT-B/16
at 224 px + BERT-base, a 30,522-token BERT-like vocabulary; no download), once encoding every
batch's images at every step (the old path) and once encoding each image once up front
(``TrainConfig.cache_image_features``). Prints both wall times and their ratio, and checks that
the two runs end with the same text tower (the cache changes the cost, not the result).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from common import clocked, official_random_model, timed

import lotlip
from lotlip.model import LoTLIP
from training.data import CaptionDataset, folder_records
from training.study import write_pictures
from training.train import TrainConfig, train


def new_model(arch: str) -> LoTLIP:
    """``lotlip-tiny``, or a seeded random model of the official ViT-B/16 + BERT-base shape."""
    if arch == "tiny":
        return lotlip.load("lotlip-tiny", device="cpu").float()
    return official_random_model(16).train()


def run(
    folder: Path, out: Path, steps: int, cache: bool, arch: str, batch: int
) -> tuple[float, float]:
    """(wall, CPU) seconds of ``train()`` for one text-mode fine-tune (with the caching pass, if
    any). The process's CPU time hardly moves with other jobs' load on a shared machine."""
    model = new_model(arch)
    records = folder_records(folder)
    dataset = CaptionDataset(records, model.preprocess, num_long=1, sentences_per_caption=3)
    config = TrainConfig(
        out=str(out), steps=steps, lr=3e-4, warmup=10, batch_size=batch, weight_decay=0.1,
        num_long=1, trainable="text", device="cpu", workers=0, log_every=1000,
        save_every=100_000, cache_image_features=cache, extra={"sentences": 3},
    )  # fmt: skip
    started, cpu = time.perf_counter(), time.process_time()
    train(config, model, dataset)
    return time.perf_counter() - started, time.process_time() - cpu


def step_parts(folder: Path, arch: str, batch: int) -> tuple[float, float, float]:
    """Seconds of one step's parts on ``batch`` pictures: decode + preprocess, image tower
    forward, text tower forward + backward (short caption + a 3-sentence paragraph each)."""
    model = new_model(arch)
    records = folder_records(folder)[:batch]
    dataset = CaptionDataset(records, model.preprocess, sentences_per_caption=3)
    items, decode = clocked(lambda: [dataset[i] for i in range(len(records))])
    pixels = torch.stack([item[0] for item in items])
    texts = [text for item in items for text in (item[1], item[2][0])]
    ids = model.tokenizer(texts).input_ids
    repeats = 3 if arch == "tiny" else 1  # the large model's parts take seconds each
    with torch.no_grad():
        image = min(timed(lambda: model.encode_image(pixels)) for _ in range(repeats))
    text = min(timed(lambda: model.encode_text_slots(ids).sum().backward()) for _ in range(repeats))
    return decode, image, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pictures", type=int, default=300)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--arch", choices=("tiny", "vit-b16"), default="tiny")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = write_pictures(root / "pictures", range(30_000_000, 30_000_000 + args.pictures))
        decode, image, text = step_parts(folder, args.arch, args.batch)
        slow = run(folder, root / "per-step", args.steps, False, args.arch, args.batch)
        fast = run(folder, root / "cached", args.steps, True, args.arch, args.batch)
        a = lotlip.load(root / "per-step" / "model", device="cpu").state_dict()
        b = lotlip.load(root / "cached" / "model", device="cpu").state_dict()
        worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    model = "lotlip-tiny" if args.arch == "tiny" else "ViT-B/16 + BERT-base (random weights)"
    epochs = args.steps * args.batch / args.pictures
    print(
        f"{args.pictures} pictures, {args.steps} steps of {args.batch} ({epochs:.1f} epochs), "
        f"text mode, {model}, CPU"
    )
    print(f"threads: {torch.get_num_threads()}")
    print(f"image tower every step: {slow[0]:8.1f} s wall, {slow[1]:8.1f} s CPU")
    print(f"image features cached:  {fast[0]:8.1f} s wall, {fast[1]:8.1f} s CPU")
    print(
        f"speed-up: {slow[0] / fast[0]:.2f}x wall, {slow[1] / fast[1]:.2f}x CPU "
        f"(largest weight difference {worst:.2e})"
    )
    print(
        f"one step's parts: decode+preprocess {decode:.3f} s, image tower {image:.3f} s, "
        f"text tower fwd+bwd {text:.3f} s (image side {(decode + image) / text:.2f}x the text)"
    )


if __name__ == "__main__":
    main()
