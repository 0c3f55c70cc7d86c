"""A text-mode fine-tune reuses its base model's image vectors: no re-indexing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import lotlip
from app.library.indexer import Indexer
from app.library.models import load_model
from tests.app.conftest import RANDOM_MODEL, draw_folder
from tests.builders import new_micro_model


def _derived_model(base, models_dir: Path, name: str, *, change_image_tower: bool):
    """A saved copy of ``base`` with new text weights, recorded as a text-mode fine-tune."""
    derived = new_micro_model(name, base.tokenizer.vocab, seed=0)
    # the saved weights themselves (``base`` may run at bf16): a bit-identical image tower
    derived.load_state_dict(lotlip.load(base.metadata["path"], precision="fp32").state_dict())
    with torch.no_grad():
        derived.text.proj.weight.add_(0.05)
        if change_image_tower:
            derived.visual.vit.layernorm.bias.add_(0.3)
    meta = {"kind": "fine-tuned", "mode": "text", "base_model": base.name}
    derived.save(models_dir / name, metadata=meta)
    return load_model(name, "cpu")


def _index_then_derive(library, base, models_dir, tmp_path, photos: int, new_image_tower: bool):
    """Index ``photos`` photos with ``base``, then run the indexer with a model derived from it
    (a text fine-tune, or one whose image tower changed too); the derived model and report."""
    folder = tmp_path / "photos"
    draw_folder(folder, photos)
    Indexer(library, base, batch_size=4, workers=2).run([folder])
    name = "micro-impostor" if new_image_tower else "micro-tuned"
    derived = _derived_model(base, models_dir, name, change_image_tower=new_image_tower)
    return derived, Indexer(library, derived, batch_size=4, workers=2).run()


def test_text_finetune_takes_over_base_vectors(library, micro_model, models_dir, tmp_path):
    tuned, report = _index_then_derive(library, micro_model, models_dir, tmp_path, 9, False)

    assert report.reused == 9
    assert report.embedded == 0 and report.added == 0
    ids, base_vectors = library.store.embedding_matrix(RANDOM_MODEL)
    tuned_ids, tuned_vectors = library.store.embedding_matrix("micro-tuned")
    assert np.array_equal(ids, tuned_ids) and np.array_equal(base_vectors, tuned_vectors)
    assert set(library.ann("micro-tuned", tuned.embed_dim).labels()) == set(ids.tolist())


def test_other_image_weights_are_reindexed(library, micro_model, models_dir, tmp_path):
    _, report = _index_then_derive(library, micro_model, models_dir, tmp_path, 6, True)

    assert report.reused == 0
    assert report.embedded == 6


def finetune_for_real(library, micro_model, models_dir, folder, count, mode, name):
    """Index ``count`` photos with the base, then fine-tune it on them with the real trainer
    (2 steps, ``mode`` training the last block); the saved model's folder."""
    from training.data import CaptionedImage
    from training.finetune import finetune
    from training.train import TrainConfig

    paths = draw_folder(folder, count)
    Indexer(library, micro_model, batch_size=4, workers=1).run([folder])
    records = [
        CaptionedImage(p, f"shape {i}", [f"a picture of shape number {i}."], key=str(i))
        for i, p in enumerate(paths)
    ]
    cfg = TrainConfig(
        out=str(folder.parent / "tuned"), steps=2, batch_size=4, lr=1e-2, warmup=0, num_long=1,
        trainable=mode, last_n=1, device="cpu", workers=0,
    )  # fmt: skip
    result = finetune(models_dir / RANDOM_MODEL, records, cfg, name=name, heldout_fraction=0.0)
    return result.model_dir


def test_text_last_n_finetune_takes_over_base_vectors(library, micro_model, models_dir, tmp_path):
    """A fine-tune made by the real trainer in ``text-last-n`` mode has its base's image tower,
    bit for bit, so it reuses the base's vectors like a ``text`` fine-tune."""
    tuned_dir = finetune_for_real(
        library, micro_model, models_dir, tmp_path / "photos", 6, "text-last-n", "micro-textlast"
    )
    tuned = lotlip.load(tuned_dir, device="cpu")
    assert tuned.metadata["mode"] == "text-last-n"
    base_text = micro_model.state_dict()["text.proj.weight"]
    assert not torch.equal(tuned.state_dict()["text.proj.weight"], base_text)  # it did train

    report = Indexer(library, tuned, batch_size=4, workers=1).run()

    assert report.reused == 6 and report.embedded == 0
    ids, base_vectors = library.store.embedding_matrix(RANDOM_MODEL)
    tuned_ids, tuned_vectors = library.store.embedding_matrix("micro-textlast")
    assert np.array_equal(ids, tuned_ids) and np.array_equal(base_vectors, tuned_vectors)


def test_last_n_finetune_is_reindexed(library, micro_model, models_dir, tmp_path):
    """``last-n`` trains image blocks too: its image tower differs, so nothing is reused."""
    tuned_dir = finetune_for_real(
        library, micro_model, models_dir, tmp_path / "photos", 4, "last-n", "micro-lastn"
    )

    report = Indexer(library, lotlip.load(tuned_dir, device="cpu"), batch_size=4).run()

    assert report.reused == 0 and report.embedded == 4


def test_index_command_says_the_vectors_were_reused(cli, micro_model, models_dir, tmp_path):
    """The text report of `index` names the vectors taken over, as its --json does."""
    draw_folder(tmp_path / "photos", 5)
    assert cli("index", str(tmp_path / "photos"))[0] == 0
    _derived_model(micro_model, models_dir, "micro-cli-tuned", change_image_tower=False)

    status, out, _ = cli("index", model="micro-cli-tuned")

    assert status == 0
    assert "5 reused from its base model" in out


def test_finetune_with_some_vectors_takes_over_the_rest(library, micro_model, models_dir, tmp_path):
    """A fine-tune that already holds vectors for some photos (indexed with it, then more
    photos indexed with the base) takes over the base's vectors for the others, and keeps its
    own."""
    from app.library.search import Searcher

    tuned = _derived_model(micro_model, models_dir, "micro-tuned", change_image_tower=False)
    draw_folder(tmp_path / "first", 4)
    assert Indexer(library, tuned, batch_size=4, workers=2).run([tmp_path / "first"]).embedded == 4
    draw_folder(tmp_path / "more", 5, start=4)
    Indexer(library, micro_model, batch_size=4, workers=2).run([tmp_path / "more"])
    assert Indexer(library, micro_model, batch_size=4, workers=2).run().embedded == 4
    own_ids, own_vectors = library.store.embedding_matrix("micro-tuned")
    generation = library.store.generation("micro-tuned")

    report = Indexer(library, tuned, batch_size=4, workers=2).run()

    assert report.reused == 5 and report.embedded == 0 and report.added == 0
    changed = library.store.embedding_changes("micro-tuned", generation)
    assert changed.complete and set(changed.ids.tolist()).isdisjoint(own_ids.tolist())
    assert len(changed.ids) == 5  # only the copies were written: its own 4 were left alone
    found, vectors = library.store.vectors_for(own_ids, "micro-tuned")
    assert np.array_equal(found, own_ids) and np.array_equal(vectors, own_vectors)
    ids, base_vectors = library.store.embedding_matrix(RANDOM_MODEL)
    tuned_ids, tuned_vectors = library.store.embedding_matrix("micro-tuned")
    assert np.array_equal(ids, tuned_ids) and len(ids) == 9
    copied = ~np.isin(tuned_ids, own_ids)
    assert np.array_equal(tuned_vectors[copied], base_vectors[copied])
    results = Searcher(library, tuned).search("a picture", top=20).results
    assert sorted(r.id for r in results) == ids.tolist()
    assert set(library.ann("micro-tuned", tuned.embed_dim).labels()) == set(ids.tolist())


def test_finetune_with_every_vector_skips_the_check(
    library, micro_model, models_dir, tmp_path, monkeypatch
):
    """Nothing to take over: no image is embedded again to compare with the base's vectors."""
    tuned, _ = _index_then_derive(library, micro_model, models_dir, tmp_path, 3, False)
    monkeypatch.setattr(
        tuned, "embed_images", lambda images: pytest.fail("embedded images for nothing")
    )

    report = Indexer(library, tuned, batch_size=4, workers=2).run()

    assert report.reused == 0 and report.embedded == 0 and report.unchanged == 3


def test_finetune_takes_over_vectors_of_an_unplugged_drive(
    library, micro_model, models_dir, tmp_path
):
    """Copying vectors needs no files: photos on a drive that is offline (its folder gone)
    get the fine-tune's vectors all the same, and its search finds them, flagged offline."""
    from app.library.search import Searcher

    folder = tmp_path / "drive" / "photos"
    draw_folder(folder, 5)
    Indexer(library, micro_model, batch_size=4, workers=2).run([folder])
    folder.parent.rename(tmp_path / "unplugged")  # no photo can be read to check the vectors
    tuned = _derived_model(micro_model, models_dir, "micro-tuned", change_image_tower=False)

    report = Indexer(library, tuned, batch_size=4, workers=2).run()

    assert report.reused == 5 and report.embedded == 0 and report.failed == 0
    assert report.offline == [str(folder)]
    ids, base_vectors = library.store.embedding_matrix(RANDOM_MODEL)
    tuned_ids, tuned_vectors = library.store.embedding_matrix("micro-tuned")
    assert np.array_equal(ids, tuned_ids) and np.array_equal(base_vectors, tuned_vectors)
    results = Searcher(library, tuned).search("a picture", top=20).results
    assert sorted(r.id for r in results) == ids.tolist()
    assert all(r.offline for r in results)


def test_check_skips_photos_that_cannot_be_read(library, micro_model, models_dir, tmp_path):
    """The first photos to copy are gone (files moved): the check embeds others instead."""
    paths = draw_folder(tmp_path / "photos", 8)
    Indexer(library, micro_model, batch_size=4, workers=2).run([tmp_path / "photos"])
    for path in paths[:6]:
        path.unlink()
    tuned = _derived_model(micro_model, models_dir, "micro-tuned", change_image_tower=False)
    embedded = []
    embed = tuned.embed_images
    tuned.embed_images = lambda images: embedded.append(len(images)) or embed(images)

    with library.writing():
        library.register_model(tuned)
        assert library.adopt_frozen_image_vectors(tuned) == 8

    assert embedded == [2]  # the two photos still there were checked


def test_one_readable_photo_still_guards_the_copy(library, micro_model, models_dir, tmp_path):
    """Most photos are offline, and the one that can be read has a stored base vector that
    these weights do not make (a library indexed with other weights under the base's name):
    nothing is copied, and the readable photo is embedded with the fine-tune."""
    away, here = tmp_path / "drive" / "away", tmp_path / "here"
    draw_folder(away, 5)
    draw_folder(here, 1, start=5)
    Indexer(library, micro_model, batch_size=4, workers=2).run([away, here])
    (tmp_path / "drive").rename(tmp_path / "unplugged")
    ids, vectors = library.store.embedding_matrix(RANDOM_MODEL)
    (last,) = [r.id for r in library.store.rows_for(ids) if r.folder == str(here)]
    other = np.roll(vectors[ids.tolist().index(last)], 1).astype("<f4")
    with library.writing():
        library.store.conn.execute(
            "UPDATE embeddings SET vector = ? WHERE model = ? AND image_id = ?",
            (other.tobytes(), RANDOM_MODEL, last),
        )
        library.store.conn.commit()
    tuned = _derived_model(micro_model, models_dir, "micro-tuned", change_image_tower=False)

    report = Indexer(library, tuned, batch_size=4, workers=2).run()

    assert report.reused == 0 and report.embedded == 1
    assert library.store.embedding_ids("micro-tuned").tolist() == [last]
