"""Selection (top / keep / min-score, best of group, ties, rejects) and what cull does with files:
album export in every mode, name clashes, manifest, moving rejects, dry runs; originals never change."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from photoset import SHOOT, add_scores, snapshot, write_shoot
from typer.testing import CliRunner

from aesthete import export as export_module
from aesthete.cli import app
from aesthete.culling import CullOptions, apply
from aesthete.errors import NothingToDoError, OptionError
from aesthete.export import export_album, move_rejects
from aesthete.scoring import score
from aesthete.select import cull
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
    a3 = next(r for r in store.photos(None) if r["path"].endswith("a3.jpg"))
    store.conn.execute("UPDATE images SET flags = '[]'")
    store.conn.execute("UPDATE images SET flags = '[\"blurry\"]' WHERE content_hash = ?", (a3["content_hash"],))
    assert names(cull(store, top=1).rows) == ["a3.jpg"]  # flags are shown, not applied, unless asked
    ranking = cull(store, top=1, reject_blurry=True)
    assert names(ranking.rows) == ["a5.jpg"]
    assert next(r["why"] for r in ranking.others if r["path"].endswith("a3.jpg")) == "blurry"
    store.conn.execute("UPDATE images SET flags = '[\"overexposed\"]' WHERE content_hash = ?", (a3["content_hash"],))
    assert names(cull(store, top=1, reject_exposure=True).rows) == ["a5.jpg"]


@pytest.mark.parametrize("mode", ["link", "symlink", "copy"])
def test_export_modes(shoot: tuple[Path, Store], tmp_path: Path, mode: str) -> None:
    folder, store = shoot
    before = snapshot(folder)
    ranking = cull(store, top=3)
    album = tmp_path / "album"
    outcome = export_album(ranking, str(album), mode=mode, settings={"top": 3})
    assert [p.how for p in outcome.placed] == [mode] * 3 and not outcome.failed
    for placed in outcome.placed:
        target, source = Path(placed.target), Path(placed.source)
        assert target.read_bytes() == source.read_bytes()
        assert target.is_symlink() == (mode == "symlink")
        assert os.path.samefile(target, source) == (mode != "copy")
        if mode == "copy":
            assert target.stat().st_mtime_ns == source.stat().st_mtime_ns
    assert sorted(p.name for p in album.iterdir()) == sorted([*BEST_OF_GROUPS[:3], "manifest.json"])
    assert snapshot(folder) == before


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
    # Quintiles among all 14 ranked photos, by mid-rank: a_other_camera (6.5) has 10 below it, 10.5/14 = 0.75
    # -> 4 stars; d (5.8) has 7 below, 7.5/14 = 0.54 -> 3 stars.
    assert [s["rating"] for s in data["xmp"]["sidecars"]] == [5, 5, 4, 3]
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
    assert [n for _, n in report.xmp.sidecars] == [5, 5, 4]
    assert report.moved is not None and len(report.moved.outcome.placed) == 11
    assert set(report.actions()) == {"export", "xmp", "moved"}
    # A dry run: nothing was created, moved or written.
    assert snapshot(folder) == before and not album.exists() and not rejects.exists()
    assert not list(folder.glob("*.xmp"))
    # Without file actions the report has no sections, and `keep` is recorded as a percentage.
    plain = apply(store, CullOptions(keep_percent=20))
    assert plain.export is plain.xmp is plain.moved is None and plain.actions() == {}
    assert plain.settings["keep"] == "20%" and len(plain.ranking.rows) == 3


def test_cull_options_are_checked_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="--mode must be one of link, symlink, copy"):
        CullOptions(mode="move")
    with pytest.raises(OptionError, match="only apply with --xmp"):
        CullOptions(stars=True)
    with pytest.raises(OptionError, match="only apply with --xmp"):
        CullOptions(label="pick")
    with pytest.raises(NothingToDoError, match="nothing scored yet"):
        apply(Store(tmp_path / "empty.db"), CullOptions())


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


def test_cull_report_and_groups_never_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys; import aesthete.cli.cull, aesthete.report, aesthete.export, aesthete.xmp, aesthete.groups;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
