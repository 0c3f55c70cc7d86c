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

from app.gui.formatting import count_text
from app.gui.results import ResultItem, item_from_result

BROWSE_LIMIT = 20_000


@dataclass(frozen=True)
class Filters:
    """Where and when: library folders (None = all) and an inclusive date range.

    The dates are capture dates (EXIF); a photo without one is dated by its file's
    modification time.
    """

    folders: tuple[str, ...] | None = None
    date_from: date | None = None
    date_to: date | None = None

    def search_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Searcher.search``."""
        return {
            "folders": list(self.folders) if self.folders else None,
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": f"{self.date_to.isoformat()}T23:59:59" if self.date_to else None,
            "file_dates": True,
        }

    def image_ids_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Store.image_ids``: the photos :meth:`search_kwargs` admit."""
        kwargs = self.search_kwargs()
        return {
            "under": kwargs["folders"],
            "taken_from": kwargs["date_from"],
            "taken_to": kwargs["date_to"],
            "file_dates": True,
        }

    @property
    def active(self) -> bool:
        """True when anything is filtered."""
        return bool(self.folders) or self.has_dates

    @property
    def has_dates(self) -> bool:
        """True when a date range is set."""
        return self.date_from is not None or self.date_to is not None

    def describe(self) -> str:
        """``"the chosen folder"``, ``"the chosen dates"`` or both (for "none is in ...")."""
        parts = []
        if self.folders:
            parts.append("folder")
        if self.has_dates:
            parts.append("dates")
        return "the chosen " + " and ".join(parts) if parts else ""


@dataclass(frozen=True)
class SearchRequest:
    """One search. Exactly one of ``text``, ``like`` or ``similar_to`` drives it; none browses.

    ``not_text``: what to steer away from (the CLI's ``--not``), for every mode but browsing.
    """

    text: str = ""
    like: Path | None = None
    similar_to: int | None = None
    similar_name: str = ""
    filters: Filters = field(default_factory=Filters)
    top: int = 100
    not_text: str = ""
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


def same_query(a: SearchRequest, b: SearchRequest) -> bool:
    """True when ``a`` and ``b`` ask the same thing (they may differ in filters and size)."""

    def question(r: SearchRequest) -> tuple[Any, ...]:
        return (r.mode, r.text, r.like, r.similar_to, r.not_text)

    return question(a) == question(b)


@dataclass
class SearchOutcome:
    """The answer to a :class:`SearchRequest`.

    ``empty_reason``: why a filtered search found nothing; ``undated``: how many photos in the
    date range have no EXIF date (their file date was used).
    """

    request: SearchRequest
    items: list[ResultItem]
    elapsed_ms: float
    truncated: bool = False
    word_pieces: int | None = None
    capacity: int | None = None
    model: str = ""
    warnings: list[str] = field(default_factory=list)
    empty_reason: str = ""
    undated: int = 0
    sentences: list[Any] = field(default_factory=list)  # app.library.explain.Sentence


def can_group(searcher: Any) -> bool:
    """True when near copies can be grouped for the searcher's model (a calibrated threshold,
    its own or, for a text fine-tune, its base's)."""
    return searcher.duplicate_threshold() is not None


def run_search(searcher: Any, library: Any, request: SearchRequest) -> SearchOutcome:
    """Answer ``request`` with ``searcher`` (an ``app.library.search.Searcher``).

    Browsing (no text, no example) lists the library's photos matching the filters, newest
    first; it needs no model. Every mode honours the filters.
    """
    started = time.perf_counter()
    if request.mode == "browse":
        outcome = _browse(library, request, started)
    else:
        response = _query(searcher, library, request, request.filters)
        tokens = getattr(response, "tokens", None)
        outcome = SearchOutcome(
            request=request,
            items=[item_from_result(r) for r in response.results],
            elapsed_ms=0.0,
            truncated=bool(getattr(response, "truncated", False)),
            word_pieces=getattr(tokens, "word_pieces", None),
            capacity=getattr(tokens, "capacity", None),
            model=str(getattr(response, "model", "")),
            warnings=[str(w) for w in getattr(response, "warnings", []) or []],
            sentences=list(getattr(response, "sentences", []) or []),
        )
        if not outcome.items and request.filters.active:
            outcome.empty_reason = _empty_reason(searcher, library, request)
    if request.filters.has_dates:
        outcome.undated = _undated(library, request.filters)
    outcome.elapsed_ms = (time.perf_counter() - started) * 1000.0
    return outcome


def _query(searcher: Any, library: Any, request: SearchRequest, filters: Filters) -> Any:
    """One ``Searcher.search`` call for a text, example or "more like this" request."""
    kwargs = filters.search_kwargs()
    not_text = request.not_text.strip() or None
    if request.mode == "text":
        return searcher.search(
            request.text,
            top=request.top,
            not_text=not_text,
            explain=True,
            sentences=dict(request.sentences) or None,
            group_duplicates=request.group_duplicates and can_group(searcher),
            **kwargs,
        )
    like, top = str(request.like), request.top
    if request.mode == "similar":
        # a library photo searches by its stored vector; the photo itself is not a result
        rows = library.store.rows_for([request.similar_to])
        if not rows:
            raise KeyError("that photo is no longer in the library")
        like, top = rows[0].path, top + 1
    response = searcher.search(None, top=top, like=like, not_text=not_text, **kwargs)
    response.results = [r for r in response.results if r.id != request.similar_to][: request.top]
    return response


def _empty_reason(searcher: Any, library: Any, request: SearchRequest) -> str:
    """Why a filtered search found nothing: the filters hold no photo, or exclude every match."""
    filters = request.filters
    where = filters.describe()
    if not len(library.store.image_ids(**filters.image_ids_kwargs())):
        return f"No photo in the library is in {where}."
    matches = len(_query(searcher, library, request, Filters()).results)
    if not matches:
        return ""
    subject = "the description" if request.mode == "text" else "the example"
    verb = "matches" if matches == 1 else "match"
    return f"{count_text(matches, 'photo')} {verb} {subject}, but none is in {where}."


def _undated(library: Any, filters: Filters) -> int:
    """Photos in the filters' scope that have no EXIF date (dated by their file instead)."""
    kwargs = filters.image_ids_kwargs()
    with_file_dates = len(library.store.image_ids(**kwargs))
    kwargs["file_dates"] = False
    return with_file_dates - len(library.store.image_ids(**kwargs))


def _browse(library: Any, request: SearchRequest, started: float) -> SearchOutcome:
    store = library.store
    ids = store.image_ids(**request.filters.image_ids_kwargs())
    rows = store.rows_for(ids[-BROWSE_LIMIT:])
    items = [item_from_result(row, stat=False) for row in rows]
    return SearchOutcome(request, items, (time.perf_counter() - started) * 1000.0)
