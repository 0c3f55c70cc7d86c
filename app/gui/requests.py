"""What the GUI asks the library for, as plain data, and the calls that answer it (no Qt).

:class:`SearchRequest` describes a search (a paragraph, an example image, "more like this" or
plain browsing) with its filters; :func:`run_search` turns it into one ``app.library`` call and
returns :class:`SearchOutcome` with grid-ready :class:`ResultItem` rows. It runs in a worker
thread; everything slow (text encoding, ANN search, stat calls) happens there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from app.gui.results import ResultItem, item_from_result

BROWSE_LIMIT = 20_000


@dataclass(frozen=True)
class Filters:
    """Where and when: library folders (None = all) and an inclusive date range."""

    folders: tuple[str, ...] | None = None
    date_from: date | None = None
    date_to: date | None = None

    def search_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Searcher.search`` / ``similar``."""
        return {
            "folders": list(self.folders) if self.folders else None,
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": f"{self.date_to.isoformat()}T23:59:59" if self.date_to else None,
        }

    @property
    def active(self) -> bool:
        """True when anything is filtered."""
        return bool(self.folders) or self.date_from is not None or self.date_to is not None


@dataclass(frozen=True)
class SearchRequest:
    """One search. Exactly one of ``text``, ``like`` or ``similar_to`` drives it; none browses."""

    text: str = ""
    like: Path | None = None
    similar_to: int | None = None
    similar_name: str = ""
    filters: Filters = field(default_factory=Filters)
    top: int = 100
    sentences: tuple[tuple[str, str], ...] = ()  # (sentence, state) other than normal
    group_duplicates: bool = True

    @property
    def mode(self) -> str:
        """``text``, ``like``, ``similar`` or ``browse``."""
        if self.like is not None:
            return "like"
        if self.similar_to is not None:
            return "similar"
        if self.text.strip():
            return "text"
        return "browse"

    def describe(self) -> str:
        """A short description for the results header."""
        mode = self.mode
        if mode == "like":
            return f"photos like {self.like.name}"  # type: ignore[union-attr]
        if mode == "similar":
            return f"photos similar to {self.similar_name or self.similar_to}"
        if mode == "text":
            text = " ".join(self.text.split())
            return f"“{text[:60]}…”" if len(text) > 60 else f"“{text}”"
        return "all photos"


@dataclass
class SearchOutcome:
    """The answer to a :class:`SearchRequest`."""

    request: SearchRequest
    items: list[ResultItem]
    elapsed_ms: float
    truncated: bool = False
    word_pieces: int | None = None
    capacity: int | None = None
    model: str = ""
    warnings: list[str] = field(default_factory=list)
    sentences: list[Any] = field(default_factory=list)  # app.library.explain.Sentence


def can_group(searcher: Any) -> bool:
    """True when near copies can be grouped for the searcher's model (a calibrated threshold)."""
    from app.library.duplicates import threshold_for

    return threshold_for(searcher.lib.store, searcher.model.name) is not None


def run_search(searcher: Any, library: Any, request: SearchRequest) -> SearchOutcome:
    """Answer ``request`` with ``searcher`` (an ``app.library.search.Searcher``).

    Browsing (no text, no example) lists the library's photos matching the filters, newest
    first; it needs no model.
    """
    started = time.perf_counter()
    mode = request.mode
    if mode == "browse":
        return _browse(library, request, started)
    kwargs = request.filters.search_kwargs()
    if mode == "similar":  # "more like this" ignores the filters (the library API has none)
        response = searcher.similar(request.similar_to, top=request.top)
    elif mode == "like":
        response = searcher.search(None, top=request.top, like=str(request.like), **kwargs)
    else:
        response = searcher.search(
            request.text,
            top=request.top,
            explain=True,
            sentences=dict(request.sentences) or None,
            group_duplicates=request.group_duplicates and can_group(searcher),
            **kwargs,
        )
    items = [item_from_result(r) for r in response.results]
    tokens = getattr(response, "tokens", None)
    return SearchOutcome(
        request=request,
        items=items,
        elapsed_ms=(time.perf_counter() - started) * 1000.0,
        truncated=bool(getattr(response, "truncated", False)),
        word_pieces=getattr(tokens, "word_pieces", None),
        capacity=getattr(tokens, "capacity", None),
        model=str(getattr(response, "model", "")),
        warnings=[str(w) for w in getattr(response, "warnings", []) or []],
        sentences=list(getattr(response, "sentences", []) or []),
    )


def _browse(library: Any, request: SearchRequest, started: float) -> SearchOutcome:
    store = library.store
    kwargs = request.filters.search_kwargs()
    ids = store.image_ids(
        kwargs["folders"], taken_from=kwargs["date_from"], taken_to=kwargs["date_to"]
    )
    rows = store.rows_for(ids[-BROWSE_LIMIT:])
    items = [item_from_result(row, stat=False) for row in rows]
    return SearchOutcome(request, items, (time.perf_counter() - started) * 1000.0)
