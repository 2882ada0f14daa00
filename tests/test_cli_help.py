"""The command line's help, as a new user reads it in an 80-column terminal (issue 13, items 15 and 16)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesthete.cli import app

runner = CliRunner()
COMMANDS = [
    [], ["score"], ["rank"], ["show"], ["cull"], ["groups"], ["report"], ["learn"], ["failures"], ["models"], ["train"],
    ["eval"], ["weights"], ["weights", "list"], ["weights", "pull"], ["weights", "add"], ["weights", "verify"],
    ["weights", "remove"],
]  # fmt: skip


def help_text(command: list[str], columns: int = 80) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "aesthete")
def test_help_fits_80_columns_and_cuts_nothing(command: list[str]) -> None:
    text = help_text(command)
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert not too_wide
    assert "…" not in text  # nothing truncated: every flag name and default is whole
    assert "<bool>" not in text  # flags take no value, so none is shown
    assert "--no-no-" not in text
    assert not re.search(r"\S \[default:", text)  # set off by two spaces, as Click sets the defaults it writes
    assert not re.search(r"\(default\).*\s+\[default:", text)  # a default said once
    commands = text.split("Commands:")[1].split("\n\n")[0] if "Commands:" in text else ""
    assert not [line for line in commands.splitlines() if line.endswith("...")]  # Click's cut of a long summary


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "aesthete")
def test_arguments_are_named_in_upper_case_in_usage_and_arguments(command: list[str]) -> None:
    # Every argument reads as a metavar, PHOTO or NAME as PATHS does, in the usage line and in its own list;
    # braces ({NAME}: required) and brackets ([NAME]: optional) are Typer's marks around it.
    text = help_text(command, columns=200)
    usage = text.split("Usage: ", 1)[1].splitlines()[0]
    arguments = re.findall(r"[{\[]([^}\]]+)[}\]]", usage.split("[OPTIONS]", 1)[1])
    assert all(a == a.upper() for a in arguments), usage
    if "Arguments:" in text:
        listed = [
            line.split()[0]
            for line in text.split("Arguments:")[1].split("\n\n")[0].splitlines()[1:]
            if line.startswith("  ") and not line.startswith("   ")
        ]
        assert listed and all(a.rstrip(".") == a.rstrip(".").upper() for a in listed), listed


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "aesthete")
def test_values_are_named_for_the_user_not_by_python_type(command: list[str]) -> None:
    # Typer (0.2x) writes a value's Python type where Click wrote a metavar: `PATHS <list[Path]>`,
    # `--top <int range>`, `--set <list[str]>`. A user reads `--top N`, `--db FILE`, `--set KEY=VALUE`.
    text = help_text(command)
    assert not re.search(r"<[a-z][^<>]*>|list\[|Path\]|\b(str|int|float)\]", text), text
    options = text.split("Options:")[1].split("\n\n")[0] if "Options:" in text else ""
    values = [m[1] for m in re.finditer(r"^  (?:-\w, )?--[\w-]+ (\S+)", options, re.M) if m[1][0] not in "-["]
    assert all(v == v.upper() for v in values), values  # every value an upper-case metavar, as PATHS is


def test_argument_types_are_hidden_in_aesthetes_help_only() -> None:
    """Hiding Typer's argument types is aesthete's choice for its own commands: another Typer app in the
    same process (a user's script that imports aesthete's CLI) keeps Typer's help as Typer writes it."""
    import typer
    from typer.core import TyperArgument

    other = typer.Typer(rich_markup_mode=None)

    @other.command()
    def main(paths: list[Path]) -> None:
        """Another program's command."""

    assert "display_type_rich" not in vars(TyperArgument)  # Typer's own method, not one of aesthete's
    result = CliRunner().invoke(other, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "list[Path]" in result.output, result.output


def test_train_offers_no_pretrained_alone() -> None:
    text = help_text(["train"])
    assert re.search(r"^\s+--no-pretrained\s", text, re.M)
    assert "--pretrained" not in text.replace("--no-pretrained", "")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "aesthete")
def test_no_line_breaks_at_a_hyphen(command: list[str]) -> None:
    # A flag's name is whole on one line, also in the default Click writes: `cull --help` at 80 columns ended
    # a line in "[default: no-clear-" (and `train --help` in "no-" twice), the rest of the name below.
    for columns in (80, 60):
        text = help_text(command, columns=columns)
        assert not re.search(r"\w-\n", text), (columns, re.findall(r".*\w-\n.*", text))


def test_docstring_paragraphs_reflow_to_the_width() -> None:
    # A paragraph's lines are filled to the width: a line ending early inside a paragraph (a hard break
    # in the docstring) would leave room for the next line's first word.
    for command in (["score"], ["cull"], ["train"]):
        text = help_text(command, columns=60)
        description = text.split("\n\n", 1)[1].split("\nArguments:")[0].split("\nOptions:")[0]
        for paragraph in description.strip("\n").split("\n\n"):
            lines = paragraph.splitlines()
            for line, following in zip(lines, lines[1:]):
                assert len(line) + 1 + len(following.split()[0]) > 60, (command, line)


def test_score_shows_defaults_for_model_batch_and_workers() -> None:
    text = " ".join(help_text(["score"], columns=200).split())
    for flag, default in (
        ("--model", "the best model whose weights you have"),
        ("--batch-size", "64 on CUDA, else 8"),
        ("--workers", "one per core"),
    ):
        assert re.search(rf"{flag} .*?\[default: \({re.escape(default)}\)", text), flag


def test_version_and_database_path_in_help(tmp_path) -> None:  # noqa: ANN001
    from aesthete.cli import package_version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"aesthete {package_version()}"
    assert help_text([], columns=200).count("Database: ") == 1
