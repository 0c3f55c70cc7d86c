"""Which model a library uses, and loading it once per process.

The choice, in order: the model asked for (``--model``, a name or a path), the library's
setting ``"model"`` (``lotlip-search model use NAME``), the best installed official model
(ViT-B/16, then ViT-B/32), and last the small bundled ``lotlip-tiny``, with a warning that it
only knows simple coloured shapes and how to get the real one. The warning is given when the
bundled model is the fallback (nothing else is installed and none was chosen), once per library
(recorded in the setting ``bundled_model_warned``), not on every command.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import lotlip
from lotlip import registry

if TYPE_CHECKING:
    from app.library.library import Library
    from lotlip.model import LoTLIP

logger = logging.getLogger(__name__)

MODEL_SETTING = "model"
"""Library setting naming the model to use when none is asked for."""

OFFICIAL_PREFERENCE = ("lotlip-vit-b16", "lotlip-vit-b32")
"""Official models, best first."""

RECOMMENDED_MODEL = "lotlip-vit-b16"

BUNDLED_WARNING = (
    f"Using the small bundled model {registry.BUNDLED_MODEL}. It was trained only on pictures "
    "of simple coloured shapes, so it will not find real photos well. Get the real model with\n"
    f"  lotlip-search model download {RECOMMENDED_MODEL}\n"
    "(about 800 MB; without internet access, `lotlip-search model download --help` explains "
    "how to install it by hand)."
)

WARNED_SETTING = "bundled_model_warned"
"""Library setting: the bundled-model warning was given for this library."""

_cache: dict[tuple[str, str], LoTLIP] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class ModelChoice:
    """The model a command or window works with.

    ``source`` says why it was chosen: ``"requested"``, ``"library setting"``,
    ``"best installed"`` or ``"bundled"``. ``warning`` is the bundled-model warning when it is
    due now (see the module docstring), else ``None``.
    """

    model: LoTLIP
    name: str
    is_bundled: bool
    warning: str | None
    source: str


def resolve_model_spec(lib: Library | None, requested: str | None = None) -> tuple[str, str]:
    """``(spec, source)`` of the model :func:`choose_model` would load, without loading it.

    ``spec`` is a registry name or a path. Cheap: reads a setting and lists installed models.
    """
    if requested:
        return requested, "requested"
    setting = lib.store.get_setting(MODEL_SETTING) if lib is not None else None
    if setting:
        return str(setting), "library setting"
    installed = {m.name for m in registry.installed_models()}
    for name in OFFICIAL_PREFERENCE:
        if name in installed:
            return name, "best installed"
    return registry.BUNDLED_MODEL, "bundled"


def _cache_key(spec: str, device: str, precision: str) -> tuple[str, str, str]:
    from lotlip.devices import resolve_device  # torch, only once a model is wanted

    path = Path(spec).expanduser()
    key = str(path.resolve()) if path.exists() else spec
    return key, str(resolve_device(device)), precision


def load_model(
    spec: str | os.PathLike[str], device: str = "auto", precision: str = "auto"
) -> LoTLIP:
    """Load a model by name or path (``lotlip.load``), once per (spec, device, precision).

    Raises ``lotlip.ModelNotFoundError`` (with instructions) when it is not installed.
    """
    key = _cache_key(os.fspath(spec), device, precision)
    with _cache_lock:
        model = _cache.get(key)
        if model is None:
            logger.info("loading model %s on %s (precision %s)", *key)
            model = lotlip.load(os.fspath(spec), device=device, precision=precision)
            _cache[key] = model
        return model


def clear_model_cache() -> None:
    """Forget every loaded model (after a model was removed or replaced on disk)."""
    with _cache_lock:
        _cache.clear()


def choose_model(
    lib: Library | None,
    requested: str | None = None,
    device: str = "auto",
    precision: str = "auto",
) -> ModelChoice:
    """Pick and load the model to use (see the module docstring for the order).

    Raises ``lotlip.ModelNotFoundError`` when the chosen model is not installed (e.g. the
    bundled model is missing from a development checkout); its message says how to get one.
    """
    spec, source = resolve_model_spec(lib, requested)
    try:
        model = load_model(spec, device, precision)
    except lotlip.ModelNotFoundError as exc:
        if source == "bundled":
            raise lotlip.ModelNotFoundError(
                "No model is installed: the bundled lotlip-tiny is missing and no official "
                f"model was found. Get one with `lotlip-search model download "
                f"{RECOMMENDED_MODEL}`.\n" + registry.offline_instructions(RECOMMENDED_MODEL)
            ) from exc
        raise
    bundled = model.name == registry.BUNDLED_MODEL
    warning = BUNDLED_WARNING if bundled and _bundled_warning_due(lib, source) else None
    return ModelChoice(model, model.name, bundled, warning, source)


def _bundled_warning_due(lib: Library | None, source: str) -> bool:
    """True the first time the bundled model is this library's fallback (and records it)."""
    if source != "bundled":
        return False  # chosen by name: the user knows what it is
    if lib is None:
        return True
    try:
        if lib.store.get_setting(WARNED_SETTING):
            return False
        lib.store.set_setting(WARNED_SETTING, True)
    except Exception as exc:  # a read-only or busy library: warn rather than fail
        logger.debug("could not record the bundled-model warning: %s", exc)
    return True
