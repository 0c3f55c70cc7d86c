"""``lotlip-search index PATH...``: add folders and bring their index up to date."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from app.commands.common import (
    EXIT_CANCELLED,
    EXIT_OK,
    CommandError,
    Context,
    ProgressBars,
    UsageError,
    graceful_interrupts,
    print_json,
    say,
    show_path,
)

if TYPE_CHECKING:
    from app.library.indexer import IndexReport

HELP = "index folders of photos (new, changed, moved and removed files)"
DESCRIPTION = """\
Add folders to the library and index them: new and changed photos are embedded with the
model, moved photos keep their vectors, deleted ones are removed, unreadable files and
folders are listed by `lotlip-search errors`. A PATH inside a folder already in the library is
indexed as part of that folder (nothing is embedded twice). A folder that is offline (an
unplugged drive) keeps its photos. Links are followed inside the folder only; links to
elsewhere are skipped and counted. Without PATH, every folder already in the library is
re-indexed (handy in a cron job). Interrupt with Ctrl-C at any time: `status` shows the files
still pending, and the next `index` takes them up.

Exclude patterns (--exclude, remembered for the folder) are gitignore-like, relative to the
folder: a name or pattern matches at any depth ("Screenshots", "*/Screenshots/*" and
"Screenshots/" all skip every Screenshots folder, the top one too; "*.png" every PNG); a
leading "/" anchors it at the folder ("/2020" is only <folder>/2020); a trailing "/" matches
folders only; "*" also matches "/"."""


def add_parser(sub: argparse._SubParsersAction, **common: object) -> None:
    """Register the ``index`` command."""
    p = sub.add_parser("index", help=HELP, description=DESCRIPTION, **common)
    p.add_argument("paths", nargs="*", metavar="PATH", help="folders to add and index")
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip files/folders matching GLOB (gitignore-like, at any depth; a leading / anchors "
        "it at the folder; repeatable; remembered for the folder)",
    )
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per batch")
    p.add_argument(
        "--workers", type=int, default=None, metavar="N", help="decoding threads (default: auto)"
    )
    p.add_argument(
        "--save-every",
        type=int,
        default=None,
        metavar="N",
        help="save the search index every N batches (default: every 50 or once a minute)",
    )
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Index the given folders (or all of them)."""
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    for path in args.paths:
        if not os.path.isdir(path):
            raise CommandError(f"not a folder: {show_path(path)}")
    lib = ctx.lib
    folders: list[Any]
    if args.paths:
        for path in args.paths:
            before = {f.path for f in lib.folders()}
            holder = lib.add_folder(path, args.exclude)
            if holder.path != os.path.abspath(path):
                say(
                    f"note: {show_path(path)} is inside the library folder "
                    f"{show_path(holder.path)}; indexing it as part of that folder",
                    file=sys.stderr,
                )
            taken_in = sorted(before - {f.path for f in lib.folders()})
            if taken_in:
                listed = ", ".join(show_path(p) for p in taken_in)
                say(
                    f"note: {show_path(holder.path)} now holds the library folder(s) {listed} "
                    "(their photos keep their vectors)",
                    file=sys.stderr,
                )
        folders = list(args.paths)  # a path inside a library folder: only that part is scanned
    else:
        folders = lib.folders()
        if not folders:
            raise UsageError(
                "nothing to index yet: give a folder, e.g. lotlip-search index ~/Pictures"
            )
        if args.exclude:
            folders = [lib.add_folder(f.path, args.exclude) for f in folders]
    choice = ctx.choose_model()
    from app.library.indexer import Indexer

    options: dict[str, Any] = {}
    if args.save_every is not None:
        if args.save_every < 1:
            raise UsageError("--save-every must be at least 1")
        options = {"save_every": args.save_every, "save_interval_s": 0.0}
    indexer = Indexer(
        lib, choice.model, batch_size=args.batch_size, workers=args.workers, **options
    )
    with graceful_interrupts() as stop, ProgressBars() as bars:
        report = indexer.run(folders, progress=bars, cancel=stop.is_set)
    if args.json:
        print_json(report.as_dict())
    else:
        say(summary(report))
    if report.cancelled:
        if report.pending:
            say(
                f"interrupted: {report.pending} photo(s) not indexed yet; run the same command "
                "again (or `lotlip-search index`) to go on with them",
                file=sys.stderr,
            )
        else:
            say("interrupted: run the same command again to continue", file=sys.stderr)
        return EXIT_CANCELLED
    return EXIT_OK


def summary(report: IndexReport) -> str:
    """One friendly line about an index run."""
    text = f"{report.model}: {report.counts_text()}"
    if report.failed:
        text += " (see `lotlip-search errors`)"
    if report.links_outside:
        text += f"; {report.links_outside} link(s) to outside the folder skipped"
    if report.offline:
        text += f"; {len(report.offline)} folder(s) offline, their photos kept: " + ", ".join(
            show_path(p) for p in report.offline
        )
    text += f" in {report.elapsed_s:.1f} s"
    if report.embedded and report.elapsed_s > 0:
        text += f" ({report.embedded / report.elapsed_s:.1f} images/s)"
    return text
