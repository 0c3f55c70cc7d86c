"""Fine-tuning on personal captions (training.finetune and what trains in training.train)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import lotlip
from lotlip.checkpoints import read_folder_config
from lotlip.model import LoTLIP
from training.data import load_image, split_sentences
from training.evaluate import recall_at_k
from training.finetune import finetune
from training.synthetic import make_scene, scene_file_stem, write_scenes
from training.train import TrainConfig, set_trainable, train

SCENES = 30

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], list[str]]:
    """30 distinct synthetic scenes as PNG + .txt sidecar: (folder, image paths, long captions).

    Each sidecar holds the short caption and one long caption of three sentences, so the text
    the model trains on is the text retrieval is measured with ("those captions").
    """
    folder = tmp_path_factory.mktemp("photos")
    write_scenes(folder, 0, SCENES, size=64)
    paths, captions = [], []
    for seed in range(SCENES):
        scene = make_scene(seed)
        long = ". ".join(split_sentences(scene.long_captions[0])[:3])
        stem = scene_file_stem(seed)
        (folder / f"{stem}.txt").write_text(f"{scene.short_caption}\n\n{long}\n", encoding="utf-8")
        paths.append(folder / f"{stem}.png")
        captions.append(long)
    assert len(set(captions)) == SCENES
    return folder, paths, captions


def text_to_image_r1(model: LoTLIP, images: np.ndarray, captions: list[str]) -> float:
    return recall_at_k(model.embed_texts(captions) @ images.T, ks=(1,))["t2i_r1"]


def test_text_mode_improves_retrieval_and_keeps_image_embeddings_bit_identical(
    tmp_path: Path,
    saved_model: Callable[..., Path],
    photo_folder: tuple[Path, list[Path], list[str]],
) -> None:
    folder, paths, captions = photo_folder
    base_dir = saved_model(seed=0, layers=1, spread=0.1)
    cfg = TrainConfig(
        out=str(tmp_path / "mine"),
        steps=150,
        batch_size=32,
        lr=5e-3,
        warmup=5,
        weight_decay=0.0,
        num_long=1,
        trainable="text",
        log_every=50,
        device="cpu",
    )
    result = finetune(base_dir, folder, cfg, name="my-model", heldout_fraction=0.0)

    assert result.model_dir == tmp_path / "mine"
    assert result.train_pairs == SCENES and result.heldout_pairs == 0
    assert not (tmp_path / "mine" / "checkpoints").exists()

    base = lotlip.load(base_dir, device="cpu", precision="fp32")
    tuned = lotlip.load(result.model_dir, device="cpu", precision="fp32")
    assert tuned.name == "my-model"
    pictures = [load_image(p) for p in paths]
    base_images = base.embed_images(pictures)
    tuned_images = tuned.embed_images(pictures)
    # the photo index built with the base model stays valid: not one bit changed
    assert np.array_equal(base_images, tuned_images)
    base_state, tuned_state = base.state_dict(), tuned.state_dict()
    for key, value in base_state.items():
        if key.startswith("visual."):
            assert torch.equal(value, tuned_state[key]), key
    assert not torch.equal(base_state["text.proj.weight"], tuned_state["text.proj.weight"]), (
        "the text tower should have trained"
    )

    before = text_to_image_r1(base, base_images, captions)
    after = text_to_image_r1(tuned, tuned_images, captions)
    assert before <= 0.1  # a random base is at chance (1/30)
    assert after >= before + 0.12, (before, after)  # measured: 1/30 -> 8 or 9 of 30

    # what the model folder records
    _, meta = read_folder_config(result.model_dir)
    assert meta["kind"] == "fine-tuned"
    assert meta["base_model"] == "lotlip-test"
    assert meta["base_spec"] == str(base_dir)
    assert meta["mode"] == "text"
    assert meta["train_pairs"] == SCENES and meta["heldout_pairs"] == 0
    assert meta["steps"] == 150
    assert meta["metrics_before"] == result.before
    assert meta["metrics"] == result.after
    assert meta["metrics_before"]["train_long_t2i_r1"] == pytest.approx(before)
    assert meta["metrics"]["train_long_t2i_r1"] == pytest.approx(after)
    assert meta["metrics"]["train_n"] == SCENES
    assert meta["train_config"]["trainable"] == "text"


def blocks_of(key: str) -> tuple[str, int] | None:
    """('visual'|'text', block index) for a key inside a transformer block, else None."""
    parts = key.split(".")
    if key.startswith("visual.vit.layers."):
        return "visual", int(parts[3])
    if key.startswith("text.transformer.encoder.layer."):
        return "text", int(parts[4])
    return None


HEADS = ("visual.vit.layernorm.", "text.transformer.pooler.", "text.proj.", "logit_scale")


def test_last_n_mode_changes_only_the_last_blocks_and_heads(
    tmp_path: Path,
    saved_model: Callable[..., Path],
    photo_folder: tuple[Path, list[Path], list[str]],
) -> None:
    folder, _, _ = photo_folder
    base_dir = saved_model(seed=2, layers=3)
    cfg = TrainConfig(
        out=str(tmp_path / "last1"),
        steps=3,
        batch_size=8,
        lr=1e-3,
        warmup=0,
        trainable="last-n",
        last_n=1,
        num_long=1,
        log_every=1,
        device="cpu",
    )
    result = finetune(base_dir, folder, cfg)  # default: 20 % held out
    base = lotlip.load(base_dir, device="cpu", precision="fp32").state_dict()
    tuned = lotlip.load(result.model_dir, device="cpu", precision="fp32").state_dict()
    assert base.keys() == tuned.keys()
    changed, kept = [], []
    for key in base:
        block = blocks_of(key)
        should_train = (block is not None and block[1] == 2) or key.startswith(HEADS)
        (changed if should_train else kept).append(key)
        if should_train:
            assert not torch.equal(base[key], tuned[key]), f"{key} should have trained"
        else:
            assert torch.equal(base[key], tuned[key]), f"{key} should be frozen"
    assert any(k.startswith("visual.vit.layers.2.") for k in changed)
    assert any(k.startswith("text.transformer.encoder.layer.2.") for k in changed)
    assert any(k.startswith("visual.vit.layers.1.") for k in kept)
    assert "text.transformer.embeddings.word_embeddings.weight" in kept

    _, meta = read_folder_config(result.model_dir)
    assert meta["mode"] == "last-n"
    assert meta["base_model"] == "lotlip-test"
    assert meta["train_pairs"] == 24 and meta["heldout_pairs"] == 6
    for metrics in (meta["metrics_before"], meta["metrics"]):
        assert {"train_long_t2i_r1", "heldout_long_t2i_r1", "heldout_short_i2t_r5"} <= set(metrics)
    assert meta["metrics"]["heldout_n"] == 6


def trainable(model: LoTLIP) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_set_trainable_modes(make_model: Callable[..., LoTLIP]) -> None:
    model = make_model(layers=3)
    everything = {name for name, _ in model.named_parameters()}

    set_trainable(model, "text")
    assert trainable(model) == {n for n in everything if n.startswith("text.")} | {"logit_scale"}

    set_trainable(model, "full")
    assert trainable(model) == everything

    heads = {n for n in everything if n.startswith(HEADS)}
    set_trainable(model, "last-n", 2)
    expected = heads | {n for n in everything if (b := blocks_of(n)) is not None and b[1] in (1, 2)}
    assert trainable(model) == expected

    # last_n = 0: only the heads (a [-0:] slice would have unfrozen every block)
    set_trainable(model, "last-n", 0)
    assert trainable(model) == heads
    # more blocks than the model has: all blocks, still not the embeddings
    set_trainable(model, "last-n", 10)
    assert "text.transformer.embeddings.word_embeddings.weight" not in trainable(model)
    assert "visual.vit.layers.0.mlp.fc1.weight" in trainable(model)

    # text-last-n: the text tower's embeddings, last blocks, pooler and projection
    set_trainable(model, "text-last-n", 1)
    text_heads = {n for n in everything if n.startswith(("text.transformer.pooler.", "text.proj."))}
    embeddings = {n for n in everything if n.startswith("text.transformer.embeddings.")}
    last_text = {n for n in everything if blocks_of(n) == ("text", 2)}
    assert trainable(model) == text_heads | embeddings | last_text | {"logit_scale"}


def test_text_mode_encodes_each_image_once_and_trains_the_same(
    tmp_path: Path, make_model: Callable[..., LoTLIP]
) -> None:
    from .conftest import CaptionTensorDataset, state_of

    def run(cache: bool) -> tuple[LoTLIP, int]:
        model = make_model(seed=4, layers=2, spread=0.1)
        calls = [0]
        model.visual.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        cfg = TrainConfig(
            out=str(tmp_path / f"cache-{cache}"), steps=6, batch_size=4, lr=1e-3, warmup=0,
            num_long=2, trainable="text", device="cpu", cache_image_features=cache,
        )  # fmt: skip
        train(cfg, model, CaptionTensorDataset(12))
        return model, calls[0]

    per_step, per_step_calls = run(cache=False)
    cached, cached_calls = run(cache=True)
    assert per_step_calls == 6  # the image tower ran at every step ...
    assert cached_calls == 3  # ... or once per batch of the caching pass (12 images / 4)
    expected = state_of(per_step)
    for key, value in state_of(cached).items():
        torch.testing.assert_close(value, expected[key], rtol=1e-4, atol=1e-5, msg=key)


def test_select_keeps_the_best_weights_and_stops_when_patience_runs_out(
    tmp_path: Path, make_model: Callable[..., LoTLIP]
) -> None:
    from .conftest import CaptionTensorDataset, state_of

    model = make_model(seed=4, layers=1)
    scores = iter([0.1, 0.5, 0.3, 0.2, 0.9])  # best at the 2nd check, then two misses
    kept: dict[int, dict[str, torch.Tensor]] = {}

    def select(current: LoTLIP) -> float:
        kept[len(kept) + 1] = state_of(current)
        return next(scores)

    cfg = TrainConfig(
        out=str(tmp_path / "sel"), steps=20, batch_size=4, lr=1e-2, warmup=0, num_long=1,
        trainable="text", device="cpu", select_every=2, patience=2, log_every=1,
    )  # fmt: skip
    result = train(cfg, model, CaptionTensorDataset(12), select=select)
    assert result.steps_done == 8  # checks at steps 2, 4, 6, 8: no gain at 6 and 8 -> stop
    assert len(kept) == 4
    final = state_of(model)
    for key, value in kept[2].items():
        assert torch.equal(final[key], value), key  # the weights of step 4 were kept
    _, meta = read_folder_config(result.model_dir)
    assert meta["selected_step"] == 4


def test_recipe_options_and_held_out_bookkeeping(
    tmp_path: Path,
    saved_model: Callable[..., Path],
    photo_folder: tuple[Path, list[Path], list[str]],
) -> None:
    from training.data import CaptionedImage
    from training.finetune import Recipe, unseen_records

    folder, _, _ = photo_folder
    cfg = TrainConfig(
        out=str(tmp_path / "r"), steps=4, batch_size=8, lr=1e-3, warmup=0, num_long=1,
        trainable="text", device="cpu", select_every=2,
    )  # fmt: skip
    recipe = Recipe(shuffle_sentences=True, replay=5, select_on_heldout=True, short_phrasings=True)
    result = finetune(saved_model(seed=1), folder, cfg, recipe=recipe)
    assert result.train_pairs == 24 and result.heldout_pairs == 6
    _, meta = read_folder_config(result.model_dir)
    assert meta["recipe"] == {
        "shuffle_sentences": True, "replay": 5, "select_on_heldout": True, "short_phrasings": True
    }  # fmt: skip
    assert meta["selected_step"] in (2, 4)
    assert len(meta["train_keys"]) == 24
    # forgetting is measured on the demo scenes, before and after
    assert result.before["demo_n"] == result.after["demo_n"] == 60
    records = [CaptionedImage(Path(key), "s", ["l"], key=key) for key in meta["train_keys"][:3]]
    records.append(CaptionedImage(Path("new.png"), "s", ["l"], key="new.png"))
    kept, dropped = unseen_records(records, meta)
    assert [r.key for r in kept] == ["new.png"] and dropped == 3
