"""``lotlip-search saved list|run|delete``: searches saved by name (``search ... --save NAME``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from app.commands.common import (
    EXIT_ERROR,
    EXIT_OK,
    CommandError,
    Context,
    UsageError,
    print_json,
    say,
)
from app.commands.results import print_response
from app.library.export import EXPORT_MODES, export_photos

HELP = "searches saved by name: list them, run one again, export its photos"
DESCRIPTION = """\
Searches saved with `search ... --save NAME` keep their description, sentence states (--must,
--ignore, --not) and filters. Running one searches the library as it is now, so photos indexed
since are found too. Its photos can be exported into a folder as copies or links, or their
paths written to a list."""
EXAMPLES = """\
examples:
  lotlip-search search "a red kite on a beach. grey clouds" --must "grey clouds" --save kites
  lotlip-search saved list
  lotlip-search saved run kites --explain
  lotlip-search saved run kites --export ~/kites --as links
  lotlip-search saved delete kites"""


def add_parser(sub: argparse._SubParsersAction, **common: object) -> None:
    """Register ``saved`` with its ``list``, ``run`` and ``delete`` actions."""
    epilog = EXAMPLES + "\n\n" + str(common.pop("epilog", ""))
    p = sub.add_parser("saved", help=HELP, description=DESCRIPTION, epilog=epilog, **common)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = actions.add_parser("list", help="the saved searches", **common)
    q.add_argument("--json", action="store_true", help="print as JSON")
    q.set_defaults(run=run_list)
    q = actions.add_parser("run", help="run a saved search again", **common)
    q.add_argument("name", metavar="NAME")
    q.add_argument("--top", type=int, default=None, metavar="N", help="how many results")
    q.add_argument("--explain", action="store_true", help="show the sentence marks")
    q.add_argument("--export", metavar="DIR", help="put the result photos into DIR")
    q.add_argument(
        "--as",
        dest="export_as",
        choices=EXPORT_MODES,
        default="copies",
        help="export as copies (default), symbolic links, or a list of paths (DIR/results.txt)",
    )
    q.add_argument("--json", action="store_true", help="print the results as JSON")
    q.set_defaults(run=run_saved)
    q = actions.add_parser("delete", help="forget a saved search", **common)
    q.add_argument("name", metavar="NAME")
    q.set_defaults(run=run_delete)


def save_search(ctx: Context, name: str, options: dict[str, Any]) -> None:
    """Save the ``Searcher.search`` keyword ``options`` under ``name`` (paths made absolute)."""
    from app.library.saved import SavedSearch, SavedSearches

    spec = options | {
        "sentences": dict(options.get("sentences") or {}),
        "like": os.path.abspath(options["like"]) if options.get("like") else None,
        "folders": [os.path.abspath(f) for f in options.get("folders") or ()],
    }
    try:
        search = SavedSearch.from_spec(name, spec)  # the options it does not keep are left out
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    SavedSearches(ctx.lib.store).save(search)
    say(f"saved as {name!r} (run it with `lotlip-search saved run {name}`)", file=sys.stderr)


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    """List the saved searches."""
    from app.library.saved import SavedSearches

    searches = SavedSearches(ctx.lib.store).all()
    if args.json:
        print_json([{"name": s.name, **s.spec(), "updated_at": s.updated_at} for s in searches])
        return EXIT_OK
    if not searches:
        say("no saved searches yet (use `search ... --save NAME`)", file=sys.stderr)
    for s in searches:
        text = " ".join(s.text.split())
        states = [f"{state}: {t}" for t, state in s.sentences.items()]
        states += [f"must: {t}" for t in s.must]
        detail = f"  [{'; '.join(states)}]" if states else ""
        say(f"{s.name}\t{text[:70]}{'…' if len(text) > 70 else ''}{detail}")
    return EXIT_OK


def run_saved(args: argparse.Namespace, ctx: Context) -> int:
    """Run a saved search; print and optionally export its results."""
    from app.library.saved import SavedSearches
    from app.library.search import Searcher

    if args.top is not None and args.top < 1:
        raise UsageError("--top must be at least 1")
    saved = SavedSearches(ctx.lib.store)
    try:
        saved.get(args.name)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    searcher = Searcher(ctx.lib, ctx.choose_model().model)
    response = saved.run(searcher, args.name, top=args.top, explain=args.explain)
    status = print_response(response, args.json)
    if args.export:
        paths = [r.path for r in response.results]
        report = export_photos(paths, args.export, args.export_as)
        say(f"exported {len(report.written)} file(s) to {args.export}", file=sys.stderr)
        for path, why in report.failed:
            say(f"could not export {path}: {why}", file=sys.stderr)
        if report.failed:
            status = EXIT_ERROR
    return status


def run_delete(args: argparse.Namespace, ctx: Context) -> int:
    """Forget a saved search."""
    from app.library.saved import SavedSearches

    if not SavedSearches(ctx.lib.store).delete(args.name):
        raise CommandError(f"no saved search called {args.name!r}")
    say(f"deleted {args.name!r}")
    return EXIT_OK
