"""The one mapping from library errors to a one-line CLI error and an exit code."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import aesthete
from aesthete.cli import app
from aesthete.cli.common import EXIT_CODES, Exit, exit_code, library_errors, one_line
from aesthete.errors import AestheteError, NothingToDoError, OptionError
from aesthete.store import Store
from aesthete.weights import ChecksumMismatch, UnknownWeights, WeightsError

runner = CliRunner()


def _every_library_error() -> set[type[AestheteError]]:
    for info in pkgutil.walk_packages(aesthete.__path__, "aesthete."):
        if info.name.startswith("aesthete.cli") or info.name.endswith("__main__"):  # __main__ runs the CLI
            continue
        importlib.import_module(info.name)
    found: set[type[AestheteError]] = set()
    todo = [AestheteError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_library_error_maps_to_a_documented_exit_code() -> None:
    errors = _every_library_error()
    names = {cls.__name__ for cls in errors}
    # The family the issue names, all found below AestheteError.
    assert {"StoreError", "WeightsError", "CheckpointError", "EngineError", "RecipeError", "DatasetError",
            "TrainingError", "XmpError", "UnknownModelError", "OptionError", "NothingToDoError"} <= names  # fmt: skip
    for cls in errors:
        assert exit_code(cls.__new__(cls)) in (Exit.USAGE, Exit.NOTHING_USABLE, Exit.SOME_FAILED), cls
    assert set(EXIT_CODES) <= errors


def test_exit_codes_follow_the_class_hierarchy() -> None:
    class NoPhotosHere(NothingToDoError):
        pass

    assert exit_code(NothingToDoError("nothing scored yet")) == Exit.NOTHING_USABLE
    assert exit_code(NoPhotosHere("none")) == Exit.NOTHING_USABLE  # a subclass inherits its parent's code
    assert exit_code(ChecksumMismatch("changed")) == Exit.SOME_FAILED
    assert exit_code(UnknownWeights("no such weights")) == Exit.USAGE
    assert exit_code(WeightsError("bad registry")) == Exit.USAGE
    assert exit_code(OptionError("bad")) == Exit.USAGE


def test_one_line_takes_the_first_nonempty_line() -> None:
    assert one_line(OptionError("\n  first\nsecond")) == "first"
    assert one_line(OptionError("")) == "OptionError"


def test_library_errors_prints_one_line_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exited, library_errors():
        raise NothingToDoError("nothing here [bold]at all[/bold]\nsecond line")
    assert exited.value.exit_code == Exit.NOTHING_USABLE
    err = capsys.readouterr().err
    # One line, and a message's brackets are text, not Rich markup.
    assert err.strip() == "error: nothing here [bold]at all[/bold]"
    with pytest.raises(ValueError), library_errors():  # only the AestheteError family is mapped
        raise ValueError("a bug, not a user error: the traceback is wanted")


def test_library_errors_decorates_a_typer_command() -> None:
    command = typer.Typer()

    @command.command()
    @library_errors()
    def run(count: int = typer.Option(1)) -> None:
        raise ChecksumMismatch(f"{count} file changed\ndetails")

    result = runner.invoke(command, ["--count", "3"])
    assert result.exit_code == Exit.SOME_FAILED and "3 file changed" in result.output
    assert "details" not in result.output and "Traceback" not in result.output


def test_only_score_creates_the_database(tmp_path: Path) -> None:
    """A mistyped --db: every command that reads what `score` saved says there is none, and makes nothing."""
    db = tmp_path / "typo" / "a.db"
    for command in (["rank"], ["show", str(tmp_path)], ["cull", "--top", "3"], ["groups"], ["failures"],
                    ["report", "--html", str(tmp_path / "r.html")], ["learn", "--name", "me"]):  # fmt: skip
        result = runner.invoke(app, [*command, "--db", str(db)])
        assert result.exit_code == Exit.NOTHING_USABLE, (command, result.output)
        assert f"nothing scored yet: no database at {db}" in result.output and "Traceback" not in result.output
        assert not (tmp_path / "typo").exists(), command
    made = runner.invoke(app, ["score", str(tmp_path), "--db", str(db)])
    assert made.exit_code == Exit.NOTHING_USABLE and db.is_file()  # an empty folder, yet a database to fill


def test_commands_map_library_errors(tmp_path: Path) -> None:
    db = str(tmp_path / "a.db")
    Store(db).close()  # an empty database
    empty = runner.invoke(app, ["cull", "--db", db])
    assert empty.exit_code == Exit.NOTHING_USABLE and "nothing scored yet" in empty.output
    for command in (["groups"], ["report", "--html", str(tmp_path / "r.html")]):
        result = runner.invoke(app, [*command, "--db", db])
        assert result.exit_code == Exit.NOTHING_USABLE and "nothing scored yet" in result.output, command
    listing = runner.invoke(app, ["rank", "--db", db])  # a listing: empty, exit 0, and the first step named
    assert listing.exit_code == Exit.OK and "nothing scored yet: run `aesthete score FOLDER` first" in listing.output
    assert "technical quality" not in listing.stderr
    bad_key = runner.invoke(app, ["rank", "--by", "colour", "--db", db])
    assert bad_key.exit_code == Exit.USAGE and "unknown sort key 'colour'" in bad_key.output
    assert "Traceback" not in bad_key.output
    both = runner.invoke(app, ["cull", str(tmp_path), "--top", "2", "--keep", "10%", "--db", db])
    assert both.exit_code == Exit.USAGE and "either --top or --keep" in both.output
    stars = runner.invoke(app, ["cull", "--stars", "--db", db])
    assert stars.exit_code == Exit.USAGE and "only apply with --xmp" in stars.output
    mode = runner.invoke(app, ["cull", "--mode", "move", "--db", db])
    assert mode.exit_code == Exit.USAGE and "--mode must be one of" in mode.output


def test_cull_groups_and_report_exit_3_when_nothing_was_scored(tmp_path: Path) -> None:
    """A database where every file failed, or where `score` found nothing, leaves nothing to work on (exit 3,
    one line), and the line points to `aesthete failures` for files that were found but could not be read."""
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "zero.jpg").write_bytes(b"")
    (tmp_path / "bad" / "notimage.jpg").write_bytes(b"text")
    (tmp_path / "empty").mkdir()
    bad, empty = str(tmp_path / "bad.db"), str(tmp_path / "empty.db")
    assert runner.invoke(app, ["score", str(tmp_path / "bad"), "--db", bad]).exit_code == Exit.NOTHING_USABLE
    assert runner.invoke(app, ["score", str(tmp_path / "empty"), "--db", empty]).exit_code == Exit.NOTHING_USABLE
    failures = (
        f"no photo under {tmp_path / 'bad'} could be read: 2 files failed (`aesthete failures {tmp_path / 'bad'}`"
    )
    for db, says in ((bad, failures), (empty, f"`aesthete score` found no photos under {tmp_path / 'empty'}")):
        for command in (["cull"], ["groups"], ["report", "--html", str(tmp_path / "r.html")]):
            result = runner.invoke(app, [*command, "--db", db], env={"COLUMNS": "80"})
            assert result.exit_code == Exit.NOTHING_USABLE, (db, command, result.output)
            assert result.stderr == f"error: {says}" + result.stderr.split(says)[1], result.stderr
            assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == "", (command, result.output)
    assert not (tmp_path / "r.html").exists()
    # `rank` lists it empty (exit 0), with the same pointer; a folder never scanned still says to score it.
    (tmp_path / "other").mkdir()
    listing = runner.invoke(app, ["rank", str(tmp_path / "bad"), str(tmp_path / "other"), "--db", bad])
    assert listing.exit_code == Exit.OK and failures in listing.stderr
    assert f"no photos under {tmp_path / 'other'} in the database: run `aesthete score` on it first" in listing.stderr
    whole = runner.invoke(app, ["rank", "--db", bad])
    assert "no photo could be read: 2 files failed (`aesthete failures` says why)" in whole.stderr


def test_conflicting_output_flags_are_a_usage_error_before_anything_is_done(tmp_path: Path) -> None:
    from test_cli_tables import write_library

    db = str(tmp_path / "x.db")
    write_library(tmp_path / "x.db")
    rejects = tmp_path / "rejects"
    for args in (["rank", "--json", "--csv"], ["rank", "--paths", "--json"], ["rank", "--csv", "--paths"],
                 ["cull", "--json", "--paths", "--move-rejects", str(rejects)]):  # fmt: skip
        result = runner.invoke(app, [*args, "--db", db])
        assert result.exit_code == Exit.USAGE, (args, result.output)
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, (args, result.output)
        assert "cannot be used together: choose one output" in result.stderr
    assert not rejects.exists()  # refused before any file action
    both = runner.invoke(app, ["rank", "--json", "--csv", "--paths", "--db", db])
    assert "--json and --csv and --paths cannot be used together" in both.stderr


def test_cull_refuses_an_export_or_rejects_folder_that_is_a_file(tmp_path: Path) -> None:
    from test_cli_tables import write_library

    db = str(tmp_path / "x.db")
    write_library(tmp_path / "x.db")
    taken = tmp_path / "photo_copy.jpg"
    taken.write_bytes(b"a photo")
    for option in ("--export", "--move-rejects"):
        result = runner.invoke(app, ["cull", "/photos", option, str(taken), "--db", db])
        assert result.exit_code == Exit.USAGE, (option, result.output)
        assert result.stderr == f"error: {option}: {taken} is a file, not a folder\n" and result.stdout == ""
    assert taken.read_bytes() == b"a photo"
    with pytest.raises(OptionError, match="is a file, not a folder"):
        aesthete.CullOptions(export=str(taken))


def test_score_refuses_an_unknown_device_even_when_no_model_is_loaded(tmp_path: Path) -> None:
    from aesthete.devices import EngineError, check_device_name

    for good in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        check_device_name(good)
    for bad in ("tpu", "gpu0", "cuda:", "cuda:x", "CPU", "cpu:0"):
        with pytest.raises(EngineError, match="unknown device"):
            check_device_name(bad)
    (tmp_path / "empty").mkdir()
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.png").write_bytes(b"")  # found, fails to read: nothing needs a model either
    for folder in ("empty", "one"):
        result = runner.invoke(
            app, ["score", str(tmp_path / folder), "--device", "tpu", "--db", str(tmp_path / "x.db")]
        )
        assert result.exit_code == Exit.USAGE, (folder, result.output)
        # One line: no progress display on a non-terminal (it left an empty line before the error)
        assert result.stderr == "error: unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps\n"
    # --precision and --compile too (the field test's typos exited 0 with every photo cached)
    for option, value, said in [("--precision", "fp61", "unknown precision 'fp61'; use one of auto, fp32, bf16, fp16"),
                                ("--compile", "onn", "unknown --compile 'onn'; use auto, on or off")]:  # fmt: skip
        result = runner.invoke(app, ["score", str(tmp_path / "one"), option, value, "--db", str(tmp_path / "x.db")])
        assert result.exit_code == Exit.USAGE and result.stderr == f"error: {said}\n", result.output
