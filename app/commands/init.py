"""``lotlip-search init``: make a library folder without indexing anything yet."""

from __future__ import annotations

import argparse

from app.commands.common import EXIT_OK, Context, say, show_path


def add_parser(sub: argparse._SubParsersAction, **common: object) -> None:
    """Register ``init``."""
    p = sub.add_parser(
        "init",
        help="create an empty library (index does this too)",
        description="Create an empty library in the --library folder (or the default one), "
        "even in a folder that holds other files. Only `init`, `index` and `demo` create a "
        "library; every other command needs an existing one, so a mistyped --library path "
        "gives an error instead of a new, empty library.",
        **common,
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Create (or find) the library and say where it is."""
    existed = (ctx.directory / "library.db").is_file()
    lib = ctx.lib
    state = "is already a library" if existed else "is now an empty library"
    say(f"{show_path(str(lib.dir))} {state}; add photos with: lotlip-search index FOLDER")
    return EXIT_OK
