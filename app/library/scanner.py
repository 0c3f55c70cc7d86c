"""Find the photos under the library's root folders and work out what changed since last time.

Three parts, no Qt and no model code:

* :class:`Scanner` walks root folders and yields a :class:`FileInfo` for every image it finds.
  Images are chosen by *content*: the first :data:`HEAD_BYTES` bytes are matched
  against magic numbers (JPEG, PNG, WebP, GIF, BMP, TIFF, and HEIC/AVIF by their ``ftyp``
  brand), so ``IMG_1.JPG``, ``a.jpeg`` and a PNG named ``.jpg`` all count while a text file named
  ``.jpg`` does not. Files with a clearly non-image extension (``.txt``, ``.mp4``, RAW formats,
  ...) are skipped without being opened.
* :func:`content_hash` fingerprints a file's whole content (BLAKE2b), to tell an edit from a
  mere new mtime and to recognise a photo that was moved or renamed.
* :func:`plan_changes` compares a scan with what the store knows and returns a
  :class:`ChangeSet`: new, changed, touched (same content, new mtime), moved, removed,
  missing an embedding, and previously-failed files. :func:`plan_folders` scans folders and
  plans them against a library's store in one go, for counts shown before a run.

Paths: the walk uses ``bytes`` paths internally and every path handed out is
``os.fsdecode(bytes)``. On POSIX that text uses ``surrogateescape`` for bytes that are not valid
UTF-8, so ``os.fsencode(path)`` gives back the very same bytes; keep paths as such text
everywhere (the store does) and never ``.encode("utf-8")`` them.

Symlinks are followed, but never out of the chosen roots and never in a loop:
every directory is entered once, identified by ``(st_dev, st_ino)``, and a link whose real path
lies outside every root is skipped and counted (``ScanStats.links_outside``). Real (non-link)
routes are walked first, so a file reached both directly and through a link is reported under
its direct path. A link that cannot be resolved (a loop, a dangling target, a target the system
refuses to show, e.g. inside ``/proc``) is reported as an error for that link and the walk goes
on.

Excludes (:func:`exclude_matches`) are gitignore-like and relative to each root folder; a
folder or file that cannot be read is an error (``ScanStats.errors``) and counts as
incomplete, so nothing the store knows there is taken for deleted.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from app.library.paths import is_within_any
from lotlip.files import file_digest

logger = logging.getLogger(__name__)

HEAD_BYTES = 32
"""How many leading bytes are read to recognise an image format."""

IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".pjpeg", ".png", ".apng", ".webp", ".gif",
        ".bmp", ".dib", ".tif", ".tiff", ".heic", ".heif", ".hif", ".avif",
    }
)  # fmt: skip
"""Extensions that suggest an image (the content still decides)."""

NON_IMAGE_EXTENSIONS = frozenset(
    {
        # text, code, documents, data
        ".txt", ".md", ".rst", ".json", ".xml", ".yaml", ".yml", ".toml", ".ini", ".cfg",
        ".csv", ".tsv", ".log", ".html", ".htm", ".css", ".js", ".ts", ".py", ".pyc", ".c",
        ".h", ".cpp", ".java", ".go", ".rs", ".sh", ".bat", ".pdf", ".doc", ".docx", ".odt",
        ".xls", ".xlsx", ".ods", ".ppt", ".pptx", ".odp", ".rtf", ".epub", ".db", ".sqlite",
        ".sqlite3", ".db-wal", ".db-shm", ".lock", ".tmp", ".part", ".crdownload",
        # photo sidecars and camera leftovers
        ".xmp", ".aae", ".thm", ".lrv", ".pp3", ".dop", ".on1", ".lrcat", ".lrdata",
        # video and audio
        ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".wmv", ".flv", ".webm", ".mts", ".m2ts",
        ".3gp", ".mpg", ".mpeg", ".vob", ".mp3", ".wav", ".flac", ".aac", ".m4a", ".ogg",
        ".opus", ".wma", ".aiff",
        # archives, binaries, disk images
        ".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".tar", ".iso", ".dmg",
        ".exe", ".dll", ".so", ".dylib", ".bin", ".o", ".a", ".class", ".jar", ".apk",
        ".pt", ".pth", ".safetensors", ".npy", ".npz", ".hnsw",
        # camera RAW: mostly TIFF inside, but Pillow would only see an embedded preview (or
        # nothing) and RAW+JPEG pairs would index every shot twice
        ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf",
        ".rw2", ".raf", ".pef", ".srw", ".x3f", ".raw", ".rwl", ".3fr", ".erf", ".kdc",
        ".mrw", ".mos", ".iiq",
        # editor project files
        ".psd", ".psb", ".xcf", ".kra", ".afphoto", ".svg", ".svgz", ".eps", ".ai",
    }
)  # fmt: skip
"""Extensions skipped without opening the file."""

JUNK_PATTERNS: tuple[str, ...] = (
    ".git", ".hg", ".svn", "@eaDir", "node_modules", ".thumbnails", "__pycache__",
    "$RECYCLE.BIN", "System Volume Information", ".Trash", ".Trash-*", ".Trashes",
    ".Spotlight-V100", ".fseventsd", ".DocumentRevisions-V100", ".TemporaryItems",
    "lost+found", ".cache", "Thumbs.db", "ehthumbs.db", "desktop.ini", ".DS_Store", "._*",
    ".picasa.ini", ".picasaoriginals",
)  # fmt: skip
"""Names (fnmatch patterns) of junk folders and files that are always skipped."""

_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

RejectCallback = Callable[["FileInfo", str], None]


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One image found by the scanner.

    ``path`` is absolute text from ``os.fsdecode`` (round-trips to the on-disk bytes),
    ``root`` the root folder it was found under (as given to the scanner, made absolute),
    ``format`` the sniffed format name (a name :func:`sniff_format` returns).
    """

    path: str
    size: int
    mtime_ns: int
    root: str = ""
    format: str = ""


@dataclass(frozen=True, slots=True)
class KnownFile:
    """What the store remembers about an indexed image (input to :func:`plan_changes`).

    ``embedded`` says whether the image already has a vector for the model being indexed.
    """

    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str | None = None
    folder_id: int | None = None
    embedded: bool = True


@dataclass(frozen=True, slots=True)
class ScanRoot:
    """A root folder and its own exclude patterns.

    ``start``: walk only this part of the root (a ``/``-separated path relative to it, e.g.
    ``"2021/summer"`` when a subfolder of a library folder is indexed); excludes stay
    relative to ``path``.
    """

    path: str
    excludes: tuple[str, ...] = ()
    start: str = ""

    @property
    def scope(self) -> str:
        """The path walked: ``path``, or the part ``start`` below it."""
        if not self.start:
            return self.path
        return os.path.join(self.path, *self.start.split("/"))


class _RootLike(Protocol):
    path: str
    excludes: Sequence[str]


@dataclass(frozen=True, slots=True)
class Move:
    """A removed file that reappeared at another path with the same content."""

    old: KnownFile
    new: FileInfo


@dataclass(slots=True)
class ScanStats:
    """Counters filled in while a :class:`Scanner` runs."""

    links_outside: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    missing_roots: list[str] = field(default_factory=list)
    cancelled: bool = False


# --------------------------------------------------------------------------- sniffing


def sniff_format(head: bytes) -> str | None:
    """Name the image format of a file from its first bytes, or ``None`` if it is not an image.

    Recognises JPEG, PNG, GIF, BMP, WebP, TIFF (incl. BigTIFF) and, from an ISO-BMFF ``ftyp``
    box, HEIC/HEIF and AVIF (major or compatible brand). Needs at most :data:`HEAD_BYTES` bytes.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:2] == b"BM" and len(head) >= 18:
        if int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
            return "bmp"
        return None
    if len(head) >= 12 and head[4:8] == b"ftyp":
        box_end = min(len(head), max(16, int.from_bytes(head[0:4], "big")))
        brands = [head[8:12]] + [head[i : i + 4] for i in range(16, box_end - 3, 4)]
        if any(b in _AVIF_BRANDS for b in brands):
            return "avif"
        if any(b in _HEIF_BRANDS for b in brands):
            return "heic"
    return None


def sniff_file(path: str | bytes | os.PathLike[Any]) -> str | None:
    """Read the first :data:`HEAD_BYTES` of ``path`` and return :func:`sniff_format` of them.

    Raises ``OSError`` when the file cannot be read.
    """
    with open(path, "rb") as fh:
        return sniff_format(fh.read(HEAD_BYTES))


def hash_bytes(data: bytes) -> str:
    """:func:`content_hash` of content already in memory (the decoder reads each file once)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def content_hash(path: str | bytes | os.PathLike[Any]) -> str:
    """Fingerprint a file's whole content: 32 hex digits of BLAKE2b-128.

    The hash decides two things. When a known file has a new mtime and the same size, an equal
    hash means only the mtime changed (``touched``: nothing to embed) and any other hash means
    an edit (re-embed) -- so it must see every byte: a retouched BMP/TIFF or an in-place
    metadata rewrite keeps the size and may change bytes anywhere. And when a file vanished
    and one of the same size and hash appeared, it was moved or renamed and keeps its vector.
    Reading the whole file costs little next to decoding it.
    """
    return file_digest(path)[0]


# --------------------------------------------------------------------------- walking


def exclude_matches(pattern: str, rel: str, is_dir: bool) -> bool:
    """Whether an exclude ``pattern`` matches the entry at ``rel`` (relative to its root).

    Gitignore-like, relative to each root folder, with fnmatch wildcards (``*`` also matches
    ``/``)::

        Screenshots        a file or folder of that name at any depth
        Screenshots/       only folders of that name, at any depth
        */Screenshots/*    the same: everything in any Screenshots folder, the top one too
        trips/2020         a pattern with a "/" still matches at any depth (a/trips/2020)
        /2020              a leading "/" anchors at the root folder: only <root>/2020
        *.png              file names at any depth

    An excluded folder is not entered. ``rel`` uses ``/``; a pattern may use ``os.sep``.
    """
    if os.sep != "/":
        pattern = pattern.replace(os.sep, "/")
    dir_only = pattern.endswith("/")
    core = pattern.rstrip("/")
    if not core or (dir_only and not is_dir):
        return False
    if not core.startswith(("/", "*")):
        core = "*/" + core  # any depth, the top level included
    path = "/" + rel
    return fnmatch.fnmatch(path, core) or (is_dir and fnmatch.fnmatch(path + "/", core))


def glob_escape(text: str) -> str:
    """Escape fnmatch's special characters so ``text`` matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def rebase_pattern(pattern: str, rel: str) -> list[str]:
    """Patterns for the root folder that mean what ``pattern`` meant for its subfolder ``rel``.

    Used when a folder's excludes move to the library folder that holds it: ``/raw`` for
    ``2021`` becomes ``/2021/raw``; a pattern that matched at any depth below ``2021`` matches
    at any depth below ``/2021`` (two patterns: directly in it, or deeper).
    """
    if os.sep != "/":
        pattern = pattern.replace(os.sep, "/")
    base = "/" + glob_escape(rel.strip("/"))
    tail = "/" if pattern.endswith("/") else ""
    core = pattern.rstrip("/")
    if core.startswith("/"):
        return [base + core + tail]
    while core.startswith("*/"):  # "*/x" already meant "x at any depth"
        core = core[2:]
    if core.startswith("*"):  # "*" spans folders too: one pattern covers every depth
        return [f"{base}/{core}{tail}"]
    return [f"{base}/{core}{tail}", f"{base}/*/{core}{tail}"]


def _excluded(patterns: Iterable[str], rel: str, is_dir: bool) -> bool:
    return any(exclude_matches(p, rel, is_dir) for p in patterns)


def _reason(what: str, exc: OSError) -> str:
    """A failure reason a person reads: ``"cannot read the file: Permission denied"``."""
    return f"{what}: {exc.strerror or exc}"


def _as_root(root: ScanRoot | _RootLike | str | os.PathLike[str]) -> ScanRoot:
    if isinstance(root, (str, os.PathLike)):
        return ScanRoot(os.path.abspath(root))
    start = root.start.strip("/") if isinstance(root, ScanRoot) else ""
    return ScanRoot(os.path.abspath(root.path), tuple(root.excludes), start)


@dataclass(slots=True)
class _Pending:
    """A symlink whose handling waits until every direct route has been walked."""

    path: bytes
    rel: str
    root: ScanRoot


class Scanner:
    """Walks root folders and yields :class:`FileInfo` for every image (iterate it).

    Args:
        roots: folders to walk; plain paths or objects with ``path`` and ``excludes`` (e.g.
            :class:`ScanRoot` or the store's ``Folder``). A root nested in another root is
            walked as its own root, so each file belongs to its innermost root.
        skip_paths: folders never entered (compared by real path), e.g. the library folder.
        on_rejected: called with ``(FileInfo, reason)`` for a file whose *name* says image
            (:data:`IMAGE_EXTENSIONS`) but whose content is not one (empty, too short, a text
            file named ``.jpg``), so that it can be reported instead of silently skipped
            (``FileInfo.format`` is then ``""``).
        cancel: polled for every directory entry; when it returns true the walk stops and
            :attr:`stats` ``.cancelled`` is set.

    Names starting with ``.`` and junk (:data:`JUNK_PATTERNS`) are skipped; files whose
    extension is neither a known image nor a known non-image one are sniffed. After (or
    during) iteration, :attr:`stats` holds counters (unreadable folders and files, links that
    cannot be resolved and missing roots in ``errors``) and :attr:`incomplete_paths`
    the folders whose contents were not fully seen; pass it to :func:`plan_changes` so files
    there are not taken for removed. A consumer that stops iterating early must treat the
    whole scan as incomplete (plan nothing as removed). Iterating again rescans.
    """

    def __init__(
        self,
        roots: Iterable[ScanRoot | _RootLike | str | os.PathLike[str]],
        *,
        skip_paths: Iterable[str | os.PathLike[str]] = (),
        cancel: Callable[[], bool] | None = None,
        on_rejected: RejectCallback | None = None,
    ) -> None:
        self.roots: list[ScanRoot] = [_as_root(r) for r in roots]
        self.skip_paths = [os.fsencode(os.path.realpath(p)) for p in skip_paths]
        self.on_rejected = on_rejected
        self.cancel = cancel
        self.stats = ScanStats()
        self._incomplete: list[str] = []

    @property
    def incomplete_paths(self) -> list[str]:
        """Folders whose listing failed or was not finished (all roots if cancelled)."""
        if self.stats.cancelled:
            return [r.path for r in self.roots]
        return list(self._incomplete)

    # -- iteration --------------------------------------------------------------------

    def __iter__(self) -> Iterator[FileInfo]:
        self.stats = ScanStats()
        self._incomplete = []
        self._visited: set[tuple[int, int]] = set()
        self._linked_files: set[tuple[int, int]] = set()
        self._pending: deque[_Pending] = deque()
        self._root_keys: dict[tuple[int, int], str] = {}
        self._real_roots: list[bytes] = []
        present: list[tuple[ScanRoot, tuple[int, int]]] = []  # roots that are there
        for root in self.roots:
            root_b = os.fsencode(root.path)
            try:
                st = os.stat(root_b)
            except OSError as exc:
                self._missing(root, exc)
                continue
            if not stat.S_ISDIR(st.st_mode):
                self._missing(root, NotADirectoryError(root.path))
                continue
            key = (st.st_dev, st.st_ino)
            self._root_keys.setdefault(key, root.path)
            self._real_roots.append(os.path.realpath(root_b))
            present.append((root, key))
        for root, key in present:
            if key in self._visited or self._root_keys[key] != root.path:
                logger.debug("root %s is listed twice; walking it once", root.path)
                continue
            if root.start:
                yield from self._walk_part(root)
            else:
                yield from self._walk(os.fsencode(root.path), "", root, key)
            if self.stats.cancelled:
                return
        while self._pending and not self.stats.cancelled:
            yield from self._follow(self._pending.popleft())

    def _missing(self, root: ScanRoot, exc: OSError) -> None:
        logger.info("root folder unavailable: %s (%s)", root.path, exc)
        self.stats.missing_roots.append(root.path)
        self._error(root.path, exc, "the folder is not there")

    def _error(self, path: str, exc: OSError, what: str) -> None:
        """Record a path that could not be read; it is left as it was (incomplete)."""
        logger.info("%s: %s (%s)", what, path, exc)
        self._incomplete.append(path)
        self.stats.errors.append((path, _reason(what, exc)))

    def _walk_part(self, root: ScanRoot) -> Iterator[FileInfo]:
        """Walk only ``root.start`` below ``root`` (nothing if that part is excluded)."""
        if _excluded(root.excludes, root.start, True):
            return
        top = os.fsencode(root.scope)
        try:
            st = os.stat(top)
        except OSError as exc:
            self._error(os.fsdecode(top), exc, "cannot open the folder")
            return
        if not stat.S_ISDIR(st.st_mode):
            self._error(os.fsdecode(top), NotADirectoryError(os.fsdecode(top)), "not a folder")
            return
        yield from self._walk(top, root.start, root, (st.st_dev, st.st_ino))

    def _walk(
        self, top: bytes, top_rel: str, root: ScanRoot, top_key: tuple[int, int]
    ) -> Iterator[FileInfo]:
        """Depth-first walk of ``top`` (already known to be a directory), not following links."""
        self._visited.add(top_key)
        stack: list[tuple[bytes, str]] = [(top, top_rel)]
        while stack:
            dir_b, rel_dir = stack.pop()
            try:
                with os.scandir(dir_b) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self._error(os.fsdecode(dir_b), exc, "cannot open the folder")
                continue
            subdirs: list[tuple[bytes, str]] = []
            for entry in entries:
                if self.cancel is not None and self.cancel():
                    self.stats.cancelled = True
                    return
                name = os.fsdecode(entry.name)
                rel = f"{rel_dir}/{name}" if rel_dir else name
                try:
                    is_link = entry.is_symlink()
                    is_dir = not is_link and entry.is_dir(follow_symlinks=False)
                except OSError as exc:
                    self._error(os.fsdecode(entry.path), exc, "cannot read the entry")
                    continue
                if self._skip_name(name, rel, is_dir, root):
                    continue
                if is_link:
                    self._pending.append(_Pending(entry.path, rel, root))
                    continue
                if is_dir:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError as exc:
                        self._error(os.fsdecode(entry.path), exc, "cannot open the folder")
                        continue
                    if self._enter_dir(entry.path, (st.st_dev, st.st_ino), root):
                        subdirs.append((entry.path, rel))
                    continue
                info = self._file(entry.path, root, linked=False)
                if info is not None:
                    yield info
            # reversed so that popping walks sub-folders in name order
            stack.extend(reversed(subdirs))

    def _enter_dir(self, path: bytes, key: tuple[int, int], root: ScanRoot) -> bool:
        if key in self._visited:
            return False
        other_root = self._root_keys.get(key)
        if other_root is not None and other_root != root.path:
            return False  # a nested root: walked as itself
        if self.skip_paths:
            try:
                real = os.path.realpath(path)
            except OSError as exc:
                self._error(os.fsdecode(path), exc, "cannot resolve the folder")
                return False
            if is_within_any(real, self.skip_paths):
                return False
        self._visited.add(key)
        return True

    def _skip_name(self, name: str, rel: str, is_dir: bool, root: ScanRoot) -> bool:
        junk = any(fnmatch.fnmatch(name, pattern) for pattern in JUNK_PATTERNS)
        return junk or name.startswith(".") or _excluded(root.excludes, rel, is_dir)

    def _follow(self, link: _Pending) -> Iterator[FileInfo]:
        """Handle a symlink after all direct routes were walked."""
        try:
            real = os.path.realpath(link.path)
        except OSError as exc:  # e.g. a link into /proc that the system will not resolve
            self._error(os.fsdecode(link.path), exc, "cannot resolve the link")
            return
        if not is_within_any(real, self._real_roots):
            logger.debug("skipping link out of the roots: %s", os.fsdecode(link.path))
            self.stats.links_outside += 1
            return
        try:
            st = os.stat(link.path)
        except OSError as exc:  # dangling, or a loop
            self._error(os.fsdecode(link.path), exc, "cannot resolve the link")
            return
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if not self._enter_dir(link.path, key, link.root):
                return
            self._visited.discard(key)  # _walk marks it again
            yield from self._walk(link.path, link.rel, link.root, key)
            return
        try:
            parent = os.stat(os.path.dirname(real))
        except OSError:
            return
        if (parent.st_dev, parent.st_ino) in self._visited:
            # the target's own folder was walked: it was seen (or excluded) under its real path
            return
        info = self._file(link.path, link.root, linked=True)
        if info is not None:
            yield info

    def _file(self, path: bytes, root: ScanRoot, *, linked: bool) -> FileInfo | None:
        name = os.fsdecode(os.path.basename(path))
        ext = os.path.splitext(name)[1].lower()
        if ext in NON_IMAGE_EXTENSIONS:
            return None
        try:
            st = os.stat(path)
        except OSError as exc:
            self._error(os.fsdecode(path), exc, "cannot read the file")
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_size < 8:  # FIFOs, devices, empty files
            if stat.S_ISREG(st.st_mode) and ext in IMAGE_EXTENSIONS:
                reason = (
                    "empty file (0 bytes)"
                    if st.st_size == 0
                    else f"not an image: only {st.st_size} bytes long"
                )
                self._reject(path, st, root, "", reason)
            return None
        if linked or st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in self._linked_files:
                return None
            self._linked_files.add(key)
        try:
            fmt = sniff_file(path)
        except OSError as exc:
            self._error(os.fsdecode(path), exc, "cannot read the file")
            return None
        if fmt is None:
            if ext in IMAGE_EXTENSIONS:
                reason = (
                    "not an image: its content is not a known picture format despite the "
                    f"{ext} name"
                )
                self._reject(path, st, root, "", reason)
            return None
        return FileInfo(os.fsdecode(path), st.st_size, st.st_mtime_ns, root.path, fmt)

    def _reject(
        self, path: bytes, st: os.stat_result, root: ScanRoot, fmt: str, reason: str
    ) -> None:
        if self.on_rejected is not None:
            info = FileInfo(os.fsdecode(path), st.st_size, st.st_mtime_ns, root.path, fmt)
            self.on_rejected(info, reason)


# --------------------------------------------------------------------------- planning


class _FailureLike(Protocol):
    path: str
    size: int | None
    mtime_ns: int | None


@dataclass(slots=True)
class ChangeSet:
    """The result of :func:`plan_changes`.

    * ``new``: files the store does not know: embed them.
    * ``changed``: known paths whose size/mtime changed and whose content differs (or could
      not be compared): re-embed, the image keeps its id.
    * ``touched``: known paths with a new mtime but the same content hash: update size/mtime
      only (``Store.touch_images``).
    * ``moved``: a vanished known file found again at a new path (same size and content
      hash): ``Store.move_image`` keeps its id and vectors; if ``old.embedded`` is false it
      still needs embedding (see :meth:`to_embed`).
    * ``removed``: known files not found (outside incomplete folders): delete them.
    * ``missing``: unchanged files without a vector for the model being indexed.
    * ``failed``: files skipped because they failed before with the same size and mtime.
    * ``stale_failures``: failure records whose file no longer exists.
    * ``unchanged``: how many files need nothing.
    * ``hashes``: content hashes computed while planning, by path (reuse them when storing).
    """

    new: list[FileInfo] = field(default_factory=list)
    changed: list[tuple[FileInfo, KnownFile]] = field(default_factory=list)
    touched: list[tuple[FileInfo, KnownFile]] = field(default_factory=list)
    moved: list[Move] = field(default_factory=list)
    removed: list[KnownFile] = field(default_factory=list)
    missing: list[tuple[FileInfo, KnownFile]] = field(default_factory=list)
    failed: list[FileInfo] = field(default_factory=list)
    stale_failures: list[str] = field(default_factory=list)
    unchanged: int = 0
    hashes: dict[str, str] = field(default_factory=dict)

    def to_embed(self) -> list[FileInfo]:
        """Files that need decoding and embedding: new, changed, missing, unembedded moves."""
        files = list(self.new)
        files += [info for info, _ in self.changed]
        files += [info for info, _ in self.missing]
        files += [m.new for m in self.moved if not m.old.embedded]
        return files

    def summary(self) -> dict[str, int]:
        """Counts per category, for logs and progress displays."""
        lists = [f.name for f in fields(self) if f.name not in ("unchanged", "hashes")]
        return {name: len(getattr(self, name)) for name in lists} | {"unchanged": self.unchanged}


def plan_changes(
    scanned: Iterable[FileInfo],
    known: Mapping[str, KnownFile],
    *,
    failures: Mapping[str, _FailureLike] | None = None,
    incomplete: Iterable[str] = (),
    hash_fn: Callable[[str], str] = content_hash,
) -> ChangeSet:
    """Classify a scan against the store's view of the same roots.

    Args:
        scanned: the scanner's output (consumed once).
        known: path -> :class:`KnownFile` for the roots scanned (``Store.known_files``).
        failures: path -> failure record (an object with ``path``, ``size``, ``mtime_ns``) for
            the same roots; a file whose failure record matches its size and mtime is skipped.
        incomplete: folders not fully scanned (``Scanner.incomplete_paths``); known files
            under them are never reported as removed.
        hash_fn: ``path -> hash``, :func:`content_hash` by default.

    Hashes are only computed where they decide something: for new files whose size equals
    a vanished file's size (move candidates), and for changed files of the same size with a
    stored hash (to spot mtime-only changes).
    Unreadable files are left as new/changed (the decoder will record the failure).
    """
    failure_map = failures or {}
    protected = list(incomplete)
    result = ChangeSet()
    seen: set[str] = set()
    candidates: list[FileInfo] = []

    def hashed(info: FileInfo) -> str | None:
        if info.path not in result.hashes:
            try:
                result.hashes[info.path] = hash_fn(info.path)
            except OSError as exc:
                logger.warning("cannot hash %s: %s", info.path, exc)
                return None
        return result.hashes[info.path]

    for info in scanned:
        seen.add(info.path)
        old = known.get(info.path)
        failure = failure_map.get(info.path)
        if old is not None and old.size == info.size and old.mtime_ns == info.mtime_ns:
            if old.embedded:
                result.unchanged += 1
            else:
                result.missing.append((info, old))
            continue
        if failure is not None and failure.size == info.size and failure.mtime_ns == info.mtime_ns:
            result.failed.append(info)
            continue
        if old is None:
            candidates.append(info)
        elif old.hash and old.size == info.size and hashed(info) == old.hash:
            result.touched.append((info, old))
        else:
            result.changed.append((info, old))

    gone = [
        k for path, k in known.items() if path not in seen and not is_within_any(path, protected)
    ]
    by_hash: dict[tuple[int, str], list[KnownFile]] = {}
    for k in gone:
        if k.hash:
            by_hash.setdefault((k.size, k.hash), []).append(k)
    sizes = {size for size, _ in by_hash}
    moved_ids: set[int] = set()
    for info in candidates:
        match = None
        if info.size in sizes:
            digest = hashed(info)
            pool = by_hash.get((info.size, digest)) if digest else None
            if pool:
                base = os.path.basename(info.path)
                match = next((k for k in pool if os.path.basename(k.path) == base), pool[0])
                pool.remove(match)
        if match is None:
            result.new.append(info)
        else:
            result.moved.append(Move(match, info))
            moved_ids.add(match.id)
    result.removed = [k for k in gone if k.id not in moved_ids]
    result.stale_failures = [
        path for path in failure_map if path not in seen and not is_within_any(path, protected)
    ]
    return result


@dataclass(slots=True)
class FolderPlan:
    """The result of :func:`plan_folders`: the files found, the plan, the scan's counters, the
    store's failure records under the roots (by path) and the files named like pictures that
    are not (with the reason)."""

    files: list[FileInfo]
    changes: ChangeSet
    stats: ScanStats
    failures: dict[str, Any] = field(default_factory=dict)
    rejected: list[tuple[FileInfo, str]] = field(default_factory=list)


def plan_folders(
    library: Any,
    roots: Sequence[ScanRoot | _RootLike | str | os.PathLike[str]],
    model: str | None,
    *,
    cancel: Callable[[], bool] | None = None,
    found: Callable[[int, str | None], None] | None = None,
    every: int = 100,
) -> FolderPlan:
    """Scan ``roots`` and plan the files against ``library``'s store as an index run with
    ``model`` would (stat, a few header bytes and some hashes per file; nothing decoded).

    The roots need not be library folders: the store's files and failure records under any
    root (under its ``start`` where it has one) are compared. ``found(n, path)`` is called
    every ``every`` files with the latest path, and at the end with ``None``. The plan is
    empty when cancelled.
    """
    rejected: list[tuple[FileInfo, str]] = []
    scanner = Scanner(
        roots,
        skip_paths=[library.ann_dir, library.thumbnails_dir],
        cancel=cancel,
        on_rejected=lambda info, reason: rejected.append((info, reason)),
    )
    files: list[FileInfo] = []
    for info in scanner:
        files.append(info)
        if found is not None and len(files) % every == 0:
            found(len(files), info.path)
    if found is not None:
        found(len(files), None)
    if scanner.stats.cancelled:
        return FolderPlan(files, ChangeSet(), scanner.stats)
    scopes = [_as_root(root).scope for root in roots]
    store = library.store
    known = {p: k for p, k in store.known_files(model=model).items() if is_within_any(p, scopes)}
    failures = {f.path: f for f in store.failures() if is_within_any(f.path, scopes)}
    changes = plan_changes(files, known, failures=failures, incomplete=scanner.incomplete_paths)
    return FolderPlan(files, changes, scanner.stats, failures, rejected)
