"""The database schema, as the ordered list of named migrations that builds it.

In the manner of sqlite-utils' ``migrations.py``: each migration is a named function that changes the
schema, applied once, in order, each in its own write transaction. What has run is recorded in the file
itself: ``PRAGMA user_version`` counts the migrations applied (the format every aesthete database has
used since the first), and ``PRAGMA application_id`` marks the file as aesthete's. A new migration goes at
the end of :data:`MIGRATIONS`; one that has shipped is never edited, renamed or reordered, since the
count on disk says which ran.

No torch; sqlite-utils is imported by the caller only when a migration actually runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

APPLICATION_ID = 0x41455354  # "AEST": marks a file as an aesthete database


@dataclass(frozen=True)
class Migration:
    """One schema change: its name (the function's) and the function, given a sqlite-utils Database."""

    name: str
    apply: Callable[[sqlite_utils.Database], None]


MIGRATIONS: list[Migration] = []


def migration(fn: Callable[[sqlite_utils.Database], None]) -> Callable[[sqlite_utils.Database], None]:
    """Append ``fn`` to :data:`MIGRATIONS` under its own name (the order of definition is the order run)."""
    if any(m.name == fn.__name__ for m in MIGRATIONS):
        raise ValueError(f"migration {fn.__name__!r} is defined twice")
    MIGRATIONS.append(Migration(fn.__name__, fn))
    return fn


@migration
def schema_v1(db: sqlite_utils.Database) -> None:
    """Files, images (one per content hash), scores (one per content, model, weights, preprocessing), runs."""
    db["files"].create(
        {
            "path": str, "raw_path": bytes, "size": int, "mtime_ns": int, "content_hash": str,
            "status": str, "error_kind": str, "error": str, "first_seen": str, "last_seen": str,
        },
        pk="path",
    )  # fmt: skip
    db["files"].create_index(["content_hash"])
    db["images"].create(
        {
            "content_hash": str, "width": int, "height": int, "format": str, "capture_time": str, "make": str,
            "camera": str, "lens": str, "focal_length": float, "f_number": float, "exposure_time": float,
            "iso": int, "sharpness": float, "clipped_shadows": float, "clipped_highlights": float,
            "mean_luma": float, "noise": float, "technical": float, "phash": str, "flags": str,
        },
        pk="content_hash",
    )  # fmt: skip
    db["scores"].create(
        {
            "content_hash": str, "model": str, "weights_id": str, "preprocess": str, "dist": str,
            "mean": float, "std": float, "p_high": float, "scored_at": str,
        },
        pk=("content_hash", "model", "weights_id", "preprocess"),
    )  # fmt: skip
    db["scores"].create_index(["model", "weights_id", "preprocess"])
    db["runs"].create(
        {
            "id": int, "started": str, "finished": str, "roots": str, "model": str, "weights_id": str,
            "preprocess": str, "status": str, "counts": str,
        },
        pk="id",
    )  # fmt: skip


@migration
def schema_v2(db: sqlite_utils.Database) -> None:
    """Burst / near-duplicate groups, one row per content hash, and the fingerprint of the inputs they were
    computed from, so they are recomputed only when a photo, its time, camera or pHash changes."""
    db["groups"].create({"content_hash": str, "group_id": int, "size": int}, pk="content_hash")
    db["groups"].create_index(["group_id"])
    db["group_state"].create({"id": int, "fingerprint": str, "computed_at": str}, pk="id")


@migration
def schema_v3(db: sqlite_utils.Database) -> None:
    """RAW+JPEG pairs: a RAW companion's row (status ``paired``) names its partner's path."""
    db["files"].add_column("pair_of", str)
    db["files"].create_index(["pair_of"])


@migration
def schema_embeddings(db: sqlite_utils.Database) -> None:
    """Each photo's embedding from a model's penultimate layer, keyed like its score (content hash, model,
    weights, preprocessing): ``dim`` float16 values in ``vector`` (little-endian), written while scoring,
    read by ``aesthete learn`` and by personal heads, so neither decodes a photo again (issue 15)."""
    db["embeddings"].create(
        {"content_hash": str, "model": str, "weights_id": str, "preprocess": str, "dim": int, "vector": bytes},
        pk=("content_hash", "model", "weights_id", "preprocess"),
    )
    db["embeddings"].create_index(["model", "weights_id", "preprocess"])


@migration
def schema_written_ratings(db: sqlite_utils.Database) -> None:
    """What ``cull --xmp`` wrote, so that it is never learned back as the photographer's rating (issue 15;
    read and written by :mod:`aesthete.ratings`). One row per sidecar path; ``content_hash`` ties it to
    the photo wherever the catalog that imported the sidecar now puts it."""
    db["written_ratings"].create(
        {"path": str, "content_hash": str, "rating": int, "label": str, "written_at": str}, pk="path"
    )
    db["written_ratings"].create_index(["content_hash"])


@migration
def schema_capture_time_source(db: sqlite_utils.Database) -> None:
    """Where each capture time came from (``exif``, ``xmp``, ``exif-digitized``, ``file-saved``: see
    :mod:`aesthete.exif`); NULL for photos read before this existed."""
    db["images"].add_column("capture_time_source", str)


@migration
def schema_faces(db: sqlite_utils.Database) -> None:
    """Faces and eyes (issue 17, :mod:`aesthete.faces`): ``faces`` the JSON list of ``Face.to_dict()``,
    largest first, ``face_count`` its length, and ``faces_looked`` the pipeline that looked
    (``faces.VERSION``). NULL in all three: never looked (a database from before this, or the ``faces``
    extra missing), which a rescan fills without scoring again; ``[]``, 0: looked, no face."""
    db["images"].add_column("faces", str)
    db["images"].add_column("face_count", int)
    db["images"].add_column("faces_looked", str)


@migration
def schema_written_previous(db: sqlite_utils.Database) -> None:
    """What each sidecar held before ``cull --xmp`` first rated a photo (JSON: sidecar path -> [rating,
    label]), which ``--clear-previous`` puts back; NULL for ratings recorded before this existed."""
    db["written_ratings"].add_column("previous", str)


@migration
def schema_run_scope(db: sqlite_utils.Database) -> None:
    """How a ``score`` run walked its ``roots``: ``recursive``, whether it descended into subfolders (1) or
    not (0, ``--no-recursive``), so ``cull`` with no folders works on what that run looked at; and
    ``real_roots``, each root with its symlinks resolved (JSON, in ``roots``' order), so a folder named by
    another path to it is found without touching the run's folders again (:meth:`Store.folder_names`).
    NULL in both, a run from before this: it descended (the default); its links are not known."""
    db["runs"].add_column("recursive", int)
    db["runs"].add_column("real_roots", str)


@migration
def schema_signals_version(db: sqlite_utils.Database) -> None:
    """``signals_version``: the :data:`aesthete.signals.VERSION` that measured a photo's technical signals,
    flags and perceptual hash; a rescan measures a photo of an earlier version again, without scoring it
    again. Version 2 (2026-11-28) changed the values of two kinds of photo only: those under 9 px a side
    (no sharpness, where version 1 said 0.0 and so "blurry") and strips longer than 8:1 and over 512 px
    (measured on more rows); those are marked 1, every other photo 2, whose values version 2 gives too."""
    db["images"].add_column("signals_version", int)
    db.execute(
        "UPDATE images SET signals_version = CASE WHEN MIN(width, height) < 9"
        " OR (MAX(width, height) > 512 AND MAX(width, height) > 8 * MIN(width, height)) THEN 1 ELSE 2 END"
    )


SCHEMA_VERSION = len(MIGRATIONS)  # what a database that has run every migration records in user_version


def applied(conn: sqlite3.Connection) -> int:
    """How many migrations the database has run (its ``user_version``)."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, transaction: Callable[[], AbstractContextManager[None]]) -> list[str]:
    """Run the migrations ``conn`` has not run yet, each in its own ``transaction()``; returns their names.

    ``transaction`` must take the write lock up front (``BEGIN IMMEDIATE``): the count is read again under
    it, because another process opening the same new database at the same moment may have run a migration
    while this one waited for the lock.
    """
    if applied(conn) >= SCHEMA_VERSION:
        return []
    import sqlite_utils  # only to create tables: ~0.2 s of imports a rescan of a current database never pays

    db = sqlite_utils.Database(conn)
    ran = []
    while applied(conn) < SCHEMA_VERSION:
        with transaction():
            version = applied(conn)
            if version < SCHEMA_VERSION:
                step = MIGRATIONS[version]
                step.apply(db)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {version + 1}")
                ran.append(step.name)
    return ran
