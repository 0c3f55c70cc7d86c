"""Numeric precision of a loaded model: ``auto``, ``fp32``, ``bf16``, ``fp16`` or ``int8``.

- ``auto``: float16 on CUDA and Apple MPS; on the CPU bfloat16 where the processor computes it
  natively (x86 ``avx512_bf16`` or AMX), else float32.
- ``bf16``: bfloat16 weights and activations. Works on any CPU; without native support it is
  emulated and slower than float32, so ``auto`` never picks it there.
- ``int8``: dynamic int8 for every ``nn.Linear`` (weights quantized once, activations per
  batch), CPU only, opt-in. torch's only fast CPU path for this, ``torch.ao.quantization
  .quantize_dynamic``, is deprecated in the supported torch range (its successor, torchao, runs
  the same thing 2x *slower* than float32 on CPU), so it is used with its warnings silenced; see
  docs/PERFORMANCE.md.

Image vectors made at one precision stay searchable with queries at another: the measured
ranking agreement with float32 is recorded in docs/PERFORMANCE.md, so a change of precision
never forces a re-index.
"""

from __future__ import annotations

import functools
import logging
import platform
import warnings
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16", "int8")
"""What ``precision=`` (and ``--precision``) accepts."""

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_CPUINFO = Path("/proc/cpuinfo")


class PrecisionError(ValueError):
    """A precision that this device cannot run."""


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (x86 ``avx512_bf16`` or AMX)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        text = _CPUINFO.read_text(errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return any(flag in flags for flag in _BF16_CPU_FLAGS)


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn a requested precision into the concrete one used on ``device``.

    Raises :class:`PrecisionError` for combinations that cannot run (int8 on a GPU, fp16 on
    the CPU) or an unknown name.
    """
    name = precision.strip().lower()
    if name not in PRECISION_CHOICES:
        raise PrecisionError(
            f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}"
        )
    on_gpu = device.type in ("cuda", "mps")
    if name == "auto":
        if on_gpu:
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if name == "int8" and on_gpu:
        raise PrecisionError("int8 runs on the CPU only; use fp16 (or auto) on a GPU")
    if name == "fp16" and not on_gpu:
        raise PrecisionError("fp16 is for GPUs; on the CPU use bf16, int8 or fp32")
    if name == "bf16" and not on_gpu and not cpu_has_native_bf16():
        logger.warning("this CPU has no native bfloat16: bf16 is emulated and slower than fp32")
    return name


def compute_dtype(precision: str) -> torch.dtype:
    """The floating dtype activations flow in at a concrete precision (int8 computes in fp32)."""
    return _DTYPES.get(precision, torch.float32)


def apply_precision(model: nn.Module, precision: str, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device`` at a concrete precision (see :func:`resolve_precision`).

    int8 replaces the Linear layers in place, so it is applied to a float32 model once.
    """
    model.to(device=device, dtype=compute_dtype(precision))
    if precision == "int8":
        with warnings.catch_warnings():
            # Deprecated in torch 2.10+, but still the only fast dynamic int8 path on CPU.
            warnings.simplefilter("ignore")
            torch.ao.quantization.quantize_dynamic(
                model, {nn.Linear}, dtype=torch.qint8, inplace=True
            )
    return model
