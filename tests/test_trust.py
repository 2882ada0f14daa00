"""Trust boundaries: checkpoints that carry code, databases that are damaged or old, sidecars half written.

(Downloads: tests/test_weights.py. Hostile names in the report: tests/test_report.py. Foreign and newer
databases: tests/test_store.py.)"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import imagegen as g
import pytest
import sqlite_utils

from aesthete import fileops, migrations
from aesthete.checkpoint import CheckpointError, load_state_dict
from aesthete.scoring import score
from aesthete.store import APPLICATION_ID, SCHEMA_VERSION, Store, file_row
from aesthete.xmp import sidecar_path, write_sidecar

ROOT = Path(__file__).resolve().parents[1]


def aesthete(*args: object, **kwargs: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "aesthete", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300, **kwargs)  # fmt: skip


def one_line_error(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), run.stderr
    return lines[0]


# ---------------------------------------------------------------------------------------- checkpoints


class Payload:
    """Unpickling this calls ``open(marker, 'w')``: any code could run in its place."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return open, (str(self.marker), "w")


def test_a_checkpoint_carrying_a_pickle_payload_is_refused_and_never_run(tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2), "hook": Payload(marker)}}, evil)
    torch.load(evil, weights_only=False)  # the payload is live: unrestricted unpickling runs it
    assert marker.exists()
    marker.unlink()

    with pytest.raises(CheckpointError, match="refused, the file needs arbitrary pickle"):
        load_state_dict(evil)
    for args in (["score", tmp_path, "--weights", evil, "--db", tmp_path / "a.db"],
                 ["weights", "add", evil, "--name", "evil"]):  # fmt: skip
        assert "not a safetensors checkpoint" in one_line_error(aesthete(*args))
    disguised = tmp_path / "evil.safetensors"
    disguised.write_bytes(evil.read_bytes())
    with pytest.raises(CheckpointError):
        load_state_dict(disguised)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ databases


def filled_database(path: Path, photos: Path) -> Path:
    photos.mkdir()
    for i in range(3):
        (photos / f"p{i}.jpg").write_bytes(g.encode(g.scene(i, (64, 48)), "JPEG"))
    store = Store(path)
    rows = [file_row(f"/archive/{i:05}/{'x' * 80}.jpg", i, i, "ok", content_hash=f"{i:032x}") for i in range(3000)]
    store.write(files=rows)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return path


def test_a_damaged_database_is_reported_in_one_line_and_left_as_it_is(tmp_path: Path) -> None:
    db = filled_database(tmp_path / "a.db", tmp_path / "photos")
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 40 * page
    for offset in range(4 * page, len(data), 3 * page):  # the file table's pages, sqlite_master intact
        data[offset + 100 : offset + 900] = os.urandom(800)
    db.write_bytes(bytes(data))
    digest = hashlib.sha256(data).hexdigest()
    for args in (["score", tmp_path / "photos"], ["rank"], ["failures"]):
        message = one_line_error(aesthete(*args, "--db", db))
        assert "is damaged" in message and "restore a backup" in message
        assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_a_database_from_an_older_schema_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrations.schema_v1(sqlite_utils.Database(conn))
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (started, roots, status) VALUES ('2024-01-01', '[]', 'done')")
    conn.execute("INSERT INTO images (content_hash, phash) VALUES ('h1', '0000000000000000')")
    conn.close()
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "p.jpg").write_bytes(g.encode(g.scene(1, (64, 48)), "JPEG"))
    store = Store(db)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION  # every migration ran
    assert store.conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert store.conn.execute("SELECT content_hash FROM images").fetchall() == [("h1",)]
    assert store.groups() == {} and store.group_fingerprint() is None  # the v2 tables exist, empty
    assert score([str(photos)], store=store, workers=1).analysed == 1


# -------------------------------------------------------------------------------------------- sidecars


@pytest.mark.parametrize("fails", ["fsync", "replace"])
def test_a_sidecar_write_that_dies_halfway_leaves_the_old_sidecar_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8 a photo")
    write_sidecar(str(photo), rating=2)
    sidecar = Path(sidecar_path(str(photo)))
    before = sidecar.read_bytes()

    def crash(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fileops.os, fails, crash)
    result = write_sidecar(str(photo), rating=5)  # skipped with why, as a read-only sidecar is
    monkeypatch.undo()
    assert result.status == "skipped" and "cannot write it (Input/output error); left untouched" in result.message
    assert sidecar.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg", sidecar.name]  # no temporary left


def test_a_lock_or_a_plain_sql_error_is_not_called_damage(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Only SQLITE_CORRUPT / SQLITE_NOTADB may say "damaged" and advise a backup; real errors from SQLite."""
    import typer

    from aesthete.cli.common import opened_store

    db = filled_database(tmp_path / "a.db", tmp_path / "photos")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    holder.execute("DELETE FROM files")
    try:
        with pytest.raises(typer.Exit), opened_store(db) as store:
            store.conn.execute("PRAGMA busy_timeout = 0")
            store.conn.execute("DELETE FROM files")  # sqlite3.OperationalError: database is locked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    locked = capsys.readouterr().err
    assert "is locked" in locked and "damaged" not in locked and "backup" not in locked
    assert len(locked.strip().splitlines()) == 1

    with pytest.raises(typer.Exit), opened_store(db) as store:
        store.conn.execute("SELECT no_such_column FROM files")  # a plain SQL error
    plain = capsys.readouterr().err
    assert "no such column" in plain and "damaged" not in plain and "locked" not in plain


@pytest.mark.parametrize(
    ("message", "says"),
    [("database disk image is malformed", "is damaged"), ("file is not a database", "is damaged"),
     ("database is locked", "is locked"), ("disk I/O error", "database error on")],
)  # fmt: skip
def test_without_an_error_code_the_message_decides(message: str, says: str) -> None:
    """Python 3.10's sqlite3 errors carry no sqlite_errorcode."""
    from aesthete.cli.common import database_problem

    text = database_problem(sqlite3.DatabaseError(message), "a.db")
    assert says in text and ("backup" in text) == (says == "is damaged")
