"""``python -m training``: pretrain, fine-tune and evaluate LoTLIP models.

python -m training pretrain --recipe tiny --out runs/tiny --steps 1500
python -m training finetune --base lotlip-tiny --data my_photos/ --out my-model
python -m training evaluate --model runs/tiny/model --synthetic 500
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from .benchmarks import LOADERS
from .finetune_defaults import GENERIC, RECOMMENDED, FinetuneDefaults, defaults_for
from .recipes import RECIPES
from .train import CAPTION_MODES, TRAINABLE, TrainConfig, TrainResult

if TYPE_CHECKING:
    from lotlip.model import LoTLIP

    from .finetune import Recipe

log = logging.getLogger("training")


def _non_negative(text: str) -> float:
    """argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


# The options pretrain and finetune share: flag -> add_argument keywords.
_COMMON_OPTIONS: dict[str, dict[str, Any]] = {
    "--out": {"required": True, "help": "run folder: checkpoints, metrics.jsonl, model/"},
    "--steps": {"type": int, "default": 1000, "help": "optimizer steps (default %(default)s)"},
    "--batch-size": {"type": int, "default": 64, "help": "samples per process and step"},
    "--lr": {"type": float, "default": 5e-4, "help": "peak learning rate"},
    "--weight-decay": {"type": float, "default": 0.2},
    "--warmup": {"type": int, "default": 100, "help": "linear warmup steps before cosine"},
    "--accum": {"type": int, "default": 1, "help": "gradient accumulation micro-batches"},
    "--precision": {
        "choices": ("auto", "fp32", "bf16", "fp16"),
        "default": "auto",
        "help": "mixed precision on CUDA (auto = bf16); the CPU always trains in float32",
    },
    "--grad-clip": {"type": float, "default": 1.0, "help": "max gradient norm (0 = off)"},
    "--save-every": {"type": int, "default": 200, "help": "checkpoint every N steps"},
    "--log-every": {"type": int, "default": 10, "help": "metrics.jsonl line every N steps"},
    "--captions": {
        "choices": CAPTION_MODES,
        "default": "long+short",
        "help": "which captions train: both (LoTLIP), only short, or only long",
    },
    "--short-weight": {
        "type": _non_negative,
        "default": 1.0,
        "help": "weight of the short-caption loss term (the long terms weigh 1; default 1)",
    },
    "--num-long": {"type": int, "default": 1, "help": "long sub-captions per image and step"},
    "--sentences": {
        "type": int,
        "default": 3,
        "help": "consecutive sentences per long sub-caption (0 = whole caption)",
    },
    "--seed": {"type": int, "default": 0},
    "--workers": {"type": int, "default": 1, "help": "data loader worker processes"},
    "--device": {"default": "auto", "help": "auto, cpu, cuda or mps"},
    "--max-minutes": {
        "type": float,
        "default": None,
        "help": "stop cleanly with a checkpoint after this long; run again to resume",
    },
    "--eval-scenes": {"type": int, "default": 300, "help": "held-out scenes to evaluate on"},
}


# finetune: these default to the base model's settings (training.finetune_defaults), so an
# unset flag parses as None and is filled in once the base is known.
_BASE_DEFAULT_HELP = "default: the base model's, see above"
_FINETUNE_COMMON = {
    flag: {"type": _COMMON_OPTIONS[flag]["type"], "default": None, "help": help_text}
    for flag, help_text in {
        "--steps": f"optimizer steps ({_BASE_DEFAULT_HELP})",
        "--batch-size": f"samples per step ({_BASE_DEFAULT_HELP})",
        "--lr": f"peak learning rate ({_BASE_DEFAULT_HELP})",
        "--weight-decay": _BASE_DEFAULT_HELP,
        "--warmup": f"warmup steps ({_BASE_DEFAULT_HELP})",
    }.items()
}


def _add_common(
    p: argparse.ArgumentParser, overrides: dict[str, dict[str, Any]] | None = None
) -> None:
    for flag, options in _COMMON_OPTIONS.items():
        p.add_argument(flag, **(overrides or {}).get(flag, options))


def build_parser(prog: str = "python -m training") -> argparse.ArgumentParser:
    """The argument parser (also used to render --help in docs); ``prog`` names the caller."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Pretrain, fine-tune and evaluate LoTLIP models. Runs alone or under "
        "`torchrun --nproc-per-node N python -m training ...` (DDP); the same command scales out.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    pre = sub.add_parser(
        "pretrain",
        help="train a model from scratch, an official checkpoint or one of ours",
        description="Contrastive pretraining on image + short + long captions. Data: "
        "--data (folder with sidecar captions, JSONL/CSV manifest, or tar shards) or "
        "--synthetic N procedural scenes rendered on the fly. Interrupted runs resume from "
        "<out>/checkpoints/last.pt when started again with the same command.",
    )
    _add_common(pre)
    source = pre.add_mutually_exclusive_group()
    source.add_argument("--data", help="folder, .jsonl/.csv manifest, or .tar shard(s)")
    source.add_argument("--synthetic", type=int, default=None, help="number of synthetic scenes")
    pre.add_argument("--init", help="start from this model (name, official .pt or our folder)")
    pre.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        default="tiny",
        help="architecture + vocabulary when starting from scratch (default: tiny; "
        "micro is a 32-wide, 32 px model for tests and smoke runs only)",
    )
    pre.add_argument("--corners", type=int, default=2, help="corner tokens (0 disables them)")
    pre.add_argument(
        "--shape-twins",
        action="store_true",
        help="synthetic only: each scene comes with a twin that differs by one object's shape "
        "(pixels and captions), both in the same batch, so the loss needs shapes "
        "(--synthetic N gives 2N samples; --batch-size must be even)",
    )
    pre.add_argument("--name", default=None, help="name stored in the saved model")

    fine = sub.add_parser(
        "finetune",
        help="adapt a model to your own captioned photos",
        description="Fine-tune on personal captions. Modes: text (the image tower is frozen, "
        "so an existing photo index stays valid), text-last-n and text-lora (the same, fewer "
        "text weights train), last-n (last N blocks of both towers) and full. --out becomes the "
        "model folder, which lotlip.load accepts. Defaults: options left out take the base "
        "model's recommended settings where one was measured (lotlip-tiny and fine-tunes of "
        "it: "
        + _describe(RECOMMENDED["lotlip-tiny"])
        + "), else the generic ones ("
        + _describe(GENERIC)
        + "). Flags given explicitly always win.",
    )
    _add_common(fine, _FINETUNE_COMMON)
    fine.add_argument("--base", required=True, help="model to start from")
    fine.add_argument("--data", required=True, help="folder, .jsonl/.csv manifest, or .tar shards")
    fine.add_argument("--mode", choices=TRAINABLE, default=None, help=_BASE_DEFAULT_HELP)
    fine.add_argument(
        "--last-n",
        type=int,
        default=None,
        help=f"blocks to unfreeze in last-n / text-last-n mode ({_BASE_DEFAULT_HELP})",
    )
    fine.add_argument(
        "--lora-rank",
        type=int,
        default=8,
        help="text-lora mode: rank of the low-rank adapters on the text tower's attention and "
        "MLP layers (merged into the weights when the model is saved)",
    )
    fine.add_argument(
        "--short-phrasings",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="augment: half the time train on another short phrasing of a picture's short "
        'caption ("a photo of X", "Y with X" for "X on Y", short clauses of its paragraphs) '
        f"({_BASE_DEFAULT_HELP})",
    )
    fine.add_argument(
        "--shuffle-sentences",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="augment: present each long caption's sentences in a random order "
        f"({_BASE_DEFAULT_HELP})",
    )
    fine.add_argument(
        "--replay",
        type=int,
        default=None,
        help="mix this many of the base model's synthetic training scenes in (keeps old "
        f"skills; only meaningful for bases trained on them) ({_BASE_DEFAULT_HELP})",
    )
    fine.add_argument(
        "--select-every",
        type=int,
        default=0,
        help="score held-out text->image R@1 every N steps and keep the best weights",
    )
    fine.add_argument(
        "--patience",
        type=int,
        default=0,
        help="with --select-every: stop after this many checks without improvement",
    )
    fine.add_argument("--name", default=None, help="name of the new model")

    ev = sub.add_parser(
        "evaluate",
        help="retrieval recall@1/5/10 and zero-shot accuracy",
        description="Long- and short-text retrieval R@1/5/10 in both directions, on a manifest "
        "or on held-out synthetic scenes, plus zero-shot accuracy of the salient object.",
    )
    ev.add_argument("--model", required=True, help="model name, official .pt or our folder")
    source = ev.add_mutually_exclusive_group()
    source.add_argument("--data", help="manifest/folder/shards with short and long captions")
    source.add_argument("--synthetic", type=int, default=500, help="held-out synthetic scenes")
    ev.add_argument(
        "--benchmark",
        choices=tuple(LOADERS),
        help="a paper benchmark in the reference repository's layout under --data; prints "
        "the paper's table with the published LoTLIP-B/16 numbers beside the measured ones",
    )
    ev.add_argument(
        "--include-training",
        action="store_true",
        help="with --data and a fine-tuned model: also count the pictures it was trained on "
        "(by default only held-out ones are evaluated)",
    )
    ev.add_argument("--device", default="auto")
    ev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _train_config(args: argparse.Namespace, trainable: str) -> TrainConfig:
    """The TrainConfig of a command: every option named like a TrainConfig field, plus these."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    return TrainConfig(
        **given,
        trainable=trainable,
        max_seconds=None if args.max_minutes is None else args.max_minutes * 60,
        extra={"sentences": args.sentences},
    )


def _synthetic_evaluator(count: int, image_size: int) -> Callable[[LoTLIP], dict] | None:
    from .evaluate import evaluate, synthetic_eval_set

    data = synthetic_eval_set(count, size=image_size) if count > 0 else None
    return (lambda model: evaluate(model, data)) if data else None


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Pretrain and save ``<out>/model``."""
    from torch.utils.data import IterableDataset

    from .data import ShapeTwinDataset, open_dataset
    from .recipes import new_tiny_model
    from .train import load_initial_model, train

    if args.init:
        model = load_initial_model(args.init)
    else:
        model = new_tiny_model(
            seed=args.seed,
            corners=args.corners,
            name=args.name or f"lotlip-{args.recipe}",
            recipe=args.recipe,
        )
    size = model.config.vision.image_size
    count = args.synthetic or 100_000
    sampling = {
        "num_long": args.num_long,
        "sentences_per_caption": args.sentences or None,
        "seed": args.seed,
    }
    if args.shape_twins:
        if args.data:
            raise ValueError("--shape-twins works on synthetic scenes only, not --data")
        dataset = ShapeTwinDataset(0, count, model.preprocess, image_size=size, **sampling)
    else:
        dataset = open_dataset(
            args.data or f"synthetic:{count}", model.preprocess, synthetic_size=size, **sampling
        )
    data_desc = {"data": str(args.data) if args.data else f"synthetic scenes, seeds 0..{count - 1}"}
    if args.shape_twins:
        data_desc["data"] += ", each with a shape twin (--shape-twins)"
    if not isinstance(dataset, IterableDataset):  # tar shards stream: no length
        data_desc["samples"] = len(dataset)
    result = train(
        _train_config(args, "full"),
        model,
        dataset,
        metadata={"kind": "pretrained", "base_model": args.init or "scratch", **data_desc},
        evaluate=_synthetic_evaluator(args.eval_scenes, size),
    )
    return _report(result)


def _describe(defaults: FinetuneDefaults) -> str:
    """The defaults as the flags that would set them (for --help)."""
    recipe = defaults.recipe
    flags = [
        f"--mode {defaults.trainable}",
        *(
            [f"--last-n {defaults.last_n}"]
            if defaults.trainable in ("text-last-n", "last-n")
            else []
        ),
        f"--lr {defaults.lr:g}",
        f"--steps {defaults.steps}",
        f"--warmup {defaults.warmup}",
        f"--batch-size {defaults.batch_size}",
        f"--weight-decay {defaults.weight_decay:g}",
        *(["--shuffle-sentences"] if recipe.shuffle_sentences else []),
        *(["--short-phrasings"] if recipe.short_phrasings else []),
        *([f"--replay {recipe.replay}"] if recipe.replay else []),
    ]
    return " ".join(flags)


def fill_base_defaults(args: argparse.Namespace) -> Recipe:
    """Set every finetune option the user left out from the base's defaults; the data recipe."""
    from .finetune import Recipe

    defaults = defaults_for(args.base)
    if defaults.measured_on:
        log.info("unset options: recommended for %s (%s)", defaults.measured_on, defaults.source)
    else:
        log.info("unset options: %s", defaults.source)
    settings = defaults.settings()
    settings["mode"] = settings.pop("trainable")  # the flag's name
    for name, value in settings.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    recipe = defaults.recipe
    for name in ("shuffle_sentences", "replay", "short_phrasings"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(recipe, name))
    return Recipe(
        shuffle_sentences=args.shuffle_sentences,
        replay=args.replay,
        select_on_heldout=args.select_every > 0,
        short_phrasings=args.short_phrasings,
    )


def cmd_finetune(args: argparse.Namespace) -> int:
    """Fine-tune ``--base`` on ``--data`` and save ``<out>/model``."""
    from .finetune import finetune

    recipe = fill_base_defaults(args)
    config = _train_config(args, args.mode)  # with --select-every and --patience
    result = finetune(base=args.base, data=args.data, config=config, name=args.name, recipe=recipe)
    return _report(result.train)


def _report(result: TrainResult) -> int:
    if result.stopped_early:
        print(
            f"stopped at step {result.steps_done}; run the same command again to resume",
            file=sys.stderr,
        )
        return 3
    print(
        f"model saved to {result.model_dir} (steps {result.steps_done}, "
        f"final loss {result.final_loss:.4f})",
        file=sys.stderr,
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Print retrieval and zero-shot metrics, or a paper benchmark's table."""
    import lotlip

    from .evaluate import evaluate, format_table, synthetic_eval_set, to_json

    if args.benchmark and not args.data:
        raise ValueError("--benchmark needs --data: the folder holding the benchmark")
    # fp32 everywhere: recall figures must not move with the machine's precision choice
    model = lotlip.load(args.model, device=args.device, precision="fp32")
    if args.benchmark:
        from .benchmarks import benchmark_json, load_benchmark, paper_table, run_benchmark

        metrics = run_benchmark(model, load_benchmark(args.benchmark, args.data))
        show = benchmark_json if args.json else paper_table
        print(show(args.benchmark, metrics, model.name))
        return 0
    if args.data:
        from .data import SkipStats
        from .finetune import eval_set_from_records, read_caption_records, unseen_records

        records = read_caption_records(args.data, SkipStats("evaluation"))
        if not args.include_training:
            records, dropped = unseen_records(records, model.metadata)
            if dropped:
                print(f"left out {dropped} pictures the model was trained on", file=sys.stderr)
        if not records:
            raise ValueError("no held-out pictures to evaluate (--include-training counts all)")
        data = eval_set_from_records(records)
    else:
        data = synthetic_eval_set(args.synthetic, size=max(224, model.config.vision.image_size))
    metrics = evaluate(model, data)
    print(to_json(metrics) if args.json else format_table(metrics))
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "python -m training") -> int:
    """Entry point of ``python -m training`` (``prog``: how usage lines name the program)."""
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handlers = {"pretrain": cmd_pretrain, "finetune": cmd_finetune, "evaluate": cmd_evaluate}
    from lotlip.folders import CheckpointError
    from lotlip.registry import ModelNotFoundError

    try:
        return handlers[args.command](args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ModelNotFoundError, CheckpointError) as exc:  # not installed, or not a model
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        from .distributed import cleanup

        cleanup()
