"""Paragraph-aware scoring: which sentences of a description a photo satisfies, and refining a
search by sentence without re-encoding anything.

A description is split with :func:`lotlip.tokenizer.split_sentences` (the tokenizer's ``". "``
plus ``"! "``, ``"? "`` and line breaks). The paragraph and all its sentences (plus any extra
``must``/``not`` phrases) are encoded in **one** batch and cached per model and text
(:class:`QueryCache`), so explaining costs one text-encoder call and re-scoring after a change
of sentence states costs none.

**Score and standing.** For sentence vector ``s`` and photo vector ``v`` (both unit length) the
score is the cosine ``s·v``. Its *standing* is the fraction of the library that the photo beats
for that sentence, estimated on a fixed sample ``c_1..c_n`` of stored photo vectors
(:func:`sample_vectors`, at most :data:`STANDING_SAMPLE`, chosen with a fixed seed)::

    standing(x) = (#{j : s·c_j < x} + ½·#{j : s·c_j = x}) / n          (0 = worst, 1 = best)

(cosines within :data:`TIE` of each other count as equal, so a photo that is part of the
sample ties with itself). A z-score, the raw cosine, de-biased sentence vectors and other
sentence encodings found the false sentence no more often (``bench/explain_standings.py``).

**Sentence states** (:data:`STATES`): ``normal``, ``must``, ``ignore``, ``not``. With ``n``
sentences in the paragraph, paragraph vector ``p`` and sentence vectors ``s_i``::

    D = ignore ∪ not,  K = normal ∪ must              (sentences of the paragraph)
    a = p                                             when D is empty, else
    a = unit(unit(p − (1/n)·Σ_{i∈D} s_i) + unit(Σ_{i∈K} s_i))
    u = unit(a − w·Σ_{i ∈ not} s_i)                  steer away (w = the searcher's not_weight)
    score(v) = u·v

The first term of ``a`` takes the dropped sentences' share out of the paragraph vector (the
paragraph cannot be re-encoded without them); the second restates what is still wanted from
the kept sentences' own vectors, which bench/bench_explain.py found to recover more of the
rank lost to a false sentence than either term alone.

Extra phrases that are not sentences of the paragraph have no share to drop: an extra ``not``
phrase gives exactly the classic ``--not`` query ``unit(p − w·s)``. With an example image as
well, ``a`` is averaged with the image vector first and the ``not`` part subtracted after, as
the classic ``--not`` does. With every sentence
``normal``, ``u = p`` and the ranking equals a plain search. ``must`` sentences do not change
``u``: they **gate** the ranking. A photo is kept only when its lowest standing over the
``must`` sentences is at least :data:`MUST_FLOOR` (better than half of the library for every
``must`` sentence); the kept photos keep their order by ``score``.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lotlip.tokenizer import split_sentences

if TYPE_CHECKING:
    from app.library.store import Store
    from lotlip.model import LoTLIP

NORMAL, MUST, IGNORE, NOT = "normal", "must", "ignore", "not"
STATES: tuple[str, ...] = (NORMAL, MUST, IGNORE, NOT)
MUST_FLOOR = 0.5
RESAMPLE_CHANGE = 0.05  # redraw the standing sample when the library grew/shrank this much
RESAMPLE_AFTER_S = 30.0  # ... or when it is this old and the library changed at all
TIE = 1e-6  # cosines this close count as equal (matrix products round differently)
STANDING_SAMPLE = 2048
SAMPLE_SEED = 0
QUERY_CACHE_SIZE = 64
MARKS = {True: "✓", False: "✗"}
MARK_FLOOR = 0.5  # standing at or above which a sentence is shown as satisfied


def next_state(state: str) -> str:
    """The state after ``state`` in the GUI's click cycle normal → must → ignore → not → normal."""
    return STATES[(STATES.index(state) + 1) % len(STATES)]


def sentence_key(text: str) -> str:
    """How sentences are matched (case, surrounding space and final dots do not matter)."""
    return " ".join(text.lower().split()).rstrip(".").rstrip()


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to unit length (a zero vector as it is)."""
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32). Photo vectors and the standing sample both go
    through here, so a photo in the sample ties exactly with itself."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


# --------------------------------------------------------------------------- sentences


@dataclass(frozen=True)
class Sentence:
    """One sentence of a query and its state; ``extra`` when it is not part of the paragraph."""

    text: str
    state: str = NORMAL
    extra: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: text, state, extra."""
        return {"text": self.text, "state": self.state, "extra": self.extra}


def plan_sentences(
    paragraph: str,
    states: Mapping[str, str] | None = None,
    must: Sequence[str] = (),
    not_phrases: Sequence[str] = (),
) -> list[Sentence]:
    """The paragraph's sentences with their states, then extra ``must``/``not`` phrases.

    ``states`` maps sentence text (matched by :func:`sentence_key`) to a state; ``must`` and
    ``not_phrases`` are shorthands for ``must``/``not`` states. A phrase that is not a sentence
    of the paragraph is appended as an extra sentence (only ``must`` and ``not`` make sense
    there; ``normal``/``ignore`` for an unknown sentence raise ``ValueError``, as does an
    unknown state).
    """
    wanted: dict[str, tuple[str, str]] = {}
    for text, state in (states or {}).items():
        if state not in STATES:
            raise ValueError(f"unknown sentence state {state!r} (use one of {', '.join(STATES)})")
        wanted[sentence_key(text)] = (text, state)
    for phrases, state in ((must, MUST), (not_phrases, NOT)):
        for text in phrases:
            if text and text.strip():
                wanted[sentence_key(text)] = (text.strip(), state)
    sentences = []
    for text in split_sentences(paragraph):
        key = sentence_key(text)
        sentences.append(Sentence(text, wanted[key][1] if key in wanted else NORMAL))
    in_paragraph = {sentence_key(s.text) for s in sentences}
    for key, (text, state) in wanted.items():
        if key in in_paragraph or not key:
            continue
        if state in (NORMAL, IGNORE):
            raise ValueError(f"{text!r} is not a sentence of the description")
        sentences.append(Sentence(text.strip().rstrip("."), state, extra=True))
    return sentences


# --------------------------------------------------------------------------- query vectors


@dataclass(frozen=True)
class QueryVectors:
    """The paragraph's vector and one vector per sentence text, all unit length."""

    paragraph: np.ndarray  # [D]
    texts: tuple[str, ...]
    vectors: np.ndarray  # [len(texts), D]

    def of(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors of ``texts`` (each must be among :attr:`texts`), [len(texts), D]."""
        index = {t: i for i, t in enumerate(self.texts)}
        return self.vectors[[index[t] for t in texts]]


class QueryCache:
    """A small LRU of encoded queries for one model (thread-safe)."""

    def __init__(self, model: LoTLIP, size: int = QUERY_CACHE_SIZE) -> None:
        self._model = weakref.ref(model)  # held weakly: the cache must not keep its model alive
        self.size = size
        self.encoded = 0  # text-encoder calls made (tests check the cache really saves them)
        self._lock = threading.Lock()
        self._cached = functools.lru_cache(maxsize=size)(self._encode)

    def get(self, paragraph: str, texts: Sequence[str]) -> QueryVectors:
        """Vectors of ``paragraph`` and ``texts``, encoded together in one batch when new."""
        return self._cached(paragraph, tuple(dict.fromkeys(texts)))

    def _encode(self, paragraph: str, texts: tuple[str, ...]) -> QueryVectors:
        model = self._model()
        if model is None:
            raise ReferenceError("the model of this query cache is gone")
        vectors = np.asarray(model.embed_texts([paragraph, *texts]), dtype=np.float32)
        with self._lock:
            self.encoded += 1
        return QueryVectors(vectors[0], texts, vectors[1:])


_CACHES: weakref.WeakKeyDictionary[Any, QueryCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def query_cache(model: LoTLIP) -> QueryCache:
    """The query cache of ``model`` (one per loaded model; it goes when the model goes)."""
    with _CACHES_LOCK:
        cache = _CACHES.get(model)
        if cache is None:
            cache = _CACHES[model] = QueryCache(model)
        return cache


# --------------------------------------------------------------------------- scoring


def wanted(paragraph: np.ndarray, sentences: Sequence[Sentence], vectors: np.ndarray) -> np.ndarray:
    """The vector ``a`` of the module doc: the paragraph without its dropped sentences."""
    in_paragraph = sum(1 for s in sentences if not s.extra)
    query = np.asarray(paragraph, dtype=np.float64)
    dropped = [i for i, s in enumerate(sentences) if not s.extra and s.state in (IGNORE, NOT)]
    kept = [i for i, s in enumerate(sentences) if not s.extra and s.state in (NORMAL, MUST)]
    if dropped and in_paragraph:
        query = unit(query - vectors[dropped].sum(axis=0) / in_paragraph)
        if kept:
            query = unit(query + unit(vectors[kept].sum(axis=0)))
    return query.astype(np.float32)


def avoided(sentences: Sequence[Sentence], vectors: np.ndarray) -> np.ndarray | None:
    """``Σ s_i`` over the ``not`` sentences and phrases (None when there are none)."""
    avoid = [i for i, s in enumerate(sentences) if s.state == NOT]
    return vectors[avoid].sum(axis=0).astype(np.float32) if avoid else None


def steer_away(query: np.ndarray, avoid: np.ndarray | None, not_weight: float) -> np.ndarray:
    """``unit(query − w·avoid)`` (``query`` itself without anything to avoid)."""
    if avoid is None:
        return np.asarray(query, dtype=np.float32)
    return unit(np.asarray(query, np.float64) - not_weight * avoid).astype(np.float32)


def standings(scores: np.ndarray, sample_scores: np.ndarray) -> np.ndarray:
    """Standing of each of ``scores`` [..., k] among ``sample_scores`` [k, n] (see module doc).

    Column ``j`` of ``scores`` is ranked against row ``j`` of ``sample_scores``. An empty
    sample gives 0.5 (no information).
    """
    scores = np.asarray(scores, dtype=np.float64)
    sample = np.sort(np.asarray(sample_scores, dtype=np.float64), axis=-1)
    if sample.shape[-1] == 0:
        return np.full(scores.shape, 0.5)
    out = np.empty(scores.shape)
    flat, cols = scores.reshape(-1, scores.shape[-1]), out.reshape(-1, scores.shape[-1])
    for j in range(scores.shape[-1]):
        below = np.searchsorted(sample[j], flat[:, j] - TIE, side="left")
        not_above = np.searchsorted(sample[j], flat[:, j] + TIE, side="right")
        cols[:, j] = (below + not_above) / (2.0 * sample.shape[-1])
    return out


def must_gate(standing: np.ndarray, sentences: Sequence[Sentence]) -> np.ndarray:
    """Per photo (rows of ``standing`` [m, k]): True when every ``must`` standing ≥ the floor."""
    musts = [i for i, s in enumerate(sentences) if s.state == MUST]
    if not musts:
        return np.ones(standing.shape[0], dtype=bool)
    return standing[:, musts].min(axis=1) >= MUST_FLOOR


def sample_vectors(store: Store, model: str, size: int = STANDING_SAMPLE) -> np.ndarray:
    """A fixed sample (seeded, so the same library gives the same sample) of stored vectors."""
    ids = store.embedding_ids(model)
    if len(ids) > size:
        ids = np.sort(np.random.default_rng(SAMPLE_SEED).choice(ids, size, replace=False))
    return unit_rows(store.vectors_for(ids, model)[1])


class StandingSample:
    """The sample of a model's stored vectors, re-drawn when the store changed (its generation
    moved) and either the number of vectors moved by more than :data:`RESAMPLE_CHANGE` or the
    sample is older than :data:`RESAMPLE_AFTER_S`. Indexing changes the store every batch, and
    a sample of a slightly older library estimates standings just as well."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._key: tuple[str, int] | None = None
        self._count = 0
        self._drawn = 0.0
        self._vectors = np.zeros((0, 0), np.float32)
        self._lock = threading.Lock()

    def get(self, store: Store, model: str) -> np.ndarray:
        """The sample vectors [n, D] for ``model``."""
        key = (model, store.generation(model))
        with self._lock:
            if key == self._key:
                return self._vectors
            count = store.embedding_count(model)
            moved = abs(count - self._count) > RESAMPLE_CHANGE * self._count
            old = self._clock() - self._drawn > RESAMPLE_AFTER_S
            if self._key is None or self._key[0] != model or moved or old:
                self._vectors = sample_vectors(store, model)
                self._count, self._drawn = count, self._clock()
            self._key = key
            return self._vectors


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SentenceScore:
    """How one photo does on one sentence: cosine ``score`` and ``standing`` in [0, 1]."""

    text: str
    score: float
    standing: float
    state: str = NORMAL

    @property
    def satisfied(self) -> bool:
        """True when the photo beats at least :data:`MARK_FLOOR` of the library on it."""
        return self.standing >= MARK_FLOOR

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: text, score, standing, state."""
        return {
            "text": self.text,
            "score": round(float(self.score), 6),
            "standing": round(float(self.standing), 4),
            "state": self.state,
        }


def marks(scores: Sequence[SentenceScore]) -> str:
    """A compact line of marks, one per sentence, e.g. ``"✓✓✗·"`` (``·``: ignored)."""
    return "".join("·" if s.state == IGNORE else MARKS[s.satisfied] for s in scores)


@dataclass(frozen=True)
class Explainer:
    """Everything needed to score photos by sentence for one query (no encoder calls)."""

    sentences: tuple[Sentence, ...]
    vectors: np.ndarray  # [k, D], one per sentence
    sample_scores: np.ndarray  # [k, n]: each sentence against the standing sample

    @classmethod
    def build(
        cls, sentences: Sequence[Sentence], query: QueryVectors, sample: np.ndarray
    ) -> Explainer:
        """Score the sentences of ``query`` against the standing ``sample`` [n, D]."""
        vectors = query.of([s.text for s in sentences])
        sample_scores = vectors @ sample.T if len(sample) else np.zeros((len(sentences), 0))
        return cls(tuple(sentences), vectors, sample_scores)

    def score(self, image_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(cosines [m, k], standings [m, k])`` for photo vectors [m, D]."""
        image_vectors = np.asarray(image_vectors, np.float32)
        if image_vectors.size == 0:  # no photos (the store gives shape (0, 0) then)
            empty = np.zeros((0, len(self.sentences)))
            return empty, empty
        cosines = unit_rows(image_vectors) @ self.vectors.T
        return cosines, standings(cosines, self.sample_scores)

    def explain(self, image_vectors: np.ndarray) -> list[tuple[SentenceScore, ...]]:
        """Per photo, one :class:`SentenceScore` per sentence."""
        cosines, standing = self.score(image_vectors)
        return [
            tuple(
                SentenceScore(s.text, float(c[j]), float(r[j]), s.state)
                for j, s in enumerate(self.sentences)
            )
            for c, r in zip(cosines, standing, strict=True)
        ]

    @property
    def gates(self) -> bool:
        """True when some sentence is ``must`` (results then need gating)."""
        return any(s.state == MUST for s in self.sentences)

    def gate(self, image_vectors: np.ndarray) -> np.ndarray:
        """Which photos pass the ``must`` gate (all True without ``must`` sentences)."""
        if not self.gates:
            return np.ones(len(image_vectors), dtype=bool)
        return must_gate(self.score(image_vectors)[1], self.sentences)


@dataclass(frozen=True)
class RefinedQuery:
    """A description planned by sentence: the query vector ``u`` and its :class:`Explainer`."""

    sentences: tuple[Sentence, ...]
    vector: np.ndarray  # a: what is wanted (before steering away from "not" sentences)
    avoid: np.ndarray | None  # Σ of the "not" sentence vectors
    explainer: Explainer


def refine(
    model: LoTLIP,
    sample: np.ndarray,
    paragraph: str,
    states: Mapping[str, str] | None = None,
    must: Sequence[str] = (),
    not_phrases: Sequence[str] = (),
) -> RefinedQuery:
    """Plan ``paragraph`` by sentence and build its query vector (cached encodings only).

    Raises ``ValueError`` for an unknown state or a ``normal``/``ignore`` sentence that is not
    part of the paragraph.
    """
    sentences = plan_sentences(paragraph, states, must, not_phrases)
    query = query_cache(model).get(paragraph, [s.text for s in sentences])
    vectors = query.of([s.text for s in sentences])
    return RefinedQuery(
        tuple(sentences),
        wanted(query.paragraph, sentences, vectors),
        avoided(sentences, vectors),
        Explainer.build(sentences, query, sample),
    )
