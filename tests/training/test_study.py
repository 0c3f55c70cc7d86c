"""The fine-tune study's settings: seeds, the new vocabulary, and the documented CLI command."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from training.cli import _train_config, build_parser, fill_base_defaults
from training.study import TRIALS, reword, trial_config

SHORT_QUERY_TRIAL = 6  # the short-query recipe docs/TRAINING.md recommends
DOCUMENTED = (
    "finetune --base lotlip-tiny --data photos --out mine --mode text-last-n --last-n 2 "
    "--lr 1e-3 --steps 200 --warmup 10 --shuffle-sentences --replay 256"
)
SHORT_WEIGHT_TRIAL = 9
PHRASINGS_TRIAL = 22  # trial 6 + short phrasings: docs/TRAINING.md's recommendation now
DOCUMENTED_PHRASINGS = f"{DOCUMENTED} --short-phrasings"
NO_FLAGS = "finetune --base lotlip-tiny --data photos --out mine"
ADAPTERS_TRIAL = 26  # adapters + short phrasings
DOCUMENTED_ADAPTERS = (
    "finetune --base lotlip-tiny --data photos --out mine --mode text-lora --lora-rank 8 "
    "--lr 1e-3 --steps 200 --warmup 10 --shuffle-sentences --replay 256 --short-phrasings"
)

SHARED_FIELDS = (
    *("steps", "lr", "warmup", "batch_size", "weight_decay", "num_long", "short_weight"),
    *("long_weight", "captions", "trainable", "last_n", "lora_rank", "seed"),
)


def test_reword_renames_colours_shapes_and_background_keeping_capitals() -> None:
    assert reword("a red circle on a pale blue background") == "a crimson disc on a teal backdrop"
    assert reword("Dark grey stars. The Square is navy.") == "Slate stars. The Tile is indigo."


def test_a_seed_overrides_the_trial_and_nothing_else(tmp_path: Path) -> None:
    trial = TRIALS[SHORT_WEIGHT_TRIAL]
    plain, seeded = trial_config(trial, tmp_path), trial_config(trial, tmp_path, seed=2)
    assert (plain.seed, seeded.seed) == (0, 2)
    assert {**asdict(seeded), "seed": 0} == asdict(plain)
    assert seeded.short_weight == 2.0 and seeded.trainable == "text-last-n"


def test_the_short_weight_flag_reaches_the_config_as_in_the_study(tmp_path: Path) -> None:
    args = build_parser().parse_args([*DOCUMENTED.split(), "--short-weight", "2"])
    fill_base_defaults(args)
    study = trial_config(TRIALS[SHORT_WEIGHT_TRIAL], tmp_path)
    assert _train_config(args, args.mode).short_weight == study.short_weight == 2.0


@pytest.mark.parametrize(
    ("command", "number"),
    [
        # lotlip-tiny's default now adds short phrasings: trial 6 has to turn them off
        (f"{DOCUMENTED} --no-short-phrasings", SHORT_QUERY_TRIAL),
        (DOCUMENTED_PHRASINGS, PHRASINGS_TRIAL),
        (DOCUMENTED_ADAPTERS, ADAPTERS_TRIAL),
        (NO_FLAGS, PHRASINGS_TRIAL),  # what a user gets without choosing anything
        (
            f"{NO_FLAGS} --mode text --lr 5e-5 --warmup 20 --replay 0 --no-shuffle-sentences "
            "--no-short-phrasings",
            0,
        ),  # explicit flags back to the generic settings: trial 0
    ],
)
def test_the_documented_command_trains_as_the_study_measured(
    tmp_path: Path, command: str, number: int
) -> None:
    args = build_parser().parse_args(command.split())
    fill_base_defaults(args)
    cli = _train_config(args, args.mode)
    study = trial_config(TRIALS[number], tmp_path)
    for name in SHARED_FIELDS:
        assert getattr(cli, name) == getattr(study, name), name
    assert cli.extra["sentences"] == study.extra["sentences"]
    recipe = TRIALS[number].recipe
    flags = (args.shuffle_sentences, args.replay, args.short_phrasings)
    assert flags == (recipe.shuffle_sentences, recipe.replay, recipe.short_phrasings)


def test_a_trial_may_change_the_sentences_per_long_caption(tmp_path: Path) -> None:
    chosen = [trial_config(t, tmp_path).extra["sentences"] for t in TRIALS]
    assert chosen[0] == 3  # the CLI's --sentences default
    assert sorted(set(chosen)) == [1, 2, 3]
