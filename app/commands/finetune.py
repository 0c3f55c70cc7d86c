"""``lotlip-search finetune ...``: hands over to ``python -m training finetune``."""

from __future__ import annotations

import argparse

from app.commands.common import EXIT_OK


def add_parser(sub: argparse._SubParsersAction, **common: object) -> None:
    """Register ``finetune``; every argument after it goes to the training package."""
    p = sub.add_parser(
        "finetune",
        help="fine-tune a model on your own captioned photos (see `finetune --help`)",
        add_help=False,
        **common,
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, rest: list[str]) -> int:
    """Run ``training.cli.main(["finetune", *rest])`` and return its exit status."""
    from training.cli import main as training_main

    try:
        return int(training_main(["finetune", *rest], prog="lotlip-search") or EXIT_OK)
    except SystemExit as exc:  # --help, or a usage error in the training parser
        if exc.code is None or isinstance(exc.code, int):
            return int(exc.code or EXIT_OK)
        return 1
