"""Checkpoint I/O: our folder format, refusing unsafe or foreign files, clear shape errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import lotlip
from lotlip.checkpoints import read_state_dict
from lotlip.folders import CONFIG_FILE, FORMAT, WEIGHTS_FILE

TEXTS = ["a big red car", "the cat on the grass. a small house with a tree", "x"]


def test_our_format_round_trip(tmp_path: Path, make_tiny_model, make_image) -> None:
    model = make_tiny_model(seed=3)
    with torch.no_grad():
        model.logit_scale.fill_(3.3)
    folder = tmp_path / "saved"
    model.save(folder, metadata={"base_model": "lotlip-test", "metrics": {"r@1": 0.5}})

    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [CONFIG_FILE, WEIGHTS_FILE, "vocab.txt"]
    )
    document = json.loads((folder / CONFIG_FILE).read_text())
    assert document["format"] == FORMAT
    # the weights are a plain safetensors file holding exactly the module's state dict
    stored = load_file(str(folder / WEIGHTS_FILE))
    expected = model.state_dict()
    assert stored.keys() == expected.keys()
    assert all(torch.equal(stored[k], expected[k]) for k in expected)

    loaded = lotlip.load(folder, device="cpu", precision="fp32")
    assert loaded.config == model.config
    assert loaded.name == "lotlip-test"
    assert loaded.tokenizer.vocab == model.tokenizer.vocab
    assert loaded.metadata["base_model"] == "lotlip-test"
    assert loaded.metadata["metrics"] == {"r@1": 0.5}
    assert loaded.dtype == torch.float32
    assert loaded.logit_scale.item() == pytest.approx(3.3)

    images = [make_image(50, 40, seed=s) for s in range(3)]
    np.testing.assert_array_equal(loaded.embed_texts(TEXTS), model.embed_texts(TEXTS))
    np.testing.assert_array_equal(loaded.embed_images(images), model.embed_images(images))
    # loading did not just produce any model: another seed gives different embeddings
    other = make_tiny_model(seed=4)
    assert not np.allclose(other.embed_texts(TEXTS), model.embed_texts(TEXTS), atol=1e-3)


def test_saved_folder_with_missing_tensor_is_refused(tmp_path: Path, make_tiny_model) -> None:
    from safetensors.torch import save_file

    model = make_tiny_model()
    folder = tmp_path / "saved"
    model.save(folder)
    state = load_file(str(folder / WEIGHTS_FILE))
    del state["text.proj.weight"]
    save_file(state, str(folder / WEIGHTS_FILE))
    with pytest.raises(lotlip.CheckpointError, match=r"text\.proj\.weight"):
        lotlip.load(folder, device="cpu", precision="fp32")


class _WritesMarker:
    """Unpickling this object calls ``open(marker, "w")``: it creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path, bert_vocab_file: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    state = {"logit_scale": torch.tensor(1.0), "payload": _WritesMarker(marker)}
    torch.save({"state_dict": state, "epoch": 3}, path)

    with pytest.raises(lotlip.UnsafeCheckpointError) as info:
        lotlip.load(path, device="cpu", vocab=bert_vocab_file)
    assert not marker.exists()
    assert "trust" in str(info.value)

    # control: the file really is live, an unrestricted unpickler runs the payload
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    "content",
    [
        b"hello, I am a text file and not a checkpoint\n",
        b"",
        b'{"state_dict": {}}',
        bytes(range(256)) * 8,
        b"this is not a checkpoint",  # the restricted unpickler fails with an IndexError
    ],
    ids=["text", "empty", "json", "binary", "short-text"],
)
def test_non_checkpoint_file(tmp_path: Path, bert_vocab_file: Path, content: bytes) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(lotlip.CheckpointError) as info:
        lotlip.load(path, device="cpu", vocab=bert_vocab_file)
    # a damaged or foreign file is not reported as a code-execution attempt
    assert not isinstance(info.value, lotlip.UnsafeCheckpointError)
    assert "model.pt" in str(info.value)


def test_checkpoint_that_is_not_a_state_dict(tmp_path: Path, bert_vocab_file: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(3), torch.ones(2)], path)
    with pytest.raises(lotlip.CheckpointError, match="state dict"):
        lotlip.load(path, device="cpu", vocab=bert_vocab_file)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(lotlip.CheckpointError):
        read_state_dict(tmp_path / "nope.pt")


def test_word_embedding_without_corner_rows_is_rejected(
    tmp_path: Path, bert_vocab_file: Path, official_state_dict, small_official_sizes
) -> None:
    sd = official_state_dict(**{**small_official_sizes, "word_rows": 30522}, seed=1)
    path = tmp_path / "no_corners.pt"
    torch.save(sd, path)
    with pytest.raises(lotlip.CheckpointError) as info:
        lotlip.load(path, device="cpu", vocab=bert_vocab_file)
    message = str(info.value)
    assert "30522" in message and "corner" in message


def test_weights_only_accepts_training_checkpoint_extras(
    tmp_path: Path, small_official_checkpoint: Path
) -> None:
    """A training save (epoch, name, optimizer state) is plain data and loads safely."""
    sd = torch.load(small_official_checkpoint, weights_only=True)
    path = tmp_path / "epoch_3.pt"
    torch.save(
        {
            "epoch": 3,
            "name": "lotlip-run",
            "state_dict": {"module." + k: v for k, v in sd.items()},
            "optimizer": {
                "state": {0: {"step": torch.tensor(5.0)}},
                "param_groups": [{"lr": 1e-4}],
            },
        },
        path,
    )
    loaded = read_state_dict(path)
    assert loaded.keys() == sd.keys()
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_plain_pickle_payload_is_refused(tmp_path: Path, protocol: int) -> None:
    """A bare pickle (torch's legacy format, not a zip) carrying a payload is refused too."""
    marker = tmp_path / "pwned"
    path = tmp_path / "legacy.pt"
    path.write_bytes(pickle.dumps({"w": _WritesMarker(marker)}, protocol=protocol))
    with pytest.raises(lotlip.CheckpointError) as info:
        read_state_dict(path)
    assert not marker.exists()
    if protocol == 2:  # torch's own protocol: the unpickler reaches the GLOBAL and names it
        assert isinstance(info.value, lotlip.UnsafeCheckpointError)
        assert "open" in str(info.value)


# -- a model's name comes from the user, never from its shapes ----------------------------------
@pytest.fixture
def small_shape_is_official(
    monkeypatch: pytest.MonkeyPatch, small_official_checkpoint: Path, bert_vocab_file: Path
) -> str:
    """Make the small official-layout architecture count as the released ``lotlip-vit-b16``
    (a real B/16 checkpoint is ~800 MB): any checkpoint of that shape now *looks* official."""
    from lotlip.checkpoints import infer_official_config
    from lotlip.config import OFFICIAL_CONFIGS, LoTLIPConfig

    shape = infer_official_config(read_state_dict(small_official_checkpoint))
    fake = LoTLIPConfig.from_dict({**shape.to_dict(), "name": "lotlip-vit-b16"})
    monkeypatch.setitem(OFFICIAL_CONFIGS, "lotlip-vit-b16", fake)
    return "lotlip-vit-b16"


def test_official_shaped_checkpoint_is_named_after_its_file(
    small_shape_is_official: str, small_official_checkpoint: Path, bert_vocab_file: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    from tests.builders import released_as

    tuned = tmp_path / "holiday-finetune.pt"
    tuned.write_bytes(small_official_checkpoint.read_bytes())
    model = lotlip.load(tuned, device="cpu", vocab=bert_vocab_file)
    assert model.name == "holiday-finetune"
    assert released_as(model.config) == small_shape_is_official  # shape, not identity

    generic = tmp_path / "run-7" / "model.pt"  # a generic file name: its folder names it
    generic.parent.mkdir()
    generic.write_bytes(small_official_checkpoint.read_bytes())
    assert lotlip.load(generic, device="cpu", vocab=bert_vocab_file).name == "run-7"


def test_save_writes_config_atomically(
    tmp_path: Path, make_tiny_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash while config.json is written leaves the previous complete file (or none)."""
    model = make_tiny_model()
    folder = tmp_path / "saved"
    model.save(folder, metadata={"run": 1})

    real_write_text = Path.write_text

    def write_half_then_fail(self: Path, data: str, *args: object, **kwargs: object) -> int:
        real_write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    with pytest.raises(OSError):
        model.save(folder, metadata={"run": 2})
    monkeypatch.undo()
    assert json.loads((folder / CONFIG_FILE).read_text())["metadata"]["run"] == 1
    assert lotlip.load(folder, device="cpu").metadata["run"] == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [CONFIG_FILE, WEIGHTS_FILE, "vocab.txt"]
    )
