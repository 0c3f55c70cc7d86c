"""Precision choice (auto/fp32/bf16/fp16/int8): resolution per device, fallbacks, fidelity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

import lotlip
from lotlip import precision
from lotlip.precision import PrecisionError, resolve_precision

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend the CPU does (True) or does not (False) compute bfloat16 natively."""

    def choose(value: bool) -> None:
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: value)

    return choose


def test_auto_is_bf16_only_on_cpus_with_native_bf16(native_bf16) -> None:
    native_bf16(True)
    assert resolve_precision("auto", CPU) == "bf16"
    native_bf16(False)
    assert resolve_precision("auto", CPU) == "fp32"


def test_auto_is_fp16_on_gpus(native_bf16) -> None:
    native_bf16(True)
    assert resolve_precision("auto", CUDA) == "fp16"
    assert resolve_precision("AUTO", MPS) == "fp16"


def test_explicit_choices_pass_through(native_bf16) -> None:
    native_bf16(True)
    assert [resolve_precision(p, CPU) for p in ("fp32", "bf16", "int8")] == [
        "fp32",
        "bf16",
        "int8",
    ]
    assert resolve_precision("fp32", CUDA) == "fp32"


def test_bf16_without_native_support_warns_but_runs(native_bf16, caplog) -> None:
    native_bf16(False)
    with caplog.at_level("WARNING", logger="lotlip.precision"):
        assert resolve_precision("bf16", CPU) == "bf16"
    assert "emulated" in caplog.text


@pytest.mark.parametrize(
    ("name", "device", "message"),
    [("int8", CUDA, "CPU only"), ("fp16", CPU, "for GPUs"), ("fp8", CPU, "unknown precision")],
)
def test_impossible_combinations_are_refused(name, device, message) -> None:
    with pytest.raises(PrecisionError, match=message):
        resolve_precision(name, device)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    info = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision, "_CPUINFO", info)
    cases = {"fpu sse avx512f avx512_bf16 amx_tile": True, "fpu sse avx2 avx512f": False}
    for flags, expected in cases.items():
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\nbugs\t\t: spectre\n")
        precision.cpu_has_native_bf16.cache_clear()
        assert precision.cpu_has_native_bf16() is expected
    monkeypatch.setattr(precision.platform, "machine", lambda: "arm64")
    precision.cpu_has_native_bf16.cache_clear()
    assert precision.cpu_has_native_bf16() is False
    precision.cpu_has_native_bf16.cache_clear()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize(("name", "dtype"), [("bf16", torch.bfloat16), ("int8", torch.float32)])
def test_low_precision_model_agrees_with_fp32(make_tiny_model, name, dtype) -> None:
    images = [Image.new("RGB", (40, 32), (40 * i, 255 - 30 * i, 90)) for i in range(6)]
    texts = ["a red circle. a blue square", "a green star at the top", "red"]
    reference = make_tiny_model().to_device("cpu", "fp32")
    model = make_tiny_model().to_device("cpu", name)
    assert model.precision == name
    assert model.dtype == dtype
    cases = [(lambda m: m.embed_images(images), len(images)), (lambda m: m.embed_texts(texts), 3)]
    for embed, count in cases:
        low, ref = embed(model), embed(reference)
        assert low.dtype == np.float32
        assert low.shape == ref.shape == (count, reference.embed_dim)
        assert _cosines(low, ref).min() > 0.98
        assert not np.array_equal(low, ref)  # it really computed at another precision


def test_int8_replaces_linear_layers_and_stays_int8(make_tiny_model) -> None:
    model = make_tiny_model().to_device("cpu", "int8")
    quantized = [m for m in model.modules() if isinstance(m, DynamicInt8Linear)]
    assert quantized
    assert not [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert model.to_device("cpu", "int8") is model
    with pytest.raises(PrecisionError, match="cannot change"):
        model.to_device("cpu", "fp32")


def test_load_takes_a_precision() -> None:
    model = lotlip.load(lotlip.BUNDLED_MODEL, device="cpu", precision="int8")
    assert model.precision == "int8"
    vectors = model.embed_texts(["a large red circle in the centre"])
    assert vectors.shape == (1, model.embed_dim)
    assert np.isclose(np.linalg.norm(vectors), 1.0, atol=1e-5)
