"""End to end: index generated scenes, then a paragraph query (a scene's own long description)
ranks its scene first: with the bundled model on scenes it never saw, and with a micro model
trained on the gallery by the real training loop."""

from __future__ import annotations

import contextlib
import io
import random
from pathlib import Path

import torch

from app.library.demo_gallery import CAPTION_VARIANT, scene_path
from app.library.indexer import Indexer
from app.library.models import load_model
from app.library.search import Searcher
from tests.app.conftest import GALLERY_SCENES
from tests.builders import caption_vocab, new_micro_model
from training import synthetic


def _ranks(library, model_name: str, gallery: Path, seeds: list[int]) -> dict[int, int]:
    """Index the gallery, search each scene's paragraph; its rank among the results."""
    model = load_model(model_name, "cpu")
    report = Indexer(library, model, batch_size=4).run([gallery])
    assert (report.added, report.failed) == (GALLERY_SCENES, 0)
    searcher = Searcher(library, model)
    ranks = {}
    for seed in seeds[::2]:
        scene = synthetic.make_scene(seed)
        paragraph = scene.long_captions[CAPTION_VARIANT]
        assert len(paragraph.split(". ")) >= 3  # a paragraph, not a phrase
        response = searcher.search(paragraph, top=GALLERY_SCENES)
        assert not response.truncated
        paths = [r.path for r in response.results]
        ranks[seed] = paths.index(str(scene_path(gallery, seed))) + 1
    return ranks


def _gallery(tmp_path: Path) -> tuple[Path, list[int]]:
    gallery = tmp_path / "scenes"
    seeds = list(synthetic.heldout_seeds(GALLERY_SCENES))
    synthetic.write_scenes(gallery, seeds[0], len(seeds), size=64)
    return gallery, seeds


def test_bundled_model_ranks_unseen_scenes_first(library, ranking_model: str, tmp_path: Path):
    gallery, seeds = _gallery(tmp_path)
    ranks = _ranks(library, ranking_model, gallery, seeds)
    # trained on other scenes: nearly always first
    assert sum(r == 1 for r in ranks.values()) >= 0.75 * len(ranks), ranks
    assert max(ranks.values()) <= 3, ranks


class _Gallery(torch.utils.data.Dataset):
    """The gallery scenes, rendered once, each with a randomly chosen long caption."""

    def __init__(self, seeds: list[int], preprocess) -> None:
        self.scenes = [synthetic.make_scene(s) for s in seeds]
        self.pixels = [preprocess(s.render(64)) for s in self.scenes]
        self.rng = random.Random(0)

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, i: int):
        scene = self.scenes[i]
        return self.pixels[i], scene.short_caption, [self.rng.choice(scene.long_captions)]


def test_model_trained_on_the_gallery_ranks_each_scene_first(
    library, models_dir: Path, tmp_path: Path
):
    """The training loop fits a random micro model to the gallery; the app then finds it."""
    from training.train import TrainConfig, train

    gallery, seeds = _gallery(tmp_path)
    model = new_micro_model("micro-trained", caption_vocab(), seed=0)
    config = TrainConfig(
        out=str(tmp_path / "run"),
        steps=600,
        batch_size=GALLERY_SCENES,
        lr=2e-3,
        warmup=20,
        weight_decay=0.0,
        captions="long",
        save_every=10**9,
        log_every=10**9,
        device="cpu",
    )
    torch.manual_seed(0)
    with contextlib.redirect_stderr(io.StringIO()):  # no progress bar in the test log
        train(config, model, _Gallery(seeds, model.preprocess))
    torch.set_num_threads(1)
    model.eval().save(models_dir / "micro-trained")
    assert set(_ranks(library, "micro-trained", gallery, seeds).values()) == {1}
