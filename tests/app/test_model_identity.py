"""A model is who the user says it is (plus its weights' fingerprint), never its tensor shapes;
switching models never deletes another model's vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lotlip
from app.cli import EXIT_OK
from app.library.indexer import Indexer
from app.library.search import Searcher
from tests.app.conftest import RANDOM_MODEL, draw_folder
from tests.builders import new_micro_model


@pytest.fixture
def official_shaped_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """A micro model saved in the official .pt layout, whose architecture is made to count as
    the released ``lotlip-vit-b16`` (a real one is ~800 MB): it *looks* official by shape."""
    from lotlip.checkpoints import infer_official_config, read_state_dict
    from lotlip.config import OFFICIAL_CONFIGS, LoTLIPConfig
    from tests.builders import SMALL_OFFICIAL, bert_like_vocab, official_state_dict

    vocab = bert_like_vocab()
    checkpoint = tmp_path / "holiday-finetune.pt"
    torch.save({"state_dict": official_state_dict(**SMALL_OFFICIAL, seed=3)}, checkpoint)
    shape = infer_official_config(read_state_dict(checkpoint))
    fake = LoTLIPConfig.from_dict({**shape.to_dict(), "name": "lotlip-vit-b16"})
    monkeypatch.setitem(OFFICIAL_CONFIGS, "lotlip-vit-b16", fake)
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    monkeypatch.setenv("LOTLIP_MODELS_DIR", str(tmp_path / "models"))
    return checkpoint, tmp_path / "vocab.txt"


def test_import_of_an_official_shaped_checkpoint_keeps_its_own_name(
    cli, official_shaped_checkpoint: tuple[Path, Path]
) -> None:
    checkpoint, vocab = official_shaped_checkpoint
    status, out, err = cli("model", "import", str(checkpoint), "--vocab", str(vocab), model=None)
    assert status == EXIT_OK, err
    assert "installed holiday-finetune" in out

    status, out, _ = cli("model", "list", "--json", model=None)
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["holiday-finetune"]["installed"] is True
    assert rows["lotlip-vit-b16"]["installed"] is False  # not mistaken for the release


def test_switching_weights_under_one_name_keeps_both_vector_sets(
    library, micro_model, tmp_path: Path
) -> None:
    """Two models with the same name (two fine-tune runs, two downloads of ``model.pt``):
    indexing with one never deletes the other's vectors, and switching back re-embeds nothing."""
    folder = tmp_path / "photos"
    draw_folder(folder, 5)
    for seed, where in ((0, "a"), (1, "b")):
        new_micro_model("same-name", micro_model.tokenizer.vocab, seed=seed).save(
            tmp_path / where / "same-name"
        )
    first = lotlip.load(tmp_path / "a" / "same-name", device="cpu")
    second = lotlip.load(tmp_path / "b" / "same-name", device="cpu")
    assert first.name == second.name == "same-name"

    Indexer(library, first, batch_size=4, workers=1).run([folder])
    ids, first_vectors = library.store.embedding_matrix("same-name")
    assert Indexer(library, second, batch_size=4, workers=1).run().embedded == 5

    back = Indexer(library, first, batch_size=4, workers=1).run()

    assert back.embedded == 0  # the first model's vectors were kept, not re-made
    again_ids, again = library.store.embedding_matrix("same-name")
    assert np.array_equal(ids, again_ids) and np.array_equal(first_vectors, again)
    response = Searcher(library, first).search("a red shape", top=5)
    assert len(response.results) == 5 and not response.warnings
    # and the other way round: the second model's vectors come back as they were
    assert Indexer(library, second, batch_size=4, workers=1).run().embedded == 0
    assert library.store.embedding_count(RANDOM_MODEL) == 0  # nothing else was touched


def test_rename_model_moves_vectors_and_outdates_both_generations(
    library, micro_model, tmp_path: Path
) -> None:
    draw_folder(tmp_path / "photos", 3)
    Indexer(library, micro_model, batch_size=4, workers=1).run([tmp_path / "photos"])
    store = library.store
    ids, vectors = store.embedding_matrix(RANDOM_MODEL)
    before = store.generation(RANDOM_MODEL)

    store.rename_model(RANDOM_MODEL, "kept@abc")

    assert store.embedding_count(RANDOM_MODEL) == 0 and store.get_model(RANDOM_MODEL) is None
    moved_ids, moved = store.embedding_matrix("kept@abc")
    assert np.array_equal(ids, moved_ids) and np.array_equal(vectors, moved)
    assert store.generation(RANDOM_MODEL) > before and store.generation("kept@abc") > before
    with pytest.raises(ValueError):
        store.rename_model("kept@abc", "kept@abc")  # the new name must be free


def _tensor_outside_sampled_blocks(weights: Path) -> str:
    """A tensor whose bytes lie outside the three 64 KiB blocks (start, middle, end) that the
    library's sampled weights-file hash reads."""
    block = 64 * 1024
    raw = weights.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    size, middle = len(raw), (len(raw) - block) // 2
    windows = [(0, block), (middle, middle + block), (size - block, size)]
    for key, info in header.items():
        if key == "__metadata__":
            continue
        start, end = (8 + length + offset for offset in info["data_offsets"])
        if all(end <= lo or start >= hi for lo, hi in windows):
            return key
    raise AssertionError("the model file is too small for this test")


def test_weights_that_differ_anywhere_are_other_weights(library, micro_model, tmp_path):
    """The fingerprint covers every byte of the weights, not a sample of the file."""
    from lotlip.config import small_config
    from lotlip.model import LoTLIP
    from lotlip.tokenizer import LoTLIPTokenizer

    vocab = micro_model.tokenizer.vocab
    config = small_config("same-name", vocab_size=len(vocab), width=64, layers=2, heads=2,
                          image_size=32, patch_size=8)  # fmt: skip
    torch.manual_seed(0)
    first = LoTLIP(config, LoTLIPTokenizer(vocab)).eval()
    first.save(tmp_path / "a" / "same-name")
    key = _tensor_outside_sampled_blocks(tmp_path / "a" / "same-name" / "model.safetensors")
    with torch.no_grad():
        first.state_dict()[key].add_(0.5)  # a change only a whole-file fingerprint sees
    first.save(tmp_path / "b" / "same-name")
    folder = tmp_path / "photos"
    draw_folder(folder, 4)

    Indexer(library, lotlip.load(tmp_path / "a" / "same-name", device="cpu")).run([folder])
    report = Indexer(library, lotlip.load(tmp_path / "b" / "same-name", device="cpu")).run()

    assert report.embedded == 4


def _two_weights(micro_model, tmp_path: Path):
    """Two models named ``same-name`` with different weights (a re-run fine-tune)."""
    for seed, where in ((0, "a"), (1, "b")):
        new_micro_model("same-name", micro_model.tokenizer.vocab, seed=seed).save(
            tmp_path / where / "same-name"
        )
    return tuple(lotlip.load(tmp_path / w / "same-name", device="cpu") for w in ("a", "b"))


def _exact_ids(library, vector_set: str, query: np.ndarray, top: int) -> list[int]:
    ids, vectors = library.store.embedding_matrix(vector_set)
    return ids[np.argsort(-(vectors @ query))][:top].tolist()


def test_switching_back_searches_the_vectors_kept_for_those_weights(
    library, micro_model, tmp_path: Path
) -> None:
    """Right after switching back to earlier weights (no index run yet), search answers with
    the vectors those weights made, kept as ``name@fingerprint``, and asks for no index run."""
    folder = tmp_path / "photos"
    draw_folder(folder, 5)
    first, second = _two_weights(micro_model, tmp_path)
    Indexer(library, first, batch_size=4, workers=1).run([folder])
    Indexer(library, second, batch_size=4, workers=1).run()
    kept = next(m.name for m in library.store.models() if m.name.startswith("same-name@"))

    response = Searcher(library, first).search("a red shape", top=5)

    text = first.embed_texts(["a red shape"])[0]
    assert [r.id for r in response.results] == _exact_ids(library, kept, text, 5)
    assert not any("index" in w for w in response.warnings), response.warnings
    assert response.as_dict()["vectors"] == kept


def test_new_weights_never_answer_with_the_old_weights_vectors(
    cli, micro_model, tmp_path: Path
) -> None:
    """Right after the weights changed, nothing these weights made exists: search says so
    (how many photos the new weights embedded, that the old vectors are kept) instead of
    comparing the new weights' query with the old weights' vectors."""
    folder = tmp_path / "photos"
    draw_folder(folder, 4)
    _two_weights(micro_model, tmp_path)
    first, second = (str(tmp_path / w / "same-name") for w in ("a", "b"))
    status, _, err = cli("index", str(folder), model=first)
    assert status == EXIT_OK, err

    status, out, err = cli("search", "a red shape", "--json", model=second)

    assert status == EXIT_OK, err
    data = json.loads(out)
    assert data["results"] == [] and data["vectors"] is None
    (warning,) = [w for w in data["warnings"] if "same-name" in w]
    assert "embedded 0 of" in warning and "4 vectors" in warning and "kept" in warning
    status, out, err = cli("search", "a red shape", model=second)
    assert "embedded 0 of" in err and "no matching photos" in err


def test_partly_indexed_new_weights_say_how_far_they_got(library, micro_model, tmp_path: Path):
    """New weights that embedded part of the library answer from their own vectors and say how
    many photos they have, and that the previous weights' vectors are kept."""
    folder = tmp_path / "photos"
    draw_folder(folder / "a", 2)
    draw_folder(folder / "b", 3, start=10)
    first, second = _two_weights(micro_model, tmp_path)
    Indexer(library, first, batch_size=4, workers=1).run([folder])
    Indexer(library, second, batch_size=4, workers=1).run([folder / "a"])
    kept = next(m.name for m in library.store.models() if m.name.startswith("same-name@"))

    response = Searcher(library, second).search("a red shape", top=5)

    text = second.embed_texts(["a red shape"])[0]
    assert [r.id for r in response.results] == _exact_ids(library, "same-name", text, 5)
    assert len(response.results) == 2 and response.vectors == "same-name"
    (warning,) = response.warnings
    assert "embedded 2 of the library's 5 photos" in warning and f"5 vectors of {kept}" in warning
