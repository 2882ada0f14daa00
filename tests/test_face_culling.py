"""Faces in the pipeline (issue 17, part 2): computed by the decode workers, stored per photo, flagged,
preferred inside a burst, filtered by rank, listed by show, drawn by the report; a database from before
faces keeps working and a rescan fills them in without scoring again.

The portraits are scikit-image's astronaut and variants (tests/facegen.py): eyes open, eyes painted
shut, face blurred, and a photo without a face, the three portraits one burst (same camera, a second
apart). The runtime and scikit-image are in the ``dev`` extra: these tests fail, not skip, without them."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import facegen
import pytest
import sqlite_utils
from photoset import KEY, add_scores, write_photo
from typer.testing import CliRunner

from aesthete import faces, migrations, pipeline, scoring
from aesthete.cli import app
from aesthete.report import build_report
from aesthete.scoring import score
from aesthete.select import Filters, cull, group_picks, rank
from aesthete.store import Store

CAMERA = "Canon EOS R5"
# name -> (picture, EXIF capture time): the three portraits are one burst, the landscape an hour later.
SHOOT = {
    "open.jpg": (facegen.eyes_open, "2024:06:01 10:00:00"),
    "closed.jpg": (facegen.eyes_closed, "2024:06:01 10:00:01"),
    "soft.jpg": (facegen.face_soft, "2024:06:01 10:00:02"),
    "landscape.jpg": (facegen.no_face, "2024:06:01 11:00:00"),
}
# The blink scores best and the open-eyed frame worst of the burst: the preference must overturn that.
MEANS = {"closed.jpg": 8.0, "soft.jpg": 7.0, "open.jpg": 6.0, "landscape.jpg": 5.0}


def write_portraits(folder: Path) -> Path:
    for name, (picture, taken) in SHOOT.items():
        write_photo(folder / name, picture(), taken, CAMERA)
    return folder


@pytest.fixture(scope="module")
def shoot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The portraits scored once (technical signals and faces; no weights), with chosen aesthetic means."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:  # the autouse isolation is per test; this runs once
        for name in ("DATA", "CACHE", "CONFIG"):
            mp.setenv(f"AESTHETE_{name}_DIR", str(home / name.lower()))
        folder = write_portraits(tmp_path_factory.mktemp("portraits"))
        db = folder.parent / "faces.db"
        store = Store(db)
        summary = score([str(folder)], store=store, model="nima", workers=1)
        assert summary.analysed == len(SHOOT) and summary.faces_notice is None
        add_scores(store, MEANS)
        store.close()
    return folder, db


@pytest.fixture
def store(shoot: tuple[Path, Path]) -> Any:
    opened = Store(shoot[1])
    yield opened
    opened.close()


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {Path(r["path"]).name: r for r in rows}


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [Path(r["path"]).name for r in rows]


def test_workers_store_faces_and_their_flags(store: Store) -> None:
    rows = by_name(store.photos(None))
    for name in ("open.jpg", "closed.jpg", "soft.jpg"):
        assert rows[name]["face_count"] == 1 and len(rows[name]["faces"]) == 1, name
        assert rows[name]["faces_looked"] == faces.VERSION
        x0, y0, x1, y1 = rows[name]["faces"][0]["box"]
        assert 0.30 < x0 < 0.38 and 0.50 < x1 < 0.58 and 0.08 < y0 < 0.18 and 0.30 < y1 < 0.40, name
    assert rows["landscape.jpg"]["faces"] == [] and rows["landscape.jpg"]["face_count"] == 0
    assert [f for f in rows["open.jpg"]["flags"] if f in faces.FACE_FLAGS] == []
    assert "eyes-closed" in rows["closed.jpg"]["flags"] and "face-soft" not in rows["closed.jpg"]["flags"]
    assert "face-soft" in rows["soft.jpg"]["flags"] and "eyes-closed" not in rows["soft.jpg"]["flags"]
    assert max(rows["closed.jpg"]["faces"][0]["eyes"]) < faces.EYE_CLOSED_BELOW
    assert min(rows["open.jpg"]["faces"][0]["eyes"]) > faces.EYE_CLOSED_BELOW


def test_the_burst_pick_prefers_open_eyes_and_a_sharp_face_over_a_higher_score(store: Store) -> None:
    picked = cull(store, top=10)
    assert names(picked.rows) == ["open.jpg", "landscape.jpg"]
    why = {Path(r["path"]).name: r["why"] for r in picked.others}
    assert why["closed.jpg"].startswith("group ") and "eyes-closed" in why["closed.jpg"]
    assert "face-soft" in why["soft.jpg"] and why["soft.jpg"].endswith("open.jpg has no face flagged")
    # Flagged frames are not rejected by default: without the burst, the blink is the best photo.
    assert names(cull(store, top=1, group=False).rows) == ["closed.jpg"]


def test_reject_closed_eyes(store: Store, shoot: tuple[Path, Path]) -> None:
    ranking = cull(store, top=10, group=False, reject_closed_eyes=True)
    assert "closed.jpg" not in names(ranking.rows)
    assert {Path(r["path"]).name: r["why"] for r in ranking.others} == {"closed.jpg": "eyes-closed"}
    result = CliRunner().invoke(app, ["cull", "--db", str(shoot[1]), "--no-group", "--reject-closed-eyes", "--json"])
    assert result.exit_code == 0, result.output
    assert "closed.jpg" not in {Path(p["path"]).name for p in json.loads(result.stdout)["picks"]}


def test_group_picks_leave_photos_without_faces_on_their_score() -> None:
    def row(score: float, flags: list[str]) -> dict[str, Any]:
        return {"group": 1, "mean": score, "flags": flags}

    no_face, good, blink, soft_blink = row(9, []), row(8, []), row(10, ["eyes-closed"]), row(7, ["face-soft"])
    assert group_picks([blink, no_face, good]) == {1: no_face}  # no faces: neither preferred nor penalised
    assert group_picks([blink, good, no_face]) == {1: good}
    assert group_picks([blink, soft_blink]) == {1: blink}  # every frame flagged: the score decides
    assert group_picks([blink, good], {id(blink): None, id(good): "blurry"}) == {1: blink}


def test_rank_filters_on_faces(store: Store, shoot: tuple[Path, Path]) -> None:
    def ranked(**kwargs: Any) -> set[str]:
        return set(names(rank(store, filters=Filters(**kwargs)).rows))

    portraits = {"open.jpg", "closed.jpg", "soft.jpg"}
    assert ranked(faces="1") == ranked(faces="1+") == ranked(faces=1) == portraits
    assert ranked(faces="0") == {"landscape.jpg"} and ranked(faces="2+") == set()
    # Open eyes: every face with both eyes open; a photo without faces has none to show.
    assert ranked(eyes_open=True) == {"open.jpg", "soft.jpg"}
    runner = CliRunner()
    result = runner.invoke(app, ["rank", "--db", str(shoot[1]), "--faces", "1", "--eyes-open", "--json"])
    assert result.exit_code == 0, result.output
    photos = json.loads(result.stdout)["photos"]
    assert {Path(p["path"]).name for p in photos} == {"open.jpg", "soft.jpg"}
    assert all(p["face_count"] == 1 and len(p["faces"]) == 1 for p in photos)
    bad = runner.invoke(app, ["rank", "--db", str(shoot[1]), "--faces", "two"])
    assert bad.exit_code == 2 and "--faces takes a number" in bad.output and "Traceback" not in bad.output


def test_show_lists_the_faces(shoot: tuple[Path, Path]) -> None:
    folder, db = shoot
    runner = CliRunner()
    shown = runner.invoke(app, ["show", str(folder / "closed.jpg"), "--db", str(db)])
    assert shown.exit_code == 0, shown.output
    assert "faces: 1" in shown.stdout
    line = next(line for line in shown.stdout.splitlines() if line.strip().startswith("1. box"))
    assert re.search(r"box 0\.3\d,0\.1\d-0\.5\d,0\.3\d  confidence 0\.\d\d  eyes 0\.\d+/0\.\d+ \(closed\)", line)
    assert "eyes-closed" in line
    assert "faces: none found" in runner.invoke(app, ["show", str(folder / "landscape.jpg"), "--db", str(db)]).stdout
    as_json = json.loads(runner.invoke(app, ["show", str(folder / "open.jpg"), "--db", str(db), "--json"]).stdout)
    assert set(as_json) == {"model", "weights", "photo"}  # the documented shape, faces inside the image
    assert as_json["photo"]["image"]["face_count"] == 1 and as_json["photo"]["image"]["faces"][0]["eyes"][0] > 0.1


def test_report_draws_face_boxes_and_outlines_the_preferred_frame(store: Store, shoot: tuple[Path, Path]) -> None:
    page, ranking = build_report(store, [str(shoot[0])], workers=1)
    boxes = re.findall(r'<span class="face( flagged)?" title="[^"]*" style="left:([\d.]+)%;top:([\d.]+)%', page)
    assert len(boxes) == 3 and sum(1 for flagged, _, _ in boxes if flagged) == 2
    assert all(30 < float(left) < 38 and 8 < float(top) < 18 for _, left, top in boxes)
    # The outlined frame of the burst is the one cull picks: open eyes, though it scores lowest.
    best = re.search(r'<figure class="photo best">.*?<div class="name" title="[^"]*">([^<]+)</div>', page, re.S)
    assert best and best.group(1) == "open.jpg"
    assert page.count('<span class="flag">eyes-closed</span>') == 1


def test_groups_says_why_a_better_ranked_frame_with_a_flagged_face_is_not_the_one_kept(
    shoot: tuple[Path, Path],
) -> None:
    """Field test: `groups` listed closed.jpg and soft.jpg first (best first), marked open.jpg, third, as
    the one cull keeps, and said nothing beside the two above it (JSON: ruled_out null)."""
    runner = CliRunner()
    args = ["groups", str(shoot[0]), "--db", str(shoot[1])]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    (burst,) = json.loads(result.stdout)["groups"]
    verdicts = {Path(p["path"]).name: (p["cull_keeps"], p["ruled_out"]) for p in burst["photos"]}
    assert list(verdicts) == ["closed.jpg", "soft.jpg", "open.jpg"]  # best first, by score
    assert verdicts["open.jpg"] == (True, None)
    assert verdicts["closed.jpg"] == (False, "eyes-closed: passed over")
    assert verdicts["soft.jpg"] == (False, "face-soft: passed over")
    table = runner.invoke(app, args, env={"COLUMNS": "160"}).stdout
    assert re.search(r"closed\.jpg\s+\S+\s+eyes-closed: passed over", table)


def _scores_table(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM scores ORDER BY content_hash").fetchall()


def test_a_rescan_fills_faces_without_scoring_again(
    tmp_path: Path, tiny_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_portraits(tmp_path / "shoot")
    db, weights = tmp_path / "a.db", str(tiny_checkpoints["nima"])
    store = Store(db)
    with monkeypatch.context() as without:  # as if the faces extra were not installed
        without.setattr(faces, "available", lambda: False)
        first = score([str(folder)], store=store, weights=weights, device="cpu", workers=1)
    assert first.scored == len(SHOOT) and first.faces_notice == scoring.FACES_MISSING
    assert all(r["faces"] is None and r["face_count"] is None for r in store.photos(None))
    assert store.hashes_without_faces() == {r["content_hash"] for r in store.photos(None)}
    before = _scores_table(db)

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded to fill in faces")

    monkeypatch.setattr(pipeline, "load_runner", no_model)
    again = score([str(folder)], store=store, weights=weights, device="cpu", workers=1)
    assert (again.faces_filled, again.scored, again.analysed, again.cached) == (len(SHOOT), 0, 0, 0)
    assert again.faces_notice is None and again.failed == []
    assert _scores_table(db) == before  # same rows, same scored_at: nothing was scored again
    rows = by_name(store.photos(None))
    assert rows["closed.jpg"]["face_count"] == 1 and "eyes-closed" in rows["closed.jpg"]["flags"]
    assert rows["landscape.jpg"]["faces"] == [] and store.hashes_without_faces() == set()
    third = score([str(folder)], store=store, weights=weights, device="cpu", workers=1)
    assert (third.faces_filled, third.cached) == (0, len(SHOOT))
    store.close()


def test_a_database_from_before_faces_opens_and_reads(tmp_path: Path) -> None:
    """Built at the previous schema version, as the release before faces left it."""
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    old = migrations.MIGRATIONS[: [m.name for m in migrations.MIGRATIONS].index("schema_faces")]
    for step in old:
        step.apply(sqlite_utils.Database(conn))
    conn.execute(f"PRAGMA user_version = {len(old)}")
    conn.execute(f"PRAGMA application_id = {migrations.APPLICATION_ID}")
    conn.execute(
        "INSERT INTO files (path, size, mtime_ns, content_hash, status) VALUES ('/p/a.jpg', 10, 1, 'h1', 'ok')"
    )
    conn.execute("INSERT INTO images (content_hash, width, height, sharpness, flags) VALUES ('h1', 4, 3, 2.0, '[]')")
    conn.close()
    store = Store(db)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == migrations.SCHEMA_VERSION
    (row,) = store.photos(None)
    assert row["faces"] is None and row["face_count"] is None and row["faces_looked"] is None
    assert store.hashes_without_faces() == {"h1"}
    assert store.photo_by_path("/p/a.jpg")["image"]["faces"] is None
    ranking = rank(store, by="technical", filters=Filters(faces="0"))
    assert ranking.rows == [] and any("never looked at for faces" in note for note in ranking.notes)
    # What to do names the cause only when it is one: with the extra installed, a rescan looks for them
    # (the field test's photos had been decoded by `--decode device`, and were told to install the extra).
    how = next(note for note in ranking.notes if "never looked at for faces" in note)
    assert how.endswith("run `aesthete score` on their folders again")
    assert ("install the faces extra" in how) == (not faces.available())
    assert [r["path"] for r in rank(store, by="technical").rows] == ["/p/a.jpg"]
    store.close()


def test_scores_key_is_the_test_key(store: Store) -> None:
    """The cull and rank tests above read the chosen means (photoset.KEY), not technical quality."""
    assert rank(store).key == KEY


def test_the_runtime_prints_nothing_on_stderr() -> None:
    """LiteRT's C++ announces its XNNPACK delegate once per process: in every decode worker, under
    score's progress bar. face_detection.py silences that one message; the process's stderr works afterwards."""
    code = (
        "import sys, numpy as np\n"
        "from aesthete.face_detection import detect_faces\n"
        "detect_faces(np.zeros((64, 64, 3), np.uint8))\n"
        "print('after', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "after\n"


def test_a_stored_face_reads_back_as_the_face_it_was() -> None:
    face = faces.Face((0.1, 0.2, 0.3, 0.4), 0.9, 1.0, (0.15, None), 5.0, 0.5)
    back = faces.Face.from_dict(json.loads(json.dumps(face.to_dict())))
    assert back == face and not back.eyes_open and not back.eyes_closed  # one eye unmeasured: neither
    assert faces.Face.from_dict({**face.to_dict(), "eyes": [0.15, 0.16]}).eyes_open
