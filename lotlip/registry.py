"""Known models, where their files live, and explicit downloads from the Hugging Face hub.

* ``lotlip-vit-b16`` / ``lotlip-vit-b32``: the official checkpoints (open_clip ``.pt``) with the
  ``bert-base-uncased`` vocabulary. Fetched only by an explicit :func:`download` (with a progress
  bar, into the normal Hugging Face cache) or imported by hand with :func:`import_official`.
* ``lotlip-tiny``: the small model trained by our ``training`` package, bundled in ``resources``.
* Anything else in :func:`models_home` (imported or fine-tuned models in our format).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs

from .folders import VOCAB_FILE, folder_problem, is_pretrained_folder, read_folder_config

log = logging.getLogger(__name__)

BUNDLED_MODEL = "lotlip-tiny"
MODELS_DIR_ENV = "LOTLIP_MODELS_DIR"
BERT_TOKENIZER_REPO = "google-bert/bert-base-uncased"


@dataclass(frozen=True)
class OfficialModel:
    """An official LoTLIP release on the Hugging Face hub."""

    name: str
    repo_id: str
    filename: str
    description: str
    approx_mb: int
    tokenizer_repo: str = BERT_TOKENIZER_REPO

    @property
    def url(self) -> str:
        """Where a person can fetch the checkpoint by hand."""
        return f"https://huggingface.co/{self.repo_id}/resolve/main/{self.filename}"

    @property
    def vocab_url(self) -> str:
        """Where a person can fetch the tokenizer vocabulary by hand."""
        return f"https://huggingface.co/{self.tokenizer_repo}/resolve/main/{VOCAB_FILE}"


OFFICIAL_MODELS: dict[str, OfficialModel] = {
    "lotlip-vit-b16": OfficialModel(
        "lotlip-vit-b16",
        "weiwu-ww/LoTLIP-ViT-B-16-100M",
        "model.pt",
        "Official LoTLIP ViT-B/16, trained on 100M long-caption pairs",
        800,
    ),
    "lotlip-vit-b32": OfficialModel(
        "lotlip-vit-b32",
        "weiwu-ww/LoTLIP-ViT-B-32-100M",
        "model.pt",
        "Official LoTLIP ViT-B/32, trained on 100M long-caption pairs",
        800,
    ),
}


class ModelNotFoundError(LookupError):
    """A model name or path that cannot be resolved; the message says how to get it."""


class DownloadError(RuntimeError):
    """A download that failed (offline, refused, interrupted); the message says what to do."""


@dataclass(frozen=True)
class InstalledModel:
    """A model that can be loaded right now."""

    name: str
    kind: str  # "bundled", "official", "imported" or "fine-tuned"
    path: Path
    size_bytes: int
    metadata: dict[str, Any] = field(default_factory=dict)  # a model folder's, e.g. base_model


@dataclass(frozen=True)
class BrokenModel:
    """A folder in :func:`models_home` that cannot be loaded, and why."""

    name: str
    path: Path
    problem: str


# -- locations ---------------------------------------------------------------------------------
def models_home() -> Path:
    """Folder for imported and fine-tuned models (``$LOTLIP_MODELS_DIR`` overrides)."""
    override = os.environ.get(MODELS_DIR_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir("lotlip-search", appauthor=False)) / "models"


def bundled_model_dir(name: str = BUNDLED_MODEL) -> Path:
    """The folder of a model shipped inside the ``resources`` package."""
    return Path(str(resources.files("resources"))) / "models" / name


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- discovery ---------------------------------------------------------------------------------
def installed_models() -> list[InstalledModel]:
    """Every model loadable offline: bundled, official ones in the cache, and models_home()."""
    found: list[InstalledModel] = []
    bundled = bundled_model_dir()
    if is_pretrained_folder(bundled):
        found.append(InstalledModel(BUNDLED_MODEL, "bundled", bundled, _folder_size(bundled)))
    seen = {BUNDLED_MODEL}
    for folder in _home_folders():
        if folder.name in seen or folder_problem(folder):
            continue
        _, meta = read_folder_config(folder)
        kind = meta.get("kind", "official" if folder.name in OFFICIAL_MODELS else "imported")
        found.append(InstalledModel(folder.name, str(kind), folder, _folder_size(folder), meta))
        seen.add(folder.name)
    for name in OFFICIAL_MODELS:
        if name not in seen:
            cached = cached_official_files(name)
            if cached:
                found.append(InstalledModel(name, "official", cached[0], cached[0].stat().st_size))
    return found


def broken_models() -> list[BrokenModel]:
    """Folders in :func:`models_home` that are not loadable models, each with the reason."""
    broken = []
    for folder in _home_folders():
        problem = folder_problem(folder)
        if problem:
            broken.append(BrokenModel(folder.name, folder, problem))
    return broken


def _home_folders() -> list[Path]:
    """The model folders in :func:`models_home` (hidden ones are skipped), by name."""
    home = models_home()
    try:
        entries = sorted(home.iterdir()) if home.is_dir() else []
    except OSError as exc:
        log.warning("cannot list the models folder %s: %s", home, exc)
        return []
    return [p for p in entries if p.is_dir() and not p.name.startswith(".")]


def is_installed(name: str) -> bool:
    """True when ``name`` loads without any download."""
    return any(m.name == name for m in installed_models())


def cached_official_files(
    name: str, cache_dir: str | Path | None = None
) -> tuple[Path, Path] | None:
    """(checkpoint, vocab) of an official model already in the Hugging Face cache, else None."""
    from huggingface_hub import try_to_load_from_cache

    info = OFFICIAL_MODELS[name]
    ckpt = try_to_load_from_cache(info.repo_id, info.filename, cache_dir=cache_dir)
    vocab = try_to_load_from_cache(info.tokenizer_repo, VOCAB_FILE, cache_dir=cache_dir)
    if isinstance(ckpt, str) and isinstance(vocab, str):
        return Path(ckpt), Path(vocab)
    return None


# -- download and import -------------------------------------------------------------------------
def offline_instructions(name: str) -> str:
    """What a person on an offline machine can do to install ``name`` by hand."""
    info = OFFICIAL_MODELS[name]
    return (
        f"To install {name} without network access here, fetch these two files on a machine "
        f"that has it:\n  {info.url}\n  {info.vocab_url}\n"
        f"copy them over, then run:\n"
        f"  lotlip-search model import model.pt --vocab vocab.txt --name {name}"
    )


def download(
    name: str,
    *,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
    progress: bool = True,
    progress_bar: type | None = None,
) -> tuple[Path, Path]:
    """Fetch an official model's checkpoint and vocabulary into the Hugging Face cache.

    Uses ``huggingface_hub.hf_hub_download`` (its cache layout, file locking, and resumption
    of a connection that drops mid-file). Each file is then checked against the checksum the
    hub published for it (the blob's name: sha256 for LFS files, the git blob hash otherwise);
    a corrupted file, fresh or found in the cache, is fetched again once. A download that fails
    keeps no partial file, so the next call starts that file over. Returns the local
    (checkpoint, vocab) paths. Raises :class:`DownloadError` with instructions when offline.
    ``endpoint`` defaults to ``$HF_ENDPOINT`` (a mirror). ``progress_bar`` is a tqdm-compatible
    class to report progress through (e.g. to a GUI); by default a tqdm bar is shown, or nothing
    when ``progress`` is false.
    """
    if name not in OFFICIAL_MODELS:
        raise ModelNotFoundError(f"{name} is not an official model ({', '.join(OFFICIAL_MODELS)})")
    info = OFFICIAL_MODELS[name]
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    tqdm_class = progress_bar or (None if progress else _silent_tqdm())
    paths = []
    for repo, filename in ((info.repo_id, info.filename), (info.tokenizer_repo, VOCAB_FILE)):
        log.info("downloading %s from %s", filename, repo)
        paths.append(_fetch_verified(name, repo, filename, cache_dir, endpoint, tqdm_class))
    return paths[0], paths[1]


def _fetch_verified(
    name: str,
    repo_id: str,
    filename: str,
    cache_dir: str | Path | None,
    endpoint: str | None,
    tqdm_class: type | None,
) -> Path:
    """One hub file via ``hf_hub_download``, checked against its checksum (one re-fetch)."""
    from huggingface_hub import (
        get_hf_file_metadata,
        hf_hub_download,
        hf_hub_url,
        try_to_load_from_cache,
    )
    from huggingface_hub.errors import HfHubHTTPError

    try:  # one quick look first: hf_hub_download retries an unreachable hub for ~20 s
        get_hf_file_metadata(hf_hub_url(repo_id, filename, endpoint=endpoint))
    except HfHubHTTPError:
        pass  # the hub answered; hf_hub_download reports the error properly
    except Exception as exc:
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
        if not isinstance(cached, str) or checksum_problem(cached):
            raise _download_error(name, filename, exc, unreachable=True) from exc
        return Path(cached)
    problem = ""
    for attempt in range(2):
        try:
            path = Path(
                hf_hub_download(
                    repo_id,
                    filename,
                    cache_dir=cache_dir,
                    endpoint=endpoint,
                    tqdm_class=tqdm_class,
                    force_download=attempt > 0,
                )
            )
        except Exception as exc:
            raise _download_error(name, filename, exc) from exc
        problem = checksum_problem(path)
        if not problem:
            return path
        log.warning("%s for %s: %s; downloading it again", filename, name, problem)
    _discard(path)
    raise DownloadError(
        f"{filename} for {name} failed its checksum check twice ({problem}). The download or "
        "the mirror is damaged; try again later or from another network.\n"
        + offline_instructions(name)
    )


def _download_error(
    name: str, filename: str, exc: Exception, *, unreachable: bool = False
) -> DownloadError:
    """A :class:`DownloadError` for a failed download, saying what to do."""
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    if unreachable or isinstance(exc, LocalEntryNotFoundError):
        what = f"Could not reach the Hugging Face hub to download {name}."
    elif isinstance(exc, EntryNotFoundError):
        what = f"The hub has no {filename} for {name} ({exc})."
    else:
        what = (
            f"Downloading {filename} for {name} failed: {exc}\nRun the same command again to retry."
        )
    return DownloadError(what + "\n" + offline_instructions(name))


def checksum_problem(path: str | Path) -> str:
    """Why a file in the Hugging Face cache does not match its published checksum ("" if it does).

    The cache names each blob after the hub's ETag for it: the sha256 of an LFS file, the git
    blob hash (sha1 of ``blob <size>\\0`` + content) of a small one. Blobs with other names
    (a mirror's own ETags) cannot be checked and pass.
    """
    blob = Path(path).resolve()
    expected = blob.name.lower()
    if len(expected) == 64 and all(c in "0123456789abcdef" for c in expected):
        digest = hashlib.sha256()
    elif len(expected) == 40 and all(c in "0123456789abcdef" for c in expected):
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(f"blob {blob.stat().st_size}\0".encode())
    else:
        return ""
    with blob.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    actual = digest.hexdigest()
    return "" if actual == expected else f"expected {expected}, got {actual}"


def _discard(path: Path) -> None:
    """Remove a bad file from the cache: its blob and the snapshot entry pointing at it."""
    blob = path.resolve()
    for item in (path, blob):
        with contextlib.suppress(OSError):
            item.unlink()


def _silent_tqdm() -> type:
    """A tqdm class that shows nothing (for ``progress=False``)."""
    from tqdm import tqdm

    class SilentTqdm(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "disable": True})

    return SilentTqdm


def import_official(
    checkpoint: str | Path, *, vocab: str | Path, name: str, replace: bool = False
) -> Path:
    """Convert an official ``.pt`` into our format under :func:`models_home` ``/name``."""
    target = home_folder(name)
    if target is None:
        raise ValueError(f"{name!r} cannot name a model folder")
    if target.exists() and not replace:
        raise FileExistsError(f"a model named {name} already exists at {target}")
    from .checkpoints import load_official  # torch: only when importing
    from .tokenizer import LoTLIPTokenizer

    tokenizer = LoTLIPTokenizer.from_vocab_file(vocab)
    model = load_official(checkpoint, tokenizer, name=name)
    kind = "official" if name in OFFICIAL_MODELS else "imported"
    metadata = {"kind": kind, "imported_from": str(checkpoint)}
    return install_folder(target, lambda staging: model.save(staging, metadata=metadata))


def install_folder(target: Path, fill: Callable[[Path], object]) -> Path:
    """Call ``fill(staging)`` to write a model folder next to ``target``, then swap it in by
    renames (never a half-written ``target``; without one only between two renames)."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    fill(staging)
    retired = target.with_name(f".{target.name}.replaced")
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists():
        target.replace(retired)
    staging.replace(target)
    shutil.rmtree(retired, ignore_errors=True)
    return target


def resolve_folder(spec: str) -> Path | None:
    """Our-format folder for a name (bundled or in models_home()), or None."""
    if spec == BUNDLED_MODEL and is_pretrained_folder(bundled_model_dir()):
        return bundled_model_dir()
    candidate = models_home() / spec
    if "/" not in spec and is_pretrained_folder(candidate):
        return candidate
    return None


def home_folder(name: str) -> Path | None:
    """``models_home() / name``, or ``None`` when ``name`` is not a plain visible folder name
    (empty, hidden, or a path that would lead elsewhere)."""
    if not name or Path(name).name != name or name.startswith("."):
        return None
    return models_home() / name


def remove_model(name: str) -> None:
    """Delete an imported or fine-tuned model (or a broken model folder) from
    :func:`models_home`."""
    if name == BUNDLED_MODEL:
        raise ValueError("the bundled model cannot be removed")
    folder = home_folder(name)
    if folder is None or not folder.is_dir():
        raise ModelNotFoundError(f"no installed model named {name}")
    shutil.rmtree(folder)
