"""``lotlip-search search TEXT``: find photos from a description (or an example image)."""

from __future__ import annotations

import argparse
import sys

from app.commands.common import (
    EXIT_OK,
    Context,
    UsageError,
    print_json,
    say,
    warn,
)

HELP = "find photos from a description (a whole paragraph is fine)"
DESCRIPTION = """\
Find the photos that best match a description. Long, detailed paragraphs work: the model reads
up to 124 word pieces (about 90 words) and says so when yours is longer. Results go to
stdout, best first, with their cosine score; --json gives them to scripts."""
EXAMPLES = """\
examples:
  lotlip-search search "two children flying a red kite on a windy beach. grey clouds"
  lotlip-search search "a cat asleep on a sofa" --not "dog" --top 5
  lotlip-search search "" --like ~/Pictures/IMG_0042.jpg --folder ~/Pictures/2021
  lotlip-search search "snowy mountains" --from 2019-12 --to 2020-02 --json"""


def add_parser(sub: argparse._SubParsersAction, **common: object) -> None:
    """Register the ``search`` command."""
    epilog = EXAMPLES + "\n\n" + str(common.pop("epilog", ""))
    p = sub.add_parser("search", help=HELP, description=DESCRIPTION, epilog=epilog, **common)
    p.add_argument("text", nargs="?", default="", metavar="TEXT", help="the description")
    p.add_argument("--top", type=int, default=20, metavar="N", help="how many results (20)")
    p.add_argument(
        "--threshold", type=float, default=None, metavar="S", help="least cosine score to show"
    )
    p.add_argument(
        "--folder",
        action="append",
        default=[],
        metavar="PATH",
        help="only photos at or below PATH (repeatable)",
    )
    p.add_argument(
        "--from", dest="date_from", metavar="DATE", help="taken on or after DATE (YYYY[-MM[-DD]])"
    )
    p.add_argument("--to", dest="date_to", metavar="DATE", help="taken on or before DATE")
    p.add_argument("--like", metavar="IMAGE", help="photos like this image (with TEXT: both)")
    p.add_argument("--not", dest="not_text", metavar="TEXT", help="steer away from this phrase")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Search and print the results."""
    from app.library.search import Searcher, normalize_date

    if not args.text.strip() and not args.like:
        raise UsageError("give a description (TEXT), an example image (--like), or both")
    if args.top < 1:
        raise UsageError("--top must be at least 1")
    try:
        if args.date_from:
            normalize_date(args.date_from)
        if args.date_to:
            normalize_date(args.date_to, upper=True)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    choice = ctx.choose_model()
    response = Searcher(ctx.lib, choice.model).search(
        args.text,
        top=args.top,
        threshold=args.threshold,
        folders=args.folder or None,
        date_from=args.date_from,
        date_to=args.date_to,
        like=args.like,
        not_text=args.not_text,
    )
    for message in response.warnings:
        warn(message)
    if args.json:
        print_json(response.as_dict())
        return EXIT_OK
    if not response.results:
        say("no matching photos", file=sys.stderr)
        return EXIT_OK
    for rank, result in enumerate(response.results, 1):
        date = (result.taken_at or "")[:10]
        away = "  [offline]" if result.offline else ""
        say(f"{rank:3d}  {result.score:6.3f}  {date:10s}  {result.path}{away}")
    return EXIT_OK
