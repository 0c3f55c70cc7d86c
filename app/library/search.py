"""Search a library: a paragraph (or an example image) -> embedding -> ANN k-NN -> rows.

Only the query model's own index is ever searched, so vectors of different models are never
compared. The text is embedded with ``model.embed_texts`` (padded only to its own length, so
a short query does not pay for 128 tokens); the ANN index (cosine) returns ids, the store
returns the rows. Options:

* ``like``: an example image (a path or a PIL image). A path already in the library reuses its
  stored vector. With text as well, the two query vectors are averaged.
* ``not_text``: a phrase to steer away from; its embedding is subtracted with weight
  :attr:`Searcher.not_weight` and the query renormalised.
* ``folders`` (paths at or below which results must lie), ``date_from``/``date_to`` (EXIF
  capture date, inclusive; ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or full ISO), ``threshold``
  (least cosine score).
* ``explain``, ``sentences``, ``must``: score each result by sentence and refine the search by
  sentence states (:mod:`app.library.explain`); ``group_duplicates``: fold near-identical
  photos into their best-ranked one (:mod:`app.library.duplicates`).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from app.library import duplicates
from app.library import explain as sentence_scores
from app.library.dates import normalize_date
from app.library.library import image_tower_base, root_is_online
from lotlip.transforms import load_image

if TYPE_CHECKING:
    from app.library.library import Library
    from app.library.store import Folder
    from lotlip.model import LoTLIP
    from lotlip.tokenizer import TokenCount

logger = logging.getLogger(__name__)


def truncation_warning(tokens: TokenCount, what: str = "description") -> str:
    """The message shown when a description (or another text) is longer than the model reads."""
    return (
        f"your {what} has {tokens.word_pieces} word pieces; the model reads the first "
        f"{tokens.capacity}"
    )


@dataclass(frozen=True)
class SearchResult:
    """One hit: the image row and its cosine ``score`` (higher is closer).

    ``offline``: the photo is in a library folder that is offline (an unplugged drive); it is
    still listed, and the response warns how many such results there are.
    """

    id: int
    path: str
    score: float
    width: int | None
    height: int | None
    taken_at: str | None
    folder: str | None
    size: int
    offline: bool = False
    sentences: tuple[sentence_scores.SentenceScore, ...] = ()  # with explain=True
    duplicates: tuple[SearchResult, ...] = ()  # near copies folded into this result

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``path`` first; ``sentences``/``duplicates`` only when set)."""
        nested = ("sentences", "duplicates")
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in nested}
        data["score"] = round(float(self.score), 6)
        out = {"path": data.pop("path"), "score": data.pop("score"), **data}
        if self.sentences:
            out["sentences"] = [s.as_dict() for s in self.sentences]
        if self.duplicates:
            out["duplicates"] = [d.as_dict() for d in self.duplicates]
        return out


@dataclass
class SearchResponse:
    """Results of one query with what is needed to explain them."""

    query: str
    model: str
    tokens: TokenCount | None
    results: list[SearchResult]
    elapsed_ms: float = 0.0
    warnings: list[str] = field(default_factory=list)
    like: str | None = None
    not_text: str | None = None
    sentences: list[sentence_scores.Sentence] = field(default_factory=list)
    vectors: str | None = None  # the stored vector set that answered (Library.vector_set)

    @property
    def truncated(self) -> bool:
        """True when the text was longer than the model reads."""
        return bool(self.tokens and self.tokens.truncated)

    def as_dict(self) -> dict[str, Any]:
        """The ``search --json`` shape: query, model, tokens, truncated, results, ..."""
        return {
            "query": self.query,
            "model": self.model,
            "tokens": self.tokens.word_pieces if self.tokens else 0,
            "token_capacity": self.tokens.capacity if self.tokens else None,
            "truncated": self.truncated,
            "like": self.like,
            "not": self.not_text,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "warnings": list(self.warnings),
            "vectors": self.vectors,
            "results": [r.as_dict() for r in self.results],
            **({"sentences": [s.as_dict() for s in self.sentences]} if self.sentences else {}),
        }


class Searcher:
    """Answers queries against one library with one model (thread-safe for reads)."""

    not_weight = 0.5
    """How strongly a ``not`` phrase steers the query away (the ``w`` of app.library.explain)."""

    def __init__(self, lib: Library, model: LoTLIP) -> None:
        self.lib = lib
        self.model = model
        self._standing_sample = sentence_scores.StandingSample()
        self._signatures = duplicates.SignatureCache()

    # -- query vectors -------------------------------------------------------------------

    def text_vector(self, text: str) -> np.ndarray:
        """The normalised embedding of ``text`` (encoded once, then from the query cache)."""
        return sentence_scores.query_cache(self.model).get(text, ()).paragraph

    def image_vector(self, like: str | os.PathLike[str] | Image.Image) -> np.ndarray:
        """The normalised embedding of an example image (stored vector reused when indexed)."""
        if isinstance(like, Image.Image):
            return self.model.embed_images([like])[0]
        path = os.path.abspath(os.fspath(like))
        image_id = self.lib.store.image_id(path)
        if image_id is not None:  # the vector the library holds for it with these weights
            stored = self.lib.vector_set(self.model).name or ""
            found, vectors = self.lib.store.vectors_for([image_id], stored)
            if len(found):
                return sentence_scores.unit(vectors[0])
        image = load_image(path, self.model.config.vision.image_size)
        return self.model.embed_images([image])[0]

    # -- searching -----------------------------------------------------------------------

    def search(
        self,
        text: str | None,
        top: int = 20,
        threshold: float | None = None,
        folders: Sequence[str | os.PathLike[str] | Folder] | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        like: str | os.PathLike[str] | Image.Image | None = None,
        not_text: str | None = None,
        explain: bool = False,
        sentences: Mapping[str, str] | None = None,
        must: Sequence[str] = (),
        group_duplicates: bool = False,
        file_dates: bool = False,
    ) -> SearchResponse:
        """Find the ``top`` images closest to ``text`` and/or ``like`` (see the module doc).

        ``explain``: each result gets ``sentences`` (cosine and standing per sentence) and the
        response the sentence list. ``sentences`` maps sentence text to a state (``normal``,
        ``must``, ``ignore``, ``not``); ``must`` lists sentences (or extra phrases) that
        results must satisfy. ``group_duplicates``: near copies fold into ``duplicates``.
        ``file_dates``: the date bounds also admit photos without an EXIF date by their file
        date.

        Raises ``ValueError`` without text or example image, for a malformed date, or for
        sentence states without a description; ``lotlip.ImageLoadError`` when ``like`` cannot
        be read.
        """
        started = time.perf_counter()
        text = (text or "").strip()
        if not text and like is None:
            raise ValueError("give a description, an example image, or both")
        warnings: list[str] = []
        tokens = None
        parts: list[np.ndarray] = []
        refined = None
        if (sentences or must) and not text:
            raise ValueError("sentence states need a description")
        if text:
            tokens = self.model.tokenizer.count(text)
            if tokens.truncated:
                warnings.append(truncation_warning(tokens))
            if explain or sentences or must:
                refined = self.refine(text, sentences, must, not_text)
                parts.append(refined.vector)
            else:
                parts.append(self.text_vector(text))
        if like is not None:
            parts.append(self.image_vector(like))
        query = sentence_scores.unit(np.mean(parts, axis=0)) if len(parts) > 1 else parts[0]
        avoid = (not_text or "").strip()
        if avoid:
            not_tokens = self.model.tokenizer.count(avoid)
            if not_tokens.truncated:
                warnings.append(truncation_warning(not_tokens, "phrase to steer away from"))
        if refined is not None:
            query = sentence_scores.steer_away(query, refined.avoid, self.not_weight)
        elif avoid:
            query = sentence_scores.unit(query - self.not_weight * self.text_vector(avoid))
        like_text = None if like is None or isinstance(like, Image.Image) else os.fspath(like)
        gated = refined is not None and refined.explainer.gates
        fetch = max(4 * top, 200) if gated or group_duplicates else top
        response = self._run(
            query, fetch, threshold, folders, date_from, date_to, warnings, file_dates=file_dates
        )
        if refined is not None or group_duplicates:
            self._finish(response, refined, top, explain, group_duplicates)
        response.query, response.tokens, response.like, response.not_text = (
            text,
            tokens,
            like_text,
            not_text,
        )
        response.elapsed_ms = (time.perf_counter() - started) * 1000.0
        return response

    def refine(
        self,
        text: str,
        sentences: Mapping[str, str] | None = None,
        must: Sequence[str] = (),
        not_text: str | None = None,
    ) -> sentence_scores.RefinedQuery:
        """``text`` planned by sentence (encoded once per text, then cached; see explain)."""
        stored = self.lib.vector_set(self.model).name or self.model.name
        sample = self._standing_sample.get(self.lib.store, stored)
        not_phrases = [not_text] if not_text and not_text.strip() else []
        return sentence_scores.refine(self.model, sample, text, sentences, must, not_phrases)

    def _finish(
        self,
        response: SearchResponse,
        refined: sentence_scores.RefinedQuery | None,
        top: int,
        explain: bool,
        group: bool,
    ) -> None:
        """Gate by ``must`` sentences, attach sentence scores, fold duplicates; cut to top."""
        results = response.results
        found, vectors = self.lib.store.vectors_for([r.id for r in results], response.vectors or "")
        if len(found) != len(results):  # a row removed meanwhile: keep the ones we have
            present = set(found.tolist())
            results = [r for r in results if r.id in present]
        if refined is not None:
            keep = refined.explainer.gate(vectors)
            results = [r for r, k in zip(results, keep, strict=True) if k]
            vectors = vectors[keep]
            if refined.explainer.gates and not results:
                response.warnings.append("no photo satisfies every 'must' sentence")
            if explain:
                scored = refined.explainer.explain(vectors)
                results = [replace(r, sentences=s) for r, s in zip(results, scored, strict=True)]
            response.sentences = list(refined.sentences)
        threshold = self.duplicate_threshold() if group else None
        if group and threshold is None:
            response.warnings.append(
                f"near copies are not grouped: no duplicate threshold is calibrated for "
                f"{self.model.name} (see bench/bench_duplicates.py)"
            )
        elif group:
            groups = duplicates.group_indices(
                vectors, threshold, self._signature_check(results, vectors, threshold)
            )
            results = [
                replace(results[g[0]], duplicates=tuple(results[i] for i in g[1:])) for g in groups
            ]
        response.results = results[: max(0, int(top))]

    def duplicate_threshold(self) -> float | None:
        """The cosine threshold that groups near copies for this model, ``None``: not grouped
        (see :func:`duplicates.threshold_for`; a text fine-tune takes its base's)."""
        return duplicates.threshold_for(self.lib.store, self.model.name, self._image_base)

    @functools.cached_property
    def _image_base(self) -> str | None:
        """The base whose image vectors the model makes (read from weights files once)."""
        return image_tower_base(self.model)

    def _signature_check(
        self, results: Sequence[SearchResult], vectors: np.ndarray, threshold: float
    ) -> duplicates.Confirm:
        """The picture-signature check behind grouping; only results with a look-alike above
        ``threshold`` are loaded (offline ones are not: they confirm nothing)."""
        wanted = [i for i in duplicates.candidates(vectors, threshold) if not results[i].offline]
        found = self._signatures.get_many([(results[i].path, results[i].size) for i in wanted])
        signatures: list[np.ndarray | None] = [None] * len(results)
        for i, signature in zip(wanted, found, strict=True):
            signatures[i] = signature
        return duplicates.Differences(signatures).confirm()

    def search_vector(
        self,
        vector: np.ndarray,
        top: int = 20,
        threshold: float | None = None,
        folders: Sequence[str | os.PathLike[str] | Folder] | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
    ) -> SearchResponse:
        """Like :meth:`search` for a query embedding made elsewhere (normalised here)."""
        started = time.perf_counter()
        query = sentence_scores.unit(np.asarray(vector, dtype=np.float32).reshape(-1))
        response = self._run(query, top, threshold, folders, date_from, date_to, [])
        response.elapsed_ms = (time.perf_counter() - started) * 1000.0
        return response

    def _run(
        self,
        query: np.ndarray,
        top: int,
        threshold: float | None,
        folders: Sequence[str | os.PathLike[str] | Folder] | None,
        date_from: str | None,
        date_to: str | None,
        warnings: list[str],
        file_dates: bool = False,
    ) -> SearchResponse:
        name = self.model.name
        store = self.lib.store
        vector_set = self.lib.vector_set(self.model)  # the vectors these weights made
        if vector_set.warning:
            warnings.append(vector_set.warning)
        if vector_set.name is None:
            return SearchResponse("", name, None, [], warnings=warnings)
        index = self.lib.ann(vector_set.name, self.model.embed_dim, refresh=True)
        allowed = None
        if folders or date_from or date_to:
            under = [f.path if hasattr(f, "path") else os.fspath(f) for f in folders or ()]
            allowed = store.image_ids(
                model=vector_set.name,
                under=under or None,
                taken_from=normalize_date(date_from) if date_from else None,
                taken_to=normalize_date(date_to, upper=True) if date_to else None,
                file_dates=file_dates,
            )
        ids, scores = index.search(query, max(0, int(top)), filter=allowed)
        keep = [
            (int(i), float(s))
            for i, s in zip(ids.tolist(), scores.tolist(), strict=True)
            if threshold is None or s >= threshold
        ]
        rows = {r.id: r for r in store.rows_for([i for i, _ in keep])}
        # only the folders of these hits are checked (they hold photos): no store query
        folders = {r.folder for r in rows.values() if r.folder}
        offline = {f for f in folders if not root_is_online(f, has_photos=True)}
        results = [
            SearchResult(
                i, r.path, s, r.width, r.height, r.taken_at, r.folder, r.size, r.folder in offline
            )
            for i, s in keep
            if (r := rows.get(i)) is not None
        ]
        away = sum(r.offline for r in results)
        if away:
            warnings.append(
                f"{away} of these results are in folders that are offline (unplugged?): "
                + ", ".join(sorted({r.folder for r in results if r.offline and r.folder}))
            )
        if len(index) == 0 and index.partial_upto is None and not vector_set.warning:
            warnings.append(self._empty_hint())
        return SearchResponse("", name, None, results, warnings=warnings, vectors=vector_set.name)

    def _empty_hint(self) -> str:
        name = self.model.name
        others = {m: n for m, n in self.lib.store.counts().embeddings.items() if m != name and n}
        hint = f"nothing in this library is indexed with {name} yet"
        if others:
            listed = ", ".join(f"{n} with {m}" for m, n in sorted(others.items()))
            return f"{hint} ({listed}): use --model, or run `lotlip-search index` with {name}"
        return f"{hint}: run `lotlip-search index FOLDER` first"
