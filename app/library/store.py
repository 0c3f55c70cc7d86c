"""The library's SQLite database: folders, images, embeddings, failures, models, settings.

SQLite is the source of truth; HNSW files (:mod:`app.library.ann`) are caches rebuilt from it.
Captions are :mod:`app.library.captions` (mixed into :class:`Store`).

Plain ``sqlite3`` for everything that binds a path (see "Paths" below: sqlite-utils binds
``str``, which cannot carry bytes that are not UTF-8), for the transactions and for the
migrations; sqlite-utils (``Store.db``) for reading rows as dictionaries and for tables
without paths where a call of its replaces hand-written SQL (models, failures' listing,
settings, captions).

Connection setup: WAL journal, ``synchronous=NORMAL``, a busy timeout (30 s by default) and
``foreign_keys=ON``. One process may write while others read (readers see the last committed
state, writers wait for each other up to the timeout). Writes run in ``BEGIN IMMEDIATE``
transactions, one per public call (e.g. one per batch in
:meth:`Store.upsert_images_with_embeddings`). A :class:`Store` may be shared by threads (calls
are serialised by a lock), but a thread that reads while another indexes is better served by
its own :class:`Store`.

Schema changes are numbered steps in :data:`MIGRATIONS`; ``PRAGMA user_version`` records how
many have run. Each step runs in its own transaction together with the version bump.

Paths are text as produced by ``os.fsdecode``. Paths that are not valid UTF-8 (lone
surrogates after ``surrogateescape``) cannot be bound as Python ``str``, so the store always
binds ``os.fsencode(path)`` as ``CAST(? AS TEXT)`` and decodes TEXT read back with
``os.fsdecode`` when it is not valid UTF-8: the original bytes round-trip.

Generations: the meta key ``_generation:<model>`` is an integer bumped in the same
transaction as every change to that model's embeddings (insert, replace, delete, cascades from
removing images, folders or the model). An ANN index saved at generation *g* is current exactly
when the store is still at *g*; :class:`app.library.ann.AnnIndex` checks this on open.

Change record: the table ``embedding_changes`` lists, per model, every image id whose vector
was added, replaced or removed, with the generation the model had when it happened. SQLite
triggers on ``embeddings`` write it, so it is always in the same transaction as the vectors,
whatever code path (or cascade) changed them. Generations are bumped after the changes of a
transaction, so the changes committed after a reader saw generation *g* are exactly the rows
with ``generation >= g`` (:meth:`Store.embedding_changes`). A writer that saved an ANN file at
*g* prunes rows before *g* (:meth:`Store.prune_embedding_changes`); the meta key
``_changes_from:<model>`` records where the record starts. Removing or renaming a model resets
its record (readers then rebuild).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from sqlite_utils import Database

from app.library.captions import CaptionStore
from app.library.paths import absolute, innermost, is_within
from app.library.scanner import KnownFile, glob_escape

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
_CHUNK = 500  # ids per "IN (...)" query, well under SQLite's variable limit

_GEN_OF = "COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = '_generation:' || {m}), 0)"
# A model removed or renamed: bump its generation, drop its record and start the record anew
# there (ANN files saved before cannot be caught up and are rebuilt).
_RESET = (
    "DELETE FROM embedding_changes WHERE model = {m}; "
    "INSERT OR REPLACE INTO meta(key, value) VALUES ('_generation:' || {m}, "
    "CAST(" + _GEN_OF + " + 1 AS TEXT)); "
    "INSERT OR REPLACE INTO meta(key, value) SELECT '_changes_from:' || {m}, value "
    "FROM meta WHERE key = '_generation:' || {m};"
)

UPGRADED_FROM_KEY = "_upgraded_from_schema"
"""Meta key: the schema version the database had when the latest upgrade started (steps that
only apply to data written by older code read it)."""
# A pattern in the shape the old forget wrote: glob_escape(relative path), so its only
# wildcard characters are escaped ones ([*], [?], [[]).
_UNESCAPED = "replace(replace(replace(value, '[*]', ''), '[?]', ''), '[[]', '')"
_LITERAL_RELATIVE = (
    f"value NOT LIKE '/%' AND value NOT LIKE '%/' AND instr({_UNESCAPED}, '*') = 0 "
    f"AND instr({_UNESCAPED}, '?') = 0 AND instr({_UNESCAPED}, '[') = 0"
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the core tables
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE folders (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            excludes TEXT NOT NULL DEFAULT '[]',
            added_at TEXT NOT NULL)""",
        """CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            folder_id INTEGER REFERENCES folders(id) ON DELETE CASCADE,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            hash TEXT,
            width INTEGER,
            height INTEGER,
            taken_at TEXT,
            indexed_at TEXT NOT NULL)""",
        "CREATE INDEX images_folder ON images(folder_id)",
        "CREATE INDEX images_hash ON images(hash)",
        """CREATE TABLE models (
            name TEXT PRIMARY KEY,
            source TEXT,
            dim INTEGER NOT NULL CHECK (dim > 0),
            path TEXT,
            added_at TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}')""",
        """CREATE TABLE embeddings (
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            model TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE ON UPDATE CASCADE,
            vector BLOB NOT NULL,
            PRIMARY KEY (image_id, model))""",
        "CREATE INDEX embeddings_model ON embeddings(model, image_id)",
        """CREATE TABLE failures (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            folder_id INTEGER REFERENCES folders(id) ON DELETE CASCADE,
            reason TEXT NOT NULL,
            size INTEGER,
            mtime_ns INTEGER,
            failed_at TEXT NOT NULL)""",
        "CREATE INDEX failures_folder ON failures(folder_id)",
    ),
    # 2: captions for fine-tuning, date filter index
    (
        """CREATE TABLE captions (
            id INTEGER PRIMARY KEY,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            text TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT 'user' CHECK (kind IN ('short', 'long', 'user')),
            created_at TEXT NOT NULL)""",
        "CREATE INDEX captions_image ON captions(image_id)",
        "CREATE INDEX images_taken_at ON images(taken_at)",
    ),
    # 3: files seen by an index run but not embedded yet (stopped runs resume them); drop the
    # old sampled content hashes: they could miss a same-size edit, and comparing one with a
    # whole-file hash would take every unchanged photo for edited (and drop other models'
    # vectors). Each photo gets its whole-file hash when it is next embedded.
    (
        "UPDATE images SET hash = NULL",
        """CREATE TABLE pending (
            model TEXT NOT NULL,
            path TEXT NOT NULL,
            folder_id INTEGER REFERENCES folders(id) ON DELETE CASCADE,
            PRIMARY KEY (model, path))""",
        "CREATE INDEX pending_folder ON pending(folder_id)",
    ),
    # 4: saved searches (query, sentence states and filters as JSON; see app/library/saved.py)
    (
        """CREATE TABLE saved_searches (
            name TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)""",
    ),
    # 5: the per-model change record behind ANN readers (see "Change record" above)
    (
        """CREATE TABLE embedding_changes (
            id INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            image_id INTEGER NOT NULL,
            op TEXT NOT NULL CHECK (op IN ('add', 'replace', 'remove')),
            generation INTEGER NOT NULL)""",
        "CREATE INDEX embedding_changes_model ON embedding_changes(model, generation)",
        f"""CREATE TRIGGER embedding_added AFTER INSERT ON embeddings BEGIN
            INSERT INTO embedding_changes(model, image_id, op, generation)
            VALUES (NEW.model, NEW.image_id, 'add', {_GEN_OF.format(m="NEW.model")}); END""",
        f"""CREATE TRIGGER embedding_replaced AFTER UPDATE ON embeddings BEGIN
            INSERT INTO embedding_changes(model, image_id, op, generation)
            SELECT OLD.model, OLD.image_id, 'remove', {_GEN_OF.format(m="OLD.model")}
            WHERE OLD.model != NEW.model OR OLD.image_id != NEW.image_id;
            INSERT INTO embedding_changes(model, image_id, op, generation)
            VALUES (NEW.model, NEW.image_id, 'replace', {_GEN_OF.format(m="NEW.model")}); END""",
        # a model's own removal (its vectors cascade) is a reset, not a list of removals
        f"""CREATE TRIGGER embedding_removed AFTER DELETE ON embeddings
            WHEN EXISTS (SELECT 1 FROM models WHERE name = OLD.model) BEGIN
            INSERT INTO embedding_changes(model, image_id, op, generation)
            VALUES (OLD.model, OLD.image_id, 'remove', {_GEN_OF.format(m="OLD.model")}); END""",
        f"""CREATE TRIGGER model_removed AFTER DELETE ON models BEGIN
            {_RESET.format(m="OLD.name")} END""",
        f"""CREATE TRIGGER model_renamed AFTER UPDATE OF name ON models
            WHEN OLD.name != NEW.name BEGIN
            {_RESET.format(m="OLD.name")} {_RESET.format(m="NEW.name")} END""",
        # libraries indexed before the record existed: it starts at today's generations
        "INSERT OR REPLACE INTO meta(key, value) SELECT '_changes_from:' || substr(key, 13), "
        "value FROM meta WHERE substr(key, 1, 12) = '_generation:'",
    ),
    # 6: excludes the old `forget` wrote as a plain relative path (``tmp`` for <root>/tmp,
    # before "/" anchored a pattern) now match at any depth; in a library upgraded from the
    # schema of that code (2 or older), anchor every such literal pattern (no wildcard, no
    # leading or trailing "/"): exactly the forgotten subtree again
    (
        f"""UPDATE folders SET excludes = (
            SELECT json_group_array(CASE WHEN {_LITERAL_RELATIVE} THEN '/' || value ELSE value END)
            FROM json_each(folders.excludes))
        WHERE (SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{UPGRADED_FROM_KEY}') <= 2""",
    ),
)
"""Schema steps; step *i* (0-based) takes the database from version *i* to *i + 1*."""

SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """A library database problem (wrong use, newer schema, corrupt rows)."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer version of the app."""


class DatabaseNotFoundError(StoreError):
    """There is no database file where one was expected (and creating one was not asked for)."""


class DamagedDatabaseError(StoreError):
    """The database file is not a usable SQLite database (corrupt, truncated, not a database)."""


class ReadOnlyStoreError(StoreError):
    """A write to a database that was opened read-only (its file or folder is not writable)."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Folder:
    """A root folder of the library (``excludes``: fnmatch patterns, see the scanner)."""

    id: int
    path: str
    excludes: tuple[str, ...]
    added_at: str


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """What the indexer knows about a decoded image, input to ``upsert_images_with_embeddings``.

    ``taken_at``: EXIF DateTimeOriginal as ISO text, or ``None``.
    """

    path: str
    size: int
    mtime_ns: int
    folder_id: int | None = None
    hash: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None


@dataclass(frozen=True, slots=True)
class ImageRow:
    """An image as stored, with its folder's path (``folder``) for display and filters."""

    id: int
    path: str
    folder_id: int | None
    folder: str | None
    size: int
    mtime_ns: int
    hash: str | None
    width: int | None
    height: int | None
    taken_at: str | None
    indexed_at: str


@dataclass(frozen=True, slots=True)
class Failure:
    """A file that could not be indexed; retried only once its size or mtime changes."""

    path: str
    reason: str
    folder_id: int | None
    size: int | None
    mtime_ns: int | None
    failed_at: str


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A model registered in the library (``metadata`` is free-form JSON)."""

    name: str
    dim: int
    source: str | None
    path: str | None
    added_at: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EmbeddingChanges:
    """Images whose ``model`` vector changed between generations ``since`` and ``generation``.

    ``complete`` is false when the change record cannot tell (see
    :meth:`Store.embedding_changes`); ``ids`` is then empty.
    """

    model: str
    since: int
    generation: int
    ids: np.ndarray
    complete: bool


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """Row counts for a status display; ``embeddings`` maps model name to vector count."""

    images: int
    failures: int
    captions: int
    embeddings: dict[str, int]


FolderRef = int | str | Folder
"""A folder by id, by path, or as returned by the store."""


# --------------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _decode_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return os.fsdecode(raw)  # a path that is not valid UTF-8


def _enc(path: str | os.PathLike[str]) -> bytes:
    """Bytes for binding a path as ``CAST(? AS TEXT)``."""
    return os.fsencode(path)


def _chunks(seq: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _text_marks(n: int) -> str:
    """Placeholders for ``n`` paths bound as bytes (see "Paths" above)."""
    return ",".join(["CAST(? AS TEXT)"] * n)


def _execute_in(
    conn: sqlite3.Connection,
    sql: str,
    items: Sequence[Any],
    *params: Any,
    marks: Callable[[int], str] = _marks,
) -> int:
    """Run ``sql`` once per chunk of ``items`` (their ``IN`` list, made by ``marks``, goes
    where ``{ids}`` is; ``params`` come before them); returns how many rows it changed."""
    return sum(
        conn.execute(sql.format(ids=marks(len(chunk))), (*params, *chunk)).rowcount
        for chunk in _chunks(items)
    )


def _select_in(
    conn: sqlite3.Connection,
    sql: str,
    items: Sequence[Any],
    *params: Any,
    marks: Callable[[int], str] = _marks,
) -> list[Any]:
    """The rows of ``sql`` for the distinct ``items``, read a chunk at a time (their ``IN``
    list, made by ``marks``, goes where ``{ids}`` is; ``params`` come before them)."""
    return [
        row
        for chunk in _chunks(sorted(set(items)))
        for row in conn.execute(sql.format(ids=marks(len(chunk))), (*params, *chunk))
    ]


def _gen_key(model: str) -> str:
    return f"_generation:{model}"


def _under_sql(column: str, path: str | os.PathLike[str]) -> tuple[str, list[bytes]]:
    """``column`` is ``path`` or lies below it, as SQL and parameters (an index range scan).

    Paths below ``/a/b`` sort between ``/a/b/`` and ``/a/b0`` (``0`` follows ``/``), so
    ``/a/b2020`` is never taken for a child of ``/a/b``.
    """
    text = absolute(path)
    below = text.rstrip(os.sep) + os.sep
    sql = (
        f"({column} = CAST(? AS TEXT) OR "
        f"({column} >= CAST(? AS TEXT) AND {column} < CAST(? AS TEXT)))"
    )
    return sql, [_enc(text), _enc(below), _enc(below[:-1] + chr(ord(os.sep) + 1))]


def _as_ids(ids: Iterable[int] | np.ndarray) -> list[int]:
    arr = ids if isinstance(ids, np.ndarray) else np.asarray(list(ids), dtype=np.int64)
    return [int(i) for i in arr.reshape(-1)]


def _check_setting_key(key: str) -> None:
    if key.startswith("_"):
        raise ValueError("setting keys starting with '_' are reserved")


def _horizon_key(model: str) -> str:
    return f"_changes_from:{model}"


def _vectors(vectors: Any, n: int) -> np.ndarray:
    arr = np.asarray(vectors, dtype="<f4")
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] == 0:
        raise ValueError(f"expected vectors of shape ({n}, dim), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("vectors contain NaN or infinity")
    return np.ascontiguousarray(arr)


def _id_at(conn: sqlite3.Connection, path: str) -> int | None:
    """The id of the image at ``path``, or ``None``."""
    row = conn.execute("SELECT id FROM images WHERE path = CAST(? AS TEXT)", (_enc(path),))
    found = row.fetchone()
    return None if found is None else int(found[0])


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database file."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _too_new(version: int) -> SchemaTooNewError:
    return SchemaTooNewError(
        f"library schema version {version} is newer than this app supports "
        f"({SCHEMA_VERSION}); please update LoTLIP Search"
    )


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A ``BEGIN IMMEDIATE`` transaction: committed at the end, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def apply_migrations(conn: sqlite3.Connection, target: int | None = None) -> int:
    """Run the pending :data:`MIGRATIONS` steps up to ``target`` (default: all); return the version.

    Each step and its ``user_version`` bump commit together, under ``BEGIN IMMEDIATE``, so two
    processes opening the same new library cannot both run a step. Raises
    :class:`SchemaTooNewError` for a database newer than this code.
    """
    target = SCHEMA_VERSION if target is None else target
    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"no schema version {target}")
    started = False
    while True:
        with _immediate(conn):
            current = user_version(conn)
            if current > SCHEMA_VERSION:
                raise _too_new(current)
            if current >= target:
                return current
            if current and not started:  # an upgrade of existing data: say where it began
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    (UPGRADED_FROM_KEY, str(current)),
                )
            started = True
            for statement in MIGRATIONS[current]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {current + 1}")
        logger.info("library schema migrated to version %d", current + 1)


def _check_read_only_schema(conn: sqlite3.Connection, path: Path) -> None:
    version = user_version(conn)
    if version > SCHEMA_VERSION:
        raise _too_new(version)
    if version < SCHEMA_VERSION:
        raise ReadOnlyStoreError(
            f"{path} needs an upgrade (schema {version} -> {SCHEMA_VERSION}) but is read-only; "
            "open it once with write access"
        )


def connect(
    path: str | os.PathLike[str],
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    read_only: bool = False,
) -> sqlite3.Connection:
    """Open a raw connection with the library's settings (WAL, busy timeout, foreign keys).

    ``read_only`` opens with ``mode=ro`` and changes nothing (no WAL switch). A WAL database
    in a folder we cannot write cannot be read that way (SQLite needs its ``-shm`` file), so
    then it is opened ``immutable``: right for a read-only medium, where nobody writes; on a
    folder another user writes to, this reader does not see that user's later changes.
    """
    if read_only:
        conn = _connect_read_only(path, timeout)
    else:
        conn = sqlite3.connect(os.fspath(path), timeout=timeout, check_same_thread=False)
    conn.text_factory = _decode_text
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    if read_only:
        return conn
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        logger.warning("could not switch %s to WAL (journal_mode=%s)", path, mode)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _connect_read_only(path: str | os.PathLike[str], timeout: float) -> sqlite3.Connection:
    uri = "file:" + quote(os.fsencode(os.path.abspath(path))) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:  # "unable to open database file": WAL, no -shm
        conn.close()
    logger.debug("opening %s immutable (read-only medium)", path)
    return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=timeout, check_same_thread=False)


def _create_database(path: Path, timeout: float) -> None:
    """Make a new, migrated database at ``path`` atomically.

    It is built under a temporary name and linked into place, so ``library.db`` never exists
    half-made (a run killed while creating it leaves no 0-byte file, which would be damage);
    when two processes race, the first link wins and the other opens that one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.new")
    try:
        conn = connect(staging, timeout)
        try:
            apply_migrations(conn)
            # Fold the WAL into the file before linking it: only the main file is linked, and
            # a checkpoint that fails on close (a full disk) would leave it half-made.
            mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
            if str(mode).lower() != "delete":
                raise sqlite3.OperationalError("database or disk is full")
        finally:
            conn.close()
        try:
            os.link(staging, path)
        except FileExistsError:
            pass  # another process created it first
        except OSError:  # no hard links here: a plain rename (may replace a racing twin)
            if not path.exists():
                os.replace(staging, path)
    finally:
        for leftover in (staging, *(Path(f"{staging}{s}") for s in ("-wal", "-shm"))):
            leftover.unlink(missing_ok=True)


def is_writable(path: str | os.PathLike[str]) -> bool:
    """True when the database file at ``path`` (or the folder that would hold it) is writable.

    ``os.access`` also reports a read-only mount (``EROFS``), even to root.
    """
    path = Path(path)
    folder_ok = os.access(path.parent, os.W_OK)
    return folder_ok and (not path.exists() or os.access(path, os.W_OK))


def is_damage(exc: sqlite3.Error) -> bool:
    """True for the errors SQLite raises on a corrupt or non-database file."""
    name = getattr(exc, "sqlite_errorname", "")
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return True
    text = str(exc)
    return "malformed" in text or "not a database" in text


def damaged_message(path: str | os.PathLike[str], reason: str) -> str:
    """What to tell a user whose database file is damaged (the file is never overwritten)."""
    return (
        f"the library database {os.fspath(path)} is damaged ({reason}); it was left as it is. "
        "Your photos are not affected. Move the file aside (e.g. rename it to "
        "library.db.damaged) and index your folders again to build a new library, or restore "
        "it from a backup."
    )


# --------------------------------------------------------------------------- the store


class Store(CaptionStore):
    """The library database. Create with :meth:`Store.open`; close with :meth:`close`.

    Usable as a context manager. Every public method is atomic on its own; use
    :meth:`snapshot` to read several things from one consistent state.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, *, read_only: bool = False) -> None:
        """Wrap an already migrated connection; use :meth:`open` instead."""
        self.path = path
        self.conn = conn
        self.read_only = read_only
        self.db = Database(conn, execute_plugins=False)
        self._lock = threading.RLock()
        self._txn: str | None = None
        self.library_id = self._ensure_library_id()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        create: bool = True,
        read_only: bool | None = None,
    ) -> Store:
        """Open the database at ``path`` and migrate it to the latest schema.

        ``create``: make a new database when there is none, atomically (else
        :class:`DatabaseNotFoundError`). ``read_only``: open without writing anything
        (default: when the file or its folder is not writable); writes then raise
        :class:`ReadOnlyStoreError`, and a database that needs migrating cannot be opened.
        A corrupt, empty (0-byte) or non-database file raises :class:`DamagedDatabaseError`
        and is left untouched.
        """
        path = Path(path)
        if path.exists():
            if not path.is_file():
                raise DamagedDatabaseError(damaged_message(path, "it is not a file"))
            if path.stat().st_size == 0:
                raise DamagedDatabaseError(damaged_message(path, "the file is empty, 0 bytes"))
        elif not create:
            raise DatabaseNotFoundError(f"no library database at {path}")
        else:
            _create_database(path, timeout)
        if read_only is None:
            read_only = not is_writable(path)
        conn: sqlite3.Connection | None = None
        try:
            conn = connect(path, timeout, read_only=read_only)
            if read_only:
                _check_read_only_schema(conn, path)
            else:
                apply_migrations(conn)
            return cls(conn, path, read_only=read_only)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.DatabaseError) and is_damage(exc):
                raise DamagedDatabaseError(damaged_message(path, str(exc))) from exc
            raise

    def close(self) -> None:
        """Close the connection (safe to call twice)."""
        with self._lock:
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ----------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._txn == "write":
                yield self.conn
                return
            if self._txn == "read":
                raise StoreError("cannot write inside Store.snapshot()")
            if self.read_only:
                raise ReadOnlyStoreError(f"{self.path} is read-only (opened without write access)")
            self._txn = "write"
            try:
                with _immediate(self.conn):
                    yield self.conn
            finally:
                self._txn = None

    @contextmanager
    def snapshot(self) -> Iterator[Store]:
        """Read from one consistent state of the database for the duration of the block.

        Holds a read transaction (writers in other processes continue; this Store's other
        threads wait). Writing through this Store inside the block raises :class:`StoreError`.
        """
        with self._lock:
            if self._txn is not None:
                yield self
                return
            self.conn.execute("BEGIN")
            self._txn = "read"
            try:
                self.conn.execute("SELECT count(*) FROM meta").fetchone()  # pin the snapshot
                yield self
            finally:
                self._txn = None
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._lock:
            row = self.conn.execute(sql, params).fetchone()
            return None if row is None else row[0]

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.db.query(sql, params))

    def _bump(self, conn: sqlite3.Connection, models: Iterable[str]) -> None:
        for model in sorted(set(models)):
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, '1') "
                "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                (_gen_key(model),),
            )

    def _ensure_library_id(self) -> str:
        value = self._one("SELECT value FROM meta WHERE key = '_library_id'")
        if value is None and not self.read_only:
            with self._write() as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('_library_id', ?)",
                    (uuid.uuid4().hex,),
                )
            value = self._one("SELECT value FROM meta WHERE key = '_library_id'")
        return "" if value is None else str(value)

    # -- settings --------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A JSON setting from the meta table, or ``default``."""
        value = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return default if value is None else json.loads(value)

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable setting (keys starting with ``_`` are reserved)."""
        _check_setting_key(key)
        with self._write():
            self.db["meta"].upsert({"key": key, "value": json.dumps(value)}, pk="key")

    def delete_setting(self, key: str) -> None:
        """Forget a setting."""
        _check_setting_key(key)
        with self._write():
            self.db["meta"].delete_where("key = ?", [key])

    # -- folders ---------------------------------------------------------------------

    @staticmethod
    def _folder(row: Mapping[str, Any]) -> Folder:
        return Folder(row["id"], row["path"], tuple(json.loads(row["excludes"])), row["added_at"])

    def add_folder(self, path: str | os.PathLike[str], excludes: Iterable[str] = ()) -> Folder:
        """Add a root folder (made absolute), or replace the excludes of an existing one."""
        text = absolute(path)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO folders(path, excludes, added_at) VALUES (CAST(? AS TEXT), ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET excludes = excluded.excludes",
                (_enc(text), json.dumps(list(excludes)), _now()),
            )
        folder = self.get_folder(text)
        assert folder is not None
        return folder

    def get_folder(self, folder: FolderRef) -> Folder | None:
        """A folder by id, path or record; ``None`` if unknown."""
        if isinstance(folder, Folder):
            folder = folder.id
        if isinstance(folder, int):
            rows = self._all("SELECT * FROM folders WHERE id = ?", (folder,))
        else:
            text = absolute(folder)
            rows = self._all("SELECT * FROM folders WHERE path = CAST(? AS TEXT)", (_enc(text),))
        return self._folder(rows[0]) if rows else None

    def folders(self) -> list[Folder]:
        """All root folders, by path."""
        return [self._folder(r) for r in self._all("SELECT * FROM folders ORDER BY path")]

    def forget_path(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Forget everything at or below ``path``, in one transaction; return the image ids.

        Root folders at or below ``path`` go altogether; images, failure records and pending
        files below it go; and when ``path`` lies inside a root folder, that root gets the
        anchored exclude ``/<path relative to the root>`` so that the next index run does not
        bring them back (and a same-named folder elsewhere, ``trips/2020`` for ``2020``, is
        left alone). Bumps the generation of every model that lost vectors.
        """
        text = absolute(path)
        with self._write() as conn:
            below, args = _under_sql("path", text)
            rows = conn.execute(f"SELECT id FROM images WHERE {below}", args)
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64)
            self._delete_images(conn, _as_ids(ids))
            for table in ("folders", "failures", "pending"):
                conn.execute(f"DELETE FROM {table} WHERE {below}", args)
            root = innermost(text, self.folders())
            if root is not None:
                rel = os.path.relpath(text, root.path).replace(os.sep, "/")
                pattern = "/" + glob_escape(rel)
                if pattern not in root.excludes:
                    self.add_folder(root.path, [*root.excludes, pattern])
        return ids

    def absorb_folders(self, parent: FolderRef, children: Sequence[FolderRef]) -> Folder:
        """Make root folders that lie inside ``parent`` part of it, in one transaction.

        Their images (with ids and vectors), failure records and pending files move to
        ``parent``; their excludes are rewritten relative to it (``rebase_pattern``); the
        child folder records go. Returns the updated parent.
        """
        from app.library.scanner import rebase_pattern

        with self._write() as conn:
            target = self.get_folder(parent)
            if target is None:
                raise KeyError(f"unknown folder: {parent!r}")
            patterns = list(target.excludes)
            for ref in children:
                child = self.get_folder(ref)
                if child is None or child.id == target.id:
                    continue
                if not is_within(child.path, target.path):
                    raise ValueError(f"{child.path!r} is not inside {target.path!r}")
                rel = os.path.relpath(child.path, target.path).replace(os.sep, "/")
                for pattern in child.excludes:
                    patterns += [p for p in rebase_pattern(pattern, rel) if p not in patterns]
                for table in ("images", "failures", "pending"):
                    conn.execute(
                        f"UPDATE {table} SET folder_id = ? WHERE folder_id = ?",
                        (target.id, child.id),
                    )
                conn.execute("DELETE FROM folders WHERE id = ?", (child.id,))
            return self.add_folder(target.path, patterns)

    # -- pending -------------------------------------------------------------------------

    def replace_pending(
        self,
        model: str,
        scopes: Sequence[str],
        items: Iterable[tuple[str, int | None]],
    ) -> None:
        """Set the files still to embed at or below ``scopes`` to ``items`` (with ``model``).

        ``items`` are ``(path, folder_id)``. Called once an index run has planned its work;
        each committed batch then leaves with :meth:`clear_pending`. What other models left
        pending there goes: the library is now indexed with ``model``.
        """
        with self._write() as conn:
            for scope in scopes:
                sql, args = _under_sql("path", scope)
                conn.execute(f"DELETE FROM pending WHERE {sql}", args)
            conn.executemany(
                "INSERT OR REPLACE INTO pending(model, path, folder_id) "
                "VALUES (?, CAST(? AS TEXT), ?)",
                [(model, _enc(path), folder_id) for path, folder_id in items],
            )

    def clear_pending(self, model: str, paths: Iterable[str]) -> None:
        """These files are done with (embedded, or recorded as failures)."""
        with self._write() as conn:
            conn.executemany(
                "DELETE FROM pending WHERE model = ? AND path = CAST(? AS TEXT)",
                [(model, _enc(p)) for p in paths],
            )

    def pending_count(
        self, model: str | None = None, under: str | os.PathLike[str] | None = None
    ) -> int:
        """Files seen but not embedded yet (with ``model``, or with any model; below ``under``)."""
        sql, params = "SELECT count(DISTINCT path) FROM pending WHERE 1", []
        if model is not None:
            sql, params = f"{sql} AND model = ?", [model]
        if under is not None:
            below, args = _under_sql("path", under)
            sql, params = f"{sql} AND {below}", params + args
        return int(self._one(sql, params))

    def folder_counts(self, model: str | None = None) -> dict[int, tuple[int, int, int]]:
        """folder id -> ``(photos, failures, pending)``; pending for ``model`` or any model."""
        counts: dict[int, list[int]] = {}
        queries = [
            ("SELECT folder_id, count(*) FROM images GROUP BY folder_id", ()),
            ("SELECT folder_id, count(*) FROM failures GROUP BY folder_id", ()),
            (
                "SELECT folder_id, count(DISTINCT path) FROM pending "
                "WHERE ? IS NULL OR model = ? GROUP BY folder_id",
                (model, model),
            ),
        ]
        with self.snapshot():
            for n, (sql, args) in enumerate(queries):
                for folder_id, count in self.conn.execute(sql, args):
                    counts.setdefault(folder_id, [0, 0, 0])[n] = int(count)
        return {k: (v[0], v[1], v[2]) for k, v in counts.items() if k is not None}

    # -- images ----------------------------------------------------------------------

    def known_files(self, model: str | None = None) -> dict[str, KnownFile]:
        """path -> :class:`KnownFile` for all images.

        With ``model``, ``KnownFile.embedded`` tells whether the image has a vector of that
        model; without it, ``embedded`` is true.
        """
        sql = (
            "SELECT i.id, i.path, i.size, i.mtime_ns, i.hash, i.folder_id, "
            "? IS NULL OR e.image_id IS NOT NULL FROM images i "
            "LEFT JOIN embeddings e ON e.image_id = i.id AND e.model = ?"
        )
        with self._lock:
            return {
                r[1]: KnownFile(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]))
                for r in self.conn.execute(sql, (model, model))
            }

    def upsert_images_with_embeddings(
        self,
        records: Sequence[ImageRecord],
        model: str,
        vectors: Any,
    ) -> list[int]:
        """Insert or update images (by path) and their ``model`` vectors in one transaction.

        ``vectors`` is an ``[len(records), dim]`` float array (stored as little-endian
        float32). An image keeps its id when its path is already known (and its folder when
        ``folder_id`` is ``None``). If its size, mtime or hash changed, vectors of *other*
        models are dropped (they describe the old content). The model is registered with this
        ``dim`` if unknown (``ValueError`` if it is registered with another dim). Failure
        records for these paths are cleared. Returns the image ids in row order.
        """
        arr = _vectors(vectors, len(records))
        if not records:
            return []
        now = _now()
        paths = [_enc(r.path) for r in records]
        with self._write() as conn:
            self._ensure_model(conn, model, arr.shape[1])
            known = self._images_at(conn, paths, "id, size, mtime_ns, hash")
            stale = [
                old[0]
                for rec, path in zip(records, paths, strict=True)
                if (old := known.get(path)) is not None
                and (
                    old[1] != rec.size
                    or old[2] != rec.mtime_ns
                    or (old[3] and rec.hash and old[3] != rec.hash)
                )
            ]
            if stale:
                self._drop_other_models(conn, stale, model)
            conn.executemany(
                "INSERT INTO images(path, folder_id, size, mtime_ns, hash, width, height, "
                "taken_at, indexed_at) VALUES (CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET "
                "folder_id = COALESCE(excluded.folder_id, folder_id), "
                "size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash, "
                "width = excluded.width, height = excluded.height, "
                "taken_at = excluded.taken_at, indexed_at = excluded.indexed_at",
                [
                    (path, r.folder_id, r.size, r.mtime_ns, r.hash, r.width, r.height,
                     r.taken_at, now)
                    for path, r in zip(paths, records, strict=True)
                ],
            )  # fmt: skip
            new_paths = [path for path in paths if path not in known]
            ids_at = {path: row[0] for path, row in known.items()}
            ids_at.update((p, row[0]) for p, row in self._images_at(conn, new_paths, "id").items())
            ids = [ids_at[path] for path in paths]
            conn.executemany(
                "INSERT INTO embeddings(image_id, model, vector) VALUES (?, ?, ?) "
                "ON CONFLICT(image_id, model) DO UPDATE SET vector = excluded.vector",
                [(i, model, arr[n].tobytes()) for n, i in enumerate(ids)],
            )
            _execute_in(
                conn, "DELETE FROM failures WHERE path IN ({ids})", paths, marks=_text_marks
            )
            self._bump(conn, [model])
        return ids

    @staticmethod
    def _images_at(
        conn: sqlite3.Connection, paths: Sequence[bytes], columns: str
    ) -> dict[bytes, tuple[Any, ...]]:
        """Encoded path -> ``columns`` of the images at these paths (absent ones are left out),
        in one query per chunk rather than one per path."""
        sql = f"SELECT CAST(path AS BLOB), {columns} FROM images WHERE path IN ({{ids}})"
        rows = _select_in(conn, sql, paths, marks=_text_marks)
        return {bytes(row[0]): tuple(row[1:]) for row in rows}

    def _drop_other_models(self, conn: sqlite3.Connection, ids: Sequence[int], model: str) -> None:
        sql = "SELECT DISTINCT model FROM embeddings WHERE model != ? AND image_id IN ({ids})"
        models = [row[0] for row in self._rows_in(sql, ids, model)]
        _execute_in(
            conn, "DELETE FROM embeddings WHERE model != ? AND image_id IN ({ids})", ids, model
        )
        self._bump(conn, models)

    def move_image(
        self,
        old_path: str,
        new_path: str,
        *,
        folder_id: int | None = None,
        size: int | None = None,
        mtime_ns: int | None = None,
        hash: str | None = None,
    ) -> int:
        """Give an image a new path (and optionally folder/size/mtime/hash); keep id and vectors.

        Returns the image id. ``KeyError`` if ``old_path`` is unknown, ``ValueError`` if
        ``new_path`` already belongs to another image. A failure record for ``new_path`` is
        cleared. No generation changes: the vectors and ids stay the same.
        """
        with self._write() as conn:
            image_id = _id_at(conn, old_path)
            if image_id is None:
                raise KeyError(f"unknown image: {old_path!r}")
            if _id_at(conn, new_path) not in (None, image_id):
                raise ValueError(f"another image already has path {new_path!r}")
            conn.execute(
                "UPDATE images SET path = CAST(? AS TEXT), folder_id = COALESCE(?, folder_id), "
                "size = COALESCE(?, size), mtime_ns = COALESCE(?, mtime_ns), "
                "hash = COALESCE(?, hash) WHERE id = ?",
                (_enc(new_path), folder_id, size, mtime_ns, hash, image_id),
            )
            conn.execute("DELETE FROM failures WHERE path = CAST(? AS TEXT)", (_enc(new_path),))
            return image_id

    def touch_images(self, items: Iterable[tuple[int, int, int]]) -> None:
        """Record new ``(image_id, size, mtime_ns)`` for files whose content did not change."""
        with self._write() as conn:
            conn.executemany(
                "UPDATE images SET size = ?, mtime_ns = ? WHERE id = ?",
                [(size, mtime, image_id) for image_id, size, mtime in items],
            )

    def remove_images(self, ids: Iterable[int] | np.ndarray) -> int:
        """Delete images (and their vectors, captions) by id; unknown ids are ignored.

        Bumps the generation of each model that lost vectors. Returns how many were deleted.
        """
        with self._write() as conn:
            return self._delete_images(conn, _as_ids(ids))

    def _delete_images(self, conn: sqlite3.Connection, ids: Sequence[int]) -> int:
        """Delete images by id (their vectors and captions cascade) and bump the generation of
        every model that lost vectors; returns how many images went."""
        sql = "SELECT DISTINCT model FROM embeddings WHERE image_id IN ({ids})"
        models = [row[0] for row in self._rows_in(sql, ids)]
        removed = _execute_in(conn, "DELETE FROM images WHERE id IN ({ids})", ids)
        self._bump(conn, models)
        return removed

    def image_id(self, path: str) -> int | None:
        """The id of the image at ``path``, or ``None``."""
        with self._lock:
            return _id_at(self.conn, path)

    def image_ids(
        self,
        *,
        model: str | None = None,
        taken_from: str | None = None,
        taken_to: str | None = None,
        under: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        file_dates: bool = False,
    ) -> np.ndarray:
        """Sorted int64 ids of images matching all the given filters (e.g. for search).

        ``model``: only images with a vector of that model; ``taken_from``/``taken_to``:
        inclusive bounds compared as ISO text against ``taken_at`` (``"2020"`` ..
        ``"2020-12-31T23:59:59"``); images without a date are left out when a date bound is
        given; ``under``: one path or several (made absolute): only images at or below one of
        them (any folder, not only a root; an index range scan); ``file_dates``: an image
        without an EXIF date is dated by its file's modification time (local time) instead of
        being left out.
        """
        where: list[str] = []
        params: list[Any] = []
        if under is not None:
            prefixes = [under] if isinstance(under, (str, os.PathLike)) else list(under)
            parts = [_under_sql("i.path", prefix) for prefix in prefixes]
            where.append("(" + " OR ".join(sql for sql, _ in parts) + ")" if parts else "0")
            params += [arg for _, args in parts for arg in args]
        if model is not None:
            where.append(
                "EXISTS (SELECT 1 FROM embeddings e WHERE e.image_id = i.id AND e.model = ?)"
            )
            params.append(model)
        date = (
            "COALESCE(i.taken_at, strftime('%Y-%m-%dT%H:%M:%S', i.mtime_ns / 1000000000, "
            "'unixepoch', 'localtime'))"
            if file_dates
            else "i.taken_at"
        )
        if taken_from is not None:
            where.append(f"{date} >= ?")
            params.append(taken_from)
        if taken_to is not None:
            where.append(f"{date} <= ?")
            params.append(taken_to)
        sql = "SELECT i.id FROM images i" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            rows = self.conn.execute(sql + " ORDER BY i.id", params)
            return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def rows_for(self, ids: Iterable[int] | np.ndarray) -> list[ImageRow]:
        """Image rows for ``ids``, in the same order; unknown ids are skipped."""
        id_list = _as_ids(ids)
        rows = self._rows_in(
            "SELECT i.id, i.path, i.folder_id, f.path, i.size, i.mtime_ns, i.hash, i.width, "
            "i.height, i.taken_at, i.indexed_at FROM images i "
            "LEFT JOIN folders f ON f.id = i.folder_id WHERE i.id IN ({ids})",
            id_list,
        )
        found = {row[0]: ImageRow(*row) for row in rows}
        return [found[i] for i in id_list if i in found]

    def _rows_in(self, sql: str, ids: Sequence[int], *params: Any) -> list[Any]:
        """The rows of ``sql`` for ``ids`` (their ``IN`` list goes where ``{ids}`` is), read in
        chunks that SQLite's variable limit allows; ``params`` come before the ids."""
        with self._lock:
            return _select_in(self.conn, sql, ids, *params)

    # -- failures --------------------------------------------------------------------

    def record_failure(
        self,
        path: str,
        reason: str,
        *,
        folder_id: int | None = None,
        size: int | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        """Remember that ``path`` could not be indexed (replacing an older record for it)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO failures(path, folder_id, reason, size, mtime_ns, failed_at) "
                "VALUES (CAST(? AS TEXT), ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET "
                "folder_id = excluded.folder_id, reason = excluded.reason, size = excluded.size, "
                "mtime_ns = excluded.mtime_ns, failed_at = excluded.failed_at",
                (_enc(path), folder_id, reason, size, mtime_ns, _now()),
            )

    def failures(self, folder: FolderRef | None = None) -> list[Failure]:
        """Failure records (all, or one folder's: none for a folder not in the library), by path."""
        found = None if folder is None else self.get_folder(folder)
        if folder is not None and found is None:
            return []
        where, args = (None, []) if found is None else ("folder_id = ?", [found.id])
        columns = ", ".join(f.name for f in fields(Failure))
        with self._lock:
            rows = self.db["failures"].rows_where(where, args, order_by="path", select=columns)
            return [Failure(**r) for r in rows]

    def clear_failures(self, paths: Iterable[str]) -> int:
        """Forget the failure records of ``paths``; returns how many were removed."""
        encoded = [_enc(p) for p in paths]
        with self._write() as conn:
            return _execute_in(
                conn, "DELETE FROM failures WHERE path IN ({ids})", encoded, marks=_text_marks
            )

    # -- models ----------------------------------------------------------------------

    def _ensure_model(self, conn: sqlite3.Connection, model: str, dim: int) -> None:
        conn.execute(
            "INSERT INTO models(name, dim, added_at) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING",
            (model, dim, _now()),
        )
        known = conn.execute("SELECT dim FROM models WHERE name = ?", (model,)).fetchone()[0]
        if known != dim:
            raise ValueError(f"model {model!r} has dimension {known}, got vectors of {dim}")

    @staticmethod
    def _model(row: Mapping[str, Any]) -> ModelRecord:
        return ModelRecord(
            row["name"], row["dim"], row["source"], row["path"], row["added_at"],
            json.loads(row["metadata"] or "{}"),
        )  # fmt: skip

    def add_model(
        self,
        name: str,
        dim: int,
        *,
        source: str | None = None,
        path: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ModelRecord:
        """Register a model or update its source/path/metadata.

        Changing ``dim`` of a model that already has vectors raises ``ValueError``.
        """
        with self._write():
            old = self.get_model(name)
            if old is not None and old.dim != dim and self.embedding_count(name):
                raise ValueError(f"model {name!r} already has vectors of dimension {old.dim}")
            self.db["models"].upsert(
                {
                    "name": name,
                    "dim": dim,
                    "source": source,
                    "path": path,
                    "added_at": old.added_at if old else _now(),
                    "metadata": json.dumps(dict(metadata or {})),
                },
                pk="name",
            )
        record = self.get_model(name)
        assert record is not None
        return record

    def get_model(self, name: str) -> ModelRecord | None:
        """A registered model, or ``None``."""
        rows = self._all("SELECT * FROM models WHERE name = ?", (name,))
        return self._model(rows[0]) if rows else None

    def models(self) -> list[ModelRecord]:
        """All registered models, by name."""
        return [self._model(r) for r in self._all("SELECT * FROM models ORDER BY name")]

    def remove_model(self, name: str) -> int:
        """Unregister a model and delete its vectors; returns how many vectors went."""
        with self._write() as conn:
            n = self.embedding_count(name)
            # the trigger model_removed bumps its generation and resets its change record
            conn.execute("DELETE FROM models WHERE name = ?", (name,))
        return n

    def rename_model(self, old: str, new: str) -> None:
        """Move ``old``'s registration and all its vectors to the unused name ``new`` (one
        transaction; nothing is deleted). Both names' generations jump past either's, so no
        index saved under either name before the rename matches the store afterwards."""
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM models WHERE name = ?", (new,)).fetchone():
                raise ValueError(f"a model named {new!r} is already registered")
            if not conn.execute("UPDATE models SET name = ? WHERE name = ?", (new, old)).rowcount:
                raise KeyError(f"no model named {old!r}")
            top = 1 + max(
                int(row[0])
                for row in conn.execute(
                    "SELECT value FROM meta WHERE key IN (?, ?) UNION ALL SELECT 0",
                    (_gen_key(old), _gen_key(new)),
                )
            )
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(_gen_key(old), str(top)), (_gen_key(new), str(top))],
            )

    # -- embeddings ------------------------------------------------------------------

    def generation(self, model: str) -> int:
        """The model's embedding generation (0 before its first vector)."""
        value = self._one("SELECT value FROM meta WHERE key = ?", (_gen_key(model),))
        return 0 if value is None else int(value)

    def embedding_changes(self, model: str, since: int) -> EmbeddingChanges:
        """What happened to ``model``'s vectors after generation ``since`` (one snapshot).

        ``ids``: the images whose vector was added, replaced or removed since then (their
        current vectors, if any, are in the store). ``complete`` is false when the record no
        longer reaches back to ``since`` (pruned after a save, the model was removed or
        renamed, or the database predates the record).
        """
        with self.snapshot():
            generation = self.generation(model)
            if since == generation:
                return EmbeddingChanges(model, since, generation, np.zeros(0, np.int64), True)
            horizon = int(
                self._one("SELECT value FROM meta WHERE key = ?", (_horizon_key(model),)) or 0
            )
            if since > generation or since < horizon:
                return EmbeddingChanges(model, since, generation, np.zeros(0, np.int64), False)
            try:
                with self._lock:
                    rows = self.conn.execute(
                        "SELECT DISTINCT image_id FROM embedding_changes "
                        "WHERE model = ? AND generation >= ? ORDER BY image_id",
                        (model, since),
                    )
                    ids = np.fromiter((r[0] for r in rows), dtype=np.int64)
            except sqlite3.OperationalError:  # an old schema opened read-only: no record
                return EmbeddingChanges(model, since, generation, np.zeros(0, np.int64), False)
        return EmbeddingChanges(model, since, generation, ids, True)

    def prune_embedding_changes(self, model: str, upto: int) -> int:
        """Forget ``model``'s changes before generation ``upto`` (an ANN file saved there covers
        them); readers behind ``upto`` must reload that file. Returns how many rows went."""
        with self._write() as conn:
            if upto > self.generation(model):
                raise ValueError(f"generation {upto} of {model!r} does not exist yet")
            gone = conn.execute(
                "DELETE FROM embedding_changes WHERE model = ? AND generation < ?", (model, upto)
            ).rowcount
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                "value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                (_horizon_key(model), str(int(upto))),
            )
            return gone

    def model_dim(self, model: str) -> int | None:
        """The registered dimension of ``model``, or ``None``."""
        value = self._one("SELECT dim FROM models WHERE name = ?", (model,))
        return None if value is None else int(value)

    def image_count(self) -> int:
        """How many images the library holds."""
        return int(self._one("SELECT count(*) FROM images"))

    def embedding_count(self, model: str) -> int:
        """How many images have a ``model`` vector."""
        return int(self._one("SELECT count(*) FROM embeddings WHERE model = ?", (model,)))

    def copy_embeddings(self, source: str, target: str) -> int:
        """Give ``target`` a copy of every ``source`` vector it lacks (one transaction).

        For a model whose image tower equals ``source``'s (a text-mode fine-tune): its image
        vectors are the same, so the library needs no re-indexing. Both models must be
        registered. Returns how many vectors were copied.
        """
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO embeddings(image_id, model, vector) "
                "SELECT image_id, ?, vector FROM embeddings WHERE model = ?",
                (target, source),
            )
            copied = cursor.rowcount
            if copied:
                self._bump(conn, [target])
            return copied

    def embedding_ids_missing(self, source: str, target: str) -> np.ndarray:
        """Sorted int64 ids of the images with a ``source`` vector and no ``target`` vector
        (what :meth:`copy_embeddings` would copy)."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT s.image_id FROM embeddings s WHERE s.model = ? AND NOT EXISTS "
                "(SELECT 1 FROM embeddings t WHERE t.model = ? AND t.image_id = s.image_id) "
                "ORDER BY s.image_id",
                (source, target),
            )
            return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def embedding_ids(self, model: str) -> np.ndarray:
        """Sorted int64 ids of the images with a ``model`` vector."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT image_id FROM embeddings WHERE model = ? ORDER BY image_id", (model,)
            )
            return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def _unpack(self, blobs: list[bytes], dim: int) -> np.ndarray:
        """``[len(blobs), dim]`` float32 (``[0, dim]`` for none)."""
        if any(len(b) != dim * 4 for b in blobs):
            raise StoreError(f"embedding of the wrong size (expected {dim} float32 values)")
        return (
            np.frombuffer(b"".join(blobs), dtype="<f4")
            .reshape(len(blobs), dim)
            .astype(np.float32, copy=False)
        )

    def embeddings_after(self, model: str, after: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``limit`` ``model`` vectors with ids above ``after``, in id order."""
        dim = self.model_dim(model) or 0
        with self._lock:
            rows = self.conn.execute(
                "SELECT image_id, vector FROM embeddings WHERE model = ? AND image_id > ? "
                "ORDER BY image_id LIMIT ?",
                (model, after, limit),
            ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return ids, self._unpack([r[1] for r in rows], dim)

    def embedding_matrix(self, model: str, chunk_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """All ``model`` vectors as ``(ids int64 [n], vectors float32 [n, dim])``, id order.

        Read in chunks inside one snapshot. ``dim`` is 0 for an unknown model.
        """
        with self.snapshot():
            parts = [self.embeddings_after(model, -(2**63), chunk_size)]
            while len(parts[-1][0]) == chunk_size:
                parts.append(self.embeddings_after(model, int(parts[-1][0][-1]), chunk_size))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def vectors_for(
        self, ids: Iterable[int] | np.ndarray, model: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(found_ids, vectors)`` for those of ``ids`` that have a ``model`` vector, in order."""
        id_list = _as_ids(ids)
        dim = self.model_dim(model) or 0
        sql = "SELECT image_id, vector FROM embeddings WHERE model = ? AND image_id IN ({ids})"
        blobs = dict(self._rows_in(sql, id_list, model))
        found = [i for i in id_list if i in blobs]
        return np.asarray(found, dtype=np.int64), self._unpack([blobs[i] for i in found], dim)

    # -- saved searches (the records are app.library.saved.SavedSearch as JSON) -------

    def put_saved_search(self, name: str, spec: Mapping[str, Any]) -> None:
        """Save (or replace) the saved search ``name`` with its JSON ``spec``."""
        now = _now()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO saved_searches(name, spec, created_at, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, "
                "updated_at = excluded.updated_at",
                (name, json.dumps(dict(spec)), now, now),
            )

    def saved_searches(self) -> list[tuple[str, dict[str, Any], str, str]]:
        """``(name, spec, created_at, updated_at)`` of every saved search, by name."""
        rows = self._all("SELECT * FROM saved_searches ORDER BY name COLLATE NOCASE")
        return [(r["name"], json.loads(r["spec"]), r["created_at"], r["updated_at"]) for r in rows]

    def delete_saved_search(self, name: str) -> bool:
        """Forget a saved search; true if it existed."""
        with self._write() as conn:
            return conn.execute("DELETE FROM saved_searches WHERE name = ?", (name,)).rowcount > 0

    # -- status ----------------------------------------------------------------------

    def counts(self) -> StoreCounts:
        """Row counts for a status line, from one snapshot."""
        per_model = "SELECT model, count(*) FROM embeddings GROUP BY model ORDER BY model"
        with self.snapshot():
            return StoreCounts(
                images=self.db["images"].count,
                failures=self.db["failures"].count,
                captions=self.db["captions"].count,
                embeddings=dict(self.conn.execute(per_model).fetchall()),
            )
