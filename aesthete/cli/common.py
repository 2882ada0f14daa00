"""What every command shares: the database option, consoles, exit codes, error reporting and tables.

Errors: every error the library raises on purpose is an :class:`aesthete.errors.AestheteError`.
:func:`library_errors` (a context manager and a decorator) turns one into a one-line message on stderr
and the exit code :data:`EXIT_CODES` gives its class; commands use it instead of catching built-in
exception types.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aesthete.errors import AestheteError, NothingToDoError
from aesthete.weights import ChecksumMismatch

if TYPE_CHECKING:
    from aesthete.select import Ranking

# stdout carries results (tables, --json, --paths); progress and messages go to stderr.
out = Console(soft_wrap=True)
err = Console(stderr=True)


class Exit(IntEnum):
    """Exit codes, documented in the README."""

    OK = 0  # everything asked for was done
    SOME_FAILED = 1  # some photos could not be read; the rest were scored
    USAGE = 2  # bad option, unknown model, unusable database or device
    NOTHING_USABLE = 3  # no photos found, or none could be read
    NO_WEIGHTS = 4  # no weights for the model: technical signals only, no aesthetic scores
    INTERRUPTED = 130  # Ctrl-C; finished photos are saved


DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db", envvar="AESTHETE_DB", help="Database file (default: the XDG data directory).", show_default=False
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
PathsArgument = Annotated[
    list[Path] | None, typer.Argument(metavar="PATHS", help="Only photos under these folders.", show_default=False)
]
# rank, cull, groups, report and show read the scores `score` would write with the same two options.
ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Read this model's scores (as `score --model`).", show_default="as score"),
]
WeightsOption = Annotated[
    str | None,
    typer.Option(
        "--weights",
        "-w",
        help="Read the scores of these weights: NAME or checkpoint PATH (as `score --weights`).",
        show_default="score's default",
    ),
]
WeightsOption = Annotated[
    str | None,
    typer.Option("--weights", "-w", help="Use the scores of these weights (e.g. a personal head from `learn`)."),
]
PathsOnly = Annotated[bool, typer.Option("--paths", help="Print bare paths, one per line (for pipes).")]

# The fields of a photo row that --json prints (``rank``, ``cull``), and the flat ones --csv prints.
# ``score`` is the number ranked on; ``output`` says whether it is a distribution's mean or a score model's
# one score (then mean, std, p_high and dist are null: see ``aesthete.select.public_row``).
ROW_FIELDS = (
    "path", "score", "output", "mean", "std", "p_high", "dist", "model", "technical", "sharpness", "clipped_shadows",
    "clipped_highlights", "mean_luma", "noise", "flags", "capture_time", "make", "camera", "lens", "width", "height",
    "companions", "face_count", "faces",
)  # fmt: skip
CSV_FIELDS = tuple(f for f in ROW_FIELDS if f not in ("dist", "flags", "companions", "faces"))


# The one mapping from library errors to exit codes: the first class of an error's MRO listed here
# decides, and every other AestheteError is a usage problem (unknown model, bad option, unusable database,
# device or checkpoint). A new error type gets a line here only when it needs another code.
EXIT_CODES: dict[type[AestheteError], Exit] = {
    NothingToDoError: Exit.NOTHING_USABLE,
    ChecksumMismatch: Exit.SOME_FAILED,  # a file failed its sha256 check, as `weights verify` reports it
}


def fail(message: str, code: Exit = Exit.USAGE) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)  # one line, however long
    raise typer.Exit(int(code))


def exit_code(error: AestheteError) -> Exit:
    """The exit code for ``error``, from :data:`EXIT_CODES`."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return Exit.USAGE


def one_line(error: BaseException) -> str:
    """The error's first non-empty line (a message never spills over several), or its class name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else error.__class__.__name__


def fail_with(error: AestheteError) -> NoReturn:
    """Exit with ``error``'s one-line message (markup-escaped: a path may hold ``[brackets]``) and code."""
    fail(escape(one_line(error)), exit_code(error))


@contextmanager
def library_errors() -> Iterator[None]:
    """Library errors become one-line messages and exit codes, never tracebacks. Use as ``with
    library_errors():`` around library calls, or as ``@library_errors()`` on a command function."""
    try:
        yield
    except AestheteError as error:
        fail_with(error)


@contextmanager
def opened_store(db: Path | None) -> Iterator[Any]:
    """Open the database or exit with a one-line reason, also when damage shows only once it is read."""
    import sqlite3

    from aesthete.store import open_store

    with library_errors():
        store = open_store(db)
    try:
        yield store
    except sqlite3.DatabaseError as exc:
        fail(escape(database_problem(exc, store.path)))
    finally:
        store.close()


# SQLite's primary result codes (https://www.sqlite.org/rescode.html): only these two mean the file itself is
# damaged; BUSY and LOCKED mean another connection holds a lock.
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_NOTADB = 5, 6, 11, 26


def database_problem(exc: BaseException, path: object) -> str:
    """A one-line message for an SQLite error met while using the database at ``path``: only real damage
    says "damaged" (with what to do), a lock says to wait, anything else is reported as the error it is."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+; the message decides on 3.10
    primary = code & 0xFF if isinstance(code, int) else None
    text = one_line(exc)
    lowered = text.lower()
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or (
        primary is None and ("malformed" in lowered or "not a database" in lowered)
    ):
        return (
            f"database {path} is damaged ({text}); aesthete leaves it as it is: restore a backup, "
            "or move it aside and score again (`sqlite3 FILE .recover` can save what is readable)"
        )
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or (primary is None and "locked" in lowered):
        return f"database {path} is locked by another program or aesthete run ({text}); try again when it has finished"
    return f"database error on {path}: {text} (the database is left as it is)"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    from aesthete.select import public_row

    writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(public_row(row, columns) for row in rows)


def print_notes(notes: Sequence[str]) -> None:
    """A ranking's notes (fallbacks, photos left out) on stderr, where they never mix with results."""
    for note in notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)


def display_path(path: str) -> str:
    """A table's short form of a path: relative to the working folder when inside it, else ``~/...``.
    JSON, CSV and --paths keep absolute paths for scripts."""
    cwd = os.getcwd()
    if path.startswith(cwd.rstrip(os.sep) + os.sep):
        return os.path.relpath(path, cwd)
    home = os.path.expanduser("~")
    return "~" + path[len(home) :] if home != os.sep and path.startswith(home + os.sep) else path


def scores_label(ranking: Ranking) -> str:
    """``model (weights NAME)``: what a table's title says the scores came from."""
    if ranking.key is None:
        return "no aesthetic scores"
    return f"{ranking.key.model} (weights {ranking.weights or ranking.key.weights_id})"


def scores_header(ranking: Ranking) -> dict[str, Any]:
    """The fields every JSON output that ranks photos starts with: what it was ranked by, on whose scores."""
    return {
        "by": ranking.by, "basis": ranking.basis, "model": ranking.key.model if ranking.key else None,
        "weights": ranking.weights if ranking.key else None, "output": ranking.output,
    }  # fmt: skip


def ranking_table(rows: list[dict[str, Any]], ranking: Ranking, title: str) -> Table:
    """The table ``rank`` and ``cull`` print: place, photo, scores, flags, capture time (and group)."""
    scalar = ranking.output == "score"  # a score model: one number, no distribution, no spread
    if ranking.basis == "aesthetic":  # the model and its weights, named as `score --weights` takes them
        column = ("score" if scalar else "mean score") if ranking.by == "mean" else ranking.by
        basis = f"{ranking.key.model} {column} (weights {ranking.weights or ranking.key.weights_id})"
    else:
        basis = "technical quality" if ranking.by == "technical" else ranking.by
    table = Table(title=f"{len(rows)} photos {title} by {basis}")
    table.add_column("#", justify="right")
    shown = [display_path(row["path"]) for row in rows]
    # Paths are what people read first: give them room before the numeric columns get theirs.
    table.add_column("photo", overflow="fold", min_width=min(60, max(map(len, shown), default=5)))
    if ranking.basis == "aesthetic":
        table.add_column("score" if scalar else "mean", justify="right")
        if not scalar:
            table.add_column("std", justify="right")
    table.add_column("technical", justify="right")
    table.add_column("flags")
    table.add_column("taken")
    grouped = any(row.get("group_size", 1) > 1 for row in rows)  # cull: which picks won over a burst
    if grouped:
        table.add_column("group")
    for index, (row, path) in enumerate(zip(rows, shown), start=1):
        cells = [str(index), path]
        if ranking.basis == "aesthetic":
            cells += [f"{row['mean']:.2f}"] if scalar else [f"{row['mean']:.2f}", f"{row['std']:.2f}"]
        cells += [f"{row['technical']:.2f}", ", ".join(row["flags"]), (row["capture_time"] or "")[:16]]
        if grouped:
            cells.append(f"{row['group']} (best of {row['group_size']})" if row["group_size"] > 1 else "")
        table.add_row(*cells)
    return table
