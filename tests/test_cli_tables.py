"""Tables fit the terminal (issue 13, item 17): `rank`, `cull`, `failures` and `groups` from 40 to 120
columns, paths shortened from the middle with the file name whole and no two files alike, `weights list`
URLs whole."""

from __future__ import annotations

import io
import json
import re
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aesthete.cli import app
from aesthete.cli.common import shorten_path, shorten_paths
from aesthete.store import ModelKey, file_row, open_store

runner = CliRunner()
KEY = ModelKey("nima", "test-weights", "test-preprocess")
# Two folders with the same file names under a long path, as a camera numbers every card from IMG_0001.
DEEP = "/photos/2024/2024-06-15 Wedding of Anna and Bartholomew/ceremony and reception"
LIBRARY = [f"{DEEP}/card {card}/IMG_{i:04d}.jpg" for card in (1, 2) for i in (1, 2, 3)]
FLAGS = ([], ["blurry"], ["underexposed", "noisy"], ["overexposed"], [], ["blurry", "underexposed", "noisy"])


def write_library(db: Path, paths: list[str] = LIBRARY) -> None:
    """What `score` leaves for ``paths`` (which need not exist): signals, flags, EXIF time and a 10-bin
    distribution each, the first best."""
    bins = np.arange(1, 11)
    files, images, scores = [], [], []
    for i, path in enumerate(paths):
        digest = f"h{i}"
        files.append(file_row(path, 1000 + i, 1, "ok", content_hash=digest))
        images.append({
            "content_hash": digest, "width": 6000, "height": 4000, "format": "JPEG",
            "capture_time": f"2024-06-15T14:{i:02d}:00", "capture_time_source": "exif" if i else "xmp",
            "make": "Canon", "camera": "Canon EOS R5", "sharpness": 500.0 - 10 * i, "clipped_shadows": 0.01,
            "clipped_highlights": 0.0, "mean_luma": 0.5, "noise": 0.01, "technical": 0.9 - 0.05 * i,
            "flags": json.dumps(FLAGS[i % len(FLAGS)]),
        })  # fmt: skip
        dist = np.exp(-0.5 * ((bins - (7.0 - 0.3 * i)) / 1.5) ** 2)
        dist /= dist.sum()
        mean = float(dist @ bins)
        scores.append({
            "content_hash": digest, "model": KEY.model, "weights_id": KEY.weights_id, "preprocess": KEY.preprocess,
            "dist": json.dumps(dist.round(6).tolist()), "mean": mean,
            "std": float(np.sqrt(dist @ (bins - mean) ** 2)) + 0.01 * i, "p_high": float(dist[5:].sum()),
            "scored_at": "2024-06-16T00:00:00+00:00",
        })  # fmt: skip
    with closing(open_store(db)) as store:
        store.write(files=files, images=images, scores=scores)


def table_lines(args: list[str], columns: int) -> list[str]:
    result = runner.invoke(app, args, env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def photo_cell(line: str, name: str) -> str:
    """The path a table line shows for the file ``name``: up to the name's end, after the place number."""
    return re.sub(r"^\s*\d+ ", "", line[: line.index(name) + len(name)]).strip()


def test_shorten_path_cuts_the_middle_and_keeps_the_name_whole() -> None:
    path = "2024/2024-06-15 Wedding/ceremony/card 1/IMG_0042.jpg"
    assert shorten_path(path, 80) == path
    assert shorten_path(path, 30) == "…/ceremony/card 1/IMG_0042.jpg"  # the folders nearest the file first
    assert shorten_path(path, 26) == "2024/…/card 1/IMG_0042.jpg"  # then the first folder, where it fits
    assert shorten_path(path, 20) == "2024/…/IMG_0042.jpg"
    assert shorten_path(path, 21) == "…/card 1/IMG_0042.jpg"  # the first folder gives way to the nearest
    assert shorten_path(path, 15) == "…/IMG_0042.jpg"
    assert shorten_path(path, 5) == "…/IMG_0042.jpg"  # never cut into the name: longer than asked
    assert shorten_path("/home/ann/Pictures/2024/x.jpg", 20) == "/home/…/2024/x.jpg"  # not just "/"
    assert shorten_path("~/Pictures/2024/06/x.jpg", 22) == "~/Pictures/…/06/x.jpg"
    # Same name, different folders: each keeps enough of its folders to tell it from the other.
    both = shorten_paths([f"{DEEP}/card 1/IMG_0001.jpg", f"{DEEP}/card 2/IMG_0001.jpg", "a/IMG_0001.jpg"], 22)
    assert both[0] != both[1] and all(p.endswith("IMG_0001.jpg") for p in both)
    assert both[:2] == ["…/card 1/IMG_0001.jpg", "…/card 2/IMG_0001.jpg"] and both[2] == "a/IMG_0001.jpg"
    # Different only near the root: shown whole rather than alike.
    apart = shorten_paths(["/a/x/y/IMG.jpg", "/b/x/y/IMG.jpg"], 10)
    assert apart == ["/a/x/y/IMG.jpg", "/b/x/y/IMG.jpg"]


def test_rank_table_fits_80_and_120_columns_and_tells_files_apart(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    write_library(db)
    for columns in (80, 120):
        lines = table_lines(["rank", "--db", str(db)], columns)
        assert max(map(len, lines)) <= columns, (columns, "\n".join(lines))
        header = next(line for line in lines if "photo" in line.split())
        assert "mean" in header and "flags" in header
        shown = []
        for name in ("IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg"):  # each name twice: card 1 and card 2
            rows = [line for line in lines if name in line]
            assert len(rows) == 2, (name, lines)
            shown += [photo_cell(row, name) for row in rows]
        assert len(set(shown)) == 6 and all("…" in path for path in shown)  # shortened, and no two alike
        assert any("card 1/IMG_0001.jpg" in line for line in lines)
    # At 120 columns there is room for the capture time, technical quality and the spread as well.
    wide = next(line for line in table_lines(["rank", "--db", str(db)], 120) if "photo" in line.split())
    assert all(column in wide for column in ("taken", "technical", "std"))
    narrow = next(line for line in table_lines(["rank", "--db", str(db)], 80) if "photo" in line.split())
    assert "std" not in narrow  # the spread gives its room to the paths first


def test_cull_table_fits_80_columns(tmp_path: Path) -> None:
    from photoset import write_shoot

    folder = write_shoot(tmp_path / "2024" / "2024-05-01 a day of bursts in the mountains" / "card 1")
    db = str(tmp_path / "x.db")
    assert runner.invoke(app, ["score", str(folder), "--db", db]).exit_code == 4  # signals only: no weights
    for columns in (80, 120):
        lines = table_lines(["cull", "--top", "5", "--db", db], columns)
        assert max(map(len, lines)) <= columns, (columns, "\n".join(lines))
        picks = [line for line in lines if ".jpg" in line]
        assert len(picks) == 5 and all("card 1/" in line and "…" in line for line in picks)


def test_failures_table_shortens_from_the_middle_and_fits(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    reason = "cannot identify image file: the JPEG data ends early (truncated while copying from the card)"
    with closing(open_store(db)) as store:
        store.write(files=[file_row(p, 10, 1, "failed", error_kind="corrupt", error=reason) for p in LIBRARY[:4]])
    for columns in (80, 120):
        lines = table_lines(["failures", "--db", str(db)], columns)
        assert max(map(len, lines)) <= columns, (columns, "\n".join(lines))
        rows = [line for line in lines if "IMG_000" in line]
        assert len(rows) == 4 and all("corrupt" in row for row in rows)
        cells = [row.split("  ")[0] for row in rows]  # the path cell: the file name whole, never cut
        assert len(set(cells)) == 4 and all(cell.endswith(".jpg") for cell in cells)
        assert "copying from the card)" in "\n".join(lines)  # the reason wraps, whole


def test_score_summary_has_no_trailing_spaces_and_its_failed_lines_fit_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Field test: with COLUMNS=80 and the output not a terminal, the summary's lines were padded with spaces
    to the table's width, and each failed line (path, kind, reason) ran past 80 columns. Now a failed line
    that does not fit gives the reason its own lines, indented; the path keeps its file name whole (and its
    full form in --json and `aesthete failures`); each failure is still one grep away."""
    from imagegen import encode, scene
    from rich.cells import cell_len

    from aesthete.decode import TRUNCATED_REASON

    monkeypatch.chdir(tmp_path)
    deep = Path("2024", "2024-06-15 Wedding of Anna and Bartholomew", "ceremony and reception", "card 1")
    deep.mkdir(parents=True)
    good = encode(scene(1, (96, 64)), "JPEG")
    bad = {
        "IMG_0002.jpg": (good[: len(good) // 2], "truncated"),
        "IMG_0003.jpg": (b"", "empty"),
        "IMG_0004 at the reception.jpg": (b"text", "not-an-image"),
    }
    too_long = "IMG_0005 taken at the reception with the long lens, just before the speeches.jpg"  # for a line
    (deep / "IMG_0001.jpg").write_bytes(good)
    for name, (data, _) in [*bad.items(), (too_long, (b"", "empty"))]:
        (deep / name).write_bytes(data)
    as_json = runner.invoke(app, ["score", "2024", "--db", str(tmp_path / "j.db"), "--json"])
    full = {str(tmp_path / deep / name) for name in [*bad, too_long]}
    assert {f["path"] for f in json.loads(as_json.stdout)["failed"]} == full, as_json.stdout
    db = str(tmp_path / "x.db")
    result = runner.invoke(app, ["score", "2024", "--db", db], env={"COLUMNS": "80"})
    assert result.exit_code == 4, result.output  # no weights: technical signals only
    lines = result.stdout.splitlines()
    assert [line for line in lines if line != line.rstrip()] == [], result.stdout
    assert max(map(cell_len, lines)) <= 80, result.stdout
    failed = [line for line in lines if line.startswith("  failed ")]
    assert len(failed) == 4, result.stdout
    for name, (_, kind) in bad.items():  # grep finds each failure by its name (shown whole) and kind
        assert sum(name in line and line.endswith(kind) or f"{name}: {kind}:" in line for line in failed) == 1
    joined = " ".join(line.strip() for line in lines)
    assert TRUNCATED_REASON in joined and f"{too_long}: empty" in joined, result.stdout  # wrapped, whole
    failures = runner.invoke(app, ["failures", "--db", db, "--json"])
    assert {f["path"] for f in json.loads(failures.stdout)["failures"]} == full, failures.stdout


def test_weights_list_keeps_urls_whole_at_120_columns() -> None:
    from aesthete import weights

    lines = table_lines(["weights", "list"], 120)
    table = [line for line in lines if "://" not in line]
    assert max(map(len, table)) <= 120
    for entry in weights.list_weights():
        assert sum(entry.url in line for line in lines) == 1


def models_rows(lines: list[str]) -> list[list[str]]:
    """The words of each model's first line in the `models` table (its name first)."""
    body = lines[lines.index(next(line for line in lines if line.startswith("─"))) + 1 :]
    return [line.split() for line in body if line[:1].strip()]


def test_models_table_shows_every_model_name_whole_at_80_columns() -> None:
    from aesthete.model_info import model_names

    lines = table_lines(["models", "--no-count"], 80)
    assert max(map(len, lines)) <= 80
    first_cells = {row[0] for row in models_rows(lines)}
    assert set(model_names(scoring=True)) <= first_cells  # as `score --model` takes them: never "laion-aesth…"


def test_models_table_wraps_a_long_list_of_weights_at_80_columns(tiny_checkpoints: dict[str, Path]) -> None:
    """Many registered weights take lines in their own column; the other columns keep their room."""
    from aesthete import weights
    from aesthete.model_info import model_names

    names = {arch: [f"{arch}-ava-run-{k}" for k in range(8)] for arch in ("nima", "hla-gcn")}
    for arch, registered in names.items():
        for name in registered:
            weights.add(tiny_checkpoints[arch], name=name)
    for args in (["models"], ["models", "--no-count"]):
        lines = table_lines(args, 80)
        assert max(map(len, lines)) <= 80, "\n".join(lines)
        header = lines[0].split()
        assert header == ["model", *(["params"] if args == ["models"] else []), "backbone", "bins", "input", "weights"]
        rows = {row[0]: row for row in models_rows(lines)}
        assert set(rows) == set(model_names(scoring=True)), "\n".join(lines)
        backbone = header.index("backbone")  # the cells before it are one word on a model's first line
        assert rows["apm"][backbone] == "resnet101"  # whole, beside its model
        assert rows["laion-aesthetic"][backbone : backbone + 2] == ["-", "one"]  # "one score", not "bins 0"
        line_ends = {line.split()[-1] for line in lines if line.strip()}
        for registered in names.values():  # whole, one a line: the list wraps after its commas
            assert {f"{name}," for name in registered[:-1]} | {registered[-1]} <= line_ends, "\n".join(lines)


def test_models_table_folds_a_weights_name_too_long_for_80_columns(tiny_checkpoints: dict[str, Path]) -> None:
    """A name wider than the room left folds over lines; the table still fits and the model names stay whole."""
    from aesthete import weights
    from aesthete.model_info import model_names

    long_name = "nima-ava-resnet50-300px-sgd-lr0.01-run-of-2024-06-15"
    weights.add(tiny_checkpoints["nima"], name=long_name)
    lines = table_lines(["models"], 80)
    assert max(map(len, lines)) <= 80, "\n".join(lines)
    assert {row[0] for row in models_rows(lines)} == set(model_names(scoring=True))
    start = lines[0].index("weights")  # the last column: its cells, line after line, hold the name whole
    assert long_name in "".join(line[start:].strip() for line in lines[2:])


def test_models_table_keeps_its_headers_whole_and_gives_way_at_40_columns() -> None:
    """A new user's `models` (no weights): the header "weights" was split over two lines at 80 columns (its
    cells are "none"), the input policies got a word a line beside one-line parameter counts, and at 40
    columns every column was folded a letter or two a line."""
    from aesthete.model_info import model_names

    wide = table_lines(["models"], 80)
    assert wide[0].split() == ["model", "params", "backbone", "bins", "input", "weights"], "\n".join(wide)
    lines = table_lines(["models"], 40)
    assert max(map(len, lines)) <= 40, "\n".join(lines)
    assert lines[0].split() == ["model", "input", "weights"], "\n".join(lines)  # params, backbone, bins gave way
    rows = {row[0]: row for row in models_rows(lines)}
    assert set(rows) == set(model_names(scoring=True)), "\n".join(lines)
    assert rows["nima"][1:] == ["warp", "to", "none"], "\n".join(lines)  # whole words, beside their model


def test_models_says_which_weights_to_pull_for_the_models_that_have_none() -> None:
    from aesthete import weights

    result = runner.invoke(app, ["models", "--no-count"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert {row[-1] for row in models_rows(result.stdout.splitlines())} == {"none"}  # nothing pulled, fresh home
    pullable = [entry for entry in weights.list_weights() if entry.kind == "aesthetic" and entry.url]
    note = " ".join(result.stderr.split())  # on stderr, wrapped at 80 columns
    assert pullable and note.startswith("note: weights none: `aesthete weights pull NAME` gets")
    for entry in pullable:  # whole, as `weights pull` takes it
        assert f"{entry.name} ({entry.arch})" in note


def test_fitted_table_wraps_a_long_title_and_keeps_every_line_in_width() -> None:
    import io

    from rich.console import Console

    from aesthete.cli.common import Cells, fitted_table

    title = "27 photos ranked by nima mean score (weights a-personal-head-with-a-very-long-name)"
    table = fitted_table(
        [
            Cells("photo", [f"{DEEP}/card 1/IMG_0001.jpg", f"{DEEP}/card 2/IMG_0001.jpg"], paths=True),
            Cells("mean", ["6.04", "5.93"], justify="right"),
            Cells("flags", ["blurry, underexposed, noisy", ""], wrap=True),
            Cells("taken", ["2024-06-15 14:00", ""], drop=1),
        ],
        title,
        width=50,
    )
    console = Console(file=io.StringIO(), width=50, soft_wrap=True)  # as the commands' stdout console
    console.print(table)
    lines = console.file.getvalue().splitlines()
    assert max(map(len, lines)) <= 50 and "very-long-name)" in "\n".join(lines)
    header = next(line for line in lines if line.startswith("photo"))
    assert "flags" in header and "taken" not in header  # a column that may go gave its room to the paths
    rows = [line.split("  ")[0] for line in lines if "IMG_0001.jpg" in line]
    assert rows == ["/photos/…/card 1/IMG_0001.jpg", "/photos/…/card 2/IMG_0001.jpg"]


# A long file name beside three copies of one photo in nested folders (the field test's shoot): every
# table keeps each file name whole and tells the copies apart at any width from 40 columns.
LONG = "IMG_20240501_153012_wedding_ceremony_first_kiss_final_v2.jpg"
SHOWN = [LONG, "shoot/short.jpg", "copy/short.jpg", "copy2/short.jpg"]  # how each reads, at the least


def on_disk(folder: Path, names: list[str]) -> list[str]:
    """Empty files ``names`` under ``folder`` (`cull` never picks a file that is not on disk); their paths."""
    paths = [folder / name for name in names]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return [str(path) for path in paths]


def path_column(lines: list[str], header: str) -> str:
    """The text of the column headed ``header``, every line's slice joined: a path folded over lines
    reads whole in it, each row's path after the one before."""
    at = next(i for i, line in enumerate(lines) if header in line.split())
    start = lines[at].index(header)
    rest = lines[at][start:].split()
    end = lines[at].index(rest[1], start) if len(rest) > 1 else None
    return "".join(line[start:end].strip() for line in lines[at + 2 :])


def test_tables_keep_long_file_names_whole_and_copies_apart_at_any_width(tmp_path: Path) -> None:
    db, failed = tmp_path / "x.db", tmp_path / "failed.db"
    shoot = tmp_path / "photos" / "2024" / "shoot"
    paths = on_disk(shoot, [LONG, "short.jpg", "copy/short.jpg", "copy2/short.jpg"])
    write_library(db, paths)
    with closing(open_store(db)) as store:  # the copies: one content, so `groups` shows them as one group
        store.conn.execute("UPDATE files SET content_hash = 'h1' WHERE content_hash IN ('h2', 'h3')")
    with closing(open_store(failed)) as store:
        store.write(files=[file_row(p, 0, 1, "failed", error_kind="empty", error="file is empty (0 bytes)")
                           for p in paths])  # fmt: skip
    commands = {
        ("rank",): ("photo", SHOWN, 3),
        # one content is one photo to a cull (docs/culling.md): one of the copies, the long name whole
        ("cull", str(shoot), "--no-group", "--keep-flagged"): ("photo", [LONG], 1),
        ("groups", str(shoot)): ("photo", SHOWN[1:], 3),  # lists groups only: the long name stands alone
    }
    for columns in (40, 50, 60, 80, 120):
        for args, (header, names, copies) in [*commands.items(), (("failures",), ("path", SHOWN, 3))]:
            lines = table_lines([*args, "--db", str(failed if args[0] == "failures" else db)], columns)
            assert max(map(len, lines)) <= columns, (columns, args, "\n".join(lines))
            shown = path_column(lines, header)
            missing = [name for name in names if name not in shown]
            assert not missing and shown.count("short.jpg") == copies, (columns, args, missing, "\n".join(lines))
        if columns >= 80:  # room for the long name on one line: other columns gave way
            assert any(line.split()[1].endswith(LONG) for line in table_lines(["rank", "--db", str(db)], columns)
                       if LONG in line)  # fmt: skip
    # Nothing flagged, no capture time: those columns would only take room from the paths.
    with closing(open_store(db)) as store:
        store.conn.execute("UPDATE images SET flags = '[]', capture_time = NULL")
    header = next(line for line in table_lines(["rank", "--db", str(db)], 120) if "photo" in line.split())
    assert "flags" not in header and "taken" not in header and "std" in header


def test_a_file_name_with_a_newline_stays_on_its_row_escaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "x.db"
    monkeypatch.chdir(tmp_path)  # tables show paths relative to the working folder
    write_library(db, on_disk(tmp_path / "shoot", ["new\nline.jpg", "tab\there.jpg", "plain.jpg"]))
    for args in (["rank"], ["cull", "shoot", "--no-group", "--keep-flagged"]):
        lines = table_lines([*args, "--db", str(db)], 80)
        rows = [line for line in lines if ".jpg" in line]
        assert len(rows) == 3, "\n".join(lines)
        assert any("'shoot/new\\nline.jpg'" in row for row in rows)
        assert any("'shoot/tab\\there.jpg'" in row for row in rows)


def odd_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: list[str]) -> tuple[Path, list[str]]:
    """A database of photos ``names`` in tmp_path/shoot, run from tmp_path: (database, their paths)."""
    db = tmp_path / "x.db"
    monkeypatch.chdir(tmp_path)
    paths = on_disk(tmp_path / "shoot", names)
    write_library(db, paths)
    return db, paths


def test_paths_output_keeps_a_name_that_looks_like_a_colour_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Click strips ANSI codes from echo off a terminal: `--paths` printed shoot/escred.jpg, which does not exist.
    db, paths = odd_library(tmp_path, monkeypatch, ["esc\x1b[31mred.jpg", "plain.jpg"])
    for args in (["rank"], ["cull", "shoot", "--no-group", "--keep-flagged"]):
        result = runner.invoke(app, [*args, "--paths", "--db", str(db)])
        assert result.exit_code == 0, result.output
        assert sorted(result.stdout.splitlines()) == sorted(paths)


def test_print0_ends_each_path_with_a_nul_so_a_newline_in_a_name_survives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With --paths a name holding a newline reads as two paths to `xargs`; --print0 is what `xargs -0` reads.
    db, paths = odd_library(tmp_path, monkeypatch, ["new\nline.jpg", "plain.jpg"])
    for args in (["rank"], ["cull", "shoot", "--no-group", "--keep-flagged"]):
        result = runner.invoke(app, [*args, "--print0", "--db", str(db)])
        assert result.exit_code == 0, result.output
        assert result.stdout.endswith("\0") and sorted(result.stdout[:-1].split("\0")) == sorted(paths)
        both = runner.invoke(app, [*args, "--print0", "--paths", "--db", str(db)])
        assert both.exit_code == 2 and "cannot be used together" in both.output


def test_show_and_the_contact_sheet_quote_a_name_with_a_newline_or_colour_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `show` printed the raw name: a newline split its heading, an escape code turned the terminal red.
    db, paths = odd_library(tmp_path, monkeypatch, ["new\nline.jpg", "esc\x1b[31mred.jpg"])
    for path in paths:
        result = runner.invoke(app, ["show", path, "--db", str(db)])
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[0] == repr(path)
    result = runner.invoke(app, ["report", "--html", "sheet.html", "shoot", "--db", str(db)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "sheet.html").read_text(encoding="utf-8")
    assert "\x1b" not in page and "new\nline" not in page
    assert ">&#x27;new\\nline.jpg&#x27;</div>" in page


def test_no_table_pads_its_lines_with_trailing_spaces(tmp_path: Path) -> None:
    """Rich pads every row of a table to the table's width: unseen on a terminal, trailing spaces in a log, a
    diff or a pasted snippet. `score`'s summary was fixed first; every other table is printed the same way."""
    from imagegen import encode, scene

    photos = tmp_path / "shoot"
    photos.mkdir()
    for i in range(4):
        (photos / f"IMG_{i}.jpg").write_bytes(encode(scene(i, (96 + 8 * i, 64)), "JPEG"))
    (photos / "broken.jpg").write_bytes(b"not a photo")
    db = str(tmp_path / "t.db")
    assert runner.invoke(app, ["score", str(photos), "--db", db]).exit_code == 4  # no weights: signals only
    for command in (["rank"], ["cull", "--top", "2"], ["failures"], ["rank", "--by", "sharpness"]):
        result = runner.invoke(app, [*command, str(photos), "--db", db], env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert len(lines) >= 3 and [line for line in lines if line != line.rstrip()] == [], (command, result.stdout)
    for command in (["models"], ["weights", "list"]):
        result = runner.invoke(app, command, env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert len(lines) >= 3 and [line for line in lines if line != line.rstrip()] == [], (command, result.stdout)
    # stderr: each message one line, however narrow the terminal (Rich broke `cull`'s "picked 2 of 4, ..." at
    # the width, leaving a trailing space at the break).
    result = runner.invoke(app, ["cull", "--top", "2", str(photos), "--db", db], env={"COLUMNS": "24"})
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    picked = [line for line in lines if line.startswith("picked 2 of 4, ")]
    assert len(picked) == 1 and len(picked[0]) > 24, result.stderr
    assert [line for line in lines if line != line.rstrip()] == [], result.stderr


@pytest.mark.parametrize("soft_wrap", [True, False])
def test_print_unpadded_prints_what_print_does_less_the_trailing_spaces(soft_wrap: bool) -> None:
    """A table whose title is wider than its columns: `out` (soft_wrap) left the title whole, and the first
    print_unpadded wrapped it ("ava test, 12" / "images"), which `eval`'s test caught; its caption wider than
    the console: left whole too, where the second cropped it at 80 columns (`train`'s test caught that)."""
    from rich.console import Console
    from rich.table import Table

    from aesthete.cli.common import print_unpadded

    table = Table(
        title="model.safetensors on ava test, 12 images",
        box=None,
        caption="not the paper's setting: " + ", ".join(f"model_config.option_{n}" for n in range(6)),
    )
    table.add_column("metric")
    table.add_column("ours")
    table.add_row("srcc", "0.5000")
    table.add_row("lcc", "0.5")  # its last cell padded to the column's width
    printed, unpadded = (Console(file=io.StringIO(), width=80, soft_wrap=soft_wrap) for _ in range(2))
    printed.print(table)
    print_unpadded(unpadded, table)
    lines = printed.file.getvalue().splitlines()
    assert any(line.endswith(" ") for line in lines)  # what there is to strip
    assert unpadded.file.getvalue().splitlines() == [line.rstrip() for line in lines]
