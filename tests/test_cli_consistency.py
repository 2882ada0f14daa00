"""Consistency of the commands with each other (issue 13, items 6-9 and 18)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesthete.architectures import model_names
from aesthete.cli import app

runner = CliRunner()


# -- item 7: `models` lists what `score --model` accepts, fast ------------------------------------------


def test_score_refuses_a_model_that_cannot_score(tmp_path: Path) -> None:
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"not read: the model is refused first")
    result = runner.invoke(app, ["score", str(photo), "--model", "pear-prior", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2, result.output
    assert "never scores photos" in result.output and "Traceback" not in result.output


def test_models_lists_exactly_the_scoring_architectures_and_second_run_skips_torch() -> None:
    from aesthete.model_info import model_rows

    assert [row["name"] for row in model_rows()] == model_names(scoring=True)  # builds and caches the rows
    assert "pear-prior" not in model_names(scoring=True)
    probe = (
        "import sys, json\nfrom typer.testing import CliRunner\nfrom aesthete.cli import app\n"
        "res = CliRunner().invoke(app, ['models', '--json'])\n"
        "assert res.exit_code == 0, res.output\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'out': json.loads(res.stdout)}))\n"
    )
    check = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ), capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert check.returncode == 0, check.stderr
    result = json.loads(check.stdout)
    assert result["torch"] is False  # the cached counts: no model is built, torch is never imported
    rows = result["out"]["models"] if isinstance(result["out"], dict) else result["out"]
    assert [row["name"] for row in rows] == model_names(scoring=True)
    nima = next(row for row in rows if row["name"] == "nima")
    assert nima["parameters"] > 20_000_000 and nima["bins"] == 10


# -- item 8: --since / --until take ISO dates and date-times only -----------------------------------------


def test_since_until_refuse_what_is_not_an_iso_date(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    for option in ("--since", "--until"):
        for bad in ("2008-13-45", "yesterday", "2024-06-01T25:00", "2024-06", "2024-06-01T10:00+02:00"):
            result = runner.invoke(app, ["rank", option, bad, "--db", db])
            assert result.exit_code == 2, (option, bad, result.output)
            assert "not an ISO date" in result.output and "Traceback" not in result.output


def test_since_until_accept_dates_and_times() -> None:
    from aesthete.select import Filters

    kept = Filters(since="2024-06-01 10:00", until="2024-06-02")
    assert kept.since == "2024-06-01T10:00" and kept.until == "2024-06-02"
    assert kept.accepts({"capture_time": "2024-06-02T23:59:59"})  # a bare --until date includes its day
    assert not kept.accepts({"capture_time": "2024-06-01T09:59:59"})
    assert Filters(until="2024-06-01T10:00").accepts({"capture_time": "2024-06-01T10:00:30"})
    assert not Filters(until="2024-06-01T10:00:00").accepts({"capture_time": "2024-06-01T10:00:30"})
    assert Filters(since="2024-06-01T10:00", until="2024-06-01").since  # within the --until day: a range


def test_a_range_no_photo_can_be_in_is_a_usage_error(tmp_path: Path) -> None:
    """`rank --min-score 9 --max-score 1` showed an empty table and exited 0, as if nothing qualified."""
    from aesthete.store import Store

    Store(tmp_path / "a.db").close()
    for options, said in (
        (["--min-score", "9", "--max-score", "1"], "--min-score 9 is above --max-score 1"),
        (["--since", "2024-06-02", "--until", "2024-06-01T23:00"], "--since 2024-06-02 is after --until"),
    ):
        result = runner.invoke(app, ["rank", "--db", str(tmp_path / "a.db"), *options])
        assert result.exit_code == 2, (options, result.output)
        assert said in result.output and "Traceback" not in result.output


# -- item 6: every reading command reads what `score` would write, and names model and weights -----------


def test_reading_commands_default_to_scores_weights_and_name_them(tmp_path: Path, tiny_checkpoints) -> None:
    from photoset import write_shoot

    folder = write_shoot(tmp_path / "shoot")
    db = str(tmp_path / "x.db")
    for arch, name in (("hla-gcn", "hla-tiny"), ("nima", "nima-tiny")):
        added = runner.invoke(app, ["weights", "add", str(tiny_checkpoints[arch]), "--name", name])
        assert added.exit_code == 0, added.output
    # hla-gcn (score's default model, with its registered weights) first, nima last: the most recent
    # scores are nima's, but score's default is hla-tiny, so that is what every command must read.
    for args in ([], ["--weights", "nima-tiny"]):
        scored = runner.invoke(app, ["score", str(folder), "--db", db, "--device", "cpu", *args])
        assert scored.exit_code in (0, 1), scored.output
    rank = json.loads(runner.invoke(app, ["rank", "--db", db, "--json"]).stdout)
    assert (rank["model"], rank["weights"]) == ("hla-gcn", "hla-tiny")
    nima = json.loads(runner.invoke(app, ["rank", "--db", db, "--json", "--weights", "nima-tiny"]).stdout)
    assert (nima["model"], nima["weights"]) == ("nima", "nima-tiny")  # the registry name, never a hash
    assert json.loads(runner.invoke(app, ["rank", "--db", db, "--json", "-m", "nima"]).stdout)["weights"] == "nima-tiny"
    assert [p["mean"] for p in rank["photos"]] != [p["mean"] for p in nima["photos"]]
    cull = json.loads(runner.invoke(app, ["cull", str(folder), "--db", db, "--json", "--top", "2"]).stdout)
    assert (cull["model"], cull["weights"]) == ("hla-gcn", "hla-tiny")
    table = runner.invoke(app, ["rank", "--db", db, "--top", "3"], env={"COLUMNS": "200"}).stdout
    assert "hla-gcn mean score (weights hla-tiny)" in table
    photo = rank["photos"][0]["path"]
    show = json.loads(runner.invoke(app, ["show", photo, "--db", db, "--json"]).stdout)
    assert show["weights"] == "hla-tiny" and [s["weights"] for s in show["photo"]["scores"]] == [
        "hla-tiny",
        "nima-tiny",
    ]
    shown = runner.invoke(app, ["show", photo, "--db", db, "-w", "nima-tiny"]).stdout
    assert shown.index("nima weights nima-tiny") < shown.index("hla-gcn weights hla-tiny")
    report = runner.invoke(app, ["report", "--html", str(tmp_path / "r.html"), "--db", db, "-w", "nima-tiny"])
    assert report.exit_code == 0 and "weights nima-tiny" in (tmp_path / "r.html").read_text()
    bad = runner.invoke(app, ["rank", "--db", db, "--weights", "nope"])
    assert bad.exit_code == 2 and "unknown weights" in bad.output
    # eval takes a registered name like score --weights does: it gets past the checkpoint to the data.
    evaluated = runner.invoke(app, ["eval", "nima-tiny", "--dataset", "ava", "--data-root", str(tmp_path / "none")])
    assert evaluated.exit_code == 2 and "nima-tiny" not in evaluated.output, evaluated.output


# -- item 9: one JSON shape, and failures' paths shown relative like rank's ------------------------------


def test_every_json_output_is_one_object_with_its_list_named(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from photoset import write_shoot

    folder = write_shoot(tmp_path / "shoot")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    db = str(tmp_path / "x.db")
    assert runner.invoke(app, ["score", str(folder), "--db", db]).exit_code in (1, 4)
    lists = {
        ("rank",): "photos", ("cull",): "picks", ("groups",): "groups", ("failures",): "failures",
        ("models",): "models", ("weights", "list"): "weights",
    }  # fmt: skip
    for command, key in lists.items():
        extra = ["--db", db] if command[0] != "models" and command[0] != "weights" else []
        result = runner.invoke(app, [*command, *extra, "--json"])
        data = json.loads(result.stdout)
        assert isinstance(data, dict) and isinstance(data[key], list), command
    failures = json.loads(runner.invoke(app, ["failures", "--db", db, "--json"]).stdout)["failures"]
    assert [Path(f["path"]).name for f in failures] == ["broken.jpg"] and Path(failures[0]["path"]).is_absolute()
    monkeypatch.chdir(tmp_path)
    table = runner.invoke(app, ["failures", "--db", db], env={"COLUMNS": "200"}).stdout
    assert "shoot/broken.jpg" in table and str(tmp_path) not in table  # relative, as rank's table shows paths


# The keys README.md ("Which scores, and `--json`") documents for each command's --json, as it lists them.
HEADER = ["by", "basis", "model", "weights", "output"]
DOCUMENTED_KEYS = {
    "score": [
        "found", "scored", "analysed", "faces_filled", "remeasured", "cached", "paired", "failed", "seconds",
        "model", "weights", "device", "precision", "compiled", "device_decoded", "decode_notice", "notice",
        "faces_notice", "interrupted", "personal", "embed_only", "discovery_errors", "throughput", "database",
        "exit_code",
    ],
    "rank": [*HEADER, "photos"],
    "cull": [*HEADER, "dry_run", "picks", "not_picked", "export", "xmp", "moved"],
    "cull export": ["folder", "manifest", "notices", "placed", "failed", "removed", "left_alone"],
    "cull xmp": ["sidecars", "cleared", "still_rated", "failed"],
    "cull xmp sidecar": ["photo", "sidecar", "status", "message", "before", "rating", "rated_by"],
    "cull moved": ["folder", "placed", "failed", "left_in_place"],
    "cull not_picked": ["path", "why"],
    "groups": [*HEADER, "groups"],
    "groups group": ["group", "size", "photos"],
    "groups photo": ["path", "mean", "technical", "flags", "capture_time", "make", "camera", "cull_keeps", "ruled_out"],
    "show": ["model", "weights", "photo"],
    "failures": ["count", "failures"],
    "models": ["models"],
    "weights list": ["weights"],
    "weights verify": ["verified"],
    "weights verify row": ["name", "ok", "reason"],
    "weights remove": ["name", "kind", "deleted", "freed", "kept", "heads"],
    "learn": [
        "name", "path", "ratings", "matched", "unmatched", "own", "corrected", "unusable", "no_embedding", "used",
        "scored", "notes", "base", "cross_validation",
    ],
    "learn cross_validation": ["folds", "photos", "method", "table"],
}  # fmt: skip


def test_each_json_output_has_the_keys_the_readme_documents(tmp_path: Path, tiny_checkpoints) -> None:
    import ratinglib
    from photoset import write_shoot

    from aesthete.cli.common import ROW_FIELDS

    photos = ratinglib.make_library(tmp_path / "lib", 24)  # rated, for learn
    ratinglib.write_sidecars(photos)
    folder = tmp_path / "lib"
    write_shoot(folder / "shoot")  # bursts, for groups
    db = ["--db", str(tmp_path / "x.db")]

    def run(*args: str) -> dict:
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, (args, result.output)
        data = json.loads(result.stdout)
        assert isinstance(data, dict), args
        return data

    def keys(data: dict, name: str) -> None:
        assert list(data) == DOCUMENTED_KEYS[name], name

    added = run("weights", "add", str(tiny_checkpoints["nima"]), "--name", "tiny")
    assert set(added) == set(run("weights", "list")["weights"][0]) - {"ava_srcc"}  # a list row but ava_srcc
    keys(run("score", str(folder), *db, "--device", "cpu", "--workers", "1"), "score")
    rank = run("rank", *db)
    keys(rank, "rank")
    assert list(rank["photos"][0]) == list(ROW_FIELDS)
    cull = run(
        "cull", *db, "--top", "3", "--dry-run", "--export", str(tmp_path / "album"), "--xmp",
        "--move-rejects", str(tmp_path / "rejects"),
    )  # fmt: skip
    keys(cull, "cull")
    for action in ("export", "xmp", "moved"):
        keys(cull[action], f"cull {action}")
    keys(cull["not_picked"][0], "cull not_picked")
    keys(cull["xmp"]["sidecars"][0], "cull xmp sidecar")
    assert list(cull["picks"][0]) == [*ROW_FIELDS, "pick", "group", "group_size"]
    assert list(run("cull", *db, "--top", "3"))[-2:] == ["picks", "not_picked"]  # actions only when asked
    groups = run("groups", *db)
    keys(groups, "groups")
    keys(groups["groups"][0], "groups group")
    keys(groups["groups"][0]["photos"][0], "groups photo")
    keys(run("show", rank["photos"][0]["path"], *db), "show")
    keys(run("failures", *db), "failures")
    keys(run("models", "--no-count"), "models")
    keys(run("weights", "list"), "weights list")
    verify = run("weights", "verify")
    keys(verify, "weights verify")
    keys(verify["verified"][0], "weights verify row")
    learned = run("learn", str(folder), *db, "--name", "mine")
    keys(learned, "learn")
    keys(learned["cross_validation"], "learn cross_validation")
    keys(run("weights", "remove", "mine", "--yes"), "weights remove")


# -- item 18: rescans, the progress bar, show of a missing file, the sort column, CSV and JSON fields ------


def test_rescan_with_nothing_new_prints_no_rate_and_names_the_database(tmp_path: Path) -> None:
    from photoset import frame, write_photo

    write_photo(tmp_path / "shoot" / "a.jpg", frame(1), "2024:05:01 12:00:00", "Canon EOS R5")
    db = tmp_path / "my photos.db"
    args = ["score", str(tmp_path / "shoot"), "--db", str(db)]
    first = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert first.exit_code == 4 and "photos/s" in first.stdout  # signals only: one photo read
    again = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert again.exit_code == 4 and "nothing new" in again.stdout and "photos/s" not in again.stdout
    assert "database" in again.stdout and str(db) in again.stdout
    summary = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert summary["database"] == str(db) and summary["scored"] + summary["analysed"] == 0


def test_a_rescan_is_nothing_new_though_files_failed_before(tmp_path: Path) -> None:
    """A library holding one broken file never heard "(nothing new)" on a rescan, though the failure was
    recorded before and not read again (field test); a file that fails for the first time was read."""
    from photoset import frame, write_photo

    write_photo(tmp_path / "shoot" / "a.jpg", frame(1), "2024:05:01 12:00:00", "Canon EOS R5")
    args = ["score", str(tmp_path / "shoot"), "--db", str(tmp_path / "a.db")]
    assert runner.invoke(app, args).exit_code == 4
    (tmp_path / "shoot" / "broken.jpg").write_bytes(b"not a photo")
    fresh = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert fresh.exit_code == 4 and "nothing new" not in fresh.stdout and "broken.jpg" in fresh.stdout
    again = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert again.exit_code == 4 and "nothing new" in again.stdout and "broken.jpg" in again.stdout
    assert "read" not in json.loads(runner.invoke(app, [*args, "--json"]).stdout)  # not a documented key


def test_an_interrupted_score_is_never_called_nothing_new(capsys) -> None:  # noqa: ANN001
    """Ctrl-C before the first batch was stored printed "time 5.3 s (nothing new)" above the interrupted
    line, on a folder of 80 new photos (field test)."""
    from aesthete.cli import score as score_cli
    from aesthete.scoring import ScoreSummary

    score_cli._print_summary(ScoreSummary(found=80, seconds=5.3, interrupted=True), "a.db")
    said = capsys.readouterr()
    assert "nothing new" not in said.out and "interrupted" in said.err


def test_a_score_that_found_no_photos_still_names_what_it_skipped(tmp_path: Path) -> None:
    """A folder holding only a dangling link (or folders it could not open) printed "no photos found" and
    nothing of why: the skipped lines went only into --json (field test)."""
    (tmp_path / "shoot").mkdir()
    (tmp_path / "shoot" / "a.jpg").symlink_to(tmp_path / "gone.jpg")
    args = ["score", str(tmp_path / "shoot"), "--db", str(tmp_path / "a.db")]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 3 and "no photos found" in result.stderr
    assert f"skipped {tmp_path / 'shoot' / 'a.jpg'}: dangling symlink" in result.stderr


def test_score_prints_notes_and_paths_with_brackets_as_they_are(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Rich markup must not eat square brackets: the faces notice names ``aesthete-photo[faces]``, and
    a file may be called ``Holiday [best].jpg``."""
    from photoset import frame, write_photo

    from aesthete import faces

    monkeypatch.setattr(faces, "available", lambda: False)  # as if the faces extra were not installed
    write_photo(tmp_path / "shoot" / "a.jpg", frame(1), "2024:05:01 12:00:00", "Canon EOS R5")
    (tmp_path / "shoot" / "Holiday [best].jpg").write_bytes(b"not a jpeg")
    result = runner.invoke(app, ["score", str(tmp_path / "shoot"), "--db", str(tmp_path / "a.db")],
                           env={"COLUMNS": "200"})  # fmt: skip
    assert "pip install 'aesthete-photo[faces]'" in result.stderr
    assert "Holiday [best].jpg: not-an-image" in result.stdout
    shown = runner.invoke(app, ["show", str(tmp_path / "shoot" / "Holiday [best].jpg"), "--db", str(tmp_path / "a.db")],
                          env={"COLUMNS": "200"})  # fmt: skip
    assert "Holiday [best].jpg" in shown.stdout and "failed:" in shown.stdout


def test_progress_says_reading_without_weights_and_scoring_with_them(tmp_path: Path, tiny_checkpoints) -> None:
    from contextlib import closing

    from photoset import frame, write_photo

    from aesthete.scoring import score
    from aesthete.store import open_store

    write_photo(tmp_path / "shoot" / "a.jpg", frame(1), None, None)
    with closing(open_store(tmp_path / "x.db")) as store:
        phases: list[str] = []
        score([str(tmp_path / "shoot")], store=store, phase=phases.append)
        assert phases == ["reading"]  # no weights: technical signals only, nothing is scored
        score([str(tmp_path / "shoot")], store=store, weights=str(tiny_checkpoints["nima"]), phase=phases.append)
        assert phases == ["reading", "scoring", "loading the model", "scoring"]  # loaded for the first photo
        score([str(tmp_path / "shoot")], store=store, weights=str(tiny_checkpoints["nima"]), phase=phases.append)
        assert phases[4:] == ["scoring"]  # nothing new: the model is never loaded


def test_progress_shows_no_rate_before_a_few_photos_and_seconds(monkeypatch) -> None:  # noqa: ANN001
    from aesthete.cli import score as score_cli

    clock = iter([100.0, 100.01, 100.02, 101.0, 103.5])
    monkeypatch.setattr(score_cli.time, "monotonic", lambda: next(clock))
    rate = score_cli._Rate()
    # 8 photos at once (decoded while the model loaded), then one at a time: no rate before 3 s and 5 photos.
    assert [rate.after(done) for done in (8, 9, 10, 11)] == [None, None, None, None]
    assert rate.after(18) == 10 / 3.5  # 10 photos in the 3.5 s since the first came back


def test_show_of_a_missing_file_or_a_folder_says_so_as_a_usage_error(tmp_path: Path) -> None:
    from aesthete.store import Store

    Store(tmp_path / "x.db").close()
    result = runner.invoke(app, ["show", str(tmp_path / "nope.jpg"), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "no such file" in result.output
    assert "not in the database" not in result.output and "Traceback" not in result.output
    (tmp_path / "My Photos").mkdir()
    folder = runner.invoke(app, ["show", str(tmp_path / "My Photos"), "--db", str(tmp_path / "x.db")])
    assert folder.exit_code == 2 and "is a folder" in folder.output
    assert f"aesthete rank '{tmp_path / 'My Photos'}'" in folder.output  # a command to paste, quoted


def refuse_to_open(monkeypatch: pytest.MonkeyPatch, locked: Path) -> None:
    """``locked`` as behind a folder without permission to search it: its stat raises PermissionError (root
    passes permission checks, so the refusal is simulated)."""
    import pathlib

    stat = pathlib.Path.stat

    def refused(self: Path, **kwargs: bool) -> os.stat_result:
        if str(self) == str(locked):
            raise PermissionError(13, "Permission denied", str(self))
        return stat(self, **kwargs)

    monkeypatch.setattr(pathlib.Path, "stat", refused)


def test_show_of_a_photo_in_a_folder_it_cannot_open_is_one_line(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """`show locked/b.jpg`, a folder without permission to search it, ended in a PermissionError traceback
    from Path.exists (field test). Root passes permission checks, so the refusal is simulated."""
    from aesthete.store import Store

    Store(tmp_path / "x.db").close()
    locked = tmp_path / "locked" / "b.jpg"
    refuse_to_open(monkeypatch, locked)
    result = runner.invoke(app, ["show", str(locked), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception
    assert f"{locked}: cannot be opened (Permission denied)" in " ".join(result.stderr.split())


@pytest.mark.parametrize(
    "command",
    [["score", "{locked}"], ["report", "--html", "{locked}", "{tmp}"], ["learn", "{locked}", "--name", "mine"]],
)
def test_a_path_behind_a_folder_that_cannot_be_opened_is_one_line(
    tmp_path: Path,
    monkeypatch,  # noqa: ANN001
    command: list[str],
) -> None:
    """`score locked/a.jpg`, `report --html locked/r.html` and `learn locked/x` ended in a PermissionError
    traceback from Path.exists or is_dir (field test). Root passes permission checks: the refusal is simulated."""
    from aesthete.store import Store

    Store(tmp_path / "x.db").close()
    locked = tmp_path / "locked" / "a.jpg"
    refuse_to_open(monkeypatch, locked)
    args = [arg.format(locked=locked, tmp=tmp_path) for arg in command]
    result = runner.invoke(app, [*args, "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception
    assert f"{locked}: cannot be opened (Permission denied)" in " ".join(result.stderr.split())


def test_show_says_when_the_file_was_edited_or_deleted_since_it_was_scored(tmp_path: Path) -> None:
    from imagegen import encode, scene

    folder = tmp_path / "shoot"
    folder.mkdir()
    for name, seed in (("a.jpg", 1), ("b.jpg", 2), ("c.jpg", 3)):
        (folder / name).write_bytes(encode(scene(seed, (96, 64)), "JPEG"))
    db = str(tmp_path / "x.db")
    assert runner.invoke(app, ["score", str(folder), "--db", db]).exit_code == 4  # no weights: signals only
    (folder / "b.jpg").write_bytes(encode(scene(5, (64, 96)), "JPEG"))  # edited in place, not scanned again
    (folder / "c.jpg").unlink()

    def shown(name: str) -> tuple[str, str]:
        text = runner.invoke(app, ["show", str(folder / name), "--db", db], env={"COLUMNS": "200"})
        data = runner.invoke(app, ["show", str(folder / name), "--db", db, "--json"])
        assert text.exit_code == 0 and data.exit_code == 0, (text.output, data.output)
        return json.loads(data.stdout)["photo"]["on_disk"], " ".join(text.stdout.split())

    assert shown("a.jpg")[0] == "unchanged" and "on disk" not in shown("a.jpg")[1]
    state, text = shown("b.jpg")  # before: the earlier file's size and scores, as if they were this one's
    assert state == "changed" and "changed on disk since `score` read it" in text and "96x64" in text
    state, text = shown("c.jpg")
    assert state == "missing" and "not on disk now" in text


def test_show_of_a_photo_moved_since_names_where_score_found_it(tmp_path: Path) -> None:
    """After `mv shoot trip` and `score trip`, `show shoot/a.jpg` said "not on disk now (deleted, or on a
    drive that is not mounted)" though the database holds the photo at trip/a.jpg (field test)."""
    from imagegen import encode, scene

    (tmp_path / "shoot").mkdir()
    (tmp_path / "shoot" / "a.jpg").write_bytes(encode(scene(1, (96, 64)), "JPEG"))
    db = str(tmp_path / "x.db")
    assert runner.invoke(app, ["score", str(tmp_path / "shoot"), "--db", db]).exit_code == 4
    (tmp_path / "shoot").rename(tmp_path / "trip")
    assert runner.invoke(app, ["score", str(tmp_path / "trip"), "--db", db]).exit_code == 4
    text = runner.invoke(app, ["show", str(tmp_path / "shoot" / "a.jpg"), "--db", db], env={"COLUMNS": "200"})
    said = " ".join(text.stdout.split())
    assert text.exit_code == 0 and f"not on disk now: the same photo is at {tmp_path / 'trip' / 'a.jpg'}" in said
    assert "deleted, or on a drive" not in said


def test_rank_always_shows_the_column_it_sorts_by(tmp_path: Path) -> None:
    from test_cli_tables import write_library

    db = tmp_path / "x.db"
    write_library(db)
    for by in ("p-high", "std", "sharpness", "technical"):
        result = runner.invoke(app, ["rank", "--db", str(db), "--by", by], env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        header = next(line for line in result.stdout.splitlines() if "photo" in line.split())
        assert by in header.split(), (by, result.stdout)


def test_rank_csv_and_json_carry_flags_distribution_and_capture_time_source(tmp_path: Path) -> None:
    import csv
    import io

    from test_cli_tables import FLAGS, write_library

    db = tmp_path / "x.db"
    write_library(db)
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["rank", "--db", str(db), "--csv"]).stdout)))
    assert len(rows) == 6 and {"flags", "capture_time_source", "companions"} <= set(rows[0])
    assert [f"p{i}" for i in range(1, 11)] == list(rows[0])[-10:]  # one column per bin, after the others
    assert abs(sum(float(rows[0][f"p{i}"]) for i in range(1, 11)) - 1) < 1e-3
    by_name = {row["path"]: row for row in rows}
    assert [by_name[p]["flags"] for p in sorted(by_name)][:3] == ["", "blurry", "underexposed; noisy"]
    assert by_name[min(by_name)]["capture_time_source"] == "xmp"
    photos = json.loads(runner.invoke(app, ["rank", "--db", str(db), "--json"]).stdout)["photos"]
    assert {p["capture_time_source"] for p in photos} == {"exif", "xmp"}
    assert sorted(map(tuple, (p["flags"] for p in photos))) == sorted(map(tuple, FLAGS))


def test_show_finds_a_photo_through_symlinks_and_names_formats_it_never_reads(tmp_path: Path) -> None:
    from imagegen import encode, scene

    real = tmp_path / "real"
    real.mkdir()
    (real / "a.jpg").write_bytes(encode(scene(1, (96, 64)), "JPEG"))
    (tmp_path / "linked").symlink_to(real, target_is_directory=True)
    (tmp_path / "a-link.jpg").symlink_to(real / "a.jpg")
    for scanned, db in (("real", "real.db"), ("linked", "linked.db")):  # scored through each way in
        db = str(tmp_path / db)
        assert runner.invoke(app, ["score", str(tmp_path / scanned), "--db", db]).exit_code == 4  # no weights
        for shown in ("real/a.jpg", "linked/a.jpg", "a-link.jpg"):
            result = runner.invoke(app, ["show", str(tmp_path / shown), "--db", db, "--json"])
            assert result.exit_code == 0, (scanned, shown, result.output)
            assert json.loads(result.stdout)["photo"]["path"] == str(tmp_path / scanned / "a.jpg")
    (tmp_path / "anim.gif").write_bytes(b"GIF89a")
    gif = runner.invoke(app, ["show", str(tmp_path / "anim.gif"), "--db", db])
    assert gif.exit_code == 2 and "score" not in gif.output, gif.output
    assert (
        gif.stderr == f"error: {tmp_path / 'anim.gif'}: GIF is not a format aesthete reads (it reads JPEG, PNG, "
        "TIFF, WebP, BMP, HEIC/HEIF, camera RAW)\n"
    )
    (tmp_path / "new.jpg").write_bytes(b"")  # a photo's name, never scored: `score` is the way
    unseen = runner.invoke(app, ["show", str(tmp_path / "new.jpg"), "--db", db])
    assert unseen.exit_code == 3 and "is not in the database (run `aesthete score` on its folder)" in unseen.stderr


@pytest.mark.parametrize(
    ("inside", "skipped"),
    [
        (".cache/x.jpg", "hidden folders (.cache)"),
        ("Photos/.trash/x.jpg", "hidden folders (.trash)"),
        ("Photos/.trash/2024/x.jpg", "hidden folders (.trash)"),
        ("Photos/@eaDir/x.jpg", "system folders (@eaDir)"),
        ("Photos/.x.jpg", "hidden files (.x.jpg)"),
    ],
)
def test_show_of_a_photo_score_skips_says_why_and_a_command_that_scores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inside: str, skipped: str
) -> None:
    """Field test: `show` of a photo in a hidden folder said to run `aesthete score` on it, but a walk of the
    folders above skips hidden ones: the note says so, and its command (a file named directly) scores it."""
    import re
    import shlex

    from imagegen import encode, scene

    monkeypatch.chdir(tmp_path)
    photo = Path("library", inside)
    photo.parent.mkdir(parents=True)
    photo.write_bytes(encode(scene(1, (96, 64)), "JPEG"))
    db = str(tmp_path / "a.db")
    assert runner.invoke(app, ["score", "library", "--db", db]).exit_code == 3  # nothing found: all skipped
    unseen = runner.invoke(app, ["show", str(photo), "--db", db])
    assert unseen.exit_code == 3 and unseen.stderr.count("\n") == 1, unseen.output
    assert f"{photo} is not in the database: `score` skips {skipped}" in unseen.stderr, unseen.stderr
    command = shlex.split(re.findall(r"`([^`]*)`", unseen.stderr)[-1])
    assert command[:2] == ["aesthete", "score"], unseen.stderr
    assert runner.invoke(app, [*command[1:], "--db", db]).exit_code == 4  # scored (no weights: signals only)
    shown = runner.invoke(app, ["show", str(photo), "--db", db, "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["photo"]["status"] == "ok", shown.output


def test_show_of_a_file_score_could_not_read_exits_1_in_text_and_json(tmp_path: Path) -> None:
    # `show --json` said "status": "failed" and exited 0, where the text exits 1.
    from contextlib import closing

    from aesthete.store import file_row, open_store

    db, photo = str(tmp_path / "x.db"), tmp_path / "broken.jpg"
    photo.write_bytes(b"not a jpeg")
    with closing(open_store(db)) as store:
        store.write(files=[file_row(str(photo), 10, 1, "failed", error_kind="not-an-image", error="not an image")])
    text = runner.invoke(app, ["show", str(photo), "--db", db])
    assert text.exit_code == 1 and "failed: not an image" in text.stdout, text.output
    as_json = runner.invoke(app, ["show", str(photo), "--db", db, "--json"])
    assert as_json.exit_code == 1, as_json.output
    assert json.loads(as_json.stdout)["photo"]["status"] == "failed"


def test_failures_of_a_path_that_is_not_there_says_so(tmp_path: Path) -> None:
    """`failures typo` said "no failures recorded", exit 0, as for a folder read without a fault (field test);
    it now notes the typo as `rank` does. A file deleted since its failure was recorded is still listed."""
    from aesthete.scoring import score
    from aesthete.store import Store

    (tmp_path / "shoot").mkdir()
    broken = tmp_path / "shoot" / "empty.jpg"
    broken.write_bytes(b"")
    store = Store(tmp_path / "x.db")
    score([str(tmp_path / "shoot")], store=store, workers=1)
    store.close()
    typo = tmp_path / "shot"
    result = runner.invoke(app, ["failures", str(typo), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "no failures recorded"
    assert " ".join(result.stderr.split()) == f"note: no such file or folder: {typo}"
    broken.unlink()
    deleted = runner.invoke(app, ["failures", str(broken), "--db", str(tmp_path / "x.db"), "--json"])
    assert deleted.exit_code == 0 and deleted.stderr == "", deleted.output
    assert [row["path"] for row in json.loads(deleted.stdout)["failures"]] == [str(broken)]


def test_help_imports_neither_torch_numpy_pillow_nor_the_http_client() -> None:
    """`aesthete --help` (and every command's start) stays light: the image and download libraries are
    imported by the commands that use them (BENCHMARKS.md: --help under 0.5 s)."""
    heavy = ("torch", "numpy", "PIL", "urllib.request", "http.client", "sqlite_utils")
    probe = (
        "import sys, json\nfrom typer.testing import CliRunner\nfrom aesthete.cli import app\n"
        "res = CliRunner().invoke(app, ['--help'])\n"
        "assert res.exit_code == 0, res.output\n"
        f"print(json.dumps([name for name in {heavy!r} if name in sys.modules]))\n"
    )
    check = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout) == []
