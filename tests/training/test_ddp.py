"""Two-process DDP on CPU (gloo) equals one process on the whole batch (training.train, loss).

``ddp_worker.py`` runs as rank 0 and rank 1 with the environment torchrun would set. Each rank
sees half of every global batch; the LoTLIP loss all-gathers the features, so every rank computes
the loss of the whole batch but back-propagates only through its own half. DDP then averages the
gradients over the ranks, which is why ``train()`` multiplies the loss by the world size.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import lotlip
from lotlip.model import LoTLIP
from training.distributed import DistInfo
from training.loss import lotlip_loss
from training.train import StepSampler, TrainConfig, train

from .conftest import (
    CaptionTensorDataset,
    build_model,
    build_vocab,
    state_of,
    write_caption_shards,
)

pytestmark = pytest.mark.usefixtures("single_thread")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORLD = 2
TOL = dict(rtol=1e-5, atol=1e-5)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _load_worker() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("ddp_worker_module", HERE / "ddp_worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Start both ranks once; return their outputs plus the model folder they started from."""
    root = tmp_path_factory.mktemp("ddp")
    model_dir = root / "base"
    build_model(build_vocab(), seed=7, layers=2, spread=0.05).save(model_dir)
    out = root / "out"
    out.mkdir()
    # 5 + 4 + 2 + 7 samples: each rank's share differs per epoch and is rarely a multiple of 3
    shard_dir = root / "shards"
    write_caption_shards(shard_dir, [5, 4, 2, 7])
    port = free_port()
    procs = []
    for rank in range(WORLD):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(WORLD),
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "ddp_worker.py"),
                    str(out),
                    str(model_dir),
                    str(shard_dir),
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = []
    for proc in procs:
        try:
            logs.append(proc.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            pytest.fail("DDP workers timed out")
    for rank, (proc, log) in enumerate(zip(procs, logs, strict=True)):
        assert proc.returncode == 0, f"rank {rank} failed:\n{log[-4000:]}"
    results = {
        f.stem: torch.load(f, map_location="cpu", weights_only=False) for f in out.glob("*.pt")
    }
    return {"model_dir": model_dir, "out": out, "results": results}


def test_gathered_loss_and_gradients_equal_the_full_batch(ddp_run: dict[str, Any]) -> None:
    worker = _load_worker()
    image, text, scale = worker.loss_features()
    leaves = [x.clone().requires_grad_(True) for x in (image, text, scale)]
    full_loss, full_slots = lotlip_loss(*leaves)
    full_loss.backward()
    half = image.shape[0] // WORLD
    for rank in range(WORLD):
        got = ddp_run["results"][f"loss_rank{rank}"]
        rows = slice(rank * half, (rank + 1) * half)
        # every rank computes the loss of the whole global batch ...
        torch.testing.assert_close(got["loss"], full_loss.detach(), **TOL)
        torch.testing.assert_close(got["per_slot"], full_slots, **TOL)
        # ... and its own rows get exactly their full-batch gradient
        torch.testing.assert_close(got["image_grad"], leaves[0].grad[rows], **TOL)
        torch.testing.assert_close(got["text_grad"], leaves[1].grad[rows], **TOL)
        # the temperature is used by every rank on the whole batch: full gradient on each rank
        torch.testing.assert_close(got["scale_grad"], leaves[2].grad, **TOL)


def reference_run(name: str, model_dir: Path, tmp_path: Path) -> tuple[LoTLIP, Any]:
    """The same run in this process, one rank, with the global batch per step."""
    worker = _load_worker()
    cfg: TrainConfig = worker.run_configs(tmp_path)[name]
    cfg.batch_size *= WORLD
    model = lotlip.load(model_dir, device="cpu", precision="fp32")
    return model, train(cfg, model, CaptionTensorDataset(16))


@pytest.mark.parametrize("name", ["plain", "accum"])
def test_ddp_train_equals_single_process_on_the_global_batch(
    ddp_run: dict[str, Any], tmp_path: Path, name: str
) -> None:
    model, result = reference_run(name, ddp_run["model_dir"], tmp_path)
    ranks = [ddp_run["results"][f"{name}_rank{rank}"] for rank in range(WORLD)]
    expected_grads = {n: p.grad for n, p in model.named_parameters()}
    expected_state = state_of(model)
    start = state_of(lotlip.load(ddp_run["model_dir"], device="cpu", precision="fp32"))
    for rank, got in enumerate(ranks):
        assert got["final_loss"] == pytest.approx(result.final_loss, rel=1e-5), rank
        assert [h["loss"] for h in got["history"]] == pytest.approx(
            [h["loss"] for h in result.history], abs=2e-5
        )
        # gradients of the last step (after DDP's averaging), parameter by parameter
        assert got["grads"].keys() == expected_grads.keys()
        for key, grad in expected_grads.items():
            assert got["grads"][key] is not None, key
            torch.testing.assert_close(got["grads"][key], grad, **TOL, msg=key)
        # weights after the optimizer steps
        for key, value in expected_state.items():
            torch.testing.assert_close(got["state"][key], value, **TOL, msg=key)
    # the runs did train (otherwise equal weights would prove nothing)
    moved = [k for k, v in expected_state.items() if not torch.equal(v, start[k])]
    assert "logit_scale" in moved and len(moved) > len(expected_state) // 2
    # and both ranks hold identical replicas
    for key in expected_state:
        assert torch.equal(ranks[0]["state"][key], ranks[1]["state"][key]), key


def test_ddp_rank_zero_saved_the_model(ddp_run: dict[str, Any]) -> None:
    for name in ("plain", "accum"):
        folder = ddp_run["out"] / name / "model"
        model = lotlip.load(folder, device="cpu", precision="fp32")
        saved = ddp_run["results"][f"{name}_rank0"]["state"]
        for key, value in model.state_dict().items():
            assert torch.equal(value, saved[key]), key
        lines = (ddp_run["out"] / name / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 2, "only rank 0 writes metrics"


def test_step_sampler_splits_each_global_batch_between_ranks() -> None:
    length, per_rank = 23, 3
    alone = StepSampler(length, per_rank * WORLD, DistInfo(), seed=4)
    ranks = [StepSampler(length, per_rank, DistInfo(r, WORLD, r), seed=4) for r in range(WORLD)]
    assert alone.per_epoch == ranks[0].per_epoch == length // (per_rank * WORLD)
    seen_in_epoch: set[int] = set()
    for batch in range(3 * alone.per_epoch):
        epoch, whole = alone.batch_indices(batch)
        parts = [sampler.batch_indices(batch) for sampler in ranks]
        assert all(part_epoch == epoch for part_epoch, _ in parts)
        assert [i for _, part in parts for i in part] == whole
        if batch % alone.per_epoch == 0:
            seen_in_epoch = set()
        assert not seen_in_epoch & set(whole), "an index repeats within an epoch"
        seen_in_epoch |= set(whole)
    # a resumed sampler continues with exactly the batches an uninterrupted one yields
    resumed = iter(StepSampler(length, per_rank, DistInfo(1, WORLD, 1), seed=4, start_batch=5))
    straight = iter(StepSampler(length, per_rank, DistInfo(1, WORLD, 1), seed=4))
    for _ in range(5):
        next(straight)
    assert [next(resumed) for _ in range(6)] == [next(straight) for _ in range(6)]


def test_uneven_tar_shards_run_to_the_end_on_every_rank(ddp_run: dict[str, Any]) -> None:
    worker = _load_worker()
    ranks = [ddp_run["results"][f"shards_rank{rank}"] for rank in range(WORLD)]
    for got in ranks:
        steps = [h["step"] for h in got["straight_history"]]
        assert steps == list(range(1, worker.SHARD_STEPS + 1))
        assert all(math.isfinite(h["loss"]) for h in got["straight_history"])
    # one model trained by both ranks: identical replicas after every step's all-reduce
    for key, value in ranks[0]["straight"].items():
        assert torch.equal(value, ranks[1]["straight"][key]), key


def test_ddp_run_stopped_and_resumed_equals_an_uninterrupted_one(ddp_run: dict[str, Any]) -> None:
    worker = _load_worker()
    start = state_of(lotlip.load(ddp_run["model_dir"], device="cpu", precision="fp32"))
    for rank in range(WORLD):
        got = ddp_run["results"][f"shards_rank{rank}"]
        assert got["first_steps"] == worker.SHARD_STOP
        # each rank's own pixel noise (RNG) and shard position come back on resume
        assert [h["loss"] for h in got["resumed_history"]] == [
            h["loss"] for h in got["straight_history"]
        ], rank
        for key, value in got["straight"].items():
            assert torch.equal(got["resumed"][key], value), (rank, key)
    assert not torch.equal(got["straight"]["logit_scale"], start["logit_scale"])
