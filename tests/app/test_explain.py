"""Sentence scores, standings and refinement: the scoring functions on hand-computed cases, then
through a real library and ``Searcher``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from app.library import explain
from app.library.explain import (
    IGNORE,
    MUST,
    NORMAL,
    NOT,
    QueryCache,
    Sentence,
    avoided,
    must_gate,
    next_state,
    plan_sentences,
    standings,
    steer_away,
    wanted,
)
from app.library.indexer import Indexer
from app.library.search import Searcher
from lotlip.tokenizer import split_sentences
from tests.app.conftest import draw_folder

PARAGRAPH = "A red rectangle on the left. A blue ellipse at the top right! Is it sunny? yes"

# --------------------------------------------------------------------------- sentences


def test_split_sentences_follows_the_tokenizer_boundaries() -> None:
    assert split_sentences(PARAGRAPH) == [
        "A red rectangle on the left",
        "A blue ellipse at the top right!",
        "Is it sunny?",
        "yes",
    ]
    assert split_sentences("one line\nanother.  Third 3.5 m tall...") == [
        "one line",
        "another",
        "Third 3.5 m tall",
    ]
    assert split_sentences("  ") == [] and split_sentences("...") == []


def test_plan_sentences_states_and_extras() -> None:
    plan = plan_sentences(
        "Two kids on a pier. A red boat on the left.",
        states={"a red boat on the LEFT.": IGNORE},
        must=["a dog"],
        not_phrases=["two kids on a pier"],
    )
    assert plan == [
        Sentence("Two kids on a pier", NOT),
        Sentence("A red boat on the left", IGNORE),
        Sentence("a dog", MUST, extra=True),
    ]
    with pytest.raises(ValueError, match="not a sentence"):
        plan_sentences("a cat", states={"a dog": IGNORE})
    with pytest.raises(ValueError, match="unknown sentence state"):
        plan_sentences("a cat", states={"a cat": "maybe"})
    assert [next_state(s) for s in (NORMAL, MUST, IGNORE, NOT)] == [MUST, IGNORE, NOT, NORMAL]


# --------------------------------------------------------------------------- scoring


def test_standing_is_the_share_of_the_sample_beaten_ties_half() -> None:
    sample = np.array([[0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 1.0, 1.0]])
    # photo 1: 0.25 beats 2 of 4 (0.5); 0.0 ties two zeros -> (0 + 2/2) / 4 = 0.25
    # photo 2: 0.3 beats 2 and ties 1 -> 2.5 / 4; 1.0 beats 2, ties 2 -> 3 / 4
    got = standings(np.array([[0.25, 0.0], [0.3, 1.0], [0.05, 2.0]]), sample)
    assert got == pytest.approx(np.array([[0.5, 0.25], [0.625, 0.75], [0.0, 1.0]]))
    assert standings(np.array([[0.3]]), np.zeros((1, 0))).tolist() == [[0.5]]


def combine(p: np.ndarray, sentences: list[Sentence], s: np.ndarray, w: float) -> np.ndarray:
    """The refined query ``u`` as a search puts it together from explain's parts."""
    return steer_away(wanted(p, sentences, s), avoided(sentences, s), w)


def test_combine_by_hand() -> None:
    p = np.array([1.0, 0.0])
    s = np.array([[1.0, 0.0], [0.0, 1.0]])
    normal = [Sentence("a"), Sentence("b")]
    assert combine(p, normal, s, 0.5) == pytest.approx([1.0, 0.0])  # all normal: the paragraph
    # b ignored: unit(p - s_b/2) = (2, -1)/sqrt(5); plus unit(s_a) = (1, 0)
    ignored = [Sentence("a"), Sentence("b", IGNORE)]
    x = np.array([2 / math.sqrt(5) + 1, -1 / math.sqrt(5)])
    assert combine(p, ignored, s, 0.5) == pytest.approx(x / np.linalg.norm(x), abs=1e-6)
    # an extra "not" phrase is the classic --not: unit(p - 0.5 s)
    extra_not = [Sentence("a"), Sentence("b", NOT, extra=True)]
    assert combine(p, extra_not, s, 0.5) == pytest.approx(
        np.array([1.0, -0.5]) / math.sqrt(1.25), abs=1e-6
    )
    # must does not move the query vector
    assert combine(p, [Sentence("a", MUST), Sentence("b")], s, 0.5) == pytest.approx([1.0, 0.0])


def test_must_gates_by_the_lowest_must_standing() -> None:
    plan = [Sentence("a", MUST), Sentence("b"), Sentence("c", MUST)]
    standing = np.array([[0.9, 0.0, 0.49], [0.5, 0.1, 0.95], [0.2, 1.0, 1.0]])
    assert must_gate(standing, plan).tolist() == [False, True, False]
    assert must_gate(standing, [Sentence("a"), Sentence("b"), Sentence("c")]).all()


def test_query_cache_encodes_once_per_text(micro_model) -> None:
    cache = QueryCache(micro_model)
    texts = split_sentences(PARAGRAPH)
    first = cache.get(PARAGRAPH, texts)
    again = cache.get(PARAGRAPH, texts)
    assert cache.encoded == 1 and again is first
    alone = micro_model.embed_texts([PARAGRAPH, texts[1]])
    assert first.paragraph == pytest.approx(alone[0], abs=1e-5)
    assert first.of([texts[1]])[0] == pytest.approx(alone[1], abs=1e-5)


# --------------------------------------------------------------------------- searching


@pytest.fixture
def indexed(library, micro_model, tmp_path: Path) -> Searcher:
    draw_folder(tmp_path / "photos", 12)
    Indexer(library, micro_model, batch_size=8).run([tmp_path / "photos"])
    return Searcher(library, micro_model)


def test_explain_scores_every_sentence_and_keeps_the_ranking(indexed, micro_model) -> None:
    plain = indexed.search(PARAGRAPH, top=12)
    explained = indexed.search(PARAGRAPH, top=12, explain=True)
    assert [r.id for r in explained.results] == [r.id for r in plain.results]
    assert [s.text for s in explained.sentences] == split_sentences(PARAGRAPH)
    ids, vectors = indexed.lib.store.embedding_matrix(micro_model.name)
    sentence_vectors = micro_model.embed_texts(split_sentences(PARAGRAPH))
    every = vectors @ sentence_vectors.T  # the sample is the whole (small) library
    for result in explained.results:
        row = every[list(ids).index(result.id)]
        assert [s.score for s in result.sentences] == pytest.approx(row, abs=1e-4)
        below = [np.sum(every[:, j] < row[j] - 1e-6) for j in range(4)]
        ties = [np.sum(np.abs(every[:, j] - row[j]) <= 1e-6) for j in range(4)]  # itself, or more
        expected = [(below[j] + 0.5 * ties[j]) / len(ids) for j in range(4)]
        assert [s.standing for s in result.sentences] == pytest.approx(expected, abs=1e-6)
    data = explained.as_dict()
    assert [s["text"] for s in data["sentences"]] == split_sentences(PARAGRAPH)
    assert set(data["results"][0]["sentences"][0]) == {"text", "score", "standing", "state"}
    assert "sentences" not in plain.as_dict()["results"][0]


def test_refining_reuses_the_encoding_and_must_gates(indexed, micro_model) -> None:
    indexed.search(PARAGRAPH, top=12, explain=True)
    cache = explain.query_cache(micro_model)
    before = cache.encoded
    states = {"Is it sunny?": IGNORE, "yes": NOT}
    refined = indexed.search(PARAGRAPH, top=12, explain=True, sentences=states)
    gated = indexed.search(PARAGRAPH, top=12, explain=True, must=["A red rectangle on the left"])
    assert cache.encoded == before  # no new text-encoder call
    assert [s.state for s in refined.sentences] == [NORMAL, NORMAL, IGNORE, NOT]
    scores = [r.score for r in refined.results]
    assert scores == sorted(scores, reverse=True)
    assert 0 < len(gated.results) < 12
    assert all(r.sentences[0].standing >= explain.MUST_FLOOR for r in gated.results)
    with pytest.raises(ValueError, match="need a description"):
        indexed.search(None, like=indexed.lib.store.rows_for([1])[0].path, must=["a cat"])


def test_explain_on_an_empty_library(library, micro_model) -> None:
    response = Searcher(library, micro_model).search(
        PARAGRAPH, explain=True, must=["yes"], group_duplicates=True
    )
    assert response.results == [] and len(response.sentences) == 4


def test_explain_with_an_example_image_and_a_not_phrase(indexed) -> None:
    example = indexed.lib.store.rows_for([3])[0].path
    plain = indexed.search(PARAGRAPH, top=12, like=example, not_text="a green frog")
    explained = indexed.search(PARAGRAPH, top=12, like=example, not_text="a green frog",
                               explain=True)  # fmt: skip
    assert [r.id for r in explained.results] == [r.id for r in plain.results]
    assert [r.score for r in explained.results] == pytest.approx(
        [r.score for r in plain.results], abs=1e-4
    )
    assert [(s.text, s.state, s.extra) for s in explained.sentences][-1] == (
        "a green frog",
        NOT,
        True,
    )
    assert all(len(r.sentences) == 5 for r in explained.results)


def test_standing_sample_is_redrawn_only_for_real_changes(library, micro_model, tmp_path) -> None:
    now = [0.0]
    sample = explain.StandingSample(clock=lambda: now[0])
    name = micro_model.name
    draw_folder(tmp_path / "a", 40)
    Indexer(library, micro_model).run([tmp_path / "a"])
    first = sample.get(library.store, name)
    assert len(first) == 40 and sample.get(library.store, name) is first
    draw_folder(tmp_path / "b", 1, start=40)  # 2.5 % more: the old sample still serves
    Indexer(library, micro_model).run([tmp_path / "b"])
    assert sample.get(library.store, name) is first
    now[0] = 31.0  # ... until it is old
    draw_folder(tmp_path / "c", 1, start=41)
    Indexer(library, micro_model).run([tmp_path / "c"])
    assert len(sample.get(library.store, name)) == 42
    draw_folder(tmp_path / "d", 5, start=42)  # 12 % more: redrawn at once
    Indexer(library, micro_model).run([tmp_path / "d"])
    assert len(sample.get(library.store, name)) == 47


def test_a_query_cache_goes_when_its_model_goes() -> None:
    import gc
    import weakref

    from tests.builders import bert_like_vocab, new_micro_model

    model = new_micro_model("gone-model", bert_like_vocab())
    explain.query_cache(model).get("a red star. a blue ellipse", ["a red star"])
    dead = weakref.ref(model)
    del model
    gc.collect()
    assert dead() is None  # the per-model cache let its model (and its weights) go
