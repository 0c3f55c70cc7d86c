"""Search: filters, threshold, example images, negative phrases, token counts, and that a
query is only ever compared with vectors of its own model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.library.indexer import Indexer
from app.library.models import load_model
from app.library.search import Searcher, normalize_date
from tests.app.conftest import OTHER_MODEL, draw_folder, draw_image

TEXT = "a red rectangle on the left. a blue ellipse at the top right"


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def exact(library, model, query: np.ndarray) -> list[tuple[int, float]]:
    """(id, score) of every vector of ``model``, best first (the ground truth)."""
    ids, vectors = library.store.embedding_matrix(model.name)
    scores = vectors @ unit(query)
    order = np.argsort(-scores, kind="stable")
    return [(int(ids[i]), float(scores[i])) for i in order]


def dated_jpeg(path: Path, when: str | None, seed: int) -> None:
    image = Image.new("RGB", (40, 30), (seed * 40 % 256, 90, 200 - seed * 30 % 200))
    exif = Image.Exif()
    if when:
        exif.get_ifd(0x8769)[36867] = when
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", exif=exif)


@pytest.fixture
def indexed(library, micro_model, tmp_path: Path):
    """Two root folders (one with a sub-folder) and some dated photos, indexed."""
    a, b = tmp_path / "a", tmp_path / "b"
    draw_folder(a, 6)
    draw_folder(a / "sub", 4, start=6)
    draw_folder(b, 5, start=10)
    dated_jpeg(b / "summer19.jpg", "2019:07:14 16:05:00", 1)
    dated_jpeg(b / "may20.jpg", "2020:05:01 10:00:00", 2)
    dated_jpeg(b / "nye21.jpg", "2021:12:31 23:00:00", 3)
    report = Indexer(library, micro_model, batch_size=8).run([a, b])
    assert report.added == 18
    return a, b


def test_folder_and_date_filters(library, micro_model, indexed) -> None:
    a, b = indexed
    searcher = Searcher(library, micro_model)
    in_sub = searcher.search(TEXT, top=50, folders=[a / "sub"]).results
    assert len(in_sub) == 4 and all(r.path.startswith(str(a / "sub") + "/") for r in in_sub)
    in_b = searcher.search(TEXT, top=50, folders=[str(b)]).results
    assert len(in_b) == 8 and all(r.folder == str(b) for r in in_b)
    both = searcher.search(TEXT, top=50, folders=[a / "sub", b]).results
    assert len(both) == 12

    def names(**dates: str) -> set[str]:
        return {Path(r.path).name for r in searcher.search(TEXT, top=50, **dates).results}

    assert names(date_from="2020", date_to="2020") == {"may20.jpg"}
    assert names(date_from="2020-01-01") == {"may20.jpg", "nye21.jpg"}
    assert names(date_to="2021-12-31") == {"summer19.jpg", "may20.jpg", "nye21.jpg"}
    assert names(date_to="2021-12") == {"summer19.jpg", "may20.jpg", "nye21.jpg"}
    assert names(date_from="2019-07-15", date_to="2021-12-31T22:00") == {"may20.jpg"}
    with pytest.raises(ValueError, match="not a date"):
        searcher.search(TEXT, date_from="last summer")
    assert normalize_date("2020-06", upper=True) == "2020-06-30T23:59:59"  # June's last day
    with pytest.raises(ValueError, match="not a date"):
        searcher.search(TEXT, date_to="2020-06-31")


def test_results_are_exact_and_thresholded(library, micro_model, indexed) -> None:
    searcher = Searcher(library, micro_model)
    response = searcher.search(TEXT, top=5)
    truth = exact(library, micro_model, micro_model.embed_texts([TEXT])[0])
    assert [r.id for r in response.results] == [i for i, _ in truth[:5]]
    assert np.allclose([r.score for r in response.results], [s for _, s in truth[:5]], atol=1e-5)
    cut = (truth[2][1] + truth[3][1]) / 2
    above = searcher.search(TEXT, top=10, threshold=cut).results
    assert [r.id for r in above] == [i for i, _ in truth[:3]]
    assert response.as_dict()["results"][0].keys() >= {"path", "score", "width", "taken_at"}


def test_like_an_image(library, micro_model, indexed, tmp_path: Path) -> None:
    a, _ = indexed
    searcher = Searcher(library, micro_model)
    example = a / "img_0003.jpg"
    best = searcher.search(None, top=3, like=example).results[0]
    assert best.path == str(example) and best.score == pytest.approx(1.0, abs=1e-4)
    outside = tmp_path / "elsewhere" / "copy.jpg"  # not in the library: embedded on the fly
    outside.parent.mkdir()
    shutil.copy(example, outside)
    assert searcher.search("", top=1, like=outside).results[0].path == str(example)
    with Image.open(example) as im:
        assert searcher.search(None, top=1, like=im.copy()).results[0].path == str(example)
    # text and image together: the average of the two query vectors
    store = library.store
    _, stored = store.vectors_for([store.image_id(str(example))], micro_model.name)
    mixed = unit(unit(micro_model.embed_texts([TEXT])[0]) + unit(stored[0]))
    both = searcher.search(TEXT, top=4, like=example).results
    assert [r.id for r in both] == [i for i, _ in exact(library, micro_model, mixed)[:4]]


def test_not_steers_away(library, micro_model, indexed) -> None:
    searcher = Searcher(library, micro_model)
    negative = "a green square"
    response = searcher.search(TEXT, top=6, not_text=negative)
    q = unit(micro_model.embed_texts([TEXT])[0])
    n = unit(micro_model.embed_texts([negative])[0])
    truth = exact(library, micro_model, q - searcher.not_weight * n)
    assert [r.id for r in response.results] == [i for i, _ in truth[:6]]
    assert response.as_dict()["not"] == negative


def test_token_count_and_truncation_warning(library, micro_model, indexed, cli) -> None:
    searcher = Searcher(library, micro_model)
    short = searcher.search("a red rectangle", top=1)
    assert not short.truncated and short.warnings == []
    assert short.tokens.word_pieces == micro_model.tokenizer.count("a red rectangle").word_pieces
    long_text = " ".join(["a small red rectangle sits next to a large blue ellipse."] * 20)
    response = searcher.search(long_text, top=1)
    count = micro_model.tokenizer.count(long_text)
    assert response.truncated and response.tokens == count
    assert count.word_pieces > count.capacity == 124
    expected = f"your description has {count.word_pieces} word pieces; the model reads the first "
    expected += "124"
    assert response.warnings == [expected]
    data = response.as_dict()
    assert (data["tokens"], data["truncated"]) == (count.word_pieces, True)
    status, _, err = cli("search", long_text, "--top", "1", library=library.dir)
    assert status == 0 and expected in err


def test_only_the_query_models_vectors(library, micro_model, tmp_path: Path) -> None:
    shared, other_only = tmp_path / "shared", tmp_path / "other_only"
    draw_folder(shared, 6)
    for i in range(4):
        draw_image(other_only / f"x{i}.png", "png", (30, 30), seed=50 + i)
    other = load_model(OTHER_MODEL, "cpu")
    assert other.embed_dim == micro_model.embed_dim  # same space shape, different weights
    Indexer(library, micro_model).run([shared])
    Indexer(library, other).run([shared, other_only])
    store = library.store
    assert store.embedding_count(micro_model.name) == 6
    assert store.embedding_count(OTHER_MODEL) == 10

    for model, expected_count in ((micro_model, 6), (other, 10)):
        response = Searcher(library, model).search(TEXT, top=20)
        assert response.model == model.name
        assert len(response.results) == expected_count
        truth = exact(library, model, model.embed_texts([TEXT])[0])
        assert [r.id for r in response.results] == [i for i, _ in truth]
        assert np.allclose([r.score for r in response.results], [s for _, s in truth], atol=1e-5)
    # the two models disagree, so comparing across them would have shown up above
    ids, mine = store.embedding_matrix(micro_model.name)
    _, theirs = store.vectors_for(ids, OTHER_MODEL)
    assert not np.allclose(mine, theirs, atol=1e-3)
    only_other = Searcher(library, micro_model).search(TEXT, top=20, folders=[other_only])
    assert only_other.results == []


def test_empty_library_says_what_to_do(library, micro_model) -> None:
    response = Searcher(library, micro_model).search("anything")
    assert response.results == []
    assert "lotlip-search index" in response.warnings[0]
    with pytest.raises(ValueError):
        Searcher(library, micro_model).search("   ")


def _unblock_later(fifo: Path, after: float = 10.0) -> None:
    """Open ``fifo`` for writing after ``after`` s, so that code which blocks on it fails the
    test instead of hanging it."""
    import contextlib
    import os
    import threading
    import time

    def unblock() -> None:
        time.sleep(after)
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    threading.Thread(target=unblock, daemon=True).start()


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs on this system")
def test_example_image_that_is_a_fifo_is_refused_at_once(
    library, micro_model, indexed, tmp_path: Path
) -> None:
    import os
    import time

    from lotlip.transforms import ImageLoadError, load_image

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    _unblock_later(fifo)
    searcher = Searcher(library, micro_model)
    for call in (
        lambda: searcher.image_vector(fifo),
        lambda: searcher.search("a red block", top=3, like=str(fifo)),
        lambda: load_image(str(fifo), 64),
        lambda: load_image(tmp_path, 64),  # a folder
    ):
        started = time.monotonic()
        with pytest.raises(ImageLoadError, match=r"is (a pipe|a folder), not an image file"):
            call()
        assert time.monotonic() - started < 5
    # a regular file still works after the same checks
    assert searcher.image_vector(indexed[0] / "img_0001.jpg").shape == (micro_model.embed_dim,)


def test_a_text_is_encoded_once_however_often_it_is_searched(library, micro_model, indexed) -> None:
    calls: list[int] = []
    handle = micro_model.text.register_forward_hook(lambda *_a: calls.append(1))
    try:
        searcher = Searcher(library, micro_model)
        text = "a tall purple triangle, searched twice without explain"
        first = searcher.search(text, top=5)
        again = searcher.search(text, top=5)
        assert len(calls) == 1 and [r.id for r in again.results] == [r.id for r in first.results]
        example = indexed[0] / "img_0002.jpg"
        for _ in range(2):  # an example image steered away from a phrase
            searcher.search(None, top=3, like=example, not_text="green things, twice")
        assert len(calls) == 2
    finally:
        handle.remove()
