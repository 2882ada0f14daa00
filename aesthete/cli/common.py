"""What every command shares: the database option, consoles, exit codes and error reporting."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

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


def fail(message: str, code: Exit = Exit.USAGE) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)  # one line, however long
    raise typer.Exit(int(code))


@contextmanager
def opened_store(db: Path | None) -> Iterator[Any]:
    """Open the database or exit with a one-line reason, also when damage shows only once it is read."""
    import sqlite3

    from aesthete.store import StoreError, open_store

    try:
        store = open_store(db)
    except StoreError as exc:
        fail(str(exc))
    try:
        yield store
    except sqlite3.DatabaseError as exc:
        fail(
            f"database {store.path} is damaged ({exc}); aesthete leaves it as it is: restore a backup, "
            "or move it aside and score again (`sqlite3 FILE .recover` can save what is readable)"
        )
    finally:
        store.close()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
