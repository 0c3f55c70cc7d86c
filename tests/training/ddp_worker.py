"""One rank of the two-process CPU (gloo) job that ``test_ddp.py`` starts; not a test module.

Usage (environment as torchrun sets it: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK):

    python ddp_worker.py OUT_DIR MODEL_DIR SHARD_DIR

1. The loss alone: each rank takes its half of a fixed global batch of random features, calls
   ``lotlip_loss`` (which all-gathers) and saves the loss and its gradients.
2. The real ``train()`` on ``CaptionTensorDataset``: each rank draws its half of every global
   batch through ``StepSampler``; the final weights and gradients are saved. Two runs: plain,
   and with gradient accumulation (the ``no_sync`` path) and clipping.
3. ``train()`` on deliberately uneven tar shards (the ranks hold different sample counts, and
   no count is a multiple of the batch), with noise from each rank's own RNG on the pixels:
   once straight through, and once stopped after step 4 and resumed.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import sys
from pathlib import Path

import torch

import lotlip
from training.distributed import cleanup, init_distributed
from training.loss import lotlip_loss
from training.train import TrainConfig, train

HERE = Path(__file__).resolve().parent


def _conftest():  # the shared factories, imported by path (tests/ is not a package)
    spec = importlib.util.spec_from_file_location("training_tests_conftest", HERE / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loss_features(seed: int = 11) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixed global batch of part 1: image [8, 6], text slots [8, 4, 6], log scale."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(8, 6, generator=gen)
    text = torch.randn(8, 4, 6, generator=gen) + 0.5 * image[:, None]
    return image, text, torch.tensor(2.3)


def run_configs(out: Path) -> dict[str, TrainConfig]:
    """Per-rank configs; the single-process reference doubles ``batch_size``."""
    common = dict(steps=2, lr=1e-3, warmup=0, weight_decay=0.1, device="cpu", seed=3)
    common |= dict(log_every=1, save_every=100, num_long=2, workers=0)
    # Adam's first step moves a weight by about lr * g / (|g| + eps): with the default eps
    # (1e-6), a gradient that cancels to ~1e-6 turns a summation-order difference of 1e-8
    # between the two-rank and the one-process run into a 1e-5 weight difference (seen as a
    # rare failure on the pooler). eps 1e-3 keeps that below the tolerance; the gradients
    # themselves are still compared at 1e-5.
    common |= dict(eps=1e-3)
    return {
        "plain": TrainConfig(out=str(out / "plain"), batch_size=4, grad_clip=0.0, **common),
        "accum": TrainConfig(
            out=str(out / "accum"), batch_size=2, accum=2, grad_clip=0.5, **common
        ),
    }


SHARD_STEPS, SHARD_STOP = 8, 4


def shard_config(out: Path) -> TrainConfig:
    """Part 3: batches of 3 per rank from shards whose sizes are not multiples of 3."""
    return TrainConfig(
        out=str(out),
        steps=SHARD_STEPS,
        batch_size=3,
        lr=1e-3,
        warmup=0,
        weight_decay=0.1,
        device="cpu",
        seed=3,
        log_every=1,
        save_every=100,
        num_long=1,
        workers=0,
    )


def shard_run(conftest, model_dir: str, shards: list[Path], out: Path, stop: int = 0):
    """One ``train()`` on the shards; with ``stop``, ask to stop after that many steps."""
    from training.shards import ShardDataset

    model = lotlip.load(model_dir, device="cpu", precision="fp32")
    data = ShardDataset(shards, conftest.noisy(model.preprocess), shuffle_buffer=4)
    calls = [0]

    def should_stop() -> bool:
        calls[0] += 1
        return calls[0] >= stop

    result = train(shard_config(out), model, data, should_stop=should_stop if stop else None)
    return model, result


def main() -> None:
    out, model_dir, shard_dir = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    torch.set_num_threads(1)
    # a shape mismatch in all_gather fails within a minute instead of hanging the test
    torch.distributed.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    info = init_distributed(torch.device("cpu"))
    assert info.world_size == 2, info
    conftest = _conftest()

    # 1. lotlip_loss with features gathered across ranks
    image, text, scale = loss_features()
    half = image.shape[0] // info.world_size
    rows = slice(info.rank * half, (info.rank + 1) * half)
    local_image = image[rows].clone().requires_grad_(True)
    local_text = text[rows].clone().requires_grad_(True)
    local_scale = scale.clone().requires_grad_(True)
    loss, per_slot = lotlip_loss(local_image, local_text, local_scale)
    loss.backward()
    torch.save(
        {
            "loss": loss.detach(),
            "per_slot": per_slot,
            "image_grad": local_image.grad,
            "text_grad": local_text.grad,
            "scale_grad": local_scale.grad,
        },
        out / f"loss_rank{info.rank}.pt",
    )

    # 2. train() under DDP
    for name, cfg in run_configs(out).items():
        model = lotlip.load(model_dir, device="cpu", precision="fp32")
        result = train(cfg, model, conftest.CaptionTensorDataset(16))
        torch.save(
            {
                "state": conftest.state_of(model),
                "grads": {n: p.grad for n, p in model.named_parameters()},
                "final_loss": result.final_loss,
                "history": result.history,
            },
            out / f"{name}_rank{info.rank}.pt",
        )

    # 3. uneven tar shards, straight and stopped + resumed
    shards = sorted(shard_dir.glob("*.tar"))
    straight, straight_result = shard_run(conftest, model_dir, shards, out / "shards-straight")
    first = shard_run(conftest, model_dir, shards, out / "shards-resumed", stop=SHARD_STOP)[1]
    resumed, resumed_result = shard_run(conftest, model_dir, shards, out / "shards-resumed")
    torch.save(
        {
            "straight": conftest.state_of(straight),
            "straight_history": straight_result.history,
            "first_steps": first.steps_done,
            "resumed": conftest.state_of(resumed),
            "resumed_history": resumed_result.history,
        },
        out / f"shards_rank{info.rank}.pt",
    )
    cleanup()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
