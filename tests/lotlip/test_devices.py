"""Device selection: ``auto`` falls back to the CPU; a missing accelerator is a clear error."""

from __future__ import annotations

import pytest
import torch

from lotlip import devices
from lotlip.devices import DeviceUnavailableError, resolve_device


@pytest.fixture
def no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this machine has neither CUDA nor MPS (true on the CI box; forced elsewhere)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, expected: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(devices, "mps_available", lambda: mps)
    assert resolve_device("auto") == torch.device(expected)


@pytest.mark.usefixtures("no_accelerator")
def test_auto_falls_back_to_cpu() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(" AUTO ") == torch.device("cpu")


@pytest.mark.usefixtures("no_accelerator")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "CUDA", "mps"])
def test_missing_accelerator_raises(name: str) -> None:
    with pytest.raises(DeviceUnavailableError, match=r"(?i)cpu|metal"):
        resolve_device(name)


def test_cpu_and_explicit_devices() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(RuntimeError):
        resolve_device("tpu-please")


@pytest.mark.usefixtures("no_accelerator")
def test_model_on_cpu_without_bf16_is_float32(make_tiny_model, monkeypatch) -> None:
    monkeypatch.setattr("lotlip.precision.cpu_has_native_bf16", lambda: False)
    model = make_tiny_model().to(torch.float64)
    model.to_device("auto")
    assert model.device == torch.device("cpu")
    assert model.dtype == torch.float32
    assert model.visual.vit.embeddings.cls_token.dtype == torch.float32
    assert not model.training
    with pytest.raises(DeviceUnavailableError):
        model.to_device("cuda")
