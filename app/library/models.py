"""Which model a library uses, loading it once per process, and the list and import of models.

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
import re
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import lotlip
from lotlip import registry
from lotlip.folders import VOCAB_FILE, CheckpointError, is_pretrained_folder

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

DEVICE_SETTING = "device"
"""Library setting: where models run (``auto``, ``cpu``, ``cuda``, ``mps``) unless a caller says;
the app's Settings dialog writes it."""

PRECISION_SETTING = "precision"
"""Library setting: the precision models run at (``lotlip.precision``) unless a caller says."""

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
    return default_model(m.name for m in registry.installed_models())


def default_model(installed: Iterable[str]) -> tuple[str, str]:
    """``(name, source)`` of the model a library without a model setting loads, given the
    ``installed`` model names: the best official one, else the bundled one."""
    names = set(installed)
    for name in OFFICIAL_PREFERENCE:
        if name in names:
            return name, "best installed"
    return registry.BUNDLED_MODEL, "bundled"


def use_refusal(lib: Library | None, name: str, current: str | None = None) -> str | None:
    """Why making model ``name`` ``lib``'s model is not worth offering, or None to offer it.

    Not offered without a library, for a read-only one, or for the model it uses already
    (``current``: the one in use; default: the one :func:`resolve_model_spec` picks for it).
    """
    if lib is None:
        return "there is no library here yet to use it"
    if lib.store.read_only:
        return "this library is read-only, so it keeps its model"
    if name == (current or resolve_model_spec(lib)[0]):
        return f"this library uses {name} already"
    return None


class LibrarySettingError(ValueError):
    """A device or precision stored in the library that this computer cannot run."""


def runtime_settings(
    lib: Library | None, device: str | None = None, precision: str | None = None
) -> tuple[str, str]:
    """``(device, precision)`` to load a model with: the ones given, else the library's
    :data:`DEVICE_SETTING` and :data:`PRECISION_SETTING`, else ``auto``.

    A value taken from the library is checked here, so that one this computer cannot run says
    where it came from (:class:`LibrarySettingError`); given values are checked by the load.
    """
    from lotlip.devices import resolve_device  # torch, only once a model is wanted
    from lotlip.precision import resolve_precision

    stored_device = _setting(lib, DEVICE_SETTING) if device is None else None
    stored_precision = _setting(lib, PRECISION_SETTING) if precision is None else None
    device = device or stored_device or "auto"
    precision = precision or stored_precision or "auto"
    try:
        resolved = resolve_device(device)
    except RuntimeError as exc:  # DeviceUnavailableError, or torch's "unknown device type"
        if stored_device is None:
            raise
        raise LibrarySettingError(_unusable("device", device, exc, "--device")) from exc
    if stored_precision is not None:
        try:
            resolve_precision(precision, resolved)
        except ValueError as exc:
            raise LibrarySettingError(
                _unusable("precision", precision, exc, "--precision")
            ) from exc
    return device, precision


def _setting(lib: Library | None, key: str) -> str | None:
    value = lib.store.get_setting(key) if lib is not None else None
    return str(value) if value else None


def _unusable(what: str, value: str, exc: Exception, flag: str) -> str:
    return (
        f"the library's {what} setting is {value!r}, which cannot run here: {exc}. Choose "
        f"another in the app's Settings, or pass {flag} on the command line"
    )


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
    device: str | None = None,
    precision: str | None = None,
) -> ModelChoice:
    """Pick and load the model to use (see the module docstring for the order).

    ``device`` and ``precision``: None takes the library's setting (:func:`runtime_settings`).
    Raises ``lotlip.ModelNotFoundError`` when the chosen model is not installed (e.g. the
    bundled model is missing from a development checkout); its message says how to get one.
    """
    device, precision = runtime_settings(lib, device, precision)
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


MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""A name the app offers for a new model (imported or fine-tuned)."""


@dataclass(frozen=True)
class ModelEntry:
    """A row of the model list: an installed model, a broken model folder (``kind`` "broken",
    with its ``problem``) or an official model still to be downloaded (not ``installed``)."""

    name: str
    kind: str  # bundled, official, imported, fine-tuned or broken
    installed: bool
    size_bytes: int | None
    path: str | None
    description: str = ""
    problem: str = ""


def list_models(*, broken: bool = False) -> list[ModelEntry]:
    """Installed models, broken model folders (when ``broken``), then the official models
    not listed yet (to download). Torch-free."""
    entries = []
    for model in registry.installed_models():
        base = str(model.metadata.get("base_model") or "")
        description = f"Fine-tuned from {base}" if base else ""
        if model.name in registry.OFFICIAL_MODELS:
            description = registry.OFFICIAL_MODELS[model.name].description
        elif model.kind == "bundled":
            description = "Small demo model trained on generated scenes"
        entries.append(
            ModelEntry(model.name, model.kind, True, model.size_bytes, str(model.path), description)
        )
    if broken:
        entries += [
            ModelEntry(b.name, "broken", False, None, str(b.path), problem=b.problem)
            for b in registry.broken_models()
        ]
    names = {e.name for e in entries}
    entries += [
        ModelEntry(name, "official", False, info.approx_mb * 1_000_000, None, info.description)
        for name, info in registry.OFFICIAL_MODELS.items()
        if name not in names
    ]
    return entries


class ModelImportError(ValueError):
    """A model that cannot be imported; the message says why."""


class MissingVocabError(ModelImportError):
    """An official checkpoint imported without the vocabulary it needs."""


def find_vocab(checkpoint: Path) -> Path | None:
    """``vocab.txt`` next to the checkpoint, or bert-base-uncased's in the HF cache."""
    beside = checkpoint.with_name(VOCAB_FILE)
    if beside.is_file():
        return beside
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(registry.BERT_TOKENIZER_REPO, VOCAB_FILE)
    return Path(cached) if isinstance(cached, str) else None


def import_model(
    source: Path, name: str, vocab: Path | None = None, *, replace: bool = False
) -> Path:
    """Install ``source`` as model ``name`` and return its folder: an official checkpoint
    (``.pt``, converted; ``vocab`` defaults to :func:`find_vocab`'s) or a copy of a model folder.

    Raises ``FileExistsError`` when ``name`` is installed and not ``replace``,
    :class:`MissingVocabError` without a vocabulary, :class:`ModelImportError` for anything
    that cannot be imported.
    """
    target = registry.home_folder(name)
    if target is None:
        raise ModelImportError(f"{name!r} cannot name a model (a plain name, not hidden)")
    if target.exists() and not replace:
        raise FileExistsError(f"A model named {name} already exists ({target}).")
    if source.is_dir():
        if not is_pretrained_folder(source):
            raise ModelImportError(
                f"{source} is not a model folder (config.json + model.safetensors)."
            )
        return registry.install_folder(target, lambda staging: shutil.copytree(source, staging))
    vocab = vocab or find_vocab(source)
    if vocab is None or not vocab.is_file():
        raise MissingVocabError("the checkpoint needs the bert-base-uncased vocabulary")
    try:
        target = registry.import_official(source, vocab=vocab, name=name, replace=replace)
    except (CheckpointError, ValueError, OSError) as exc:
        raise ModelImportError(f"cannot import {source}: {exc}") from None
    except Exception as exc:  # torch.load of a damaged file can fail in many ways
        raise ModelImportError(
            f"cannot import {source}: not a readable checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    clear_model_cache()
    return target


def remove_model(name: str) -> None:
    """Delete an installed model's files (:func:`lotlip.registry.remove_model`) and forget it
    if it was loaded."""
    registry.remove_model(name)
    clear_model_cache()
