"""``lotlip-search search TEXT``: find photos from a description (or an example image)."""

from __future__ import annotations

import argparse
import os
import stat
import sys

from app.commands.common import CommandError, Context, UsageError, show_path
from app.commands.results import add_sentence_arguments, print_response, sentence_kwargs

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
  lotlip-search search "snowy mountains" --from 2019-12 --to 2020-02 --json
  lotlip-search search "two kids on a pier. a red boat on the left" --explain
  lotlip-search search "two kids on a pier. a red boat on the left" --must "a red boat on the left"
  lotlip-search search "a dog on a beach" --group-duplicates --save "beach dog"""


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
    add_sentence_arguments(p)
    p.add_argument("--save", metavar="NAME", help="also save this search as NAME (`saved`)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=run)


def check_args(args: argparse.Namespace) -> None:
    """Reject a bad command line before anything heavy loads (:class:`UsageError`)."""
    from app.library.dates import normalize_date

    if not args.text.strip() and not args.like:
        raise UsageError("give a description (TEXT), an example image (--like), or both")
    if args.top < 1:
        raise UsageError(f"--top must be at least 1 (got {args.top})")
    if args.threshold is not None and not -1.0 <= args.threshold <= 1.0:
        raise UsageError(f"--threshold is a cosine score between -1 and 1 (got {args.threshold})")
    try:
        low = normalize_date(args.date_from) if args.date_from else None
        high = normalize_date(args.date_to, upper=True) if args.date_to else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if low and high and low > high:
        raise UsageError(f"--from {args.date_from} is after --to {args.date_to}")
    if args.like:
        check_example_image(args.like)


def check_example_image(path: str) -> None:
    """``--like`` must name a regular file, as a usage error before any model loads.

    Every reader of an example image refuses the rest too (``lotlip.transforms.load_image``);
    this only says it earlier, in the command line's words.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UsageError(f"--like {show_path(path)}: no such file") from None
    except OSError as exc:
        raise CommandError(f"--like {show_path(path)}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        from lotlip.transforms import file_kind

        raise UsageError(f"--like {show_path(path)} is {file_kind(mode)}, not an image file")


def library_folders(args: argparse.Namespace, ctx: Context) -> list[str]:
    """``--folder`` values as absolute paths; each must be in the library (or hold part of it)."""
    from app.library.paths import is_within

    roots = [f.path for f in ctx.lib.folders()]
    chosen = []
    for folder in args.folder:
        path = os.path.abspath(os.path.expanduser(folder))
        if not any(is_within(path, root) or is_within(root, path) for root in roots):
            listed = ", ".join(show_path(r) for r in roots) or "none yet"
            raise UsageError(
                f"--folder {show_path(folder)} is not in the library (its folders: {listed})"
            )
        chosen.append(path)
    return chosen


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Search and print the results."""
    check_args(args)
    folders = library_folders(args, ctx)
    choice = ctx.choose_model()
    from app.library.search import Searcher

    options = dict(
        text=args.text,
        top=args.top,
        threshold=args.threshold,
        folders=folders or None,
        date_from=args.date_from,
        date_to=args.date_to,
        like=args.like,
        not_text=args.not_text,
        **sentence_kwargs(args),
    )
    try:
        response = Searcher(ctx.lib, choice.model).search(**options)
    except ValueError as exc:  # e.g. --ignore of a sentence that is not in TEXT
        raise UsageError(str(exc)) from None
    if args.save:
        from app.commands.saved import save_search

        save_search(ctx, args.save, options)
    status = print_response(response, args.json)
    # an index this search had to build goes on in the background; with the answer out,
    # finish (and save) it so that the next search finds it
    sys.stdout.flush()
    ctx.lib.wait_for_builds()
    return status
