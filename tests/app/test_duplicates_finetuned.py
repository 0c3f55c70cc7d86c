"""Near copies stay grouped after a text fine-tune of the bundled model: its image tower, so
its image vectors, are its base's, and so is the duplicate threshold that fits them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lotlip
from app.gui.requests import SearchRequest, can_group, run_search
from app.library import duplicates
from app.library.indexer import Indexer
from app.library.models import load_model
from app.library.search import Searcher
from lotlip import registry

TEXT = "A large shape on a background"


def _finetune(models_dir: Path, name: str, *, change_image_tower: bool):
    """A saved text-mode fine-tune of lotlip-tiny: new text weights, and the image tower kept
    bit for bit unless ``change_image_tower``."""
    tuned = lotlip.load(registry.bundled_model_dir(), device="cpu", precision="fp32")
    with torch.no_grad():
        tuned.text.proj.weight.add_(0.01)
        if change_image_tower:
            tuned.visual.vit.layernorm.bias.add_(0.01)
    meta = {"kind": "fine-tuned", "mode": "text", "base_model": registry.BUNDLED_MODEL}
    tuned.save(models_dir / name, metadata=meta)
    return load_model(name, "cpu")


def _copies_folder(folder: Path, originals: int, copies: int, similar: int) -> Path:
    data = duplicates.calibration_set(originals, copies, similar, start=9)
    folder.mkdir()
    for i, image in enumerate(data.images):
        image.save(folder / f"{i:03d}_g{data.groups[i]}.png")
    return folder


def _groups(searcher: Searcher) -> set[frozenset[int]]:
    response = searcher.search(TEXT, top=30, group_duplicates=True)
    assert not response.warnings
    return {frozenset([r.id, *(d.id for d in r.duplicates)]) for r in response.results}


@pytest.fixture
def tiny():
    if not registry.is_installed(registry.BUNDLED_MODEL):
        pytest.fail("the bundled lotlip-tiny must ship with the repository")
    return load_model(registry.BUNDLED_MODEL, "cpu")


def test_text_finetune_folds_copies_as_its_base(library, tiny, models_dir, tmp_path):
    photos = _copies_folder(tmp_path / "photos", originals=4, copies=3, similar=4)
    Indexer(library, tiny, batch_size=16).run([photos])
    mine = _finetune(models_dir, "lotlip-tiny-mine", change_image_tower=False)
    assert Indexer(library, mine, batch_size=16).run().reused == 20
    assert duplicates.threshold_for(library.store, mine.name) is None  # none of its own

    expected = _groups(Searcher(library, tiny))
    assert any(len(group) > 1 for group in expected)
    assert _groups(Searcher(library, mine)) == expected
    searcher = Searcher(library, mine)
    assert can_group(searcher)
    outcome = run_search(searcher, library, SearchRequest(text=TEXT))  # the app's default
    assert sorted(1 + len(i.duplicates) for i in outcome.items) == sorted(map(len, expected))


def test_base_setting_applies_to_its_text_finetune(library, tiny, models_dir, tmp_path):
    """The library's own threshold for the base (bench/bench_duplicates.py --library) is the
    fine-tune's too; the fine-tune's own setting comes first."""
    photos = _copies_folder(tmp_path / "photos", originals=2, copies=3, similar=0)
    Indexer(library, tiny, batch_size=16).run([photos])
    mine = _finetune(models_dir, "lotlip-tiny-mine", change_image_tower=False)
    Indexer(library, mine, batch_size=16).run()
    searcher = Searcher(library, mine)
    calibrated = _groups(Searcher(library, tiny))  # at DEFAULT_THRESHOLD
    assert any(len(group) > 1 for group in calibrated)

    library.store.set_setting(duplicates.SETTING.format(model=tiny.name), "1.01")  # no pair
    assert [len(group) for group in _groups(searcher)] == [1] * 8
    library.store.set_setting(duplicates.SETTING.format(model=mine.name), "0.78")
    assert _groups(searcher) == calibrated


def test_finetune_with_another_image_tower_is_not_grouped(library, tiny, models_dir, tmp_path):
    photos = _copies_folder(tmp_path / "photos", originals=1, copies=3, similar=0)
    Indexer(library, tiny, batch_size=16).run([photos])
    other = _finetune(models_dir, "lotlip-tiny-retrained", change_image_tower=True)
    assert Indexer(library, other, batch_size=16).run().embedded == 4

    searcher = Searcher(library, other)
    response = searcher.search(TEXT, top=10, group_duplicates=True)

    assert len(response.results) == 4 and all(not r.duplicates for r in response.results)
    assert any("not grouped" in w for w in response.warnings)
    assert not can_group(searcher)


def test_code_threshold_of_a_text_finetune_is_its_base(models_dir):
    """Without a library (the benchmark's reference), the rule gives the calibrated values:
    a text fine-tune's is its base's, a model with neither has none."""
    from app.library.library import image_tower_base

    mine = _finetune(models_dir, "lotlip-tiny-mine", change_image_tower=False)
    base = image_tower_base(mine)

    assert base == registry.BUNDLED_MODEL
    assert duplicates.threshold_for(None, mine.name, base) == duplicates.CALIBRATED[base]
    assert duplicates.threshold_for(None, mine.name) is None
