"""Photos whose technical signals an earlier aesthete measured are measured again by the next rescan,
and only those, without being scored again (``images.signals_version``, ``signals.VERSION``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils
from imagegen import encode, scene
from PIL import Image

from aesthete import faces, migrations, pipeline, signals
from aesthete.scoring import score
from aesthete.store import Store

BEFORE = "schema_signals_version"
MEASURED = "SELECT content_hash, sharpness, flags, technical, phash FROM images"


def _database_before_versions(path: Path) -> sqlite3.Connection:
    """An empty database as the release before signal versions left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    old = migrations.MIGRATIONS[: [m.name for m in migrations.MIGRATIONS].index(BEFORE)]
    for step in old:
        step.apply(sqlite_utils.Database(conn))
    conn.execute(f"PRAGMA user_version = {len(old)}")
    conn.execute(f"PRAGMA application_id = {migrations.APPLICATION_ID}")
    return conn


@pytest.mark.parametrize(
    ("size", "version"),
    [
        ((640, 480), 2),  # an ordinary photo: version 2 measures it as version 1 did
        ((800, 100), 2),  # 8:1 exactly: still the longer side 512
        ((500, 40), 2),  # a strip under the working size: measured as it is, then and now
        ((600, 70), 1),  # longer than 8:1 and over 512 px: version 2 keeps 64 of its rows, not 60
        ((4000, 60), 1),  # the field test's panorama: version 1 kept 8 rows and called it blurry
        ((60, 4000), 1),  # ... upright
        ((1, 1), 1),  # version 1 said sharpness 0.0 (blurry) where it could not measure
        ((8, 300), 1),
    ],
)
def test_the_migration_marks_the_photos_version_2_measures_differently(
    tmp_path: Path, size: tuple[int, int], version: int
) -> None:
    conn = _database_before_versions(tmp_path / "old.db")
    conn.execute("INSERT INTO images (content_hash, width, height) VALUES ('h', ?, ?)", size)
    conn.close()
    store = Store(tmp_path / "old.db")
    assert store.conn.execute("SELECT signals_version FROM images").fetchone()[0] == version
    assert store.hashes_measured_before(signals.VERSION) == ({"h"} if version < signals.VERSION else set())
    store.close()


def test_a_rescan_measures_again_what_an_earlier_version_measured_and_scores_nothing(
    tmp_path: Path, tiny_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faces, "available", lambda: False)  # faces are not what this is about
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "panorama.jpg").write_bytes(encode(scene(0, (4000, 60))))
    (folder / "tiny.png").write_bytes(encode(Image.new("RGB", (1, 1), (120, 130, 140)), "PNG"))
    (folder / "ordinary.jpg").write_bytes(encode(scene(1, (640, 480))))
    weights = str(tiny_checkpoints["nima"])
    # Score with today's code into a scratch database, then copy its rows into one at the schema before
    # signal versions, with the two values version 1 wrote differently, as that release left them.
    scratch = Store(tmp_path / "scratch.db")
    assert score([str(folder)], store=scratch, weights=weights, device="cpu", workers=1).scored == 3
    scratch.close()
    conn = _database_before_versions(tmp_path / "old.db")
    conn.execute("ATTACH ? AS new", (str(tmp_path / "scratch.db"),))
    for table in ("files", "images", "scores"):
        columns = ", ".join(row[1] for row in conn.execute(f"PRAGMA main.table_info({table})"))
        conn.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM new.{table}")
    today = {row[0]: row[1:] for row in conn.execute(MEASURED)}
    conn.execute("UPDATE main.images SET sharpness = 0.0, flags = '[\"blurry\"]', technical = 0.1 WHERE width <> 640")
    before_scores = conn.execute("SELECT * FROM main.scores ORDER BY content_hash").fetchall()
    conn.execute("DETACH new")
    conn.close()

    store = Store(tmp_path / "old.db")
    blurry = [r["path"] for r in store.photos(None) if "blurry" in r["flags"]]
    assert sorted(Path(p).name for p in blurry) == ["panorama.jpg", "tiny.png"]

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded to measure signals again")

    monkeypatch.setattr(pipeline, "load_runner", no_model)
    again = score([str(folder)], store=store, weights=weights, device="cpu", workers=1)
    assert (again.remeasured, again.scored, again.cached, again.faces_filled, again.failed) == (2, 0, 1, 0, [])
    after = {row[0]: row[1:] for row in store.conn.execute(MEASURED)}
    assert after == today  # what today's code measures, for the two re-measured and the one left alone
    assert all("blurry" not in json.loads(flags) for _, flags, *_ in after.values())
    assert store.conn.execute("SELECT * FROM scores ORDER BY content_hash").fetchall() == before_scores
    assert store.hashes_measured_before(signals.VERSION) == set()
    third = score([str(folder)], store=store, weights=weights, device="cpu", workers=1)
    assert (third.remeasured, third.cached) == (0, 3)
    store.close()
