"""Saved searches: a description with its sentence states and filters, kept by name in the
library and run again on demand (so photos indexed later are found too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from app.library.explain import STATES

if TYPE_CHECKING:
    from app.library.search import Searcher, SearchResponse
    from app.library.store import Store

MAX_NAME = 200


@dataclass(frozen=True)
class SavedSearch:
    """What is needed to run a search again (``Searcher.search`` keyword arguments)."""

    name: str
    text: str = ""
    sentences: dict[str, str] = field(default_factory=dict)  # sentence text -> state
    must: tuple[str, ...] = ()
    not_text: str | None = None
    like: str | None = None
    folders: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None
    threshold: float | None = None
    top: int = 20
    group_duplicates: bool = False
    created_at: str = ""
    updated_at: str = ""

    def __post_init__(self) -> None:
        check_name(self.name)
        if not self.text.strip() and not self.like:
            raise ValueError("a saved search needs a description or an example image")
        for text, state in self.sentences.items():
            if state not in STATES:
                raise ValueError(f"unknown state {state!r} for {text!r}")
        if self.top < 1:
            raise ValueError("top must be at least 1")

    def spec(self) -> dict[str, Any]:
        """The JSON stored for this search (everything but name and times)."""
        data = asdict(self)
        for key in ("name", "created_at", "updated_at"):
            data.pop(key)
        return data

    @classmethod
    def from_spec(
        cls, name: str, spec: Mapping[str, Any], created_at: str = "", updated_at: str = ""
    ) -> SavedSearch:
        """Rebuild from :meth:`spec` (unknown keys from newer versions are ignored)."""
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in spec.items() if k in known}
        for key in ("must", "folders"):
            data[key] = tuple(data.get(key) or ())
        return cls(name=name, created_at=created_at, updated_at=updated_at, **data)

    def search_kwargs(self, top: int | None = None) -> dict[str, Any]:
        """Keyword arguments for ``Searcher.search`` (the :meth:`spec`, in the types it takes)."""
        return self.spec() | {
            "top": top or self.top,
            "folders": list(self.folders) or None,
            "sentences": dict(self.sentences) or None,
            "must": list(self.must),
        }


def check_name(name: str) -> None:
    """Raise ``ValueError`` for an empty, overlong or control-character name."""
    if not name or not name.strip():
        raise ValueError("a saved search needs a name")
    if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise ValueError(f"not a usable name: {name!r} (at most {MAX_NAME} printable characters)")


class SavedSearches:
    """The saved searches of one library (stored in its database)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def save(self, search: SavedSearch) -> None:
        """Save ``search`` under its name (replacing one of the same name)."""
        self.store.put_saved_search(search.name, search.spec())

    def all(self) -> list[SavedSearch]:
        """Every saved search, by name."""
        return [SavedSearch.from_spec(*row) for row in self.store.saved_searches()]

    def get(self, name: str) -> SavedSearch:
        """The saved search ``name``; ``KeyError`` with the known names when there is none."""
        found = {s.name: s for s in self.all()}
        if name not in found:
            known = ", ".join(found) or "none yet"
            raise KeyError(f"no saved search called {name!r} (saved: {known})")
        return found[name]

    def delete(self, name: str) -> bool:
        """Forget ``name``; true if it existed."""
        return self.store.delete_saved_search(name)

    def run(
        self, searcher: Searcher, name: str, top: int | None = None, explain: bool = False
    ) -> SearchResponse:
        """Run the saved search ``name`` now, over everything indexed so far."""
        return searcher.search(**self.get(name).search_kwargs(top), explain=explain)
