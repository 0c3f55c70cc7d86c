"""The training loop: pretraining and fine-tuning LoTLIP, alone or under torchrun (DDP).

Readable top to bottom: build the model and data, then for each optimizer step draw
``accum`` micro-batches, encode images and every caption's [CLS] + corner slots, apply the
LoTLIP loss (features gathered across ranks), clip, step AdamW and the warmup + cosine
schedule, and now and then write a checkpoint that resumes exactly (model, optimizer,
scheduler, RNG, data position).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

import lotlip
from lotlip.devices import resolve_device
from lotlip.files import write_atomic
from lotlip.model import LoTLIP

from .data import collate_captions
from .distributed import DistInfo, all_gather_objects, barrier, init_distributed, local_device
from .lora import adapter_parameters, add_adapters, has_adapters, merge_adapters
from .loss import lotlip_loss, select_text_slots

log = logging.getLogger(__name__)

CAPTION_MODES = ("long+short", "short", "long")
TRAINABLE = ("full", "text", "text-last-n", "text-lora", "last-n")
# modes that leave every image embedding unchanged
IMAGE_FROZEN = ("text", "text-last-n", "text-lora")
MAX_LOGIT_SCALE = math.log(100.0)
CHECKPOINT_NAME = "last.pt"


@dataclass
class TrainConfig:
    """Everything a run needs; saved with each checkpoint so a resume uses the same settings."""

    out: str
    steps: int = 1000
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup: int = 100
    min_lr_ratio: float = 0.0
    accum: int = 1
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (mixed precision only on CUDA)
    grad_clip: float = 1.0
    save_every: int = 200
    log_every: int = 10
    captions: str = "long+short"
    num_long: int = 2
    short_weight: float = 1.0
    long_weight: float = 1.0
    trainable: str = "full"  # what trains: full | text | text-last-n | last-n (set_trainable)
    last_n: int = 2
    lora_rank: int = 8  # text-lora: rank of the text tower's adapters (merged before saving)
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    max_seconds: float | None = None  # stop cleanly (with a checkpoint) after this long
    model_subdir: str = "model"  # where the final model goes inside ``out`` ("" = out itself)
    cache_image_features: bool = True  # text mode: encode each image once, not every step
    select_every: int = 0  # with a ``select`` score: evaluate every N steps, keep the best
    patience: int = 0  # stop after this many ``select`` checks without improvement (0 = never)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.captions not in CAPTION_MODES:
            raise ValueError(f"captions must be one of {CAPTION_MODES}")
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable must be one of {TRAINABLE}")
        self.betas = tuple(self.betas)  # type: ignore[assignment]


@dataclass
class StepReport:
    """What a progress callback receives after every optimizer step."""

    step: int
    steps: int
    loss: float
    lr: float
    samples_per_second: float


@dataclass
class TrainResult:
    """Where a finished (or stopped) run left its things."""

    model_dir: Path | None
    steps_done: int
    final_loss: float
    stopped_early: bool
    history: list[dict[str, float]]


# -- model set-up ---------------------------------------------------------------------------------
def set_trainable(model: LoTLIP, mode: str, last_n: int = 2) -> None:
    """Choose what trains: ``full`` (everything), ``text`` (the text tower; image tower frozen),
    ``text-last-n`` (the text tower's embeddings and last ``last_n`` blocks, pooler and
    projection), ``text-lora`` (the text tower's embeddings, pooler, projection and low-rank
    adapters, :mod:`training.lora`) or ``last-n`` (the last ``last_n`` blocks and heads of both
    towers)."""
    if mode == "full":
        model.requires_grad_(True)
        return
    model.requires_grad_(False)
    model.logit_scale.requires_grad_(True)
    if mode == "text":
        model.text.requires_grad_(True)
        return
    if mode in ("text-last-n", "text-lora"):
        blocks = model.text.blocks() if mode == "text-last-n" else []
        for block in blocks[max(0, len(blocks) - last_n) :]:
            block.requires_grad_(True)
        for param in adapter_parameters(model.text):
            param.requires_grad_(True)
        model.text.transformer.embeddings.requires_grad_(True)
        model.text.transformer.pooler.requires_grad_(True)
        model.text.proj.requires_grad_(True)
        return
    for blocks in (model.visual.blocks(), model.text.blocks()):
        # not blocks[-last_n:]: with last_n = 0 that slice is every block
        for block in blocks[max(0, len(blocks) - last_n) :]:
            block.requires_grad_(True)
    model.visual.vit.layernorm.requires_grad_(True)
    model.text.transformer.pooler.requires_grad_(True)
    model.text.proj.requires_grad_(True)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on gains, biases, embeddings of rank < 2 and logit_scale."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "logit_scale" in name else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def warmup_cosine(warmup: int, total: int, min_ratio: float = 0.0) -> Callable[[int], float]:
    """LR multiplier: linear warmup to 1, then cosine decay to ``min_ratio`` at ``total``."""

    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class _Encoder(nn.Module):
    """Wraps the two forwards in one ``forward`` so DDP can hook them."""

    def __init__(self, model: LoTLIP) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # [B, D] inputs are image features already (text mode caches them: FrozenImageFeatures)
        image = pixels if pixels.ndim == 2 else self.model.encode_image(pixels)
        return image, self.model.encode_text_slots(input_ids)


class FrozenImageFeatures(Dataset):
    """A map-style dataset whose pixels are replaced by the frozen image tower's features.

    In text mode the image tower never changes, so every image is decoded and encoded once
    here instead of at every step. Items are ``(features [D], short, longs)``; the captions
    still follow the wrapped dataset's epoch (via its ``captions(i)`` when it has one).
    """

    def __init__(
        self, dataset: Dataset, model: LoTLIP, device: torch.device, batch_size: int = 64
    ) -> None:
        self.dataset = dataset
        was_training = model.visual.training
        model.visual.eval()
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_captions)
        chunks = []
        with torch.no_grad():
            for pixels, _, _ in loader:
                chunks.append(model.encode_image(pixels.to(device)).float().cpu())
        model.visual.train(was_training)
        self.features = torch.cat(chunks)

    def set_epoch(self, epoch: int) -> None:
        """Pass the epoch on (it re-draws the captions)."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str, list[str]]:
        if hasattr(self.dataset, "captions"):
            short, longs = self.dataset.captions(index)
        else:
            _, short, longs = self.dataset[index]
        return self.features[index], short, longs


# -- data order -----------------------------------------------------------------------------------
class StepSampler(Sampler[list[int]]):
    """Batches of dataset indices for steps ``start..``, same order whatever the resume point.

    Each epoch is a permutation seeded by ``(seed, epoch)``; each global batch of
    ``batch_size * world_size`` indices is split by rank. Yields this rank's index lists.
    With ``group`` > 1 the permutation moves blocks of ``group`` consecutive indices (pairs of
    shape twins), so a block always lands whole in one rank's batch; ``group`` 1 is the plain
    permutation.
    """

    def __init__(
        self,
        length: int,
        batch_size: int,
        info: DistInfo,
        seed: int,
        start_batch: int = 0,
        group: int = 1,
    ) -> None:
        if group < 1 or batch_size % group or length % group:
            raise ValueError(
                f"--batch-size ({batch_size}) and the dataset ({length}) must be multiples of "
                f"its group size ({group})"
            )
        self.length = length
        self.batch_size = batch_size
        self.info = info
        self.seed = seed
        self.start_batch = start_batch
        self.group = group
        self.global_batch = batch_size * info.world_size
        self.per_epoch = length // self.global_batch
        if self.per_epoch == 0:
            raise ValueError(
                f"the dataset has {length} samples, fewer than one global batch "
                f"({self.global_batch}); lower --batch-size"
            )

    def batch_indices(self, batch: int) -> tuple[int, list[int]]:
        """(epoch, this rank's indices) of global batch number ``batch``."""
        epoch, offset = divmod(batch, self.per_epoch)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.length // self.group, generator=generator)
        if self.group > 1:
            perm = (perm[:, None] * self.group + torch.arange(self.group)).flatten()
        start = offset * self.global_batch + self.info.rank * self.batch_size
        return epoch, perm[start : start + self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        batch = self.start_batch
        while True:
            yield self.batch_indices(batch)[1]
            batch += 1


def caption_texts(shorts: list[str], longs: list[list[str]], mode: str, num_long: int) -> list[str]:
    """Flatten captions per sample in slot order: [short?, long_0..long_{n-1}]."""
    texts: list[str] = []
    for short, captions in zip(shorts, longs, strict=True):
        picked = [captions[i % len(captions)] for i in range(num_long)] if captions else []
        if mode == "short":
            texts.append(short)
        elif mode == "long":
            texts.extend(picked or [short] * num_long)
        else:
            texts.extend([short, *(picked or [short] * num_long)])
    return texts


def training_slots(slots: torch.Tensor, mode: str) -> torch.Tensor:
    """[B, N, K+1, D] caption outputs -> [B, T, D] loss slots for a caption mode."""
    if mode == "short":
        return slots[:, 0, :1]
    return select_text_slots(slots, has_short=mode == "long+short")


def captions_per_sample(mode: str, num_long: int) -> int:
    """How many captions each sample contributes in a caption mode."""
    return {"short": 1, "long": num_long, "long+short": 1 + num_long}[mode]


# -- checkpoints ----------------------------------------------------------------------------------
def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically (a crash mid-write leaves the previous checkpoint intact)."""
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The saved training state, or None when there is none (safe: weights_only)."""
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


# -- the loop -------------------------------------------------------------------------------------
def train(
    cfg: TrainConfig,
    model: LoTLIP,
    dataset: Dataset | IterableDataset,
    *,
    progress: Callable[[StepReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    metadata: dict[str, Any] | None = None,
    evaluate: Callable[[LoTLIP], dict[str, float]] | None = None,
    select: Callable[[LoTLIP], float] | None = None,
) -> TrainResult:
    """Train ``model`` on ``dataset`` per ``cfg``; resume from ``cfg.out`` if it has a checkpoint.

    ``dataset`` yields ``(pixels, short_caption, [long_caption, ...])``; a map-style dataset may
    expose ``set_epoch(epoch)`` to vary its caption sampling per epoch. The final model is saved
    in our format to ``<out>/model``; ``evaluate`` (if given) runs at the end and its metrics
    are stored in the model's metadata. ``select`` (if given, with ``cfg.select_every``) scores
    the model every few steps on validation data; the best-scoring weights are the ones kept,
    and with ``cfg.patience`` training stops once the score has not improved that many times.
    """
    out = Path(cfg.out)
    device = resolve_device(cfg.device)
    info = init_distributed(device)
    device = local_device(device, info)
    random.seed(cfg.seed + info.rank)
    torch.manual_seed(cfg.seed + info.rank)
    model = model.to(device=device, dtype=torch.float32)
    model.train()
    if cfg.trainable == "text-lora" and not has_adapters(model.text):
        add_adapters(model.text, cfg.lora_rank)
    set_trainable(model, cfg.trainable, cfg.last_n)
    if cfg.trainable in IMAGE_FROZEN:
        model.visual.eval()
        if cfg.cache_image_features and not isinstance(dataset, IterableDataset):
            dataset = FrozenImageFeatures(dataset, model, device, cfg.batch_size)
    encoder: nn.Module = _Encoder(model)
    if info.enabled:
        encoder = DistributedDataParallel(
            encoder, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.AdamW(
        parameter_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(cfg.warmup, cfg.steps, cfg.min_lr_ratio)
    )
    amp_dtype = _amp_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    ckpt_path = out / "checkpoints" / CHECKPOINT_NAME
    start_step, history = 0, []
    best: dict[str, Any] | None = None  # {"score", "step", "model"} of the best select check
    state = load_checkpoint(ckpt_path)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_step, history = state["step"], state["history"]
        best = state.get("best")
        own = _own_state(state, info)
        _restore_rng(own["rng"])
        if isinstance(dataset, IterableDataset) and hasattr(dataset, "load_state_dict"):
            dataset.load_state_dict(own["data"])
        log.info("resumed %s at step %d", out, start_step)

    batches = _batches(cfg, dataset, info, start_step)
    mode, num_long = cfg.captions, cfg.num_long
    has_short = mode != "long"
    per_sample = captions_per_sample(mode, num_long)
    bar = _progress_bar(info, cfg.steps, start_step)
    metrics_file = out / "metrics.jsonl"
    if info.is_main and state is not None:
        # Lines logged after the last checkpoint of a crashed run are logged again on resume.
        lines = "".join(json.dumps(record) + "\n" for record in history)
        metrics_file.write_text(lines, encoding="utf-8")
    started = time.monotonic()
    stopped_early = False
    # a finished run started again trains no step: report its last logged loss, not NaN
    loss_value = float(history[-1]["loss"]) if history else float("nan")
    step = start_step
    while step < cfg.steps:
        step_started = time.monotonic()
        optimizer.zero_grad(set_to_none=True)
        loss_sum, slot_sum, seen = 0.0, None, 0
        for micro in range(cfg.accum):
            pixels, shorts, longs = next(batches)
            texts = caption_texts(shorts, longs, mode, num_long)
            ids = model.tokenizer(texts).input_ids.to(device)
            sync = micro == cfg.accum - 1 or not info.enabled
            context = contextlib.nullcontext() if sync else encoder.no_sync()  # type: ignore[operator]
            with context:
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    image, slots = encoder(pixels.to(device), ids)
                slots = slots.reshape(pixels.shape[0], per_sample, *slots.shape[1:])
                text = training_slots(slots, mode)
                loss, per_slot = lotlip_loss(
                    image,
                    text,
                    model.logit_scale,
                    has_short=has_short,
                    short_weight=cfg.short_weight,
                    long_weight=cfg.long_weight,
                )
                # DDP averages gradients over ranks while every rank already computed the loss
                # of the global batch: scaling by world size gives the full-batch gradient.
                scaler.scale(loss * info.world_size / cfg.accum).backward()
            loss_sum += float(loss.detach()) / cfg.accum
            slot_sum = per_slot if slot_sum is None else slot_sum + per_slot
            seen += pixels.shape[0]
        if info.enabled and model.logit_scale.grad is not None:
            # logit_scale multiplies the gathered (global) logits on every rank, so each rank
            # already holds its full gradient: DDP's average of the world-size-scaled copies
            # is world_size times too large. Undo that factor for this one parameter.
            model.logit_scale.grad.div_(info.world_size)
        scaler.unscale_(optimizer)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], cfg.grad_clip
            )
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        step += 1
        loss_value = loss_sum
        rate = seen * info.world_size / max(1e-9, time.monotonic() - step_started)
        lr = scheduler.get_last_lr()[0]
        if step % cfg.log_every == 0 or step == cfg.steps:
            record = {
                "step": step,
                "loss": round(loss_value, 5),
                "lr": lr,
                "logit_scale": round(float(model.logit_scale.detach().exp()), 3),
                "samples_per_s": round(rate, 1),
                "slot_losses": [round(float(x) / cfg.accum, 4) for x in slot_sum],
                "elapsed_s": round(time.monotonic() - started, 1),
            }
            history.append(record)
            if info.is_main:
                metrics_file.parent.mkdir(parents=True, exist_ok=True)
                with metrics_file.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}")
        if progress is not None and info.is_main:
            progress(StepReport(step, cfg.steps, loss_value, lr, rate))
        out_of_time = cfg.max_seconds is not None and time.monotonic() - started > cfg.max_seconds
        stop_now = bool(should_stop and should_stop()) or out_of_time
        converged = False
        if select is not None and cfg.select_every > 0 and step % cfg.select_every == 0:
            best, converged = _select_check(cfg, model, select, step, best)
        if step % cfg.save_every == 0 or step == cfg.steps or stop_now:
            ranks = all_gather_objects(_rank_state(dataset))  # every rank's RNG and data position
            if info.is_main:
                saved = {
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "ranks": ranks,  # per rank: {"rng", "data"}
                    "history": history,
                    "config": _jsonable(asdict(cfg)),
                    "best": best,
                }
                save_checkpoint(ckpt_path, saved)
            barrier()
        if stop_now and step < cfg.steps:
            stopped_early = True
            break
        if converged:
            log.info("no better score in %d checks: stopping at step %d", cfg.patience, step)
            break
    if bar is not None:
        bar.close()
    if best is not None and not stopped_early:
        model.load_state_dict(best["model"])
        log.info("kept the weights of step %d (score %.4f)", best["step"], best["score"])

    model_dir = None
    if not stopped_early and info.is_main:
        merge_adapters(model.text)  # the saved folder is a plain model
        model.eval()
        metrics = evaluate(model) if evaluate is not None else {}
        model_dir = out / cfg.model_subdir if cfg.model_subdir else out
        meta = {
            **(metadata or {}),
            "steps": step,
            "final_loss": round(loss_value, 5),
            "train_config": _jsonable(asdict(cfg)),
            **({"selected_step": best["step"]} if best is not None else {}),
            "metrics": metrics,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        model.save(model_dir, metadata=meta)
    barrier()
    return TrainResult(model_dir, step, loss_value, stopped_early, history)


def _batches(
    cfg: TrainConfig, dataset: Dataset | IterableDataset, info: DistInfo, start_step: int
) -> Iterator[tuple[torch.Tensor, list[str], list[list[str]]]]:
    """Endless micro-batches starting at ``start_step`` (map-style: exact; iterable: stateful).

    A stream (tar shards) drops the last partial batch of each pass, so under DDP every rank
    brings a full batch to every step (``all_gather`` needs equal shapes), whatever its shards
    hold; a rank that runs out first starts its next pass. Loaders get their own generator:
    creating one must not draw from the global RNG, or a resumed run would diverge.
    """
    if isinstance(dataset, IterableDataset):
        shards = getattr(dataset, "shards", None)
        if shards is not None and len(shards) < info.world_size:
            raise ValueError(
                f"{len(shards)} tar shards for {info.world_size} processes: every process "
                "needs at least one shard"
            )
        empty_passes = 0  # a pass resumed at its very end is empty once; twice means no data
        while True:
            loader = DataLoader(
                dataset,
                batch_size=cfg.batch_size,
                collate_fn=collate_captions,
                drop_last=True,
                generator=torch.Generator(),
            )
            empty_passes += 1
            for batch in loader:
                empty_passes = 0
                yield batch
            if empty_passes >= 2:
                raise ValueError(
                    f"rank {info.rank}'s shards hold fewer than --batch-size "
                    f"({cfg.batch_size}) usable samples"
                )
    group = getattr(dataset, "group_size", 1)
    sampler = StepSampler(len(dataset), cfg.batch_size, info, cfg.seed, group=group)
    batch = start_step * cfg.accum
    while True:
        epoch, _ = sampler.batch_indices(batch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        # One loader per epoch, so workers see the epoch's caption sampling.
        remaining = sampler.per_epoch - batch % sampler.per_epoch
        epoch_batches = StepSampler(len(dataset), cfg.batch_size, info, cfg.seed, batch, group)
        loader = DataLoader(
            dataset,
            batch_sampler=itertools.islice(epoch_batches, remaining),
            collate_fn=collate_captions,
            num_workers=cfg.workers,
            persistent_workers=False,
            generator=torch.Generator(),
        )
        yield from loader
        batch += remaining


def _select_check(
    cfg: TrainConfig,
    model: LoTLIP,
    select: Callable[[LoTLIP], float],
    step: int,
    best: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, bool]:
    """Score the model; return the (possibly new) best and whether patience has run out."""
    was_training = model.training
    model.eval()
    score = float(select(model))
    model.train(was_training)
    if cfg.trainable in IMAGE_FROZEN:
        model.visual.eval()
    if best is None or score > best["score"]:
        model_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return {"score": score, "step": step, "model": model_state, "misses": 0}, False
    best["misses"] += 1
    return best, cfg.patience > 0 and best["misses"] >= cfg.patience


def _rank_state(dataset: Any) -> dict[str, Any]:
    """This rank's own RNG state and data position."""
    data = dataset.state_dict() if hasattr(dataset, "state_dict") else {}
    return {"rng": _rng_state(), "data": data}


def _own_state(state: dict[str, Any], info: DistInfo) -> dict[str, Any]:
    """This rank's part of a checkpoint (older checkpoints hold rank 0's state only)."""
    ranks = state.get("ranks")
    if ranks is None:
        return {"rng": state["rng"], "data": state.get("data", {})}
    if len(ranks) != info.world_size:
        raise ValueError(
            f"the checkpoint was written by {len(ranks)} processes, this run has "
            f"{info.world_size}: resume with the same number of processes"
        )
    return ranks[info.rank]


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16  # auto / bf16


def _progress_bar(info: DistInfo, total: int, initial: int) -> Any:
    if not info.is_main:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="training", unit="step", dynamic_ncols=True)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def load_initial_model(spec: str) -> LoTLIP:
    """A model to start from: registry name, official .pt or our folder (float32, CPU)."""
    return lotlip.load(spec, device="cpu", precision="fp32")
