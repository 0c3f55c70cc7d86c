"""Shared factories for the ``training`` tests: a small vocabulary, tiny models, tiny datasets.

Everything is CPU-only, seeded and small (32-wide towers, 32 px images) so a training step takes
a few milliseconds. The plain functions are also imported by ``ddp_worker.py``, which runs
outside pytest as one rank of a two-process job.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from lotlip.model import LoTLIP
from tests.builders import new_micro_model
from training.data import split_sentences
from training.synthetic import caption_corpus, make_scene, zero_shot_prompts
from training.vocab import build_wordpiece_vocab

IMAGE_SIZE = 32


def build_vocab() -> list[str]:
    """A WordPiece vocabulary learned from synthetic captions (about 240 tokens)."""
    return build_wordpiece_vocab(caption_corpus(200) + zero_shot_prompts(), 200)


def build_model(
    vocab: list[str],
    *,
    seed: int = 0,
    layers: int = 1,
    corners: int = 2,
    spread: float = 0.0,
    name: str = "lotlip-test",
) -> LoTLIP:
    """A random tiny LoTLIP: width 32, 2 heads, ``layers`` blocks per tower, 32 px images.

    ``spread`` adds seeded Gaussian noise of that scale to the image tower's weights: at the
    default init every image maps to nearly the same vector, with noise distinct scenes get
    well-separated embeddings (what a trained image tower would give a fine-tuning test).
    """
    model = new_micro_model(name, vocab, seed=seed, layers=layers, corners=corners)
    if spread:
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for param in model.visual.parameters():
                param.add_(torch.randn(param.shape, generator=generator) * spread)
    return model.eval()


class CaptionTensorDataset(Dataset):
    """Map-style training data without image decoding: seeded random pixels + scene captions.

    Item ``i`` is ``(pixels [3, 32, 32], short caption of scene i, [num_long long captions])``.
    The long captions are sentence windows whose start depends on the epoch (``set_epoch``), so
    a run that resumes in the wrong epoch or at the wrong position trains on different text.
    """

    def __init__(self, count: int, num_long: int = 2, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.pixels = torch.randn(count, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
        self.scenes = [make_scene(i) for i in range(count)]
        self.num_long = num_long
        self.epoch = 0
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.epochs_seen.append(epoch)

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str, list[str]]:
        scene = self.scenes[index]
        longs = []
        for j in range(self.num_long):
            sentences = split_sentences(scene.long_captions[j % len(scene.long_captions)])
            start = (self.epoch + j) % max(1, len(sentences) - 1)
            longs.append(". ".join(sentences[start : start + 2]))
        return self.pixels[index], scene.short_caption, longs


def write_caption_shards(root: Path, sizes: list[int], size: int = IMAGE_SIZE) -> list[Path]:
    """Tar shards (webdataset layout) of rendered scenes: ``sizes[i]`` samples in shard ``i``."""
    root.mkdir(parents=True, exist_ok=True)
    paths, seed = [], 0
    for number, count in enumerate(sizes):
        path = root / f"shard-{number:03d}.tar"
        with tarfile.open(path, "w") as tar:
            for _ in range(count):
                scene = make_scene(seed)
                image = io.BytesIO()
                scene.render(size).save(image, format="PNG")
                text = scene.short_caption + "\n\n" + "\n\n".join(scene.long_captions)
                for ext, data in (("png", image.getvalue()), ("txt", text.encode())):
                    info = tarfile.TarInfo(f"{seed:06d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                seed += 1
        paths.append(path)
    return paths


def noisy(transform: Callable[[Image.Image], torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``transform`` plus noise from torch's global RNG: a run resumed with the wrong RNG state
    sees different pixels (what random augmentation would do)."""

    def apply(image: Image.Image) -> torch.Tensor:
        pixels = transform(image)
        return pixels + 0.1 * torch.randn(pixels.shape)

    return apply


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model``'s state dict."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def single_thread() -> Iterator[None]:
    """Run torch on one thread: faster for 32-wide models, and no spinning on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def training_vocab() -> list[str]:
    return build_vocab()


@pytest.fixture
def make_model(training_vocab: list[str]) -> Callable[..., LoTLIP]:
    """Factory: ``make_model(seed=0, layers=1, corners=2, spread=0.0)`` -> a random tiny LoTLIP."""

    def factory(**kwargs: object) -> LoTLIP:
        return build_model(training_vocab, **kwargs)  # type: ignore[arg-type]

    return factory


@pytest.fixture
def saved_model(tmp_path: Path, make_model: Callable[..., LoTLIP]) -> Callable[..., Path]:
    """Factory: save ``make_model(**kwargs)`` in our folder format and return the folder."""

    def factory(folder_name: str = "base", **kwargs: object) -> Path:
        folder = tmp_path / folder_name
        make_model(**kwargs).save(folder, metadata={"kind": "test"})
        return folder

    return factory
