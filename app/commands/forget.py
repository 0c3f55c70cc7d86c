"""``lotlip-search forget PATH...``: remove folders or files from the library."""

from __future__ import annotations

import argparse

from app.commands.common import EXIT_OK, Context, say


def add_parser(sub: argparse._SubParsersAction, **common: object) -> None:
    """Register ``forget``."""
    p = sub.add_parser(
        "forget",
        help="remove folders or files from the library (not from disk)",
        description="Remove the photos at or below each PATH from the library and its search "
        "indexes. Files on disk are not touched. A folder added with `index` is dropped "
        "altogether; a path inside one is excluded from future runs.",
        **common,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="folder or file to forget")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Forget each path."""
    for path in args.paths:
        removed = ctx.lib.forget(path)
        say(f"forgot {removed} photo(s) under {path}")
    return EXIT_OK
