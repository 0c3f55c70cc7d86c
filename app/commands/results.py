"""Printing search results (``search`` and ``saved run``) and the sentence options they share.

Text mode: one line per result (rank, cosine score, date, path); with ``--explain`` a second,
indented line of sentence marks (✓ satisfied, ✗ not, · ignored) followed by each sentence's
standing in percent, and the numbered sentence list first; with ``--group-duplicates`` a
``(+N near copies)`` note. ``--json`` prints ``SearchResponse.as_dict()``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from app.commands.common import EXIT_OK, print_json, say, show_path, warn

if TYPE_CHECKING:
    from app.library.search import SearchResponse, SearchResult


def add_sentence_arguments(p: argparse.ArgumentParser) -> None:
    """``--explain``, ``--must``, ``--ignore``, ``--group-duplicates`` (search options)."""
    p.add_argument(
        "--explain",
        action="store_true",
        help="score every sentence of the description for each result (✓/✗ and standing: "
        "the share of the library the photo beats on that sentence)",
    )
    p.add_argument(
        "--must",
        action="append",
        default=[],
        metavar="SENTENCE",
        help="results must satisfy this sentence of the description, or this extra phrase "
        "(repeatable)",
    )
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="SENTENCE",
        help="leave this sentence of the description out (repeatable; nothing is re-encoded)",
    )
    p.add_argument(
        "--group-duplicates",
        action="store_true",
        help="fold near-identical photos (resized, recompressed, cropped, burst shots) into "
        "their best-ranked one",
    )


def sentence_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``Searcher.search`` keyword arguments from the options of :func:`add_sentence_arguments`."""
    return {
        "explain": bool(args.explain),
        "must": list(args.must),
        "sentences": {text: "ignore" for text in args.ignore} or None,
        "group_duplicates": bool(args.group_duplicates),
    }


def _marks_line(result: SearchResult) -> str:
    from app.library.explain import marks

    standings = " ".join(f"{round(s.standing * 100):3d}" for s in result.sentences)
    return f"{'':24s}{marks(result.sentences)}  {standings}"


def print_response(response: SearchResponse, as_json: bool) -> int:
    """Print warnings (stderr) and the results (stdout); returns the exit status."""
    for message in response.warnings:
        warn(message)
    if as_json:
        print_json(response.as_dict())
        return EXIT_OK
    explained = any(r.sentences for r in response.results)
    if explained:
        for number, sentence in enumerate(response.sentences, 1):
            state = "" if sentence.state == "normal" else f"  [{sentence.state}]"
            say(f"  sentence {number}: {sentence.text}{state}")
    if not response.results:
        say("no matching photos", file=sys.stderr)
        return EXIT_OK
    for rank, result in enumerate(response.results, 1):
        date = (result.taken_at or "")[:10]
        copies = f"  (+{len(result.duplicates)} near copies)" if result.duplicates else ""
        away = "  [offline]" if result.offline else ""
        say(f"{rank:3d}  {result.score:6.3f}  {date:10s}  {show_path(result.path)}{away}{copies}")
        if explained:
            say(_marks_line(result))
    return EXIT_OK
