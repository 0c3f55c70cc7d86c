"""An interrupted run resumes to exactly the weights of an uninterrupted one (training.train)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import lotlip
from lotlip.checkpoints import read_folder_config
from lotlip.model import LoTLIP
from training.train import (
    CHECKPOINT_NAME,
    StepReport,
    TrainConfig,
    load_checkpoint,
    save_checkpoint,
    train,
)

from .conftest import CaptionTensorDataset, state_of

pytestmark = pytest.mark.usefixtures("single_thread")

STEPS = 7


def config(out: Path, **overrides: Any) -> TrainConfig:
    # 12 samples / batch 4 = 3 batches per epoch: the run crosses two epoch boundaries
    settings: dict[str, Any] = dict(
        out=str(out),
        steps=STEPS,
        batch_size=4,
        lr=2e-3,
        warmup=2,
        weight_decay=0.1,
        grad_clip=1.0,
        save_every=100,
        log_every=1,
        num_long=2,
        device="cpu",
        seed=5,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def stop_after(calls: int) -> Callable[[], bool]:
    """A ``should_stop`` that asks to stop once ``calls`` steps have finished."""
    seen = [0]

    def should_stop() -> bool:
        seen[0] += 1
        return seen[0] >= calls

    return should_stop


def tensors_equal(a: Any, b: Any) -> bool:
    """Deep equality of nested dicts/lists/tuples of tensors and primitives (tensors: exact)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(tensors_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def only_safe_types(value: Any) -> bool:
    """True when ``value`` holds only tensors, numbers, strings, None and plain containers."""
    if isinstance(value, torch.Tensor | int | float | str | bool | type(None)):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str | int) and only_safe_types(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(only_safe_types(v) for v in value)
    return False


@pytest.mark.parametrize(("accum", "stop_at"), [(1, 2), (2, 4)])
def test_interrupted_run_resumes_to_identical_weights(
    tmp_path: Path, make_model: Callable[..., LoTLIP], accum: int, stop_at: int
) -> None:
    overrides = {"accum": accum, "batch_size": 4 if accum == 1 else 2}

    straight_model = make_model(seed=1, layers=2)
    straight = train(
        config(tmp_path / "straight", **overrides), straight_model, CaptionTensorDataset(12)
    )
    assert not straight.stopped_early and straight.steps_done == STEPS

    reports: list[StepReport] = []
    first = train(
        config(tmp_path / "resumed", **overrides),
        make_model(seed=1, layers=2),
        CaptionTensorDataset(12),
        should_stop=stop_after(stop_at),
        progress=reports.append,
    )
    assert first.stopped_early
    assert first.steps_done == stop_at
    assert first.model_dir is None
    assert not (tmp_path / "resumed" / "model").exists()
    assert [r.step for r in reports] == list(range(1, stop_at + 1))
    ckpt_path = tmp_path / "resumed" / "checkpoints" / CHECKPOINT_NAME
    assert load_checkpoint(ckpt_path)["step"] == stop_at

    # A different random init: the checkpoint must replace it entirely.
    resumed_model = make_model(seed=99, layers=2)
    second = train(
        config(tmp_path / "resumed", **overrides),
        resumed_model,
        CaptionTensorDataset(12),
        progress=reports.append,
    )
    assert not second.stopped_early
    assert second.steps_done == STEPS
    assert [r.step for r in reports] == list(range(1, STEPS + 1))

    straight_state, resumed_state = state_of(straight_model), state_of(resumed_model)
    assert straight_state.keys() == resumed_state.keys()
    for key in straight_state:
        assert torch.equal(straight_state[key], resumed_state[key]), key
    assert second.final_loss == straight.final_loss
    assert [h["loss"] for h in second.history] == [h["loss"] for h in straight.history]

    ckpt_a = load_checkpoint(tmp_path / "straight" / "checkpoints" / CHECKPOINT_NAME)
    ckpt_b = load_checkpoint(ckpt_path)
    assert ckpt_a["step"] == ckpt_b["step"] == STEPS
    assert tensors_equal(ckpt_a["optimizer"], ckpt_b["optimizer"])
    assert tensors_equal(ckpt_a["scheduler"], ckpt_b["scheduler"])
    assert tensors_equal(ckpt_a["model"], ckpt_b["model"])

    # the saved models are the same too
    saved_a = lotlip.load(straight.model_dir, device="cpu", precision="fp32")
    saved_b = lotlip.load(second.model_dir, device="cpu", precision="fp32")
    for (name, a), b in zip(
        saved_a.state_dict().items(), saved_b.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name

    # metrics.jsonl: one line per logged step, none repeated or lost across the interruption
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    for record in records:
        assert {"loss", "lr", "logit_scale", "samples_per_s", "slot_losses"} <= record.keys()
        assert len(record["slot_losses"]) == 7  # short + 2 long x (CLS + 2 corners)
    straight_lines = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["loss"] for x in straight_lines] == [r["loss"] for r in records]


def test_resume_really_continues_rather_than_restarting(
    tmp_path: Path, make_model: Callable[..., LoTLIP]
) -> None:
    """Guard for the test above: a run restarted from scratch would not match."""
    out = tmp_path / "run"
    train(config(out), make_model(seed=1), CaptionTensorDataset(12), should_stop=stop_after(3))
    continued = make_model(seed=1)
    train(config(out), continued, CaptionTensorDataset(12))
    fresh = make_model(seed=1)
    train(config(tmp_path / "fresh", steps=STEPS - 3), fresh, CaptionTensorDataset(12))
    differs = [k for k, v in state_of(continued).items() if not torch.equal(v, state_of(fresh)[k])]
    assert differs


def test_max_seconds_stops_cleanly_with_a_checkpoint(
    tmp_path: Path, make_model: Callable[..., LoTLIP]
) -> None:
    result = train(config(tmp_path, max_seconds=0.0), make_model(), CaptionTensorDataset(12))
    assert result.stopped_early and result.steps_done == 1
    assert load_checkpoint(tmp_path / "checkpoints" / CHECKPOINT_NAME)["step"] == 1


def test_checkpoint_holds_only_plain_data_and_loads_weights_only(
    tmp_path: Path, make_model: Callable[..., LoTLIP]
) -> None:
    train(config(tmp_path, steps=2), make_model(), CaptionTensorDataset(12))
    path = tmp_path / "checkpoints" / CHECKPOINT_NAME
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert {"step", "model", "optimizer", "scheduler", "ranks", "history", "config"} <= set(state)
    assert only_safe_types(state)
    assert state["config"]["steps"] == 2
    assert not list(path.parent.glob("*.tmp")), "atomic write leaves no temporary file"
    assert load_checkpoint(tmp_path / "nothing-here.pt") is None


class _Payload:
    """Unpickling this runs code: a full (not weights_only) torch.load would call ``_boom``."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_boom, ("loaded",))


_CALLS: list[str] = []


def _boom(tag: str) -> str:
    _CALLS.append(tag)
    return tag


def test_load_checkpoint_refuses_arbitrary_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    save_checkpoint(path, {"step": 1, "payload": _Payload()})
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)
    assert _CALLS == []
    # the same file does run code when loaded without the guard (so the test can fail)
    torch.load(path, weights_only=False)
    assert _CALLS == ["loaded"]


def test_starting_a_finished_run_again_changes_nothing(
    tmp_path: Path, make_model: Callable[..., LoTLIP]
) -> None:
    model = make_model()
    done = train(config(tmp_path, steps=3), model, CaptionTensorDataset(12))
    again_model = make_model(seed=42)
    again = train(config(tmp_path, steps=3), again_model, CaptionTensorDataset(12))
    assert again.steps_done == 3 and not again.stopped_early
    assert again.final_loss == pytest.approx(done.final_loss, abs=1e-5)  # not NaN
    for key, value in state_of(model).items():
        assert torch.equal(value, state_of(again_model)[key]), key
    assert metrics_lines(tmp_path) == 3
    _, meta = read_folder_config(again.model_dir)
    assert meta["final_loss"] == pytest.approx(done.final_loss, abs=1e-5)


def metrics_lines(run: Path) -> int:
    return len((run / "metrics.jsonl").read_text().splitlines())


def test_tar_shards_through_train_resume_mid_shard(
    tmp_path: Path, make_model: Callable[..., LoTLIP]
) -> None:
    """Shards of 7, 5 and 6 samples, batches of 4, a shuffle buffer of 3: the stop after step 3
    falls inside the third shard, and the run crosses into a second epoch afterwards."""
    from training.shards import ShardDataset

    from .conftest import noisy, write_caption_shards

    paths = write_caption_shards(tmp_path / "shards", [7, 5, 6])

    def run(out: str, **kwargs: Any) -> tuple[LoTLIP, Any]:
        model = make_model(seed=1, layers=2)
        data = ShardDataset(paths, noisy(model.preprocess), shuffle_buffer=3, rank=0, world_size=1)
        return model, train(config(tmp_path / out), model, data, **kwargs)

    straight_model, straight = run("straight")
    assert straight.steps_done == STEPS
    _, first = run("resumed", should_stop=stop_after(3))
    assert first.stopped_early and first.steps_done == 3
    saved = load_checkpoint(tmp_path / "resumed" / "checkpoints" / CHECKPOINT_NAME)
    cursor = saved["ranks"][0]["data"]["slots"]["0"]["cursor"]
    assert cursor[0] == 2 and 0 < cursor[1] < 6, "the stop should fall inside the last shard"
    resumed_model, resumed = run("resumed")
    assert resumed.steps_done == STEPS
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    expected = state_of(straight_model)
    for key, value in state_of(resumed_model).items():
        assert torch.equal(value, expected[key]), key
