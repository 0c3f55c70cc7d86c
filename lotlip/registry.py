"""Known models, where their files live, and explicit downloads from the Hugging Face hub.

* ``lotlip-vit-b16`` / ``lotlip-vit-b32``: the official checkpoints (open_clip ``.pt``) with the
  ``bert-base-uncased`` vocabulary. Fetched only by an explicit :func:`download` (with a progress
  bar, into the normal Hugging Face cache) or imported by hand with :func:`import_official`.
* ``lotlip-tiny``: the small model trained by our ``training`` package, bundled in ``resources``.
* Anything else in :func:`models_home` (imported or fine-tuned models in our format).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import platformdirs

from .folders import VOCAB_FILE, is_pretrained_folder, read_folder_config

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
    home = models_home()
    if home.is_dir():
        for folder in sorted(home.iterdir()):
            if folder.name in seen or not is_pretrained_folder(folder):
                continue
            _, meta = read_folder_config(folder)
            kind = meta.get("kind", "official" if folder.name in OFFICIAL_MODELS else "imported")
            found.append(InstalledModel(folder.name, kind, folder, _folder_size(folder)))
            seen.add(folder.name)
    for name in OFFICIAL_MODELS:
        if name not in seen:
            cached = cached_official_files(name)
            if cached:
                found.append(InstalledModel(name, "official", cached[0], cached[0].stat().st_size))
    return found


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

    Interrupted downloads resume where they stopped on the next call. Returns the local
    (checkpoint, vocab) paths. Raises :class:`DownloadError` with instructions when offline.
    ``progress_bar`` is a tqdm-compatible class to report progress through (e.g. to a GUI);
    by default a tqdm bar is shown, or nothing when ``progress`` is false.
    """
    if name not in OFFICIAL_MODELS:
        raise ModelNotFoundError(f"{name} is not an official model ({', '.join(OFFICIAL_MODELS)})")
    info = OFFICIAL_MODELS[name]
    tqdm_class = progress_bar or (None if progress else _SilentTqdm)
    paths = []
    for repo, filename in ((info.repo_id, info.filename), (info.tokenizer_repo, VOCAB_FILE)):
        log.info("downloading %s from %s", filename, repo)
        paths.append(_fetch(name, repo, filename, cache_dir, endpoint, tqdm_class))
    return paths[0], paths[1]


def _fetch(
    name: str,
    repo_id: str,
    filename: str,
    cache_dir: str | Path | None,
    endpoint: str | None,
    tqdm_class: type | None,
) -> Path:
    """Download one hub file into the standard Hugging Face cache layout, resumably.

    ``hf_hub_download`` (huggingface_hub >= 1.x) deletes its partial file when a download fails,
    so the next call would start from zero. Here the partial file is kept as
    ``blobs/<etag>.incomplete`` and continued with a ``Range`` request by the next call.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.file_download import http_get, repo_folder_name
    from huggingface_hub.utils import WeakFileLock

    try:
        from httpx2 import HTTPError as TransportError  # huggingface_hub >= 2
    except ImportError:  # older huggingface_hub: httpx, or requests (its errors are OSErrors)
        try:
            from httpx import HTTPError as TransportError
        except ImportError:
            TransportError = OSError

    url = hf_hub_url(repo_id, filename, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url)
    except HfHubHTTPError as exc:
        raise DownloadError(
            f"Downloading {filename} for {name} failed: {exc}\n" + offline_instructions(name)
        ) from exc
    except (TransportError, OSError) as exc:
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
        if isinstance(cached, str):
            return Path(cached)
        raise DownloadError(
            f"Could not reach the Hugging Face hub to download {name}.\n"
            + offline_instructions(name)
        ) from exc
    if not meta.commit_hash or not meta.etag:
        raise DownloadError(
            f"{url} did not answer like the Hugging Face hub (no commit hash or ETag).\n"
            + offline_instructions(name)
        )
    cache = Path(cache_dir or constants.HF_HUB_CACHE)
    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    blob = storage / "blobs" / meta.etag
    pointer = storage / "snapshots" / meta.commit_hash / filename
    if not blob.is_file():
        blob.parent.mkdir(parents=True, exist_ok=True)
        lock = cache / ".locks" / storage.name / f"{meta.etag}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with WeakFileLock(str(lock)):
            partial = blob.with_name(blob.name + ".incomplete")
            done = partial.stat().st_size if partial.is_file() else 0
            if meta.size is not None and done > meta.size:
                partial.unlink()
                done = 0
            try:
                if not blob.is_file():  # another process may have finished it meanwhile
                    with partial.open("ab") as out:
                        http_get(
                            meta.location,
                            out,
                            resume_size=done,
                            expected_size=meta.size,
                            displayed_filename=filename,
                            tqdm_class=tqdm_class,
                        )
                    partial.replace(blob)
            except (TransportError, OSError) as exc:
                raise DownloadError(
                    f"Downloading {filename} for {name} failed: {exc}\nRun the same command "
                    "again to resume.\n" + offline_instructions(name)
                ) from exc
    ref = storage / "refs" / "main"
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(meta.commit_hash)
    if not pointer.exists():
        pointer.parent.mkdir(parents=True, exist_ok=True)
        try:
            pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        except OSError:
            shutil.copyfile(blob, pointer)
    return pointer


class _SilentTqdm:
    """A tqdm stand-in that shows nothing (for ``progress=False``)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def __enter__(self) -> _SilentTqdm:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None

    def set_description(self, *args: object, **kwargs: object) -> None:
        return None


def import_official(
    checkpoint: str | Path, *, vocab: str | Path, name: str, replace: bool = False
) -> Path:
    """Convert an official ``.pt`` into our format under :func:`models_home` ``/name``."""
    target = models_home() / name
    if target.exists() and not replace:
        raise FileExistsError(f"a model named {name} already exists at {target}")
    from .checkpoints import load_official, save_pretrained  # torch: only when importing
    from .tokenizer import LoTLIPTokenizer

    tokenizer = LoTLIPTokenizer.from_vocab_file(vocab)
    model = load_official(checkpoint, tokenizer, name=name)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    kind = "official" if name in OFFICIAL_MODELS else "imported"
    save_pretrained(model, staging, metadata={"kind": kind, "imported_from": str(checkpoint)})
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)
    return target


def resolve_folder(spec: str) -> Path | None:
    """Our-format folder for a name (bundled or in models_home()), or None."""
    if spec == BUNDLED_MODEL and is_pretrained_folder(bundled_model_dir()):
        return bundled_model_dir()
    candidate = models_home() / spec
    if "/" not in spec and is_pretrained_folder(candidate):
        return candidate
    return None


def remove_model(name: str) -> None:
    """Delete an imported or fine-tuned model from :func:`models_home`."""
    if name == BUNDLED_MODEL:
        raise ValueError("the bundled model cannot be removed")
    folder = models_home() / name
    if not is_pretrained_folder(folder):
        raise ModelNotFoundError(f"no installed model named {name}")
    shutil.rmtree(folder)
