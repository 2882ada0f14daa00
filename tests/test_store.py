"""The database: identity, migrations, refusal of foreign or newer files, upserts without duplicates."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aesthete.store import APPLICATION_ID, SCHEMA_VERSION, ModelKey, Store, StoreError, path_key, real_path


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
    file_row = {"path": "/x.jpg", "raw_path": None, "size": 1, "mtime_ns": 1, "content_hash": "h1", "status": "ok",
                "error_kind": None, "error": None, "first_seen": "t", "last_seen": "t"}  # fmt: skip
    for mean in (1.5, 1.7):
        store.write(files=[file_row], scores=[{**row, "mean": mean}])
    assert store.scored_hashes(key) == {"h1"}
    assert store.conn.execute("SELECT count(*), max(mean) FROM scores").fetchone() == (1, 1.7)
    assert store.latest_model_key() == key


def test_undecodable_file_names_round_trip() -> None:
    name = b"/photos/caf\xe9.jpg".decode("utf-8", "surrogateescape")
    text, raw = path_key(name)
    text.encode("utf-8")  # storable as SQLite text
    assert raw is not None and real_path(text, raw) == name
    assert path_key("/photos/plain.jpg") == ("/photos/plain.jpg", None)
