"""Device selection: ``auto`` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import torch


class DeviceUnavailableError(RuntimeError):
    """The requested accelerator is not present on this machine."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda[:N]``/``mps`` into a usable ``torch.device``."""
    if isinstance(name, torch.device):
        return name
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            "CUDA was requested but no CUDA GPU is available; use --device cpu"
        )
    if device.type == "mps" and not mps_available():
        raise DeviceUnavailableError("MPS was requested but Apple Metal is not available here")
    return device


def mps_available() -> bool:
    """True when Apple Metal (MPS) can run here."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
