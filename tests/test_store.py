"""The database: identity, migrations, refusal of foreign or newer files, upserts without duplicates."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlite_utils

from aesthete import migrations
from aesthete.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    ModelKey,
    Store,
    StoreError,
    StoreReader,
    file_row,
    path_key,
    real_path,
)


def test_new_database_is_marked_and_migrated(tmp_path: Path) -> None:
    Store(tmp_path / "a.db").close()
    with sqlite3.connect(tmp_path / "a.db") as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_foreign_corrupt_and_newer_databases_are_refused_untouched(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a database"):
        Store(junk)
    assert junk.read_bytes() == b"this is not sqlite at all" * 100
    newer = tmp_path / "newer.db"
    Store(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer aesthete"):
        Store(newer)


def test_upserts_never_duplicate(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    key = ModelKey("nima", "abc", "warp-300-v1")
    row = {"content_hash": "h1", "model": key.model, "weights_id": key.weights_id, "preprocess": key.preprocess,
           "dist": "[0.5,0.5]", "mean": 1.5, "std": 0.5, "p_high": 0.5, "scored_at": "now"}  # fmt: skip
    for mean in (1.5, 1.7):
        store.write(files=[file_row("/x.jpg", 1, 1, "ok", content_hash="h1")], scores=[{**row, "mean": mean}])
    assert store.scored_hashes(key) == {"h1"}
    assert store.conn.execute("SELECT count(*), max(mean) FROM scores").fetchone() == (1, 1.7)
    assert store.latest_model_key() == key


def test_undecodable_file_names_round_trip() -> None:
    name = b"/photos/caf\xe9.jpg".decode("utf-8", "surrogateescape")
    text, raw = path_key(name)
    text.encode("utf-8")  # storable as SQLite text
    assert raw is not None and real_path(text, raw) == name
    assert path_key("/photos/plain.jpg") == ("/photos/plain.jpg", None)


def test_migrations_are_named_run_once_each_and_counted_in_user_version(tmp_path: Path) -> None:
    names = [
        "schema_v1",
        "schema_v2",
        "schema_v3",
        "schema_embeddings",
        "schema_written_ratings",
        "schema_capture_time_source",
        "schema_faces",
        "schema_written_previous",
        "schema_run_scope",
        "schema_signals_version",
    ]
    assert [m.name for m in migrations.MIGRATIONS] == names
    assert len(migrations.MIGRATIONS) == SCHEMA_VERSION
    store = Store(tmp_path / "a.db")
    tables = {row[0] for row in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"files", "images", "scores", "runs", "groups", "group_state", "embeddings", "written_ratings"} <= tables
    assert "pair_of" in {row[1] for row in store.conn.execute("PRAGMA table_info(files)")}
    assert migrations.migrate(store.conn, store.transaction) == []  # all recorded: nothing runs again
    store.close()
    conn = sqlite3.connect(tmp_path / "b.db", isolation_level=None)
    migrations.schema_v1(sqlite_utils.Database(conn))
    conn.execute("PRAGMA user_version = 1")

    @contextmanager
    def transaction() -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("COMMIT")

    assert migrations.migrate(conn, transaction) == names[1:]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_a_failing_migration_rolls_back_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(db: object) -> None:
        db.execute("CREATE TABLE half_done (x)")  # type: ignore[attr-defined]
        raise RuntimeError("migration failed")

    steps = [*migrations.MIGRATIONS[:2], migrations.Migration("schema_v3", broken)]
    monkeypatch.setattr(migrations, "MIGRATIONS", steps)
    with pytest.raises(RuntimeError, match="migration failed"):
        Store(tmp_path / "a.db")
    with sqlite3.connect(tmp_path / "a.db") as conn:
        # v1 and v2 committed one by one; v3's table and its count did not.
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'groups'").fetchone()[0] == 1
    monkeypatch.undo()
    store = Store(tmp_path / "a.db")  # the next open runs what is left
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_file_row_stores_undecodable_names_with_their_bytes(tmp_path: Path) -> None:
    name = b"/photos/caf\xe9.jpg".decode("utf-8", "surrogateescape")
    row = file_row(name, 10, 20, "paired", pair_of="/photos/cafe.jpg")
    assert row["path"] == path_key(name)[0] and row["raw_path"] == b"/photos/caf\xe9.jpg"
    assert (row["size"], row["mtime_ns"], row["status"], row["pair_of"], row["content_hash"]) == (
        10, 20, "paired", "/photos/cafe.jpg", None,
    )  # fmt: skip
    store = Store(tmp_path / "a.db")
    store.write(files=[row])
    known = store.known_files()[name]
    assert (known.size, known.mtime_ns, known.status, known.pair_of) == (10, 20, "paired", "/photos/cafe.jpg")


def test_reader_sees_images_and_scores_read_only(tmp_path: Path) -> None:
    assert not StoreReader(tmp_path / "missing.db").has_image("h1")  # no database yet: nothing is known
    assert not (tmp_path / "missing.db").exists()
    store = Store(tmp_path / "a.db")
    key = ModelKey("nima", "abc", "warp-300-v1")
    store.write(
        images=[{"content_hash": "h1", "width": 1}],
        scores=[{"content_hash": "h1", "model": key.model, "weights_id": key.weights_id, "preprocess": key.preprocess,
                 "dist": "[1]", "mean": 1.0, "std": 0.0, "p_high": 0.0, "scored_at": "t"}],
    )  # fmt: skip
    reader = StoreReader(tmp_path / "a.db")
    assert reader.has_image("h1") and not reader.has_image("h2")
    assert reader.has_score("h1", key) and not reader.has_score("h1", ModelKey("nima", "other", key.preprocess))
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.conn.execute("DELETE FROM images")
    reader.close()
    assert not reader.has_image("h1")  # closed: "not known" (a decode), never an error


def _open_and_close(path: str) -> str | None:
    try:
        Store(path).close()
    except Exception as exc:  # what a second `score` started at the same moment would print
        return str(exc)
    return None


@pytest.mark.slow
def test_processes_opening_one_new_database_together_all_get_it(tmp_path: Path) -> None:
    """Four processes opening the same new file together: one open in 30-80 failed, either "database is
    locked" at once (switching to WAL does not wait on the busy timeout) or "not an aesthete database"
    (the identity was read in two statements, with another process's migration committed between)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with context.Pool(4) as pool:
        for trial in range(40):
            path = str(tmp_path / f"new-{trial}.db")
            assert pool.map(_open_and_close, [path] * 4) == [None] * 4
            assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


@contextmanager
def read_only_folder(folder: Path) -> Iterator[None]:
    """``folder`` made read-only, as on a read-only mount or backup disk: ``chattr +i`` as root (root
    ignores the mode bits), else ``chmod 555``; skips where neither makes it read-only."""
    import os
    import subprocess

    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        made, undo = True, ["chmod", "755", str(folder)]
    try:
        if not made or os.access(folder, os.W_OK):
            pytest.skip("cannot make a folder read-only here")
        yield
    finally:
        subprocess.run(undo, capture_output=True)


def test_a_database_in_a_read_only_folder_is_browsed_read_only_and_never_written(tmp_path: Path) -> None:
    """A WAL database in a read-only folder cannot be opened as usual (SQLite makes its -wal and -shm files
    beside it): the commands that only read open it read-only; the ones that write say why they cannot."""
    from photoset import write_shoot
    from typer.testing import CliRunner

    from aesthete.cli import app
    from aesthete.groups import ensure_groups
    from aesthete.store import ReadOnlyFolderError, open_store

    runner = CliRunner()
    folder = write_shoot(tmp_path / "shoot")
    db = tmp_path / "backup" / "a.db"
    assert runner.invoke(app, ["score", str(folder), "--db", str(db), "--workers", "1"]).exit_code == 4
    before = {p.name: p.read_bytes() for p in db.parent.iterdir()}
    assert list(before) == ["a.db"]
    with read_only_folder(db.parent):
        for command in (["rank"], ["failures"], ["show", str(folder / "d.jpg")], ["groups"],
                        ["report", "--html", str(tmp_path / "r.html")]):  # fmt: skip
            result = runner.invoke(app, [*command, "--db", str(db)])
            assert result.exit_code == 0, (command, result.output)
        groups = runner.invoke(app, ["groups", "--db", str(db)], env={"COLUMNS": "120"})
        assert "3 groups of similar frames among 14 photos" in groups.stdout  # found, though not stored
        for command in (["cull"], ["score", str(folder)]):
            result = runner.invoke(app, [*command, "--db", str(db)])
            assert result.exit_code == 2, (command, result.output)
            assert f"database {db} is in a read-only folder ({db.parent})" in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1
        with pytest.raises(ReadOnlyFolderError):
            open_store(db)
        store = open_store(db, writes=False)
        assert store.read_only and len(store.photos(None)) == 14
        assert len(ensure_groups(store)) == 14  # computed, not stored
        with pytest.raises(StoreError, match="open read-only"):
            store.write(files=[file_row("/x.jpg", 1, 1, "ok")])
        store.close()
    assert {p.name: p.read_bytes() for p in db.parent.iterdir()} == before
    # An older schema would need a migration, which a read-only folder forbids: said in one line.
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    conn.close()
    with read_only_folder(db.parent), pytest.raises(StoreError, match="older aesthete and must be upgraded"):
        open_store(db, writes=False)
