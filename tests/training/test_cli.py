"""``python -m training``: help texts, and tiny pretrain / resume / evaluate / fine-tune runs."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import lotlip
from lotlip.checkpoints import read_folder_config
from tests.builders import bert_like_vocab
from training.cli import main
from training.synthetic import write_scenes
from training.train import CHECKPOINT_NAME, load_checkpoint

pytestmark = pytest.mark.usefixtures("single_thread")

REPO = Path(__file__).resolve().parents[2]
MICRO = ["--recipe", "micro", "--workers", "0", "--device", "cpu", "--log-every", "1"]


def test_help_of_the_command_and_every_subcommand() -> None:
    commands = {
        (): ["pretrain", "finetune", "evaluate", "torchrun"],
        ("pretrain",): ["--synthetic", "--data", "--recipe", "micro", "--max-minutes", "--init"],
        ("finetune",): ["--base", "--mode", "last-n", "--last-n", "--data"],
        ("evaluate",): ["--model", "--synthetic", "--json"],
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = {
        args: subprocess.Popen(
            [sys.executable, "-m", "training", *args, "--help"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    }
    try:
        outputs = {args: proc.communicate(timeout=300) for args, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    for args, (out, err) in outputs.items():
        assert procs[args].returncode == 0, (args, err)
        assert out.startswith("usage: python -m training"), (args, out, err)
        for word in commands[args]:
            assert word in out, (args, word)


def test_the_help_states_each_subcommands_own_default_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pretrain's --help says 1000 steps; finetune's says the default is the base model's and
    lists both defaults (recommended for lotlip-tiny, generic), never pretrain's 1000."""
    from training.cli import build_parser

    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside hyphenated words

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert parser.parse_args(["pretrain", "--out", "x"]).steps == 1000
    pretrain = " ".join(subparsers.choices["pretrain"].format_help().split())
    assert "optimizer steps (default 1000)" in pretrain
    finetune = " ".join(subparsers.choices["finetune"].format_help().split())
    assert "optimizer steps (default: the base model's, see above)" in finetune
    assert "1000" not in finetune
    assert "lotlip-tiny and fine-tunes of it: --mode text-last-n --last-n 2 --lr 0.001" in finetune
    assert "generic ones (--mode text --lr 5e-05 --steps 200" in finetune


def metrics_steps(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["step"] for line in lines]


def test_pretrain_resume_and_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    base = ["pretrain", *MICRO, "--synthetic", "64", "--batch-size", "16", "--out", str(run)]
    base += ["--eval-scenes", "20"]

    # 1. stopped by the time limit after one step: exit code 3, a checkpoint, no model yet
    assert main([*base, "--steps", "3", "--max-minutes", "0"]) == 3
    assert load_checkpoint(run / "checkpoints" / CHECKPOINT_NAME)["step"] == 1
    assert not (run / "model").exists()
    assert "run the same command again to resume" in capsys.readouterr().err

    # 2. the same command without the limit finishes the run
    assert main([*base, "--steps", "3"]) == 0
    assert metrics_steps(run) == [1, 2, 3]
    model = lotlip.load(run / "model", device="cpu", precision="fp32")
    assert model.name == "lotlip-micro"
    assert model.config.vision.image_size == 32 and model.embed_dim == 32
    _, meta = read_folder_config(run / "model")
    assert meta["kind"] == "pretrained" and meta["base_model"] == "scratch"
    assert meta["steps"] == 3 and meta["samples"] == 64
    assert meta["metrics"]["n"] == 20
    assert {"long_t2i_r1", "short_i2t_r5", "zeroshot_acc"} <= set(meta["metrics"])
    after_three = {k: v.clone() for k, v in model.state_dict().items()}

    # 3. more steps: continues from step 3 (no step is trained twice)
    assert main([*base, "--steps", "5"]) == 0
    assert metrics_steps(run) == [1, 2, 3, 4, 5]
    _, meta = read_folder_config(run / "model")
    assert meta["steps"] == 5
    assert load_checkpoint(run / "checkpoints" / CHECKPOINT_NAME)["step"] == 5
    longer = lotlip.load(run / "model", device="cpu", precision="fp32").state_dict()
    assert any(not torch.equal(longer[k], after_three[k]) for k in after_three)
    capsys.readouterr()

    # 4. evaluate --json prints the metrics as JSON
    assert main(["evaluate", "--model", str(run / "model"), "--synthetic", "20", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 20
    for caption in ("long", "short"):
        for direction in ("t2i", "i2t"):
            for k in (1, 5, 10):
                assert 0.0 <= metrics[f"{caption}_{direction}_r{k}"] <= 1.0
            assert metrics[f"{caption}_{direction}_r1"] <= metrics[f"{caption}_{direction}_r10"]
    assert 0.0 <= metrics["zeroshot_acc"] <= 1.0

    # ... and a table without --json
    assert main(["evaluate", "--model", str(run / "model"), "--synthetic", "10"]) == 0
    table = capsys.readouterr().out
    assert "R@1" in table and "text->image" in table and "pairs: 10" in table


@pytest.fixture
def caption_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    write_scenes(folder, 0, 12, size=32)
    return folder


def test_pretrain_on_a_caption_folder(tmp_path: Path, caption_folder: Path) -> None:
    run = tmp_path / "from-folder"
    argv = ["pretrain", *MICRO, "--data", str(caption_folder), "--out", str(run)]
    assert main([*argv, "--steps", "2", "--batch-size", "4", "--eval-scenes", "0"]) == 0
    _, meta = read_folder_config(run / "model")
    assert meta["data"] == str(caption_folder)
    assert meta["samples"] == 12
    assert meta["metrics"] == {}


def test_finetune_and_evaluate_a_folder(
    tmp_path: Path,
    caption_folder: Path,
    saved_model: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = saved_model(seed=3)
    out = tmp_path / "mine"
    argv = ["finetune", "--base", str(base), "--data", str(caption_folder), "--out", str(out)]
    argv += ["--steps", "2", "--batch-size", "4", "--workers", "0", "--device", "cpu"]
    assert main([*argv, "--mode", "full", "--name", "my-photos", "--short-weight", "2.5"]) == 0
    model = lotlip.load(out, device="cpu", precision="fp32")  # --out itself is the model folder
    assert model.name == "my-photos"
    _, meta = read_folder_config(out)
    assert meta["mode"] == "full" and meta["train_pairs"] == 12
    assert meta["train_config"]["short_weight"] == 2.5
    capsys.readouterr()

    evaluate = ["evaluate", "--model", str(out), "--data", str(caption_folder), "--json"]
    # every picture trained the model: there is nothing held out to report on
    assert main(evaluate) == 2
    assert "no held-out pictures" in capsys.readouterr().err
    assert main([*evaluate, "--include-training"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 12
    assert "zeroshot_acc" not in metrics  # no labels in a caption folder

    # pictures added after the fine-tune are the only ones counted by default
    for path in sorted(caption_folder.glob("scene_*"))[:6]:  # 3 pictures + their sidecars
        shutil.copy(path, caption_folder / f"new-{path.name}")
    assert main(evaluate) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n"] == 3
    assert "left out 12 pictures" in captured.err


def test_a_model_that_is_not_installed_or_broken_is_one_error_line(
    tmp_path: Path, caption_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A README example run before `model download` must say what to do, not show a traceback."""
    broken = tmp_path / "model.pt"
    broken.write_bytes(b"this is not a checkpoint")
    (tmp_path / "vocab.txt").write_text("\n".join(bert_like_vocab()) + "\n", encoding="utf-8")
    for model, says in (("no-such-model", "unknown model"), (str(broken), str(broken.name))):
        assert main(["evaluate", "--model", model, "--synthetic", "4"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and says in err, err
    argv = ["finetune", "--base", "no-such-model", "--out", str(tmp_path / "o")]
    assert main([*argv, "--data", str(caption_folder)]) == 1
    assert "error: unknown model 'no-such-model'" in capsys.readouterr().err


def test_finetune_with_adapters_and_short_phrasings_saves_a_plain_model(
    tmp_path: Path, caption_folder: Path, saved_model: Callable[..., Path]
) -> None:
    base = saved_model(seed=3)
    out = tmp_path / "lora"
    argv = ["finetune", "--base", str(base), "--data", str(caption_folder), "--out", str(out)]
    argv += ["--steps", "2", "--batch-size", "4", "--device", "cpu", "--lr", "1e-2"]
    assert main([*argv, "--mode", "text-lora", "--lora-rank", "3", "--short-phrasings"]) == 0
    _, meta = read_folder_config(out)
    assert meta["mode"] == "text-lora" and meta["train_config"]["lora_rank"] == 3
    assert meta["recipe"]["short_phrasings"] is True
    tuned = lotlip.load(out, device="cpu", precision="fp32").state_dict()  # no adapter keys
    plain = lotlip.load(base, device="cpu", precision="fp32").state_dict()
    assert set(tuned) == set(plain)
    assert all(torch.equal(tuned[k], plain[k]) for k in plain if k.startswith("visual."))
    query = "text.transformer.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(tuned[query], plain[query])


def test_errors_exit_with_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    argv = ["finetune", "--base", "x", "--data", str(missing), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pretrain", "--recipe", "huge", "--out", str(tmp_path)])
    for weight in ("-1", "nan", "heavy"):  # a loss weight must be a finite number >= 0
        with pytest.raises(SystemExit) as exited:
            main([*argv, "--short-weight", weight])
        assert exited.value.code == 2
        assert f"--short-weight: expected a number >= 0, got {weight}" in capsys.readouterr().err
