"""Selection (top / keep / min-score, best of group, ties, rejects) and what cull does with files:
album export in every mode, name clashes, manifest, moving rejects, dry runs; originals never change."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from photoset import SHOOT, add_scores, frame, snapshot, write_photo, write_shoot
from typer.testing import CliRunner

from aesthete import export as export_module
from aesthete import interrupts
from aesthete.cli import app
from aesthete.culling import CullOptions, apply
from aesthete.errors import NothingToDoError, OptionError
from aesthete.export import export_album, move_rejects
from aesthete.fileops import free_bundle
from aesthete.scoring import score
from aesthete.select import Ranking, cull, rank
from aesthete.store import Store

runner = CliRunner()

# Means chosen so that the burst's best frame (a3) is not its first, and the rest interleave.
MEANS = {
    "a1.jpg": 6.0, "a2.jpg": 6.2, "a3.jpg": 7.5, "a4.jpg": 5.0, "a5.jpg": 7.0, "b1.jpg": 6.8, "b2.jpg": 4.0,
    "a_later.jpg": 5.5, "a_other_camera.jpg": 6.5, "c1.jpg": 3.0, "c2.jpg": 3.5, "c_later.jpg": 4.5,
    "d.jpg": 5.8, "e.jpg": 2.0,
}  # fmt: skip
BEST_OF_GROUPS = ["a3.jpg", "b1.jpg", "a_other_camera.jpg", "d.jpg", "a_later.jpg", "c_later.jpg", "c2.jpg", "e.jpg"]


@pytest.fixture
def shoot(tmp_path: Path) -> tuple[Path, Store]:
    folder = write_shoot(tmp_path / "shoot")
    store = Store(tmp_path / "a.db")
    score([str(folder)], store=store, model="nima", workers=1)
    add_scores(store, MEANS)
    # a3 (+1 EV) is flagged overexposed, and flagged frames are rejected by default: these tests are about
    # picks and files, so the shoot starts unflagged; the flag tests set the flags they need.
    store.conn.execute("UPDATE images SET flags = '[]'")
    return folder, store


def names(rows: list[dict]) -> list[str]:
    return [Path(row["path"]).name for row in rows]


def test_picks_respect_groups_and_limits(shoot: tuple[Path, Store]) -> None:
    folder, store = shoot
    before = snapshot(folder)
    assert names(cull(store, top=4).rows) == BEST_OF_GROUPS[:4]
    assert names(cull(store, top=4, group=False).rows) == ["a3.jpg", "a5.jpg", "b1.jpg", "a_other_camera.jpg"]
    # 25% of the 14 ranked photos is 3.5: rounded up to 4.
    assert names(cull(store, keep_percent=25).rows) == BEST_OF_GROUPS[:4]
    assert names(cull(store, min_score=5.2).rows) == BEST_OF_GROUPS[:5]
    ranking = cull(store, top=3)
    assert [row["pick"] for row in ranking.rows] == [1, 2, 3]
    assert ranking.rows[0]["group_size"] == 5 and ranking.basis == "aesthetic"
    whys = {Path(row["path"]).name: row["why"] for row in ranking.others}
    assert whys["a5.jpg"].startswith("group ") and whys["a5.jpg"].endswith("a3.jpg ranks higher")
    assert whys["d.jpg"] == "beyond the top 3"
    assert len(ranking.rows) + len(ranking.others) == len(SHOOT)
    with pytest.raises(ValueError, match="either --top or --keep"):
        cull(store, top=3, keep_percent=10)
    assert snapshot(folder) == before


def test_a_folder_with_nothing_in_the_database_is_named_in_the_notes(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    folder, store = shoot
    unscored = tmp_path / "unscored"
    unscored.mkdir()
    picked = cull(store, [str(folder), str(unscored), str(tmp_path / "shot")], top=3)  # and a typo
    assert len(picked.rows) == 3
    missing = [note for note in picked.notes if note.startswith(("no photos under", "no such"))]
    assert missing == [
        f"no photos under {unscored} in the database: run `aesthete score` on it first",
        f"no such file or folder: {tmp_path / 'shot'}",  # it said to score it (field test)
    ]
    assert not [n for n in cull(store, [str(folder)], top=3).notes if n.startswith(("no photos under", "no such"))]


def test_a_typo_inside_a_scored_folder_is_no_such_folder(shoot: tuple[Path, Store]) -> None:
    """`rank LIBRARY/typo`, LIBRARY scored, said "`aesthete score` found no photos under LIBRARY/typo",
    a folder that is not there and that no run looked in (field test)."""
    folder, store = shoot
    typo = str(folder / "tripp")
    with pytest.raises(NothingToDoError, match="^no such file or folder: "):
        cull(store, [typo], top=3)
    result = runner.invoke(app, ["rank", typo, "--db", str(store.path)])
    assert result.exit_code == 0 and f"no such file or folder: {typo}" in " ".join(result.stderr.split())


def test_a_photo_behind_a_folder_that_cannot_be_opened_is_not_called_missing(
    shoot: tuple[Path, Store],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`rank LIBRARY/locked/a.jpg` said "no such file or folder" of a file that is there, in a folder without
    permission to search it (field test). Root passes permission checks: the refusal is simulated."""
    folder, store = shoot
    locked = str(folder / "locked" / "a.jpg")
    lstat = os.lstat

    def refused(path: str, *args: object, **kwargs: object) -> os.stat_result:
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", refused)
    with pytest.raises(NothingToDoError, match="cannot be opened \\(Permission denied\\)$"):
        cull(store, [locked], top=3)


def test_a_folder_named_twice_is_reported_once(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    """`cull nope nope` said its one-line error twice, joined by '; ' (field test)."""
    folder, store = shoot
    typo = str(tmp_path / "shot")
    said = f"no such file or folder: {typo}"
    with pytest.raises(NothingToDoError) as raised:
        cull(store, [typo, typo + os.sep], top=3)
    assert str(raised.value) == said
    notes = cull(store, [str(folder), typo, typo + os.sep], top=3).notes
    assert [note for note in notes if note.startswith("no such")] == [said]
    result = runner.invoke(app, ["groups", typo, typo, "--db", str(store.path)])
    assert result.exit_code == 3 and " ".join(result.stderr.split()).count("no such file or folder") == 1


def test_ties_go_to_technical_quality_then_to_the_smaller_spread(shoot: tuple[Path, Store]) -> None:
    _, store = shoot
    add_scores(store, {"d.jpg": 9.0, "e.jpg": 9.0})
    rows = {r["path"].rsplit("/", 1)[1]: r for r in store.photos(cull(store, top=1).key)}
    better = "d.jpg" if rows["d.jpg"]["technical"] > rows["e.jpg"]["technical"] else "e.jpg"
    assert names(cull(store, top=1, group=False).rows) == [better]
    # Equal technical quality too: the surer prediction (smaller std) wins.
    store.conn.execute("UPDATE images SET technical = 0.5")
    store.conn.execute(
        "UPDATE scores SET std = CASE WHEN content_hash = ? THEN 1.0 ELSE 2.0 END", (rows["e.jpg"]["content_hash"],)
    )
    assert names(cull(store, top=1, group=False).rows) == ["e.jpg"]


def test_reject_flags_hand_the_group_to_the_next_frame(shoot: tuple[Path, Store]) -> None:
    _, store = shoot
    a3, a5 = (next(r for r in store.photos(None) if r["path"].endswith(f"/{n}")) for n in ("a3.jpg", "a5.jpg"))
    store.conn.execute("UPDATE images SET flags = '[\"blurry\"]' WHERE content_hash = ?", (a3["content_hash"],))
    assert names(cull(store, top=1, reject_blurry=False).rows) == ["a3.jpg"]  # kept only when asked
    ranking = cull(store, top=1)  # rejected by default
    assert names(ranking.rows) == ["a5.jpg"]
    assert next(r["why"] for r in ranking.others if r["path"].endswith("a3.jpg")) == "blurry"
    store.conn.execute("UPDATE images SET flags = '[\"overexposed\"]' WHERE content_hash = ?", (a3["content_hash"],))
    assert names(cull(store, top=1).rows) == ["a5.jpg"]
    assert names(cull(store, top=1, reject_exposure=False).rows) == ["a3.jpg"]
    kept = apply(store, CullOptions(top=1, keep_flagged=True))
    assert names(kept.ranking.rows) == ["a3.jpg"] and not kept.settings["reject_exposure"]
    flagged = runner.invoke(app, ["cull", "--db", str(store.path), "--top", "1", "--paths"])
    assert flagged.exit_code == 0 and flagged.stdout.split() == [a5["real_path"]]
    kept_cli = runner.invoke(app, ["cull", "--db", str(store.path), "--top", "1", "--paths", "--keep-flagged"])
    assert kept_cli.stdout.split() == [a3["real_path"]]


@pytest.mark.parametrize("mode", ["link", "symlink", "copy"])
def test_export_modes(shoot: tuple[Path, Store], tmp_path: Path, mode: str) -> None:
    folder, store = shoot
    before = snapshot(folder)
    ranking = cull(store, top=3)
    album = tmp_path / "album"
    outcome = export_album(ranking, str(album), mode=mode, settings={"top": 3})
    done = {"copy": {"copy", "clone"}}.get(mode, {mode})  # a copy is a reflink clone where the disk offers one
    assert len(outcome.placed) == 3 and {p.how for p in outcome.placed} <= done and not outcome.failed
    for placed in outcome.placed:
        target, source = Path(placed.target), Path(placed.source)
        assert target.read_bytes() == source.read_bytes()
        assert target.is_symlink() == (mode == "symlink")
        assert os.path.samefile(target, source) == (mode != "copy")
        if mode == "copy":
            assert target.stat().st_mtime_ns == source.stat().st_mtime_ns
    assert sorted(p.name for p in album.iterdir()) == sorted([*BEST_OF_GROUPS[:3], "manifest.json"])
    assert snapshot(folder) == before


@pytest.mark.parametrize("earlier", ["symlink", "link"])
def test_an_album_of_links_exported_again_as_copies_holds_copies(
    shoot: tuple[Path, Store], tmp_path: Path, earlier: str
) -> None:
    """`--mode symlink` (or link) first, then `--mode copy` into the same album: before, the links stayed,
    counted "already there", under a manifest saying "copy" (field test); an album copied elsewhere or
    edited then held links to the originals, not photos of its own. Now each is replaced by a copy."""
    folder, store = shoot
    before = snapshot(folder)
    ranking = cull(store, top=3)
    album = tmp_path / "album"
    export_album(ranking, str(album), mode=earlier)
    outcome = export_album(ranking, str(album), mode="copy")
    assert {p.how for p in outcome.placed} <= {"copy", "clone"} and not outcome.failed
    for placed in outcome.placed:
        target, source = Path(placed.target), Path(placed.source)
        assert not target.is_symlink() and not os.path.samefile(target, source)
        assert target.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in album.iterdir()) == sorted([*BEST_OF_GROUPS[:3], "manifest.json"])
    assert snapshot(folder) == before and all(p.stat().st_nlink == 1 for p in folder.glob("*.jpg"))


def test_manifest_says_what_was_picked_and_why(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    _, store = shoot
    ranking = cull(store, top=2, reject_blurry=True)
    export_album(ranking, str(tmp_path / "album"), settings={"top": 2, "reject_blurry": True})
    manifest = json.loads((tmp_path / "album" / "manifest.json").read_text())
    assert manifest["basis"] == "aesthetic" and manifest["model"]["model"] == "nima"
    assert manifest["settings"] == {"top": 2, "reject_blurry": True}
    first = manifest["picks"][0]
    assert (first["pick"], first["file"], first["group_size"]) == (1, "a3.jpg", 5)
    assert first["mean"] == pytest.approx(ranking.rows[0]["mean"]) and "std" in first and "flags" in first
    assert len(manifest["not_picked"]) == len(SHOOT) - 2
    assert all(entry["why"] for entry in manifest["not_picked"])


def test_name_clashes_never_overwrite_and_reruns_add_nothing(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    folder, store = shoot
    # A photo of the same name from another folder, and an unrelated file already in the album.
    other = folder / "more"
    other.mkdir()
    (other / "a3.jpg").write_bytes((folder / "d.jpg").read_bytes() + b"different")
    score([str(folder)], store=store, model="nima", workers=1)
    add_scores(store, {"a3.jpg": 7.5})  # both a3.jpg files (the second is a copy of d with a tail)
    album = tmp_path / "album"
    album.mkdir()
    (album / "a3.jpg").write_bytes(b"not a photo of ours")
    (album / "manifest.json").write_text("{}")
    ranking = cull(store, top=3, group=False)
    assert names(ranking.rows).count("a3.jpg") == 2
    outcome = export_album(ranking, str(album))
    targets = sorted(Path(p.target).name for p in outcome.placed)
    assert targets == sorted(["a3 (2).jpg", "a3 (3).jpg", "a5.jpg"])
    assert (album / "a3.jpg").read_bytes() == b"not a photo of ours"
    assert (album / "manifest.json").read_text() == "{}" and Path(outcome.manifest).name == "manifest (2).json"
    again = export_album(ranking, str(album))
    assert [p.how for p in again.placed] == ["present"] * 3
    # The re-export replaced its own manifest (2), left the foreign manifest.json alone, and added no third.
    assert again.manifest == outcome.manifest and (album / "manifest.json").read_text() == "{}"
    assert sorted(p.name for p in album.glob("manifest*")) == ["manifest (2).json", "manifest.json"]
    assert sorted(p.name for p in album.iterdir() if p.suffix == ".jpg") == ["a3 (2).jpg", "a3 (3).jpg", "a3.jpg",
                                                                              "a5.jpg"]  # fmt: skip


def test_capture_time_order_in_names(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    _, store = shoot
    outcome = export_album(cull(store, top=20), str(tmp_path / "album"), order_by_time=True)
    album_names = [Path(p.target).name for p in outcome.placed]
    assert "20240501-120001_a3.jpg" in album_names  # EXIF time of a3
    assert any(name.endswith("_c2.jpg") and name[:8].isdigit() for name in album_names)  # file time
    by_name = [name.split("_", 1)[1] for name in sorted(album_names)]
    times = {Path(r["path"]).name: r["capture_time"] for r in cull(store, top=20).rows if r["capture_time"]}
    exif_order = [n for n in by_name if n in times]
    assert exif_order == sorted(exif_order, key=lambda n: times[n])


def test_hard_link_falls_back_to_copy_across_file_systems(
    shoot: tuple[Path, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, store = shoot

    def cross_device(source: str, target: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(export_module.os, "link", cross_device)
    outcome = export_album(cull(store, top=2), str(tmp_path / "album"), mode="link")
    assert [p.how for p in outcome.placed] == ["copy", "copy"]
    assert len(outcome.notices) == 1 and "copied instead" in outcome.notices[0]
    assert all(not os.path.samefile(p.target, p.source) for p in outcome.placed)


def test_dry_run_creates_nothing(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    folder, store = shoot
    before = snapshot(folder)
    ranking = cull(store, top=2)
    outcome = export_album(ranking, str(tmp_path / "album"), dry_run=True)
    moved = move_rejects(ranking.others, str(tmp_path / "rejects"), dry_run=True)
    assert len(outcome.placed) == 2 and len(moved.placed) == len(SHOOT) - 2
    assert not (tmp_path / "album").exists() and not (tmp_path / "rejects").exists()
    assert snapshot(folder) == before


def test_move_rejects_keeps_bytes_mtime_and_sidecars_and_updates_the_database(
    shoot: tuple[Path, Store], tmp_path: Path
) -> None:
    folder, store = shoot
    before = set(snapshot(folder).values())
    (folder / "b2.jpg.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    rejects = tmp_path / "rejects"
    rejects.mkdir()
    (rejects / "b2.jpg").write_bytes(b"already here")
    ranking = cull(store, top=3)
    outcome = move_rejects(ranking.others, str(rejects), on_moved=store.move_file)
    assert len(outcome.placed) == len(SHOOT) - 3 and not outcome.failed
    assert sorted(p.name for p in folder.iterdir()) == sorted(BEST_OF_GROUPS[:3])
    assert (rejects / "b2.jpg").read_bytes() == b"already here"
    assert (rejects / "b2 (2).jpg.xmp").exists() and not (folder / "b2.jpg.xmp").exists()
    # Every photo still exists somewhere with its bytes and mtime, and the database knows where.
    moved = {path: state for path, state in snapshot(rejects).items() if not path.endswith("/b2.jpg")}
    assert set(snapshot(folder).values()) | set(moved.values()) == before
    known = {row["real_path"] for row in store.photos(None)}
    assert str(rejects / "b2 (2).jpg") in known and all(os.path.exists(p) for p in known)


def test_a_reject_already_in_the_rejects_folder_stays_as_it_is(shoot: tuple[Path, Store]) -> None:
    """A second `cull --move-rejects` into a folder inside the one culled (where the first put its rejects):
    the photos already there stay under their names. Before, each was "moved" onto itself as `b2 (2).jpg`,
    its sidecar too (field test)."""
    folder, store = shoot
    (folder / "b2.jpg.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    rejects = folder / "rejects"
    options = CullOptions(roots=[str(folder)], top=3, move_rejects=str(rejects))
    first = apply(store, options)
    names_after_first = sorted(p.name for p in rejects.iterdir())
    assert len(first.moved.outcome.placed) == len(SHOOT) - 3 and "b2.jpg.xmp" in names_after_first
    again = apply(store, options)
    assert sorted(p.name for p in rejects.iterdir()) == names_after_first
    assert {p.how for p in again.moved.outcome.placed} == {"present"} and not again.moved.outcome.failed
    known = {row["real_path"] for row in store.photos(None)}
    assert str(rejects / "b2.jpg") in known and all(os.path.exists(p) for p in known)
    shown = runner.invoke(app, ["cull", str(folder), "--db", str(store.path), "--top", "3", "--move-rejects",
                                str(rejects)])  # fmt: skip
    said = f"moved 0 photo(s) not picked to {rejects} ({len(SHOOT) - 3} already there)"
    assert said in " ".join(shown.stderr.split())


def test_rejects_moved_where_deleted_rejects_of_the_same_names_were(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    """The rejects folder emptied by hand, then a shoot with the same file names (cameras reuse them) culled
    into it: before, the first move hit the record left at that path ("database error ... UNIQUE constraint
    failed: files.path", exit 2), one photo moved and not recorded, the rest not moved (field test)."""
    folder, store = shoot
    rejects = tmp_path / "rejects"
    options = CullOptions(roots=[str(folder)], top=3, move_rejects=str(rejects))
    assert len(apply(store, options).moved.outcome.placed) == len(SHOOT) - 3
    shutil.rmtree(rejects)
    write_shoot(folder)  # the same names again
    score([str(folder)], store=store, model="nima", workers=1)
    again = apply(store, options)
    assert len(again.moved.outcome.placed) == len(SHOOT) - 3 and not again.moved.outcome.failed
    assert sorted(p.name for p in rejects.iterdir()) == sorted(set(SHOOT) - set(BEST_OF_GROUPS[:3]))
    known = {row["real_path"] for row in store.photos(None)}
    assert str(rejects / "b2.jpg") in known and all(os.path.exists(p) for p in known)


@pytest.fixture
def pythons_sigint() -> Iterator[None]:
    """Python's own SIGINT handler for a test that presses Ctrl-C in this process, whatever handler a CLI
    run before it left (aesthete's notes the press, and ``score --once`` ignores a second one); the press
    noted, if any, is cleared after, so that the next ``score`` in this process is not taken as interrupted."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        interrupts.clear()


def test_ctrl_c_as_a_reject_is_moved_moves_its_sidecar_with_it(
    shoot: tuple[Path, Store], tmp_path: Path, pythons_sigint: None
) -> None:
    """Ctrl-C as a photo was moved (where a real one landed every time in the field test): its sidecar still
    goes with it, then the move stops. Before, the sidecar stayed behind, and a rerun left it there for good
    (the photo was recorded at its new place, out of the folder culled)."""
    folder, store = shoot
    for name in SHOOT:
        (folder / f"{name}.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    rejects = tmp_path / "rejects"

    def ctrl_c_once_moved(old: str, new: str) -> None:
        store.move_file(old, new)
        signal.raise_signal(signal.SIGINT)  # Python's own handler: KeyboardInterrupt at the next line run

    with pytest.raises(KeyboardInterrupt):
        move_rejects(cull(store, top=3).others, str(rejects), on_moved=ctrl_c_once_moved)
    moved = sorted(p.name for p in rejects.iterdir())
    assert len(moved) == 2 and moved[1] == moved[0] + ".xmp"
    assert not (folder / moved[1]).exists()


def test_cli_cull_exports_rates_and_reports_json(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    folder, store = shoot
    before = snapshot(folder)
    db = str(store.path)
    album = tmp_path / "album"
    args = ["cull", str(folder), "--db", db, "--top", "4", "--export", str(album), "--mode", "copy", "--xmp",
            "--stars", "--label", "aesthete pick", "--json"]  # fmt: skip
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert not album.exists() and not list(folder.glob("*.xmp"))
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [Path(p["path"]).name for p in data["picks"]] == BEST_OF_GROUPS[:4]
    assert [p["group_size"] for p in data["picks"]] == [5, 2, 1, 1]
    assert {s["status"] for s in data["xmp"]["sidecars"]} == {"created"}
    # Quintiles among the 4 picks, by mid-rank: a3 3.5/4 -> 5, b1 2.5/4 -> 4, a_other_camera 1.5/4 -> 2,
    # d 0.5/4 -> 1 star (among the whole shoot a3 and b1 both had 5).
    assert [s["rating"] for s in data["xmp"]["sidecars"]] == [5, 4, 2, 1]
    assert sorted(p.name for p in folder.glob("*.xmp")) == sorted(f"{n}.xmp" for n in BEST_OF_GROUPS[:4])
    assert len(list(album.glob("*.jpg"))) == 4 and (album / "manifest.json").exists()
    assert "picked 4 of 14" in result.stderr and "behind a better frame" in result.stderr
    table = runner.invoke(app, ["cull", str(folder), "--db", db, "--keep", "20%"])
    assert table.exit_code == 0 and "3 photos picked by nima mean score" in table.stdout and "group" in table.stdout
    paths = runner.invoke(app, ["cull", str(folder), "--db", db, "--top", "2", "--paths"]).stdout.split()
    assert paths == [str(folder / n) for n in BEST_OF_GROUPS[:2]]
    bad = runner.invoke(app, ["cull", str(folder), "--db", db, "--keep", "lots"])
    assert bad.exit_code == 2 and "percentage" in bad.output
    assert snapshot(folder) == before


def test_apply_picks_and_does_every_file_action_in_one_call(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    folder, store = shoot
    before = snapshot(folder)
    album, rejects = tmp_path / "album", tmp_path / "rejects"
    options = CullOptions(
        roots=[str(folder)], top=3, export=str(album), mode="copy", xmp=True, stars=True,
        move_rejects=str(rejects), dry_run=True,
    )  # fmt: skip
    report = apply(store, options)
    assert names(report.ranking.rows) == BEST_OF_GROUPS[:3] and len(report.ranking.others) == 11
    assert report.roots == [str(folder)] and report.settings["top"] == 3 and not report.failed
    assert report.export is not None and not report.export.inside_roots
    assert [Path(p.target).name for p in report.export.outcome.placed] == BEST_OF_GROUPS[:3]
    assert report.xmp is not None and {r.status for r, _ in report.xmp.sidecars} == {"created"}
    assert [n for _, n in report.xmp.sidecars] == [5, 3, 1]  # spread over the three picks
    assert report.moved is not None and len(report.moved.outcome.placed) == 11
    assert set(report.actions()) == {"export", "xmp", "moved"}
    # A dry run: nothing was created, moved or written.
    assert snapshot(folder) == before and not album.exists() and not rejects.exists()
    assert not list(folder.glob("*.xmp"))
    # Without file actions the report has no sections, and `keep` is recorded as a percentage.
    plain = apply(store, CullOptions(keep_percent=20))
    assert plain.export is plain.xmp is plain.moved is None and plain.actions() == {}
    assert plain.settings["keep"] == "20%" and len(plain.ranking.rows) == 3


def test_folders_that_cannot_be_made_are_failures_not_tracebacks(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    folder, store = shoot
    before = snapshot(folder)
    (tmp_path / "a_file").write_bytes(b"not a folder")
    album, rejects = tmp_path / "a_file" / "album", tmp_path / "a_file" / "rejects"
    result = runner.invoke(app, ["cull", str(folder), "--db", str(store.path), "--top", "3", "--export", str(album),
                                 "--xmp", "--move-rejects", str(rejects), "--json"])  # fmt: skip
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["export"]["failed"] == [[str(album), "Not a directory"]] and data["export"]["manifest"] is None
    assert data["moved"]["failed"] == [[str(rejects), "Not a directory"]] and not data["moved"]["placed"]
    assert {s["status"] for s in data["xmp"]["sidecars"]} == {"created"}  # the other action still ran
    assert "export failed: " in result.stderr and "manifest not written" in result.stderr
    assert {p: state for p, state in snapshot(folder).items() if not p.endswith(".xmp")} == before


def test_a_manifest_that_cannot_be_written_is_a_failure(
    shoot: tuple[Path, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, store = shoot

    def disk_full(path: str, data: bytes, *, overwrite: bool) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export_module, "atomic_write", disk_full)
    outcome = export_album(cull(store, top=2), str(tmp_path / "album"))
    assert len(outcome.placed) == 2 and outcome.manifest is None
    assert outcome.failed == [(str(tmp_path / "album" / "manifest.json"), "No space left on device")]


def test_an_album_in_the_folder_of_the_picks_is_a_usage_error(shoot: tuple[Path, Store]) -> None:
    """`cull shoot --export shoot`: the picks are already there, so the "album" was the originals themselves
    ("put nothing new (3 already there)", exit 0) and its manifest.json marked the shoot as one of aesthete's
    albums, whose files are taken for copies (field test). Now one line, exit 2, nothing written."""
    folder, store = shoot
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(OptionError, match="holds picks: the album would be the originals themselves"):
        apply(store, CullOptions(roots=[str(folder)], top=3, export=str(folder)))
    result = runner.invoke(app, ["cull", str(folder), "--db", str(store.path), "--export", str(folder), "--xmp"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert sorted(p.name for p in folder.iterdir()) == before  # no manifest, no sidecar


def test_cull_options_are_checked_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="--mode must be one of copy, symlink, link"):
        CullOptions(mode="move")
    with pytest.raises(OptionError, match="only apply with --xmp"):
        CullOptions(stars=True)
    with pytest.raises(OptionError, match="only apply with --xmp"):
        CullOptions(label="pick")
    with pytest.raises(NothingToDoError, match="nothing scored yet"):
        apply(Store(tmp_path / "empty.db"), CullOptions())


def test_one_folder_for_the_album_and_the_rejects_is_a_usage_error(tmp_path: Path) -> None:
    """`--export X --move-rejects X` put the rejects, originals, in the album beside the picks' copies, under
    a manifest that lists only the picks (field test)."""
    for album, rejects in (("out", "out"), ("out", "./out/")):
        with pytest.raises(OptionError, match="--export and --move-rejects name one folder"):
            CullOptions(export=str(tmp_path / album), move_rejects=str(tmp_path / rejects))


@pytest.mark.parametrize("option", ["export", "move_rejects"])
def test_an_empty_folder_name_is_a_usage_error(
    shoot: tuple[Path, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    """`--move-rejects "$REJECTS"` with the variable unset moved the rejects into the working folder, and
    `--export ""` put the album there (field test): an empty name is no folder."""
    folder, store = shoot
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # where they went
    flag = "--" + option.replace("_", "-")
    with pytest.raises(OptionError, match=f"{flag} needs a folder, not an empty name"):
        CullOptions(**{option: ""})
    result = runner.invoke(app, ["cull", str(folder), "--db", str(store.path), "--top", "3", flag, ""])
    assert result.exit_code == 2 and f"{flag} needs a folder, not an empty name" in result.output
    assert sorted(p.name for p in folder.iterdir()) == sorted(SHOOT) and not any((tmp_path / "cwd").iterdir())


@pytest.mark.parametrize("label", ["", "  ", "\t"])
def test_an_empty_label_is_a_usage_error(shoot: tuple[Path, Store], label: str) -> None:
    """`cull --xmp --label "$LABEL"` with the variable unset wrote an empty xmp:Label into every pick's sidecar
    (and digiKam's "no colour" where it had a colour label) (field test): a label with no text is refused,
    as an empty --export is, before anything is done."""
    folder, store = shoot
    with pytest.raises(OptionError, match="^--label needs some text, not an empty label$"):
        CullOptions(xmp=True, label=label)
    result = runner.invoke(app, ["cull", str(folder), "--db", str(store.path), "--top", "3", "--xmp", "--label", label])
    assert result.exit_code == 2 and result.stderr == "error: --label needs some text, not an empty label\n"
    assert result.stdout == "" and not list(folder.glob("*.xmp"))


def test_a_hard_linked_album_inside_the_library_hides_no_original(tmp_path: Path) -> None:
    """`cull --export 00-picks --mode link` inside the library, then a scan of the library into a new
    database: the walk met the album's names first and skipped the originals as the same files, so
    `cull` of the shoot's own folder no longer saw its best photos (field test). A hard link is another
    name of the photo: both are recorded, and the album's is the copy."""
    library = tmp_path / "Photos"
    folder = write_shoot(library / "shoot")
    first = Store(tmp_path / "first.db")
    score([str(library)], store=first, model="nima", workers=1)
    add_scores(first, MEANS)
    album = library / "00-picks"  # walked before 'shoot'
    assert runner.invoke(app, ["cull", str(folder), "--db", str(first.path), "--top", "3", "--keep-flagged",
                               "--export", str(album), "--mode", "link"]).exit_code == 0  # fmt: skip
    assert sorted(p.name for p in album.glob("*.jpg")) == sorted(BEST_OF_GROUPS[:3])
    store = Store(tmp_path / "fresh.db")
    assert score([str(library)], store=store, model="nima", workers=1).found == len(SHOOT) + 3
    add_scores(store, MEANS)
    assert names(cull(store, [str(folder)], top=3, reject_exposure=False).rows) == BEST_OF_GROUPS[:3]
    whole = cull(store, [str(library)], top=3, reject_exposure=False)
    assert [Path(row["path"]).parent for row in whole.rows] == [folder] * 3  # the originals, not the album's
    assert {Path(row["path"]).parent for row in whole.others if row["why"].startswith("identical to")} == {album}


def test_an_album_name_too_long_with_its_time_prefix_is_shortened(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    """`--export --order-by-time` of a photo named near the 255-byte limit: the prefixed name was too long,
    and the pick was left out of the album ('File name too long', field test). Its stem is shortened."""
    folder, store = shoot
    long = folder / ("é" * 123 + ".jpg")  # 250 bytes
    (folder / "d.jpg").rename(long)
    score([str(folder)], store=store, model="nima", workers=1)
    ranking = cull(store, [str(folder)], top=8)
    assert str(long) in [row["path"] for row in ranking.rows]
    for _ in range(2):  # the second export finds it there
        outcome = export_album(ranking, str(tmp_path / "album"), order_by_time=True)
        assert outcome.failed == []
    [target] = [p.target for p in outcome.placed if p.source == str(long)]
    name = os.path.basename(target)
    assert name.startswith("20240501-140000_éé") and name.endswith("é.jpg") and len(os.fsencode(name)) <= 255
    [(clash, _)] = free_bundle(str(tmp_path / "album"), [name], taken={target})  # another photo of that name
    assert clash.endswith("é (2).jpg") and len(os.fsencode(os.path.basename(clash))) <= 255


def test_cli_groups_lists_the_bursts(shoot: tuple[Path, Store]) -> None:
    folder, store = shoot
    result = runner.invoke(app, ["groups", str(folder), "--db", str(store.path), "--json"])
    assert result.exit_code == 0, result.output
    groups = json.loads(result.stdout)["groups"]
    # Each group best frame first (groups are listed in time order; c's file times depend on the time zone).
    assert sorted([Path(p["path"]).name for p in g["photos"]] for g in groups) == [
        ["a3.jpg", "a5.jpg", "a2.jpg", "a1.jpg", "a4.jpg"], ["b1.jpg", "b2.jpg"], ["c2.jpg", "c1.jpg"],
    ]  # fmt: skip
    table = runner.invoke(app, ["groups", str(folder), "--db", str(store.path)])
    assert "3 groups" in table.stdout and "a3.jpg" in table.stdout


def test_cli_groups_names_a_folder_with_nothing_in_the_database(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    """`groups PHOTOS TYPO` listed PHOTOS' groups and said nothing of TYPO, where rank, cull and report
    note it (field test)."""
    folder, store = shoot
    typo = tmp_path / "shot"
    for extra in ([], ["--json"]):
        result = runner.invoke(app, ["groups", str(folder), str(typo), "--db", str(store.path), *extra])
        assert result.exit_code == 0, result.output
        said = " ".join(result.stderr.split())  # the note wraps at the terminal's width
        assert f"note: no such file or folder: {typo}" in said


def test_cull_report_and_groups_never_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys; import aesthete.cli.cull, aesthete.report, aesthete.export, aesthete.xmp, aesthete.groups;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_default_album_entry_is_its_own_file(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    """An editor saving into an album file in place must not change the original: no shared inode."""
    folder, store = shoot
    outcome = export_album(cull(store, top=2), str(tmp_path / "album"))
    assert len(outcome.placed) == 2 and {p.how for p in outcome.placed} <= {"copy", "clone"}
    for placed in outcome.placed:
        assert not os.path.samefile(placed.target, placed.source)
        assert Path(placed.target).read_bytes() == Path(placed.source).read_bytes()
        with open(placed.target, "r+b") as album_file:  # an in-place save
            album_file.write(b"edited")
        assert not Path(placed.source).read_bytes().startswith(b"edited")
    assert CullOptions().mode == "copy"


def test_a_copy_is_a_reflink_clone_where_the_file_system_offers_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FICLONE is asked for first; where it is refused (ext4, tmpfs, another file system) a copy follows."""
    import fcntl

    from aesthete import fileops

    source = tmp_path / "a.jpg"
    source.write_bytes(b"photo bytes")
    os.utime(source, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    calls = []

    def cloning(fd: int, request: int, arg: int) -> int:  # does what the kernel's clone does to the data
        calls.append(request)
        os.write(fd, os.pread(arg, 1 << 20, 0))
        return 0

    monkeypatch.setattr(fileops.sys, "platform", "linux")
    monkeypatch.setattr(fcntl, "ioctl", cloning)
    assert fileops.clone_or_copy(str(source), str(tmp_path / "b.jpg")) == "clone" and calls == [fileops.FICLONE]
    assert (tmp_path / "b.jpg").read_bytes() == b"photo bytes"
    assert (tmp_path / "b.jpg").stat().st_mtime_ns == source.stat().st_mtime_ns

    def refused(fd: int, request: int, arg: int) -> int:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(fcntl, "ioctl", refused)
    assert fileops.clone_or_copy(str(source), str(tmp_path / "c.jpg")) == "copy"
    assert (tmp_path / "c.jpg").read_bytes() == b"photo bytes"
    with pytest.raises(FileExistsError):  # never replaces
        fileops.clone_or_copy(str(source), str(tmp_path / "c.jpg"))


def test_a_second_cull_clears_what_the_first_rated_only_when_asked(shoot: tuple[Path, Store]) -> None:
    """aesthete records what it rated; a later cull warns about earlier picks it no longer picks, and with
    --clear-previous removes their rating and label, except where the photographer changed the rating."""
    from aesthete.ratings import parse_xmp, written_by_path

    folder, store = shoot
    db = str(store.path)
    first = runner.invoke(app, ["cull", str(folder), "--db", db, "--top", "3", "--xmp", "--label", "aesthete pick"])
    assert first.exit_code == 0, first.output
    a3, b1, other = (folder / f"{n}.xmp" for n in BEST_OF_GROUPS[:3])
    assert all(parse_xmp(s.read_bytes()) == (1, "aesthete pick") for s in (a3, b1, other))
    assert {Path(p).name for p in written_by_path(store)} == set(BEST_OF_GROUPS[:3])
    b1.write_text(b1.read_text().replace('xmp:Rating="1"', 'xmp:Rating="3"'))  # the photographer re-rated b1
    b1_before, other_before = b1.read_bytes(), other.read_bytes()

    warned = runner.invoke(app, ["cull", str(folder), "--db", db, "--top", "1", "--xmp", "--label", "aesthete pick"])
    assert warned.exit_code == 0, warned.output
    assert "1 photo rated by an earlier cull and no longer picked" in warned.stderr
    assert (b1.read_bytes(), other.read_bytes()) == (b1_before, other_before)

    args = ["cull", str(folder), "--db", db, "--top", "1", "--xmp", "--label", "aesthete pick", "--clear-previous"]
    cleared = runner.invoke(app, [*args, "--json"])
    assert cleared.exit_code == 0, cleared.output
    assert "cleared the earlier rating of 1 photo no longer picked" in cleared.stderr
    assert [Path(r["photo"]).name for r in json.loads(cleared.stdout)["xmp"]["cleared"]] == ["a_other_camera.jpg"]
    assert parse_xmp(other.read_bytes()) == (None, None) and other.exists()  # the sidecar stays, without them
    assert b1.read_bytes() == b1_before  # changed by hand: never touched
    assert parse_xmp(a3.read_bytes()) == (1, "aesthete pick")
    assert {Path(p).name for p in written_by_path(store)} == {"a3.jpg", "b1.jpg"}
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "cleared" not in again.stderr and "warning" not in again.stderr


def test_ctrl_c_while_rating_still_records_the_sidecars_already_written(
    shoot: tuple[Path, Store], monkeypatch: pytest.MonkeyPatch, pythons_sigint: None
) -> None:
    """Ctrl-C as the first pick's sidecar was put in place (where a real one landed in the field test): that
    rating is recorded as aesthete's. Before, nothing was (5 sidecars of 73): the next cull kept them as "the
    rating you gave", and --clear-previous never cleared them."""
    from aesthete import culling
    from aesthete.ratings import written_by_path

    folder, store = shoot
    write = culling.write_sidecars

    def ctrl_c_once_written(*args, **kwargs):
        results = write(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)  # Python's own handler: KeyboardInterrupt at the next line run
        return results

    monkeypatch.setattr(culling, "write_sidecars", ctrl_c_once_written)
    with pytest.raises(KeyboardInterrupt):
        apply(store, CullOptions(roots=[str(folder)], top=3, xmp=True))
    assert [p.name for p in folder.glob("*.xmp")] == [f"{BEST_OF_GROUPS[0]}.xmp"]
    assert {Path(p).name for p in written_by_path(store)} == {BEST_OF_GROUPS[0]}
    monkeypatch.setattr(culling, "write_sidecars", write)
    again = apply(store, CullOptions(roots=[str(folder)], top=1, xmp=True, clear_previous=True))
    assert [r.status for r, _ in again.xmp.sidecars] == ["unchanged"]  # not "kept" as the photographer's


def test_a_score_bound_that_is_not_a_number_is_a_usage_error(shoot: tuple[Path, Store]) -> None:
    """`cull --min-score nan` picked every photo and `rank --min-score nan` (or --max-score) listed every one,
    exit 0: no score compares with NaN, so the bound was silently dropped (field test)."""
    folder, store = shoot
    for command, option in (("cull", "--min-score"), ("rank", "--min-score"), ("rank", "--max-score")):
        result = runner.invoke(app, [command, str(folder), "--db", str(store.path), option, "nan"])
        assert result.exit_code == 2, (command, option, result.output)
        assert f"{option} takes a number, not nan" in result.output and "Traceback" not in result.output


def test_clear_previous_and_overwrite_need_xmp() -> None:
    for flag in ("clear_previous", "overwrite_ratings"):
        with pytest.raises(OptionError, match="--clear-previous and --overwrite-ratings only apply with --xmp"):
            CullOptions(**{flag: True})


HAND_RATED = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmp:Rating="{rating}"><dc:subject><rdf:Bag><rdf:li>wedding</rdf:li></rdf:Bag></dc:subject>'
    "</rdf:Description></rdf:RDF></x:xmpmeta>"
)


def test_a_pick_renamed_with_its_sidecar_is_still_known_as_rated_by_aesthete(shoot: tuple[Path, Store]) -> None:
    """A pick renamed in place with its sidecar (as photo managers rename) and no longer picked: the next
    `cull --xmp` said nothing of the rating aesthete had written, and --clear-previous left it (field test)."""
    from aesthete.ratings import parse_xmp, written_by_path

    folder, store = shoot
    args = ["cull", str(folder), "--db", str(store.path), "--xmp"]
    assert runner.invoke(app, [*args, "--top", "3"]).exit_code == 0
    (folder / "b1.jpg").rename(folder / "renamed.jpg")
    (folder / "b1.jpg.xmp").rename(folder / "renamed.jpg.xmp")
    assert score([str(folder)], store=store, model="nima", workers=1).cached == len(SHOOT)
    warned = runner.invoke(app, [*args, "--top", "1"])
    assert "2 photos rated by an earlier cull and no longer picked" in " ".join(warned.stderr.split())
    cleared = runner.invoke(app, [*args, "--top", "1", "--clear-previous"])
    assert "cleared the earlier rating of 2 photos no longer picked" in " ".join(cleared.stderr.split())
    assert parse_xmp((folder / "renamed.jpg.xmp").read_bytes()) == (None, None)
    assert {Path(p).name for p in written_by_path(store)} == {"a3.jpg"}


def test_cull_json_gives_the_rating_a_kept_sidecar_holds_and_who_gave_it(shoot: tuple[Path, Store]) -> None:
    """`cull --xmp --stars --json` with a pick the photographer had rated 3: its sidecar was kept, yet the JSON
    said `rating: 5`, what aesthete would have written (field test). Each sidecar now says the rating it holds
    after the cull and whether aesthete wrote it or kept the photographer's (a label alone: no rating)."""
    folder, store = shoot
    a3, b1 = (folder / f"{n}.xmp" for n in BEST_OF_GROUPS[:2])
    a3.write_text(HAND_RATED.format(rating=3), "utf-8")
    b1.write_text(HAND_RATED.format(rating=0).replace('xmp:Rating="0"', 'xmp:Label="Red"'), "utf-8")
    args = ["cull", str(folder), "--db", str(store.path), "--top", "3", "--xmp", "--stars", "--label", "pick",
            "--json"]  # fmt: skip
    for extra in (["--dry-run"], []):
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output
        said = {Path(s["photo"]).name: (s["status"], s["rating"], s["rated_by"])
                for s in json.loads(result.stdout)["xmp"]["sidecars"]}  # fmt: skip
        assert said == {
            "a3.jpg": ("kept", 3, "photographer"),  # aesthete's stars would have been 5
            "b1.jpg": ("kept", None, "photographer"),  # kept for the photographer's label; it holds no rating
            "a_other_camera.jpg": ("created", 1, "aesthete"),
        }, extra
    assert "xmp:Rating" not in b1.read_text("utf-8") and 'xmp:Rating="3"' in a3.read_text("utf-8")


def test_a_colour_label_given_in_digikam_is_kept_and_said_to_be(shoot: tuple[Path, Store]) -> None:
    """A pick labelled orange in digiKam (digiKam:ColorLabel 2, no xmp:Label) was labelled over by
    `cull --xmp --label`, and a kept label was reported as 'the rating you gave' (field test)."""
    folder, store = shoot
    sidecar = folder / f"{BEST_OF_GROUPS[0]}.xmp"
    sidecar.write_text(HAND_RATED.format(rating=0).replace(
        'xmp:Rating="0"', 'xmp:Rating="0" xmlns:digiKam="http://www.digikam.org/ns/1.0/" digiKam:ColorLabel="2"'
    ), "utf-8")  # fmt: skip
    before = sidecar.read_bytes()
    args = ["cull", str(folder), "--db", str(store.path), "--top", "1", "--xmp", "--label", "aesthete pick"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sidecar.read_bytes() == before
    said = " ".join(result.stderr.split())
    assert "xmp: kept the rating or label you gave 1 pick (--overwrite-ratings replaces it)" in said


def test_a_rating_the_photographer_set_is_kept_and_clearing_puts_back_what_was_there(
    shoot: tuple[Path, Store],
) -> None:
    """The field test's loss: hand ratings of 3 became 1 or vanished after `cull --xmp --stars` then
    `--clear-previous`. A pick the photographer rated keeps its rating and is not recorded as aesthete's;
    with --overwrite-ratings it is replaced, and clearing it later puts the 3 back, not nothing."""
    from aesthete.ratings import parse_xmp, written_by_path

    folder, store = shoot
    db = str(store.path)
    a3, b1, other = (folder / f"{n}.xmp" for n in BEST_OF_GROUPS[:3])
    for sidecar in (a3, b1):
        sidecar.write_text(HAND_RATED.format(rating=3), "utf-8")
    b1_hand = b1.read_bytes()
    rated = runner.invoke(app, ["cull", str(folder), "--db", db, "--top", "3", "--xmp", "--stars", "--json"])
    assert rated.exit_code == 0, rated.output
    statuses = {Path(r["photo"]).name: r["status"] for r in json.loads(rated.stdout)["xmp"]["sidecars"]}
    assert statuses == {"a3.jpg": "kept", "b1.jpg": "kept", "a_other_camera.jpg": "created"}
    assert "kept the rating you gave 2 picks (--overwrite-ratings replaces it)" in " ".join(rated.stderr.split())
    assert parse_xmp(a3.read_bytes()) == (3, None) and b1.read_bytes() == b1_hand
    assert {Path(p).name for p in written_by_path(store)} == {"a_other_camera.jpg"}  # only what aesthete wrote

    # Overwritten on request, then no longer picked: clearing restores the hand rating, keeps the keywords.
    args = ["cull", str(folder), "--db", db, "--xmp", "--overwrite-ratings"]
    assert runner.invoke(app, [*args, "--top", "3"]).exit_code == 0
    assert parse_xmp(b1.read_bytes()) == (1, None)
    cleared = runner.invoke(app, [*args, "--top", "1", "--clear-previous"])
    assert cleared.exit_code == 0, cleared.output
    said = " ".join(cleared.stderr.split())  # the line wraps at the terminal's width
    assert "cleared the earlier rating of 2 photos no longer picked (1 back to the rating they had before)" in said
    assert parse_xmp(b1.read_bytes()) == (3, None) and "wedding" in b1.read_text("utf-8")
    assert parse_xmp(other.read_bytes()) == (None, None)  # aesthete made that rating: removed
    assert parse_xmp(a3.read_bytes()) == (1, None)  # still picked, still aesthete's
    assert {Path(p).name for p in written_by_path(store)} == {"a3.jpg"}


DIGIKAM_ORANGE = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    'xmlns:digiKam="http://www.digikam.org/ns/1.0/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
    'xmp:Rating="3"><digiKam:ColorLabel>2</digiKam:ColorLabel><photoshop:Urgency>2</photoshop:Urgency>'
    "</rdf:Description></rdf:RDF></x:xmpmeta>"
)


def test_overwriting_a_digikam_colour_label_shows_the_new_one_in_digikam_and_clearing_restores_it(
    shoot: tuple[Path, Store],
) -> None:
    """`cull --xmp --overwrite-ratings --label Red` on a photo labelled orange in digiKam left digiKam's own
    colour label, which digiKam reads before xmp:Label: it still showed orange (field test)."""
    from aesthete.xmp import COLOUR_LABELS, LABEL, RATING, property_values

    folder, store = shoot
    db = str(store.path)
    sidecar = folder / "b1.jpg.xmp"
    sidecar.write_text(DIGIKAM_ORANGE, "utf-8")

    def marks() -> list[list[str]]:
        root = ET.parse(sidecar).getroot()
        return [property_values(root, name) for name in (RATING, LABEL, *COLOUR_LABELS)]

    args = ["cull", str(folder), "--db", db, "--xmp", "--overwrite-ratings", "--label", "Red"]
    assert runner.invoke(app, [*args, "--top", "3"]).exit_code == 0
    assert marks() == [["1"], ["Red"], ["1"], ["1"]]  # digiKam's red
    cleared = runner.invoke(app, [*args, "--top", "1", "--clear-previous"])
    assert cleared.exit_code == 0, cleared.output
    assert marks() == [["3"], [], ["2"], ["2"]]  # the photographer's orange and 3 stars, no xmp:Label

    # Recorded by an aesthete that kept (rating, label) alone: the colour it held is not known, so it stays.
    assert runner.invoke(app, [*args, "--top", "3"]).exit_code == 0
    with store.transaction():
        old = "UPDATE written_ratings SET previous = json_object(?, json_array('3', NULL))"
        store.conn.execute(old, [str(sidecar)])
    assert runner.invoke(app, [*args, "--top", "1", "--clear-previous"]).exit_code == 0
    assert marks() == [["3"], [], ["1"], ["1"]]


def test_a_rating_recorded_before_previous_values_were_kept_is_cleared_as_before(shoot: tuple[Path, Store]) -> None:
    from aesthete.ratings import parse_xmp

    folder, store = shoot
    db = str(store.path)
    assert runner.invoke(app, ["cull", str(folder), "--db", db, "--top", "2", "--xmp"]).exit_code == 0
    with store.transaction():
        store.conn.execute("UPDATE written_ratings SET previous = NULL")  # as an older aesthete recorded it
    args = ["cull", str(folder), "--db", db, "--top", "1", "--xmp", "--clear-previous"]
    assert runner.invoke(app, args).exit_code == 0
    assert parse_xmp((folder / "b1.jpg.xmp").read_bytes()) == (None, None)


def test_a_sidecar_that_is_a_link_is_written_through_it(tmp_path: Path) -> None:
    from aesthete.xmp import write_sidecar

    photo, shared = tmp_path / "a.jpg", tmp_path / "shared.xmp"
    photo.write_bytes(b"photo")
    shared.write_text(HAND_RATED.format(rating=0), "utf-8")
    (tmp_path / "a.jpg.xmp").symlink_to(shared)
    result = write_sidecar(str(photo), rating=2)
    assert result.status == "updated" and result.before == ("0", None, None, None)
    assert (tmp_path / "a.jpg.xmp").is_symlink() and 'xmp:Rating="2"' in shared.read_text("utf-8")


def test_stars_spread_over_the_picks_not_the_shoot(shoot: tuple[Path, Store]) -> None:
    """A small top of a big shoot: the picks are all in the shoot's top fifth, yet get 1 to 5 stars."""
    folder, store = shoot
    report = apply(store, CullOptions(roots=[str(folder)], top=5, group=False, xmp=True, stars=True, dry_run=True))
    assert report.xmp is not None
    ratings = [n for _, n in report.xmp.sidecars]
    assert ratings == sorted(ratings, reverse=True) and ratings[0] == 5 and ratings[-1] == 1


def test_re_exporting_into_an_album_replaces_its_manifest_and_says_so_in_words(
    shoot: tuple[Path, Store], tmp_path: Path
) -> None:
    folder, store = shoot
    album, db = tmp_path / "album", str(store.path)
    first = runner.invoke(app, ["cull", str(folder), "--db", db, "--top", "3", "--export", str(album)])
    assert first.exit_code == 0, first.output
    assert "export: put 3 copies in" in first.stderr or "put 3 copy-on-write copies" in first.stderr
    second = runner.invoke(app, ["cull", str(folder), "--db", db, "--top", "4", "--export", str(album)])
    assert second.exit_code == 0, second.output
    assert "put 1 copy (3 already there)" in second.stderr or "put 1 copy-on-write copy (3" in second.stderr
    assert [p.name for p in album.glob("manifest*")] == ["manifest.json"]  # no "manifest (2).json"
    manifest = json.loads((album / "manifest.json").read_text())
    assert [entry["file"] for entry in manifest["picks"]] == BEST_OF_GROUPS[:4]  # the second export's picks
    third = runner.invoke(app, ["cull", str(folder), "--db", db, "--top", "1", "--export", str(album), "--mode",
                                "link"])  # fmt: skip
    assert "put nothing new (1 already there)" in third.stderr
    # The three earlier picks no longer picked were left in the album (field test): they go now.
    assert "removed 3 earlier picks no longer picked" in " ".join(third.stderr.split())
    assert sorted(p.name for p in album.iterdir()) == [BEST_OF_GROUPS[0], "manifest.json"]


def said(result) -> str:  # noqa: ANN001 (click's Result)
    """stderr with its lines joined, as the terminal's width wrapped them."""
    return " ".join(result.stderr.split())


@pytest.mark.parametrize("mode", ["copy", "symlink", "link"])
def test_re_exporting_fewer_picks_removes_the_earlier_picks_aesthete_placed(
    shoot: tuple[Path, Store], tmp_path: Path, mode: str
) -> None:
    """`cull --top 5 --export Best` then `cull --top 2 --export Best` left 5 photos in Best under a manifest
    listing 2 (field test). The album holds this cull's picks now; the originals stay as they were."""
    folder, store = shoot
    before = snapshot(folder)
    album = tmp_path / "Best"
    args = ["cull", str(folder), "--db", str(store.path), "--export", str(album), "--mode", mode]
    assert runner.invoke(app, [*args, "--top", "5"]).exit_code == 0
    assert sorted(p.name for p in album.glob("*.jpg")) == sorted(BEST_OF_GROUPS[:5])
    dry = runner.invoke(app, [*args, "--top", "2", "--json", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "export: would remove 3 earlier picks no longer picked" in said(dry)
    assert len(json.loads(dry.stdout)["export"]["removed"]) == 3
    assert sorted(p.name for p in album.glob("*.jpg")) == sorted(BEST_OF_GROUPS[:5])  # a dry run removes nothing
    result = runner.invoke(app, [*args, "--top", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in album.iterdir()) == sorted([*BEST_OF_GROUPS[:2], "manifest.json"])
    assert "export: removed 3 earlier picks no longer picked" in said(result)
    assert "did not place" not in said(result)
    export = json.loads(result.stdout)["export"]
    assert export["removed"] == [
        {"source": str(folder / name), "target": str(album / name), "still_picked": False}
        for name in BEST_OF_GROUPS[2:5]
    ]
    assert export["left_alone"] == []
    assert [p["file"] for p in json.loads((album / "manifest.json").read_text())["picks"]] == BEST_OF_GROUPS[:2]
    assert snapshot(folder) == before and all((folder / name).stat().st_nlink == 1 for name in BEST_OF_GROUPS[2:5])


def _edit_copy(entry: Path, folder: Path) -> None:
    with open(entry, "ab") as stream:  # an editor saving into the album's copy
        stream.write(b"edited")


def _repoint_symlink(entry: Path, folder: Path) -> None:
    entry.unlink()
    entry.symlink_to(folder / "e.jpg")


def _replace_hard_link(entry: Path, folder: Path) -> None:
    entry.unlink()  # (an edit in place would change the original too: the photographer saved a new file)
    entry.write_bytes((folder / "e.jpg").read_bytes())


@pytest.mark.parametrize(("mode", "change"), [("copy", _edit_copy), ("symlink", _repoint_symlink),
                                              ("link", _replace_hard_link)])  # fmt: skip
def test_a_re_export_leaves_what_changed_since_and_what_aesthete_did_not_place(
    shoot: tuple[Path, Store], tmp_path: Path, mode: str, change: Callable[[Path, Path], None]
) -> None:
    """Only an album file the previous manifest lists, still exactly what aesthete put there, is removed: an
    entry changed since, a photo copied in by hand (even one identical to a photo), an editor's sidecar
    and a note of the photographer's stay, and are counted in a note."""
    folder, store = shoot
    before = snapshot(folder)
    album = tmp_path / "Best"
    args = ["cull", str(folder), "--db", str(store.path), "--export", str(album), "--mode", mode]
    assert runner.invoke(app, [*args, "--top", "5"]).exit_code == 0
    change(album / "d.jpg", folder)
    (album / "a_later.jpg.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    (album / "notes.txt").write_text("print these")
    shutil.copy2(folder / "e.jpg", album / "e.jpg")
    kept = {p.name: (p.is_symlink(), p.read_bytes()) for p in album.iterdir() if p.suffix != ".json"}
    kept = {name: state for name, state in kept.items() if name in ("d.jpg", "a_later.jpg.xmp", "notes.txt", "e.jpg")}
    result = runner.invoke(app, [*args, "--top", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert "export: removed 2 earlier picks no longer picked" in said(result)
    assert "note: kept 4 files aesthete did not place or that changed since" in said(result)
    export = json.loads(result.stdout)["export"]
    assert [Path(r["target"]).name for r in export["removed"]] == ["a_other_camera.jpg", "a_later.jpg"]
    assert sorted(export["left_alone"]) == sorted(str(album / name) for name in kept)
    assert sorted(p.name for p in album.iterdir()) == sorted([*BEST_OF_GROUPS[:2], "manifest.json", *kept])
    assert {name: ((album / name).is_symlink(), (album / name).read_bytes()) for name in kept} == kept
    assert snapshot(folder) == before


def test_a_re_export_removes_the_earlier_names_of_picks_and_frees_them_for_new_picks(
    shoot: tuple[Path, Store], tmp_path: Path
) -> None:
    """Picks exported again under new names (`--order-by-time`): their files under the earlier names go; and
    a new pick named as an earlier one no longer picked takes its name, not `a3 (2).jpg`."""
    folder, store = shoot
    album = tmp_path / "Best"
    args = ["cull", str(folder), "--db", str(store.path), "--export", str(album), "--top", "3"]
    assert runner.invoke(app, args).exit_code == 0
    timed = runner.invoke(app, [*args, "--order-by-time"])
    assert timed.exit_code == 0, timed.output
    assert "export: removed the earlier album names of 3 picks" in said(timed)
    assert sorted(p.name.split("_", 1)[1] for p in album.glob("*.jpg")) == sorted(BEST_OF_GROUPS[:3])
    assert len(list(album.iterdir())) == 4

    other = tmp_path / "other"
    other.mkdir()
    (other / "a3.jpg").write_bytes((folder / "d.jpg").read_bytes() + b"another photo")
    score([str(other)], store=store, model="nima", workers=1)
    timed_files = [str(album / pick["file"]) for pick in json.loads((album / "manifest.json").read_text())["picks"]]
    first = apply(store, CullOptions(roots=[str(folder)], top=1, export=str(album)))  # the shoot's a3.jpg
    assert [(r.target, r.still_picked) for r in first.export.outcome.removed] == [
        (timed_files[0], True), (timed_files[1], False), (timed_files[2], False)
    ]  # fmt: skip
    dry = apply(store, CullOptions(roots=[str(other)], top=1, export=str(album), dry_run=True))
    second = apply(store, CullOptions(roots=[str(other)], top=1, export=str(album)))
    for report in (dry, second):  # the dry run names what the export does
        assert [(Path(p.target).name, p.how != "present") for p in report.export.outcome.placed] == [("a3.jpg", True)]
        assert [(r.source, r.target) for r in report.export.outcome.removed] == [
            (str(folder / "a3.jpg"), str(album / "a3.jpg"))
        ]
    assert (album / "a3.jpg").read_bytes() == (other / "a3.jpg").read_bytes()
    assert sorted(p.name for p in album.iterdir()) == ["a3.jpg", "manifest.json"]


def test_an_earlier_pick_that_cannot_be_removed_is_a_failure(
    shoot: tuple[Path, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, store = shoot
    album = tmp_path / "Best"
    export_album(cull(store, [str(folder)], top=3), str(album))
    unlink = os.unlink

    def refused(path: str, *args: object, **kwargs: object) -> None:
        if path == str(album / "b1.jpg"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refused)
    outcome = export_album(cull(store, [str(folder)], top=1), str(album))
    assert outcome.failed == [(str(album / "b1.jpg"), "Permission denied")]
    assert [Path(r.target).name for r in outcome.removed] == ["a_other_camera.jpg"]
    assert sorted(p.name for p in album.iterdir()) == ["a3.jpg", "b1.jpg", "manifest.json"]
    assert outcome.left_alone == []  # said as a failure, not also as a file aesthete did not place


def test_album_copies_a_re_export_removed_are_not_moved_as_rejects(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    """An album inside the scored folder holds copies of photos, moved with them when they are not picked; a
    re-export with fewer picks removes the earlier picks' copies first, so the move must not look for them."""
    folder, store = shoot
    album, rejects = folder / "Best", tmp_path / "rejects"
    assert not apply(store, CullOptions(roots=[str(folder)], top=5, export=str(album))).failed
    score([str(folder)], store=store, model="nima", workers=1)  # the album's copies are recorded too
    options = CullOptions(roots=[str(folder)], top=2, export=str(album), move_rejects=str(rejects))
    dry = apply(store, replace(options, dry_run=True))
    report = apply(store, options)
    for done in (dry, report):
        assert not done.failed and len(done.export.outcome.removed) == 3
        assert not {r.target for r in done.export.outcome.removed} & {p.source for p in done.moved.outcome.placed}
    assert sorted(p.name for p in album.iterdir()) == sorted([*BEST_OF_GROUPS[:2], "manifest.json"])
    assert sorted(p.name for p in rejects.iterdir()) == sorted(set(SHOOT) - set(BEST_OF_GROUPS[:2]))


def test_a_manifest_never_leads_a_re_export_to_remove_an_original(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    """The previous manifest is a file anyone can edit: a pick whose file is a name outside the album, or
    whose source is the album file itself, is no file aesthete placed."""
    folder, store = shoot
    before = snapshot(folder)
    album = tmp_path / "Best"
    assert not export_album(cull(store, [str(folder)], top=3), str(album)).failed
    shutil.copy2(folder / "e.jpg", album / "mine.jpg")  # the photographer's photo, its only copy in the album
    shutil.copy2(folder / "e.jpg", tmp_path / "backup.jpg")  # byte-identical to the shoot's e.jpg
    manifest = json.loads((album / "manifest.json").read_text())
    manifest["picks"] += [
        {
            **manifest["picks"][0],
            "file": "../shoot/e.jpg",
            "source": str(tmp_path / "backup.jpg"),
            "companion_files": [],
        },
        {**manifest["picks"][0], "file": "mine.jpg", "source": str(album / "mine.jpg"), "companion_files": []},
        {**manifest["picks"][0], "file": "a3.jpg", "companion_files": ["/" + str(folder / "d.jpg")]},
    ]
    (album / "manifest.json").write_text(json.dumps(manifest))
    outcome = export_album(cull(store, [str(folder)], top=1), str(album))
    assert not outcome.failed and [Path(r.target).name for r in outcome.removed] == ["b1.jpg", "a_other_camera.jpg"]
    assert sorted(p.name for p in album.iterdir()) == ["a3.jpg", "manifest.json", "mine.jpg"]
    assert outcome.left_alone == [str(album / "mine.jpg")]
    assert snapshot(folder) == before


def test_a_photo_moved_out_of_the_culled_folder_is_left_out_at_its_old_path(
    shoot: tuple[Path, Store], tmp_path: Path
) -> None:
    """Its new folder is scanned, its old one too: the old path is still recorded (a rescan removes no
    record), and only its twin outside the culled folder says that the photo lives elsewhere now."""
    folder, store = shoot
    other = tmp_path / "other"
    other.mkdir()
    (folder / "a3.jpg").rename(other / "a3.jpg")
    score([str(folder)], store=store, model="nima", workers=1)
    score([str(other)], store=store, model="nima", workers=1)
    assert str(folder / "a3.jpg") in {row["real_path"] for row in store.photos(None, [str(folder)])}
    ranking = cull(store, [str(folder)], top=3)
    assert names(ranking.rows) == ["a5.jpg", "b1.jpg", "a_other_camera.jpg"]  # the burst's next frame
    assert str(folder / "a3.jpg") not in {row["path"] for row in ranking.others}
    assert str(folder / "a3.jpg") not in {row["path"] for row in rank(store, [str(folder)]).rows}
    result = runner.invoke(app, ["cull", str(folder), "--db", str(store.path), "--top", "3",
                                 "--export", str(tmp_path / "album")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "export failed" not in result.stderr


def test_a_file_not_on_disk_is_never_picked_and_says_why(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    """A deleted photo (or one on a drive that is not mounted) keeps its record, and `rank` still lists
    it; a cull passes over it, since it can be neither exported, rated, moved nor looked at."""
    folder, store = shoot
    (folder / "a3.jpg").unlink()
    assert str(folder / "a3.jpg") in {row["path"] for row in rank(store, [str(folder)]).rows}
    ranking = cull(store, [str(folder)], top=3)
    assert names(ranking.rows) == ["a5.jpg", "b1.jpg", "a_other_camera.jpg"]
    assert [(row["path"], row["why"]) for row in ranking.missing] == [(str(folder / "a3.jpg"), "not found on disk")]
    assert ranking.missing[0] in ranking.others and ranking.missing[0] not in ranking.rejects
    assert any(note.startswith("1 photo(s) are not on disk now") for note in ranking.notes)
    # --keep is a share of the photos that can be picked: 25% of 13 is 3.25, rounded up to 4 (not 14's 3.5).
    assert len(cull(store, [str(folder)], keep_percent=25).rows) == 4
    assert len(cull(store, [str(folder)], keep_percent=100).rows) == len(BEST_OF_GROUPS)
    rejects = tmp_path / "rejects"
    args = ["cull", str(folder), "--db", str(store.path), "--top", "3", "--export", str(tmp_path / "album"),
            "--move-rejects", str(rejects), "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"path": str(folder / "a3.jpg"), "why": "not found on disk"} in data["not_picked"]
    assert not data["export"]["failed"] and not data["moved"]["failed"]
    assert len(data["moved"]["placed"]) == len(SHOOT) - 4  # every photo but the three picks and the lost one
    assert "1 not found on disk" in " ".join(result.stderr.split())  # (as the terminal's width wrapped it)


def test_copies_of_a_photo_are_one_photo_seen_as_its_original(shoot: tuple[Path, Store], tmp_path: Path) -> None:
    """An earlier cull's album inside the library and a plain copy hold the bytes of picks: the cull picks
    the original once, never counts a copy as its worse frame, and never moves a copy of a pick away. A
    copy of a photo not picked is a reject like it and moves too."""
    from aesthete.report import build_report

    folder, store = shoot
    assert not export_album(cull(store, [str(folder)], top=1), str(folder / "Album")).failed  # Album/a3.jpg
    d_copy = folder / "copy of d.jpg"
    shutil.copy(folder / "d.jpg", d_copy)  # sorts before d.jpg: only its later modification time tells
    modified = (folder / "d.jpg").stat().st_mtime_ns + 60 * 10**9
    os.utime(d_copy, ns=(modified, modified))
    (folder / "Backup").mkdir()
    shutil.copy2(folder / "e.jpg", folder / "Backup" / "e.jpg")  # the same time too: the first path is the original
    score([str(folder)], store=store, model="nima", workers=1)
    before = snapshot(folder)
    ranking = cull(store, [str(folder)], top=4)
    assert [row["path"] for row in ranking.rows] == [str(folder / n) for n in BEST_OF_GROUPS[:4]]
    assert ranking.rows[0]["group_size"] == 5  # the album's copy is no sixth frame of the burst
    whys = {row["path"]: row["why"] for row in ranking.others}
    assert whys[str(folder / "Album" / "a3.jpg")] == f"identical to {folder / 'a3.jpg'}, which is picked"
    assert whys[str(d_copy)] == f"identical to {folder / 'd.jpg'}, which is picked"
    assert whys[str(folder / "e.jpg")] == f"identical to {folder / 'Backup' / 'e.jpg'}, which is not picked"
    assert {row["path"] for row in ranking.copies_of_picks} == {str(folder / "Album" / "a3.jpg"), str(d_copy)}
    assert not {row["path"] for row in ranking.rejects} & {row["path"] for row in ranking.copies_of_picks}
    rejects = tmp_path / "rejects"
    args = ["cull", str(folder), "--db", str(store.path), "--top", "4", "--move-rejects", str(rejects), "--json"]
    result = runner.invoke(app, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    moved = json.loads(result.stdout)["moved"]
    sources = {placed["source"] for placed in moved["placed"]}
    assert str(folder / "e.jpg") in sources and str(folder / "Backup" / "e.jpg") in sources
    assert not sources & {str(folder / "Album" / "a3.jpg"), str(d_copy)}
    assert sorted(moved["left_in_place"]) == sorted([str(folder / "Album" / "a3.jpg"), str(d_copy)])
    said = " ".join(result.stderr.split())  # (as the terminal's width wrapped it)
    assert "left 2 copies of picked photos where they are" in said
    assert "3 identical to another file in scope" in said  # e's copy too
    # The contact sheet outlines the frame cull keeps: the original, not the album's copy.
    page, _ = build_report(store, [str(folder)])
    outlined = re.findall(r'<figure class="photo best">.*?<div class="name" title="([^"]*)"', page, re.S)
    assert str(folder / "a3.jpg") in outlined and str(folder / "Album" / "a3.jpg") not in outlined
    assert snapshot(folder) == before


def test_a_folder_scanned_through_a_symlink_and_its_real_path_is_one_photo_per_file(
    shoot: tuple[Path, Store], tmp_path: Path
) -> None:
    """The same files recorded under two paths (the folder through a symlink, then by its real path) are
    one photo each, not copies: listed once, culled once, each moved once."""
    folder, store = shoot
    link = tmp_path / "linked"
    link.symlink_to(folder, target_is_directory=True)
    assert score([str(link)], store=store, model="nima", workers=1).cached == len(SHOOT)
    assert len(store.photos(None)) == 2 * len(SHOOT)  # both paths recorded
    assert sorted(names(rank(store).rows)) == sorted(SHOOT)  # before: every photo twice
    assert len(rank(store, [str(link)]).rows) == len(SHOOT)  # one of the paths asked for: as it is
    both = rank(store, [str(folder), str(link)])
    assert len(both.rows) == len(SHOOT) and not any("found no photos" in note for note in both.notes)
    ranking = cull(store, [str(folder), str(link)], top=3)
    assert names(ranking.rows) == BEST_OF_GROUPS[:3] and len(ranking.others) == len(SHOOT) - 3
    assert not ranking.copies_of_picks and not any(row["why"].startswith("identical") for row in ranking.others)
    args = ["cull", str(folder), str(link), "--db", str(store.path), "--top", "3", "--move-rejects",
            str(tmp_path / "rejects"), "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output  # before: exit 1, "move failed: ... No such file" for each
    moved = json.loads(result.stdout)["moved"]
    assert not moved["failed"] and len(moved["placed"]) == len(SHOOT) - 3
    assert sorted(os.listdir(folder)) == sorted(BEST_OF_GROUPS[:3])


def test_json_and_the_manifest_give_absolute_paths_when_the_options_are_relative(
    shoot: tuple[Path, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, store = shoot
    monkeypatch.chdir(tmp_path)
    db = os.path.relpath(store.path)
    args = ["cull", folder.name, "--db", db, "--top", "2", "--export", "album", "--move-rejects", "rejects", "--json"]
    data = json.loads(runner.invoke(app, [*args, "--dry-run"]).stdout)
    assert data["export"]["folder"] == str(tmp_path / "album")
    assert data["export"]["manifest"] == str(tmp_path / "album" / "manifest.json")
    assert data["moved"]["folder"] == str(tmp_path / "rejects")
    targets = [p["target"] for section in ("export", "moved") for p in data[section]["placed"]]
    assert len(targets) == 14 and all(os.path.isabs(target) for target in targets)
    done = runner.invoke(app, args[:-3] + ["--json"])  # a real export, no move
    assert done.exit_code == 0, done.output
    manifest = json.loads((tmp_path / "album" / "manifest.json").read_text())
    assert manifest["settings"]["roots"] == [str(folder)]
    assert json.loads(done.stdout)["export"]["placed"][0]["target"].startswith(str(tmp_path / "album") + os.sep)
    (tmp_path / "more").mkdir()
    scored = runner.invoke(app, ["score", "more", "--db", db, "--json"])
    assert json.loads(scored.stdout)["database"] == str(store.path)


def test_the_report_and_groups_mark_the_frame_cull_keeps_not_a_flagged_better_one(shoot: tuple[Path, Store]) -> None:
    """The field test's sheet outlined a3 ("the one cull keeps") while cull, rejecting a3 as overexposed,
    kept a5; `groups` listed a3 first with nothing to say it is never picked."""
    from aesthete.report import build_report

    folder, store = shoot
    store.conn.execute("UPDATE images SET flags = '[\"overexposed\"]' WHERE content_hash = "
                       "(SELECT content_hash FROM files WHERE path = ?)", (str(folder / "a3.jpg"),))  # fmt: skip
    assert names(cull(store, [str(folder)], top=1).rows) == ["a5.jpg"]
    page, _ = build_report(store, [str(folder)])
    outlined = re.findall(r'<figure class="photo best">.*?<div class="name" title="([^"]*)"', page, re.S)
    assert str(folder / "a5.jpg") in outlined and str(folder / "a3.jpg") not in outlined
    result = runner.invoke(app, ["groups", str(folder), "--db", str(store.path), "--json"])
    assert result.exit_code == 0, result.output
    burst = next(g for g in json.loads(result.stdout)["groups"] if g["size"] == 5)["photos"]
    verdicts = {Path(p["path"]).name: (p["cull_keeps"], p["ruled_out"]) for p in burst}
    assert verdicts["a3.jpg"] == (False, "overexposed") and verdicts["a5.jpg"] == (True, None)
    assert sum(keeps for keeps, _ in verdicts.values()) == 1
    table = runner.invoke(app, ["groups", str(folder), "--db", str(store.path)], env={"COLUMNS": "120"}).stdout
    assert re.search(r"a3\.jpg\s+\S+\s+overexposed", table) and re.search(r"a5\.jpg\s+\S+\s+keeps", table)


def test_the_groups_table_names_the_original_of_a_copy_as_its_photo_column_does(
    shoot: tuple[Path, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`groups` in the library said "identical to /full/path/Back up/e.jpg" beside a relative photo column,
    the absolute path folding at its space (field test). JSON keeps it absolute."""
    folder, store = shoot
    (folder / "Back up").mkdir()
    shutil.copy2(folder / "e.jpg", folder / "Back up" / "e.jpg")  # the same time: the first path is the original
    score([str(folder)], store=store, model="nima", workers=1)
    monkeypatch.chdir(folder)
    args = ["groups", ".", "--db", str(store.path)]
    table = runner.invoke(app, args, env={"COLUMNS": "200"}).stdout
    assert f"identical to {os.path.join('Back up', 'e.jpg')}" in table and str(folder) not in table
    photos = [p for g in json.loads(runner.invoke(app, [*args, "--json"]).stdout)["groups"] for p in g["photos"]]
    assert f"identical to {folder / 'Back up' / 'e.jpg'}" in [p["ruled_out"] for p in photos]


def test_show_gives_flags_as_a_list_in_json_and_names_them_in_text(shoot: tuple[Path, Store]) -> None:
    """README: `show --json` has rank's fields in `photo.image`, `flags` a list (the field test got the
    stored JSON text); the text view names them too."""
    folder, store = shoot
    store.conn.execute('UPDATE images SET flags = \'["overexposed", "noisy"]\'')
    args = ["show", str(folder / "a3.jpg"), "--db", str(store.path)]
    shown = runner.invoke(app, [*args, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["photo"]["image"]["flags"] == ["overexposed", "noisy"]
    assert "flags overexposed, noisy" in runner.invoke(app, args, env={"COLUMNS": "200"}).stdout


def test_cull_with_no_folders_leaves_out_the_subfolders_a_no_recursive_score_left_out(
    shoot: tuple[Path, Store], tmp_path: Path
) -> None:
    """`score --no-recursive F` then `cull`: the subfolder photos an earlier recursive run scored are not
    culled (nor moved as rejects); naming the folder culls its whole tree, as before."""
    folder, store = shoot
    nested = write_photo(folder / "later" / "f.jpg", frame(7), "2024:05:02 09:00:00", "Canon EOS R5")
    score([str(folder)], store=store, model="nima", workers=1)
    add_scores(store, {**MEANS, "f.jpg": 9.0})
    assert str(nested) in names_to_paths(cull(store, top=20))
    score([str(folder)], store=store, model="nima", workers=1, recursive=False)

    ranking = cull(store, top=20)
    assert str(nested) not in names_to_paths(ranking) and len(ranking.rows) + len(ranking.others) == len(SHOOT)
    assert "photos in subfolders are left out (--no-recursive)" in ranking.notes
    report = apply(store, CullOptions(top=1, move_rejects=str(tmp_path / "rejects")))
    assert names(report.ranking.rows) == ["a3.jpg"] and report.settings["recursive"] is False
    assert nested.exists()  # not a reject: out of scope
    assert str(nested) in names_to_paths(cull(store, [str(folder)], top=20))

    # A database from before runs recorded it (NULL): that run descended, as score does by default.
    store.conn.execute("UPDATE runs SET recursive = NULL")
    assert str(nested) in names_to_paths(cull(store, top=20))


def names_to_paths(ranking: Ranking) -> set[str]:
    return {row["path"] for row in (*ranking.rows, *ranking.others)}


def test_a_folder_is_found_by_its_real_path_and_through_a_link_to_it(tmp_path: Path, monkeypatch) -> None:
    """~/Pictures a link to a drive: `score ~/Pictures` records the link's paths, and `cd ~/Pictures; cull .`
    names the drive's folder (the working folder is the resolved one); the other way round after `score .`.
    Both found the photos "not in the database"."""
    drive = write_shoot(tmp_path / "drive" / "Pictures")
    (drive / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    link = tmp_path / "home" / "Pictures"
    link.parent.mkdir()
    link.symlink_to(drive, target_is_directory=True)
    for scored, named in ((link, drive), (drive, link)):
        store = Store(tmp_path / f"{scored.parent.name}.db")
        score([str(scored)], store=store, model="nima", workers=1)
        add_scores(store, MEANS)
        assert len(rank(store, [str(named)]).rows) == len(SHOOT), scored
        assert len(rank(store, [str(named)], recursive=False).rows) == len(SHOOT)
        assert not [note for note in rank(store, [str(named)]).notes if "no photos" in note]
        assert [Path(f["path"]).name for f in store.failures([str(named)])] == ["broken.jpg"]
        monkeypatch.chdir(named)
        assert len(cull(store, ["."], top=3).rows) == 3
        result = runner.invoke(app, ["rank", ".", "--db", str(store.path), "--paths"])
        assert result.exit_code == 0 and len(result.stdout.splitlines()) == len(SHOOT), result.output
        store.close()
