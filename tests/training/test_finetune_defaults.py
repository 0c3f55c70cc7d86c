"""Fine-tune defaults per base model: the CLI (and the fine-tune chain) use the recipe measured
for lotlip-tiny, any other base the generic settings; explicit flags win."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from lotlip.checkpoints import read_folder_config
from training.cli import main
from training.finetune_defaults import GENERIC, RECOMMENDED, defaults_for, root_base
from training.synthetic import write_scenes

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = RECOMMENDED["lotlip-tiny"]
QUICK = ["--steps", "2", "--workers", "0", "--device", "cpu", "--eval-scenes", "0"]


@pytest.fixture
def caption_folder(tmp_path: Path) -> Path:
    """40 small captioned scenes: 32 train, a full default batch without replay."""
    folder = tmp_path / "photos"
    write_scenes(folder, 0, 40, size=32)
    return folder


def _finetune(base: str, data: Path, out: Path, *flags: str) -> dict[str, Any]:
    argv = ["finetune", "--base", base, "--data", str(data), "--out", str(out), *QUICK]
    assert main([*argv, *flags]) == 0
    return read_folder_config(out)[1]


def _assert_trained_with(meta: dict[str, Any], defaults: Any, **changed: Any) -> None:
    """The saved metadata shows ``defaults`` (with ``changed`` TrainConfig/recipe fields)."""
    expected = {**defaults.settings(), **asdict(defaults.recipe), "steps": 2, **changed}
    config = meta["train_config"]
    actual = {
        **{name: config[name] for name in defaults.settings()},
        **{name: meta["recipe"][name] for name in asdict(defaults.recipe)},
    }
    assert actual == expected
    assert meta["mode"] == expected["trainable"]


def test_the_tiny_recipe_is_not_the_generic_one() -> None:
    """Otherwise the tests below could not tell which defaults were used."""
    assert TINY.settings() != GENERIC.settings() and TINY.recipe != GENERIC.recipe
    assert TINY.recipe.replay and TINY.trainable == "text-last-n"


def test_cli_on_lotlip_tiny_without_flags_trains_with_its_recipe(
    tmp_path: Path, caption_folder: Path
) -> None:
    meta = _finetune("lotlip-tiny", caption_folder, tmp_path / "mine")
    _assert_trained_with(meta, TINY)
    # a fine-tune of it is still the tiny model underneath: same recipe, by the base chain
    assert root_base(str(tmp_path / "mine")) == "lotlip-tiny"
    assert defaults_for(str(tmp_path / "mine")) is TINY


def test_cli_explicit_flags_override_the_recipe(tmp_path: Path, caption_folder: Path) -> None:
    flags = ["--mode", "text", "--lr", "3e-4", "--replay", "0", "--no-short-phrasings"]
    meta = _finetune("lotlip-tiny", caption_folder, tmp_path / "mine", *flags)
    _assert_trained_with(meta, TINY, trainable="text", lr=3e-4, replay=0, short_phrasings=False)


def test_cli_on_another_base_uses_the_generic_defaults(
    tmp_path: Path, caption_folder: Path, saved_model: Callable[..., Path]
) -> None:
    base = saved_model(seed=3)  # a model of its own name, not trained on the tiny's scenes
    meta = _finetune(str(base), caption_folder, tmp_path / "mine")
    _assert_trained_with(meta, GENERIC)
    assert defaults_for(str(tmp_path / "mine")) is GENERIC


def test_base_chain_that_cannot_be_followed_is_generic(tmp_path: Path) -> None:
    from tests.builders import new_micro_model
    from training.recipes import tiny_vocab

    orphan = tmp_path / "orphan"
    model = new_micro_model("lotlip-tiny-mine", tiny_vocab())
    model.save(orphan, metadata={"kind": "fine-tuned"})  # no recorded base
    assert root_base(str(orphan)) is None and defaults_for(str(orphan)) is GENERIC
    looped = tmp_path / "looped"
    model.save(looped, metadata={"kind": "fine-tuned", "base_spec": str(looped)})
    assert defaults_for(str(looped)) is GENERIC
    assert defaults_for("lotlip-b16") is GENERIC  # an official model: not measured
