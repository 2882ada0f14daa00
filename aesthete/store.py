"""The SQLite cache: photos, their technical signals and EXIF, and every model's predicted distribution.

Three tables carry the data flow:

- ``files``: one row per path (size, mtime, content hash, status/failure reason). A rescan compares
  size and mtime here and touches nothing else for an unchanged file. A camera RAW beside the camera's
  JPEG (or HEIF) of the same frame is a *companion* (status ``paired``, ``pair_of`` the JPEG's path):
  not a photo of its own, it is listed with its partner (``companions``) wherever photos are.
- ``images``: one row per *content hash*: pixel size, EXIF, technical signals, perceptual hash.
  A moved or renamed file points at the same row, so nothing is decoded again.
- ``scores``: one row per (content hash, model, weights id, preprocessing key): the full
  distribution, its mean, std and ``p_high``; for a model that predicts one score (LAION's), ``mean``
  holds that score and ``dist``, ``std`` and ``p_high`` are NULL (every column but the key is nullable
  since schema_v1, so no migration was needed).

Writes happen in short ``BEGIN IMMEDIATE`` transactions under WAL with a busy timeout, so several
``score`` processes can share one database and a crash loses at most the transaction in flight.
No torch here: rank, show and rescans stay instant.

This module is the only one that knows the tables: the schema is built by the named migrations in
:mod:`aesthete.migrations`, a ``files`` row by :func:`file_row`, and the decode workers ask what is already
known through :class:`StoreReader` rather than with SQL of their own.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aesthete import migrations
from aesthete.errors import AestheteError, NothingToDoError
from aesthete.migrations import APPLICATION_ID, SCHEMA_VERSION
from aesthete.paths import default_db_path, is_within, subtree_prefix
from aesthete.wording import as_stored

BUSY_TIMEOUT_MS = 60_000
# The longest one wait inside SQLite for another writer lasts: Python cannot raise Ctrl-C until it ends.
WAIT_SLICE_MS = 100

IMAGE_COLUMNS = (
    "width", "height", "format", "capture_time", "capture_time_source", "make", "camera", "lens", "focal_length",
    "f_number", "exposure_time", "iso", "sharpness", "clipped_shadows", "clipped_highlights", "mean_luma", "noise",
    "technical", "phash", "flags", "faces", "face_count", "faces_looked",
)  # fmt: skip


class StoreError(AestheteError):
    """The database cannot be used; the message is one line for the user."""


class ReadOnlyFolderError(StoreError):
    """The database is in a folder aesthete cannot write to (a backup disk, a read-only mount), where SQLite
    cannot keep the write-ahead log and its index beside it: it can only be opened read-only."""


# SQLite's primary result codes (https://www.sqlite.org/rescode.html) for a file it may not write or open.
_SQLITE_READONLY, _SQLITE_CANTOPEN = 8, 14


def _no_files_beside(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says SQLite could not open or write a file (the database, or its WAL files beside
    it), rather than that the database is damaged or busy."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+; the message decides on 3.10
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_READONLY, _SQLITE_CANTOPEN)
    return "unable to open" in str(exc) or "readonly" in str(exc)


def _uri(path: str | Path, query: str) -> str:
    """An SQLite URI for the file at ``path`` (any characters escaped) with ``query`` (``mode=ro``)."""
    return f"{Path(os.path.abspath(path)).as_uri()}?{query}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def path_key(path: str) -> tuple[str, bytes | None]:
    """(text stored in ``path``, raw bytes when the name is not valid UTF-8).

    SQLite text must be UTF-8; a file name with undecodable bytes is stored readable (backslash
    escapes) with its exact bytes beside it, so exports still find the original.
    """
    try:
        path.encode("utf-8")
        return path, None
    except UnicodeEncodeError:
        return as_stored(path), os.fsencode(path)


def real_path(path: str, raw: bytes | None) -> str:
    return os.fsdecode(raw) if raw is not None else path


@dataclass(frozen=True)
class ModelKey:
    """Which predictions a score row holds."""

    model: str
    weights_id: str
    preprocess: str


@dataclass
class KnownFile:
    size: int
    mtime_ns: int
    content_hash: str | None
    status: str
    error_kind: str | None = None
    pair_of: str | None = None  # for a RAW companion, its partner's path (as stored)


def file_row(
    path: str,
    size: int,
    mtime_ns: int,
    status: str,
    *,
    content_hash: str | None = None,
    error_kind: str | None = None,
    error: str | None = None,
    pair_of: str | None = None,
) -> dict[str, Any]:
    """The ``files`` row recording ``path`` as seen now: ``status`` is ``ok``, ``failed`` (with
    ``error_kind`` and a one-line ``error``) or ``paired`` (a RAW companion; ``pair_of`` is its partner's
    path as stored). The one place that knows the table's columns and how a path is stored."""
    text, raw = path_key(path)
    now = now_iso()
    return {
        "path": text, "raw_path": raw, "size": size, "mtime_ns": mtime_ns, "content_hash": content_hash,
        "status": status, "error_kind": error_kind, "error": error, "pair_of": pair_of,
        "first_seen": now, "last_seen": now,
    }  # fmt: skip


def embedding_row(content_hash: str, key: ModelKey, vector: Any) -> dict[str, Any]:
    """An ``embeddings`` row: ``vector`` (one photo's embedding, any numeric array) as little-endian
    float16 bytes and its length."""
    import numpy as np

    values = np.asarray(vector, dtype="<f2").ravel()
    return {
        "content_hash": content_hash, "model": key.model, "weights_id": key.weights_id,
        "preprocess": key.preprocess, "dim": int(values.size), "vector": values.tobytes(),
    }  # fmt: skip


class StoreReader:
    """A read-only look at what a database already holds, for the decode workers: a photo whose content
    is known (moved, renamed, copied) is neither decoded nor scored again.

    Opens nothing when the database does not exist yet (or is in memory), and answers "not known" when
    it cannot answer: a busy or odd database only costs a decode, never a result.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.conn: sqlite3.Connection | None = None
        if path and str(path) != ":memory:" and os.path.exists(path):
            try:
                self.conn = sqlite3.connect(_uri(path, "mode=ro"), uri=True, timeout=30)
            except sqlite3.Error:
                self.conn = None

    def has_image(self, content_hash: str, *, signals_version: int = 0, faces: bool = False) -> bool:
        """Whether this content has its ``images`` row (size, EXIF, signals), its signals measured by
        ``signals_version`` or later (or of no recorded version: the migration recorded every earlier one)
        and, with ``faces``, its faces looked for."""
        looked = " AND faces_looked IS NOT NULL" if faces else ""
        return self._exists(
            "SELECT 1 FROM images WHERE content_hash = ? AND (signals_version IS NULL OR signals_version >= ?)"
            + looked,
            (content_hash, signals_version),
        )

    def has_score(self, content_hash: str, key: ModelKey) -> bool:
        """Whether this content has a score for exactly this model, weights and preprocessing."""
        return self._exists(
            "SELECT 1 FROM scores WHERE content_hash = ? AND model = ? AND weights_id = ? AND preprocess = ?",
            (content_hash, key.model, key.weights_id, key.preprocess),
        )

    def has_embedding(self, content_hash: str, key: ModelKey) -> bool:
        """Whether this content has an embedding under ``key`` (what an embed-only run stores)."""
        return self._exists(
            "SELECT 1 FROM embeddings WHERE content_hash = ? AND model = ? AND weights_id = ? AND preprocess = ?",
            (content_hash, key.model, key.weights_id, key.preprocess),
        )

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _exists(self, sql: str, params: tuple[Any, ...]) -> bool:
        if self.conn is None:
            return False
        try:
            return self.conn.execute(sql, params).fetchone() is not None
        except sqlite3.Error:
            return False


def _when_free(conn: sqlite3.Connection, sql: str) -> None:
    """Execute ``sql``, which needs a lock another process may hold, retrying for up to the busy timeout.

    The switch to WAL answers "database is locked" at once, without the busy timeout, while another
    process is opening the same new file (two ``score`` runs started together on a new database failed
    that way about once in 30 opens). A write's BEGIN waits only a slice at a time (see
    ``Store._begin_write``)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute(sql)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class Store:
    """An aesthete database. Opening checks it is one (or empty) and migrates it.

    ``read_only`` opens it without writing anything, not even SQLite's files beside it (for a database in
    a read-only folder, see :func:`open_store`): it must be of the current schema, and a write raises
    :class:`StoreError`."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        # Absolute, as every path aesthete reports (``score --json`` names the database by it).
        self.path = Path(path) if str(path) == ":memory:" else Path(os.path.abspath(path))
        self.read_only = read_only
        try:
            if read_only:
                conn = _read_only_connection(self.path)
            else:
                if str(path) != ":memory:":
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from None
        self.conn = conn
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._check_identity()
            if read_only:
                self._check_current()
            else:
                if str(path) != ":memory:":
                    _when_free(conn, "PRAGMA journal_mode = WAL")  # a no-op once it is: the mode is in the file
                conn.execute("PRAGMA synchronous = NORMAL")  # safe under WAL: a crash loses no committed row
                self._migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            folder = self.path.parent
            if not read_only and _no_files_beside(exc) and folder.is_dir() and not os.access(folder, os.W_OK):
                raise ReadOnlyFolderError(
                    f"database {path} is in a read-only folder ({folder}), where it cannot be written to: "
                    "copy it to a writable folder, or only read it (rank, show, failures, groups, report)"
                ) from None
            reason = "not a database, or corrupt" if "not a database" in str(exc) or "malformed" in str(exc) else exc
            raise StoreError(f"cannot use database {path}: {reason}") from None

    def close(self) -> None:
        self.conn.close()

    # -- schema -------------------------------------------------------------------------------------
    def _check_identity(self) -> None:
        # One statement, so one snapshot: read apart, a process migrating the same new file in between
        # made it look like a foreign database (no application id, yet tables).
        app_id, tables, version = self.conn.execute(
            "SELECT (SELECT application_id FROM pragma_application_id), (SELECT count(*) FROM sqlite_master), "
            "(SELECT user_version FROM pragma_user_version)"
        ).fetchone()
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables > 0):
            raise StoreError(f"{self.path} is not an aesthete database; refusing to touch it")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer aesthete (schema {version} > {SCHEMA_VERSION}); upgrade aesthete"
            )

    def _check_current(self) -> None:
        """A database opened read-only cannot be migrated: it must already have the current schema."""
        if migrations.applied(self.conn) < SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by an older aesthete and must be upgraded, which its read-only folder "
                "does not allow: copy it to a writable folder first"
            )

    def _migrate(self) -> None:
        migrations.migrate(self.conn, self.transaction)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction taken up front (IMMEDIATE), so concurrent writers queue on the busy
        timeout instead of failing with 'database is locked' on a read-to-write upgrade."""
        self._begin_write()
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _begin_write(self) -> None:
        """BEGIN IMMEDIATE, waiting for another writer in slices of ``WAIT_SLICE_MS`` with Python running
        between them, so that Ctrl-C stops the wait. In one long SQLite wait it could not: ``cull`` run
        beside a busy ``score`` ignored Ctrl-C for up to the whole busy timeout."""
        if self.read_only:
            raise StoreError(f"database {self.path} is open read-only (its folder is read-only): nothing is saved")
        self.conn.execute(f"PRAGMA busy_timeout = {WAIT_SLICE_MS}")
        try:
            _when_free(self.conn, "BEGIN IMMEDIATE")
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def roll_back_interrupted(self) -> None:
        """Roll back a transaction an interrupt left open.

        Ctrl-C raises at whatever Python line runs next, and that can be the line after ``BEGIN``, before
        ``transaction`` reaches the code that would roll it back, or inside contextlib's own plumbing. No
        ``with`` block closes every such window, so whoever catches the interrupt and writes on (``score``
        records its run as interrupted) calls this first."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    # -- what the scanner needs -------------------------------------------------------------------------
    def known_files(self) -> dict[str, KnownFile]:
        """Every recorded path with its size/mtime, keyed by the real path (one query, no per-file I/O)."""
        rows = self.conn.execute(
            "SELECT path, raw_path, size, mtime_ns, content_hash, status, error_kind, pair_of FROM files"
        )
        return {real_path(row[0], row[1]): KnownFile(*row[2:]) for row in rows}

    def scored_hashes(self, key: ModelKey) -> set[str]:
        rows = self.conn.execute(
            "SELECT content_hash FROM scores WHERE model = ? AND weights_id = ? AND preprocess = ?",
            (key.model, key.weights_id, key.preprocess),
        )
        return {row[0] for row in rows}

    def hashes_without_faces(self) -> set[str]:
        """Contents whose faces were never looked for (read before the ``faces`` extra was installed, or
        before the schema had faces): a rescan decodes them again for the signals alone."""
        return {row[0] for row in self.conn.execute("SELECT content_hash FROM images WHERE faces_looked IS NULL")}

    def hashes_measured_before(self, version: int) -> set[str]:
        """Contents whose technical signals an earlier :data:`aesthete.signals.VERSION` measured: a rescan
        measures them again (and only that)."""
        rows = self.conn.execute("SELECT content_hash FROM images WHERE signals_version < ?", (version,))
        return {row[0] for row in rows}

    def embedded_hashes(self, key: ModelKey) -> set[str]:
        """The content hashes with an embedding under ``key`` (an embed-only run's "scored")."""
        rows = self.conn.execute(
            "SELECT content_hash FROM embeddings WHERE model = ? AND weights_id = ? AND preprocess = ?",
            (key.model, key.weights_id, key.preprocess),
        )
        return {row[0] for row in rows}

    def write(
        self,
        *,
        files: Sequence[dict[str, Any]] = (),
        images: Sequence[dict[str, Any]] = (),
        scores: Sequence[dict[str, Any]] = (),
        embeddings: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Upsert one batch of results in a single transaction (``embeddings`` rows from
        :func:`embedding_row`)."""
        if not (files or images or scores or embeddings):
            return
        with self.transaction():
            if images:
                _upsert(self.conn, "images", images, ("content_hash",))
            if scores:
                _upsert(self.conn, "scores", scores, ("content_hash", "model", "weights_id", "preprocess"))
            if embeddings:
                _upsert(self.conn, "embeddings", embeddings, ("content_hash", "model", "weights_id", "preprocess"))
            if files:
                _upsert(self.conn, "files", files, ("path",))

    def forget(self, paths: Iterable[str]) -> None:
        """Drop the rows of ``paths`` (real paths) that hold no photo: a recorded failure or a RAW companion.
        A photo's row is never dropped here, whatever ``paths`` holds (a drive that is not mounted keeps
        its scores)."""
        texts = [(path_key(p)[0],) for p in paths]
        if not texts:
            return
        with self.transaction():
            self.conn.executemany("DELETE FROM files WHERE path = ? AND status IN ('failed', 'paired')", texts)

    # -- runs -------------------------------------------------------------------------------------------
    def start_run(self, roots: Iterable[str], key: ModelKey | None, *, recursive: bool = True) -> int:
        model, weights_id, preprocess = (key.model, key.weights_id, key.preprocess) if key else (None, None, None)
        roots = list(roots)
        folders = json.dumps([path_key(r)[0] for r in roots])
        real = json.dumps([path_key(os.path.realpath(r))[0] for r in roots])
        with self.transaction():
            cursor = self.conn.execute(
                "INSERT INTO runs (started, roots, recursive, real_roots, model, weights_id, preprocess, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'running')",
                (now_iso(), folders, int(recursive), real, model, weights_id, preprocess),
            )
        return int(cursor.lastrowid)

    def finish_run(self, run_id: int, status: str, counts: dict[str, Any]) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE runs SET finished = ?, status = ?, counts = ? WHERE id = ?",
                (now_iso(), status, json.dumps(counts), run_id),
            )

    def last_run(self) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT id, roots, recursive, model, weights_id, preprocess FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return {"id": row[0], "roots": json.loads(row[1]), "recursive": row[2] != 0, "model": row[3],
                "weights_id": row[4], "preprocess": row[5]}  # fmt: skip

    def scanned(self, folder: str) -> bool:
        """Whether a ``score`` run looked in ``folder``: it, or a folder above it, was one of a run's roots."""
        names = self.folder_names(folder)
        return any(is_within(name, root) for root, _ in self._run_roots() for name in names)

    def _run_roots(self) -> set[tuple[str, str | None]]:
        """(root, its real path as the run resolved it; None for a run from before that was recorded)."""
        pairs = set()
        for roots, real in self.conn.execute("SELECT roots, real_roots FROM runs"):
            roots = json.loads(roots)
            pairs.update(zip(roots, json.loads(real) if real else [None] * len(roots)))
        return pairs

    def folder_names(self, folder: str) -> list[str]:
        """The paths (as stored) the files in ``folder`` may be recorded under, as given first. ``score``
        records the paths it walked, symlinks unresolved, and the working folder is always the resolved one:
        after ``score ~/Pictures`` (a link to a drive), ``cd ~/Pictures && aesthete cull .`` names the drive's
        folder, and after ``score .`` there, ``cull ~/Pictures`` names the link. Both are found: the folder's
        real path, and its place under each scored folder that was a link or lay below one when scored (the
        run recorded where it led: a run's folders are not looked at again, a drive there may be gone)."""
        given = os.path.abspath(folder)
        real = os.path.realpath(given)
        names = [given, real]
        for root, root_real in sorted(self._run_roots(), key=lambda pair: pair[0]):
            if root_real is not None and root_real != root and is_within(real, root_real):
                names.append(os.path.normpath(os.path.join(root, os.path.relpath(real, root_real))))
        return list(dict.fromkeys(path_key(name)[0] for name in names))

    # -- reading ----------------------------------------------------------------------------------------
    def embeddings(self, key: ModelKey, hashes: Iterable[str] | None = None) -> tuple[list[str], Any]:
        """(content hashes, float16 matrix with one row each) of the embeddings ``key`` stored, for
        ``hashes`` only when given (those without one are left out). numpy is imported here, not by
        the commands that never read embeddings."""
        import numpy as np

        rows = self.conn.execute(
            "SELECT content_hash, dim, vector FROM embeddings WHERE model = ? AND weights_id = ? AND preprocess = ?",
            (key.model, key.weights_id, key.preprocess),
        )
        wanted = None if hashes is None else set(hashes)
        out_hashes, vectors = [], []
        for content_hash, dim, vector in rows:
            if wanted is not None and content_hash not in wanted:
                continue
            values = np.frombuffer(vector, dtype="<f2")
            if len(values) != dim:
                raise StoreError(f"{self.path}: a damaged embedding ({len(values)} values, {dim} recorded)")
            out_hashes.append(content_hash)
            vectors.append(values)
        if vectors and len({len(v) for v in vectors}) > 1:
            raise StoreError(f"{self.path}: embeddings of {key.model} have different lengths")
        matrix = np.stack(vectors) if vectors else np.zeros((0, 0), dtype=np.float16)
        return out_hashes, matrix

    def images_by_hash(self, hashes: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The ``images`` rows (technical signals, EXIF) of ``hashes``, by content hash."""
        wanted = list(dict.fromkeys(hashes))
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
            chunk = wanted[start : start + 500]
            cursor = self.conn.execute(
                f"SELECT * FROM images WHERE content_hash IN ({','.join('?' * len(chunk))})", chunk
            )
            names = [d[0] for d in cursor.description]
            for row in cursor:
                record = dict(zip(names, row))
                out[record["content_hash"]] = record
        return out

    def latest_model_key(self, model: str | None = None) -> ModelKey | None:
        """The most recently written (model, weights, preprocessing), optionally for one model name."""
        sql = "SELECT model, weights_id, preprocess FROM scores"
        params: tuple[Any, ...] = ()
        if model:
            sql, params = sql + " WHERE model = ?", (model,)
        row = self.conn.execute(sql + " ORDER BY scored_at DESC, rowid DESC LIMIT 1", params).fetchone()
        return ModelKey(*row) if row else None

    def has_scores(self, key: ModelKey) -> bool:
        """Whether any photo has a score cached under ``key``."""
        sql = "SELECT 1 FROM scores WHERE model = ? AND weights_id = ? AND preprocess = ? LIMIT 1"
        return self.conn.execute(sql, (key.model, key.weights_id, key.preprocess)).fetchone() is not None

    def photos(self, key: ModelKey | None, roots: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every readable photo (optionally under ``roots``) joined with its image row and, when ``key``
        is given, its score for that model. Rows are plain dicts; ``dist`` is decoded from JSON and
        ``companions`` lists the real paths of the photo's RAW companions."""
        where, params = ["f.status = 'ok'"], []
        if roots:
            clauses = []
            for text in (name for root in roots for name in self.folder_names(root)):
                clauses.append("(f.path = ? OR f.path LIKE ? ESCAPE '\\')")
                params += [text, _like_prefix(subtree_prefix(text))]
            where.append("(" + " OR ".join(clauses) + ")")
        score_cols = "NULL AS dist, NULL AS mean, NULL AS std, NULL AS p_high, NULL AS model"
        join = ""
        if key is not None:
            score_cols = "s.dist, s.mean, s.std, s.p_high, s.model"
            join = (
                "LEFT JOIN scores s ON s.content_hash = f.content_hash "
                "AND s.model = ? AND s.weights_id = ? AND s.preprocess = ?"
            )
            params = [key.model, key.weights_id, key.preprocess, *params]
        image_cols = ", ".join("i." + c for c in IMAGE_COLUMNS)
        sql = (
            f"SELECT f.path, f.raw_path, f.size, f.mtime_ns, f.content_hash, {image_cols}, "
            f"{score_cols} FROM files f JOIN images i ON i.content_hash = f.content_hash {join} "
            f"WHERE {' AND '.join(where)}"
        )
        companions: dict[str, list[str]] = {}
        paired = "SELECT pair_of, path, raw_path FROM files WHERE pair_of IS NOT NULL AND status = 'paired'"
        for partner, path, raw in self.conn.execute(paired):  # (the pair_of index makes this cheap)
            companions.setdefault(partner, []).append(real_path(path, raw))
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        out = []
        for row in cursor:
            record = dict(zip(names, row))
            record["real_path"] = real_path(record["path"], record.pop("raw_path"))
            record["companions"] = sorted(companions.get(record["path"], []))
            record["dist"] = json.loads(record["dist"]) if record["dist"] else None
            # What the aesthetic number is: a distribution's mean, or a score model's one score.
            record["output"] = (
                None if record["mean"] is None else "distribution" if record["dist"] is not None else "score"
            )
            record["flags"] = json.loads(record["flags"]) if record["flags"] else []
            record["faces"] = _faces(record["faces"])
            out.append(record)
        return out

    def recorded_copies(self) -> dict[str, list[str]]:
        """Content hash -> the real paths of every readable file holding it, anywhere in the database, for
        the contents recorded at two paths or more (moved photos whose old path is still recorded, copies).
        Whatever folders a ranking covers, the other paths of its photos are here."""
        rows = self.conn.execute(
            "SELECT content_hash, path, raw_path FROM files WHERE status = 'ok' AND content_hash IN "
            "(SELECT content_hash FROM files WHERE status = 'ok' GROUP BY content_hash HAVING count(*) > 1)"
        )
        out: dict[str, list[str]] = {}
        for content_hash, path, raw in rows:
            out.setdefault(content_hash, []).append(real_path(path, raw))
        return out

    def failures(self, roots: Sequence[str] = ()) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT path, error_kind, error FROM files WHERE status = 'failed' ORDER BY path")
        prefixes = [name for root in roots for name in self.folder_names(root)]
        return [
            {"path": p, "kind": kind, "reason": reason}
            for p, kind, reason in rows
            if not prefixes or any(is_within(p, r) for r in prefixes)
        ]

    def photo_by_path(self, path: str) -> dict[str, Any] | None:
        """A file's record; a RAW companion shows its partner's image and scores (and ``pair_of``).

        ``score`` records the path it walked, symlinks unresolved: ``path`` is looked up as given, then
        by its real path, then as the same file recorded under its name in another folder (one reached
        through a symlinked folder)."""
        sql = "SELECT path, raw_path, size, mtime_ns, content_hash, status, error, pair_of FROM files WHERE path = ?"
        found = (self.conn.execute(sql, (text,)).fetchone() for text in self._recorded_as(path))
        row = next((row for row in found if row is not None), None)
        if row is None:
            return None
        text, on_disk, row = row[0], file_state(real_path(row[0], row[1]), row[2], row[3]), row[4:]
        if row[1] == "paired":
            partner = self.conn.execute("SELECT content_hash FROM files WHERE path = ?", (row[3],)).fetchone()
            row = (partner[0] if partner else None, *row[1:])
        image = self.conn.execute("SELECT * FROM images WHERE content_hash = ?", (row[0],)).fetchone()
        cursor = self.conn.execute(
            "SELECT model, weights_id, preprocess, dist, mean, std, p_high, scored_at FROM scores "
            "WHERE content_hash = ? ORDER BY scored_at DESC",
            (row[0],),
        )
        names = [d[0] for d in cursor.description]
        scores = [dict(zip(names, r)) for r in cursor]
        for score in scores:
            score["dist"] = json.loads(score["dist"]) if score["dist"] else None
            score["output"] = "distribution" if score["dist"] is not None else "score"
        image_cols = [d[1] for d in self.conn.execute("PRAGMA table_info(images)")]
        image = dict(zip(image_cols, image)) if image else None
        if image is not None:  # the JSON columns as their values, as rank's rows have them
            image["faces"] = _faces(image.get("faces"))
            image["flags"] = json.loads(image["flags"]) if image.get("flags") else []
        return {
            "path": text,
            "content_hash": row[0],
            "status": row[1],
            "error": row[2],
            "pair_of": row[3],
            "on_disk": on_disk,
            "image": image,
            "scores": scores,
        }

    def _recorded_as(self, path: str) -> Iterator[str]:
        """The paths (as stored) ``path`` may be recorded under, most likely first: as given, resolved,
        and every recorded path of the same name that is the same file."""
        yield path_key(os.path.abspath(path))[0]
        real = os.path.realpath(path)
        yield path_key(real)[0]
        name = path_key(os.sep + os.path.basename(real))[0]
        for text, raw in self.conn.execute(
            "SELECT path, raw_path FROM files WHERE path LIKE ? ESCAPE '\\'", ("%" + _like_escape(name),)
        ):
            try:
                if os.path.samefile(real_path(text, raw), real):
                    yield text
            except OSError:  # gone, or on a drive that is not mounted: not this file
                continue

    # -- groups (bursts and near-duplicates; computed by aesthete.groups) -------------------------------
    def grouping_inputs(self) -> list[tuple[str, str | None, str | None, str | None, int, str | None]]:
        """(content hash, make, camera, capture time, earliest file mtime, pHash) of every readable photo.

        One row per content: copies of a file are one photo to the grouping."""
        return self.conn.execute(
            "SELECT i.content_hash, i.make, i.camera, i.capture_time, min(f.mtime_ns), i.phash "
            "FROM images i JOIN files f ON f.content_hash = i.content_hash WHERE f.status = 'ok' "
            "GROUP BY i.content_hash ORDER BY i.content_hash"
        ).fetchall()

    def group_fingerprint(self) -> str | None:
        row = self.conn.execute("SELECT fingerprint FROM group_state WHERE id = 1").fetchone()
        return row[0] if row else None

    def replace_groups(self, members: Sequence[tuple[str, int, int]], fingerprint: str) -> None:
        """Store a fresh grouping, ``(content hash, group id, group size)`` per photo, in one transaction."""
        with self.transaction():
            self.conn.execute("DELETE FROM groups")
            self.conn.executemany("INSERT INTO groups (content_hash, group_id, size) VALUES (?, ?, ?)", members)
            self.conn.execute(
                "INSERT INTO group_state (id, fingerprint, computed_at) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint, computed_at = excluded.computed_at",
                (fingerprint, now_iso()),
            )

    def groups(self) -> dict[str, tuple[int, int]]:
        """content hash -> (group id, group size)."""
        return {h: (g, n) for h, g, n in self.conn.execute("SELECT content_hash, group_id, size FROM groups")}

    def move_file(self, old: str, new: str) -> None:
        """Record that the file at ``old`` now lives at ``new`` (after ``cull --move-rejects``); its RAW
        companions keep pointing at it."""
        text, raw = path_key(os.path.abspath(new))
        old_text = path_key(os.path.abspath(old))[0]
        with self.transaction():
            # A record at ``new`` is of a file deleted since (a rejects folder emptied by hand, then a photo of
            # that name moved in): the path is this file's now. Left there, it broke the update, mid-move.
            self.conn.execute("DELETE FROM files WHERE path = ? AND path != ?", (text, old_text))
            self.conn.execute("UPDATE files SET path = ?, raw_path = ? WHERE path = ?", (text, raw, old_text))
            self.conn.execute("UPDATE files SET pair_of = ? WHERE pair_of = ?", (text, old_text))


# What a file_state other than "unchanged" means, as `show` and the report say it.
FILE_STATE_NOTES = {
    "missing": "not on disk now (deleted, or on a drive that is not mounted)",
    "changed": "changed on disk since `score` read it",
}


def file_state(path: str, size: int, mtime_ns: int) -> str:
    """Whether the file at ``path`` is still what ``score`` recorded (``size``, ``mtime_ns``): ``unchanged``,
    ``changed`` (edited since: its record describes the earlier bytes) or ``missing`` (deleted, or on a
    drive that is not mounted)."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return "unchanged" if (st.st_size, st.st_mtime_ns) == (size, mtime_ns) else "changed"


def _faces(text: str | None) -> list[dict[str, Any]] | None:
    """The stored ``faces`` column as a list of face records; None when faces were never looked for."""
    return json.loads(text) if text is not None else None


def _like_escape(text: str) -> str:
    """``text`` matched literally by ``LIKE ... ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_prefix(prefix: str) -> str:
    return _like_escape(prefix) + "%"


def _upsert(conn: sqlite3.Connection, table: str, rows: Sequence[dict[str, Any]], keys: tuple[str, ...]) -> None:
    columns = list(rows[0])
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )
    conn.executemany(sql, [tuple(row[c] for c in columns) for row in rows])


def open_store(path: str | Path | None = None, *, create: bool = True, writes: bool = True) -> Store:
    """Open the database at ``path``, ``$AESTHETE_DB``, or the XDG data directory.

    With ``create=False`` (the commands that only read what ``score`` saved) a database that does not
    exist raises :class:`NothingToDoError` instead of being made, with its folders: a mistyped ``--db``
    then says so rather than leaving an empty database behind.

    A database in a read-only folder (a backup disk, a read-only mount) cannot be opened as usual: SQLite
    keeps its write-ahead log beside it. That raises :class:`ReadOnlyFolderError`, unless ``writes`` is
    False (the caller only reads): then it is opened read-only (``Store.read_only``)."""
    if path is None:
        path = default_db_path(create=create)
    if not create and str(path) != ":memory:" and not os.path.exists(path):
        raise NothingToDoError(f"nothing scored yet: no database at {path} (`aesthete score FOLDER` makes it)")
    try:
        return Store(path)
    except ReadOnlyFolderError:
        if writes:
            raise
    return Store(path, read_only=True)


def _read_only_connection(path: Path) -> sqlite3.Connection:
    """A connection that writes nothing to ``path`` or beside it. ``mode=ro`` still needs the WAL index
    (``-shm``) beside the database, which a read-only folder may not let SQLite create; then the file is
    opened ``immutable``, which reads it without any, and is right only while no write-ahead log holds
    changes not yet copied into it (none does once the last writer closed it)."""
    conn = sqlite3.connect(_uri(path, "mode=ro"), uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        log = f"{path}-wal"
        if os.path.exists(log) and os.path.getsize(log) > 0:  # immutable would not see what the log holds
            raise
    return sqlite3.connect(_uri(path, "immutable=1"), uri=True, isolation_level=None)
