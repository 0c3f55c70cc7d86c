"""``lotlip-search demo``: see paragraph search work on a fresh, offline machine."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands.common import (
    EXIT_CANCELLED,
    EXIT_OK,
    Context,
    ProgressBars,
    UsageError,
    graceful_interrupts,
    say,
)

if TYPE_CHECKING:
    from app.library.demo_gallery import DemoQuery, DemoResult

WIDTH = 88


def add_parser(sub: argparse._SubParsersAction, **common: object) -> None:
    """Register ``demo``."""
    p = sub.add_parser(
        "demo",
        help="index a small gallery of generated scenes and search it with paragraphs",
        description="Write a small gallery of generated scenes (coloured shapes on plain "
        "backgrounds) into the library folder, index it, and search it with a few long "
        "descriptions, showing where the described scene came back. Works offline.",
        **common,
    )
    p.add_argument("--count", type=int, default=60, metavar="N", help="scenes to generate (60)")
    p.add_argument("--queries", type=int, default=4, metavar="N", help="queries to run (4)")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the scenes in the library afterwards, to try your own searches",
    )
    p.set_defaults(run=run)


def _quote(text: str) -> str:
    return textwrap.fill(
        f"\u201c{text}\u201d", WIDTH, initial_indent="    ", subsequent_indent="     "
    )


def _show_query(number: int, total: int, query: DemoQuery, count: int) -> None:
    name = Path(query.path).name
    say(f"\nQuery {number} of {total}: the description of {name}")
    say(_quote(query.text))
    if query.tokens is not None:
        tokens = query.tokens
        cut = ", cut to fit" if tokens.truncated else ""
        say(f"    ({tokens.word_pieces} word pieces; the model reads up to {tokens.capacity}{cut})")
    if query.rank == 1:
        say(f"  -> its scene came back FIRST of {count}")
    elif query.rank is not None:
        say(f"  -> its scene came back at rank {query.rank} of {count}")
    else:
        say("  -> its scene was not among the results")
    for i, hit in enumerate(query.top, 1):
        mark = "   <- the described scene" if hit.path == query.path else ""
        say(f"     {i}. {hit.score:6.3f}  {Path(hit.path).name}{mark}")


def _show_summary(result: DemoResult, keep: bool) -> None:
    ranks = [q.rank for q in result.queries]
    found = [r for r in ranks if r is not None]
    say("")
    line = f"{result.first} of {len(ranks)} descriptions found their scene first"
    if found:
        line += f"; mean rank {sum(found) / len(found):.1f} of {result.count}"
    say(line + ".")
    if keep:
        say(f"The scenes stay in {result.folder}. Try your own description, e.g.:")
        say(
            f'  lotlip-search search "a large red circle on a plain blue background" '
            f'--folder "{result.folder}"'
        )
        say(f'Remove them later with: lotlip-search forget "{result.folder}"')
    else:
        say("The demo scenes were removed again (run with --keep to search them yourself).")


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the demo and print a friendly account of it."""
    if args.count < 2:
        raise UsageError(f"--count must be at least 2 (got {args.count})")
    if args.queries < 1:
        raise UsageError(f"--queries must be at least 1 (got {args.queries})")
    from app.library.demo_gallery import remove_demo, run_demo

    choice = ctx.choose_model()
    say("LoTLIP Search demo")
    say("==================")
    kind = " (the small bundled model)" if choice.is_bundled else ""
    say(f"Model: {choice.name}{kind}")

    def stage(message: str) -> None:
        if message == "searching":  # said after the indexing summary below
            return
        say(f"- {message} ...")

    with graceful_interrupts() as stop, ProgressBars() as bars:
        result = run_demo(
            ctx.lib,
            choice.model,
            count=args.count,
            queries=args.queries,
            on_stage=stage,
            progress=bars,
            cancel=stop.is_set,
        )
    report = result.index
    say(
        f"- indexed {report.embedded} new scenes in {report.elapsed_s:.1f} s"
        + (f" ({report.embedded / report.elapsed_s:.1f} images/s)" if report.elapsed_s > 0 else "")
    )
    if result.cancelled:
        say("interrupted", file=sys.stderr)
        return EXIT_CANCELLED
    say("- searching ...")
    for number, query in enumerate(result.queries, 1):
        _show_query(number, len(result.queries), query, result.count)
    _show_summary(result, args.keep)
    if not args.keep:
        remove_demo(ctx.lib)
    return EXIT_OK
