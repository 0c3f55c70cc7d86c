"""The fine-tune study: does a text-mode fine-tune on a few new words generalise to new photos?

``python -m training.study --out runs/study`` writes a personal-captions set as a user would
make it: pictures of the synthetic world described in a vocabulary the base model never saw
("a crimson disc on a teal backdrop"): 48 pictures to fine-tune on and 24 unseen ones. Then it
fine-tunes ``lotlip-tiny`` in text mode with several recipes and prints, per recipe, text->image
R@1 on the 24 unseen pictures, on the training pictures, and on the app's demo scenes (what the
base model knew: forgetting), plus the wall time. docs/TRAINING.md records the results.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import synthetic
from .data import SkipStats
from .evaluate import evaluate
from .finetune import Recipe, eval_set_from_records, finetune, read_caption_records
from .finetune_defaults import GENERIC, RECOMMENDED
from .train import TrainConfig

# Words of the synthetic world -> words the base model's captions never use.
NEW_WORDS: dict[str, str] = {
    "light grey": "silver",
    "dark grey": "slate",
    "pale blue": "teal",
    "pale green": "mint",
    "lavender": "lilac",
    "cream": "buttermilk",
    "navy": "indigo",
    "red": "crimson",
    "orange": "tangerine",
    "yellow": "amber",
    "green": "emerald",
    "blue": "cobalt",
    "purple": "violet",
    "pink": "rose",
    "brown": "umber",
    "white": "ivory",
    "black": "ebony",
    "circle": "disc",
    "square": "tile",
    "triangle": "wedge",
    "star": "asterisk",
    "ring": "hoop",
    "cross": "saltire",
    "diamond": "rhombus",
    "hexagon": "honeycomb",
    "background": "backdrop",
}
_PATTERN = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, NEW_WORDS), key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
TRAIN_SEEDS = range(20_000_000, 20_000_048)  # held-out range, away from the demo's seeds
UNSEEN_SEEDS = range(20_001_000, 20_001_024)


def reword(text: str) -> str:
    """``text`` in the new vocabulary (keeps a leading capital)."""

    def swap(match: re.Match[str]) -> str:
        word = NEW_WORDS[match.group(0).lower()]
        return word.capitalize() if match.group(0)[0].isupper() else word

    return _PATTERN.sub(swap, text)


def write_pictures(folder: Path, seeds: Sequence[int], size: int = 224) -> Path:
    """Pictures with ``.txt`` sidecars in the new vocabulary: short caption, three paragraphs."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        scene = synthetic.make_scene(seed)
        stem = synthetic.scene_file_stem(seed)
        scene.render(size).save(folder / f"{stem}.png")
        short = f"{scene.short_caption} on a {scene.background.colour} background"
        paragraphs = [reword(short), *(reword(text) for text in scene.long_captions)]
        (folder / f"{stem}.txt").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return folder


@dataclass
class Trial:
    """One recipe: optimizer settings on top of the CLI defaults, and the data recipe."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    recipe: Recipe = field(default_factory=Recipe)


# What `python -m training finetune` uses on a base without a measured recipe.
CLI_DEFAULTS: dict[str, Any] = {**GENERIC.settings(), "num_long": 1}
# The best recipe of the first round, the base of the short-query trials.
SHORT_QUERY_SETTINGS: dict[str, Any] = dict(
    lr=1e-3, steps=200, warmup=10, trainable="text-last-n", last_n=2
)
SHORT_QUERY_RECIPE = Recipe(shuffle_sentences=True, replay=256)
# Trial 22 (trial 6 + short phrasings) became lotlip-tiny's default: its numbers live there.
RECOMMENDED_TINY = RECOMMENDED["lotlip-tiny"]
PHRASINGS_RECIPE = RECOMMENDED_TINY.recipe
# low-rank adapters on all 4 text blocks (+ embeddings, pooler, projection) instead of 2 blocks
LORA: dict[str, Any] = {"trainable": "text-lora", "lora_rank": 8}
TRIALS: tuple[Trial, ...] = (
    Trial("CLI defaults (lr 5e-5, 200 steps)"),
    Trial("lr 1e-3, 100 steps", {"lr": 1e-3, "steps": 100, "warmup": 10}),
    Trial(
        "lr 1e-3, 100 steps + sentence shuffling + replay of 128 scenes",
        {"lr": 1e-3, "steps": 100, "warmup": 10},
        Recipe(shuffle_sentences=True, replay=128),
    ),
    Trial(
        "lr 1e-3, 100 steps, embeddings + last 2 text blocks only",
        {"lr": 1e-3, "steps": 100, "warmup": 10, "trainable": "text-last-n", "last_n": 2},
    ),
    Trial(
        "lr 1e-3, up to 200 steps, best on held-out (every 20, patience 3)",
        {"lr": 1e-3, "steps": 200, "warmup": 10, "select_every": 20, "patience": 3},
        Recipe(select_on_heldout=True),
    ),
    Trial(
        "lr 1e-3, 100 steps, embeddings + last 2 text blocks, shuffling + replay 128",
        {"lr": 1e-3, "steps": 100, "warmup": 10, "trainable": "text-last-n", "last_n": 2},
        Recipe(shuffle_sentences=True, replay=128),
    ),
    Trial(
        "lr 1e-3, 200 steps, embeddings + last 2 text blocks, shuffling + replay 256",
        {"lr": 1e-3, "steps": 200, "warmup": 10, "trainable": "text-last-n", "last_n": 2},
        Recipe(shuffle_sentences=True, replay=256),
    ),
    Trial(
        "lr 1e-3, 300 steps, whole text tower, shuffling + replay 256",
        {"lr": 1e-3, "steps": 300, "warmup": 10},
        Recipe(shuffle_sentences=True, replay=256),
    ),
    Trial(
        "lr 2e-3, 200 steps, embeddings + last 2 text blocks, shuffling + replay 256",
        {"lr": 2e-3, "steps": 200, "warmup": 10, "trainable": "text-last-n", "last_n": 2},
        Recipe(shuffle_sentences=True, replay=256),
    ),
    Trial(
        "lr 1e-3, 200 steps, embeddings + last 2 blocks, shuffling + replay 256, short weight 2",
        {**SHORT_QUERY_SETTINGS, "short_weight": 2.0},
        SHORT_QUERY_RECIPE,
    ),
    Trial(
        "lr 1e-3, 200 steps, embeddings + last block, shuffling + replay 256, short weight 2",
        {**SHORT_QUERY_SETTINGS, "last_n": 1, "short_weight": 2.0},
        SHORT_QUERY_RECIPE,
    ),
    *(
        Trial(name, {**SHORT_QUERY_SETTINGS, **changes}, recipe)
        for name, changes, recipe in (
            ("trial 9 with short weight 4", {"short_weight": 4.0}, SHORT_QUERY_RECIPE),
            (
                "trial 9 training only embeddings, pooler and projection, lr 3e-3",
                {"short_weight": 2.0, "last_n": 0, "lr": 3e-3},
                SHORT_QUERY_RECIPE,
            ),
            (
                "trial 9 training the whole text tower",
                {"short_weight": 2.0, "trainable": "text"},
                SHORT_QUERY_RECIPE,
            ),
            (
                "trial 9 with replay 512",
                {"short_weight": 2.0},
                replace(SHORT_QUERY_RECIPE, replay=512),
            ),
            (
                "trial 9 with replay 1024",
                {"short_weight": 2.0},
                replace(SHORT_QUERY_RECIPE, replay=1024),
            ),
            ("trial 6 with replay 512", {}, replace(SHORT_QUERY_RECIPE, replay=512)),
            (
                "trial 9 with 1-sentence long captions",
                {"short_weight": 2.0, "sentences": 1},
                SHORT_QUERY_RECIPE,
            ),
            (
                "trial 9 with 2-sentence long captions",
                {"short_weight": 2.0, "sentences": 2},
                SHORT_QUERY_RECIPE,
            ),
            (
                "trial 9 with 1-sentence long captions, 400 steps",
                {"short_weight": 2.0, "sentences": 1, "steps": 400},
                SHORT_QUERY_RECIPE,
            ),
            (
                "trial 19 with replay 512",
                {"short_weight": 2.0, "sentences": 1, "steps": 400},
                replace(SHORT_QUERY_RECIPE, replay=512),
            ),
            (
                "trial 19 with replay 1024",
                {"short_weight": 2.0, "sentences": 1, "steps": 400},
                replace(SHORT_QUERY_RECIPE, replay=1024),
            ),
            (
                "trial 6 with short phrasings (lotlip-tiny's fine-tune default)",
                RECOMMENDED_TINY.settings(),
                PHRASINGS_RECIPE,
            ),
            ("trial 6 with short phrasings, 300 steps", {"steps": 300}, PHRASINGS_RECIPE),
            (
                "trial 6 with short phrasings, short weight 2",
                {"short_weight": 2.0},
                PHRASINGS_RECIPE,
            ),
            ("trial 6 with rank-8 adapters on every text block", LORA, SHORT_QUERY_RECIPE),
            ("trial 25 with short phrasings", LORA, PHRASINGS_RECIPE),
        )
    ),
)


def trial_config(trial: Trial, out: Path, seed: int | None = None) -> TrainConfig:
    """The fine-tune's settings: CLI defaults, the trial's changes, then ``seed`` if given."""
    settings = {**CLI_DEFAULTS, **trial.settings}
    if seed is not None:
        settings["seed"] = seed
    extra = {"sentences": settings.pop("sentences", 3)}  # the CLI's --sentences default
    return TrainConfig(
        out=str(out), trainable=settings.pop("trainable", "text"), device="cpu", workers=0,
        log_every=50, save_every=10_000, extra=extra, **settings,
    )  # fmt: skip


def run_trial(
    trial: Trial, base: str, train_dir: Path, unseen_dir: Path, out: Path, seed: int | None = None
) -> dict[str, Any]:
    """Fine-tune with one recipe (and seed); return its R@1 figures and wall time."""
    config = trial_config(trial, out, seed)
    started = time.monotonic()
    result = finetune(base, train_dir, config, recipe=trial.recipe)
    seconds = time.monotonic() - started
    import lotlip

    unseen = eval_set_from_records(read_caption_records(unseen_dir, SkipStats("unseen")))
    tuned = lotlip.load(out, device="cpu", precision="fp32")
    base_model = lotlip.load(base, device="cpu", precision="fp32")
    before, after = evaluate(base_model, unseen), evaluate(tuned, unseen)
    return {
        "trial": trial.name,
        "seed": config.seed,
        "unseen_before": before["long_t2i_r1"],
        "unseen_after": after["long_t2i_r1"],
        "unseen_short_before": before["short_t2i_r1"],
        "unseen_short_after": after["short_t2i_r1"],
        "heldout_before": result.before.get("heldout_long_t2i_r1"),
        "heldout_after": result.after.get("heldout_long_t2i_r1"),
        "train_before": result.before["train_long_t2i_r1"],
        "train_after": result.after["train_long_t2i_r1"],
        "demo_before": result.before["demo_long_t2i_r1"],
        "demo_after": result.after["demo_long_t2i_r1"],
        "seconds": round(seconds, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write the sets, run the trials (or those named with --only), print a Markdown table."""
    parser = argparse.ArgumentParser(prog="python -m training.study", description=__doc__)
    parser.add_argument("--out", required=True, help="folder for the picture sets and runs")
    parser.add_argument("--base", default="lotlip-tiny")
    parser.add_argument("--only", type=int, nargs="*", help="trial numbers (0-based) to run")
    parser.add_argument(
        "--seeds", type=int, nargs="*", help="run each trial with these seeds (default: 0)"
    )
    args = parser.parse_args(argv)
    root = Path(args.out)
    train_dir = root / "pictures"
    unseen_dir = root / "unseen"
    if not train_dir.is_dir():
        write_pictures(train_dir, TRAIN_SEEDS)
        write_pictures(unseen_dir, UNSEEN_SEEDS)
    chosen = args.only if args.only else range(len(TRIALS))
    print("| recipe | unseen paragraph R@1 | unseen short R@1 | training R@1 | demo R@1 | s |")
    print("|---|---|---|---|---|---|")
    runs = [(number, seed) for number in chosen for seed in (args.seeds or [None])]
    for number, seed in runs:
        folder = root / (f"run{number}" if seed is None else f"run{number}-seed{seed}")
        row = run_trial(TRIALS[number], args.base, train_dir, unseen_dir, folder, seed)
        if seed is not None:
            row["trial"] += f", seed {seed}"
        with (root / "results.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        print(
            f"| {row['trial']} | {row['unseen_before']:.2f} → {row['unseen_after']:.2f} "
            f"| {row['unseen_short_before']:.2f} → {row['unseen_short_after']:.2f} "
            f"| {row['train_before']:.2f} → {row['train_after']:.2f} "
            f"| {row['demo_before']:.2f} → {row['demo_after']:.2f} "
            f"| {row['seconds']:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
