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
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console, JustifyMethod, RenderableType
from rich.markup import escape
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from aesthete.errors import AestheteError, NothingToDoError
from aesthete.weights import ChecksumMismatch
from aesthete.wording import counted, printable  # (the commands import them from here too)

if TYPE_CHECKING:
    from aesthete.select import Ranking

# stdout carries results (tables, --json, --paths); progress and messages go to stderr.
out = Console(soft_wrap=True)
# Messages on stderr are one line each, however long (the terminal wraps them): Rich breaking them at the width
# left a trailing space at each break, in a log or a pasted snippet (field test: `cull`'s "picked ..." line).
err = Console(stderr=True, soft_wrap=True)


class Exit(IntEnum):
    """Exit codes, documented in the README."""

    OK = 0  # everything asked for was done
    SOME_FAILED = 1  # some photos could not be read; the rest were scored
    USAGE = 2  # bad option, unknown model, unusable database or device
    NOTHING_USABLE = 3  # no photos found, or none could be read
    NO_WEIGHTS = 4  # no weights for the model: technical signals only, no aesthetic scores
    INTERRUPTED = 130  # Ctrl-C; finished photos are saved
    BROKEN_PIPE = 141  # the reader of the output went away (`| head`): 128 + SIGPIPE, as a shell shows git's


DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        envvar="AESTHETE_DB",
        metavar="FILE",
        help="Database file (default: the XDG data directory).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
PathsArgument = Annotated[
    list[Path] | None, typer.Argument(metavar="PATHS", help="Only photos under these folders.", show_default=False)
]
# rank, cull, groups, report and show read the scores `score` would write with the same two options.
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", metavar="NAME", help="Read this model's scores (as `score --model`).", show_default="as score"
    ),
]
WeightsOption = Annotated[
    str | None,
    typer.Option(
        "--weights",
        "-w",
        metavar="NAME|PATH",
        help="Read the scores of these weights: NAME (a personal head from `learn` too) or checkpoint PATH "
        "(as `score --weights`).",
        show_default="score's default",
    ),
]
PathsOnly = Annotated[bool, typer.Option("--paths", help="Print bare paths, one per line (for pipes).")]
Print0 = Annotated[
    bool, typer.Option("--print0", help="Print bare paths, each ended by a NUL byte (for xargs -0): any name.")
]

# The fields of a photo row that --json prints (``rank``, ``cull``), and the flat ones --csv prints.
# ``score`` is the number ranked on; ``output`` says whether it is a distribution's mean or a score model's
# one score (then mean, std, p_high and dist are null: see ``aesthete.select.public_row``).
ROW_FIELDS = (
    "path", "score", "output", "mean", "std", "p_high", "dist", "model", "technical", "sharpness", "clipped_shadows",
    "clipped_highlights", "mean_luma", "noise", "flags", "capture_time", "capture_time_source", "make", "camera",
    "lens", "width", "height", "companions", "face_count", "faces",
)  # fmt: skip
# CSV has one value per cell: flags and companions are joined with "; ", and the distribution follows the
# other columns as one column per bin, p1..pN (see :func:`print_csv`); the faces (records of several
# fields each) are JSON-only, their count is a column.
CSV_FIELDS = tuple(f for f in ROW_FIELDS if f not in ("dist", "faces"))
CSV_JOIN = "; "


# The one mapping from library errors to exit codes: the first class of an error's MRO listed here
# decides, and every other AestheteError is a usage problem (unknown model, bad option, unusable database,
# device or checkpoint). A new error type gets a line here only when it needs another code.
EXIT_CODES: dict[type[AestheteError], Exit] = {
    NothingToDoError: Exit.NOTHING_USABLE,
    ChecksumMismatch: Exit.SOME_FAILED,  # a file failed its sha256 check, as `weights verify` reports it
}


def print_unpadded(console: Console, renderable: RenderableType) -> None:
    """Print ``renderable`` (a table) without the spaces Rich pads each of its lines with to its full width:
    unseen on a terminal, they are trailing spaces in a log file, a diff or a pasted snippet."""
    options = console.options
    if console.soft_wrap:  # as console.print renders it there: titles and captions left whole, lines not cropped
        lines = Segment.split_lines(console.render(renderable, options.update(no_wrap=True, overflow="ignore")))
    else:
        lines = console.render_lines(renderable, options, pad=False)
    for line in lines:
        text = Text.assemble(*((segment.text, segment.style) for segment in line if not segment.control))
        text.rstrip()
        console.print(text, soft_wrap=True)  # (already fitted to the width: not wrapped again)


def fail(message: str, code: Exit = Exit.USAGE) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)  # one line, however long
    raise typer.Exit(int(code))


def reachable(path: Path) -> bool:
    """Whether ``path`` exists; one behind a folder that cannot be opened is a one-line error, where
    ``Path.exists`` raises PermissionError (field test: a traceback from `score locked/a.jpg`)."""
    try:
        return path.exists()
    except OSError as error:
        fail(f"{path}: cannot be opened ({error.strerror or error})")


def one_output(**chosen: bool) -> None:
    """Exit with a usage error when more than one output format is asked for (``json=True, csv=True``):
    one of them would be printed and the others silently ignored. Called first, before any work."""
    given = [f"--{name}" for name, on in chosen.items() if on]
    if len(given) > 1:
        fail(f"{' and '.join(given)} cannot be used together: choose one output")


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
def opened_store(db: Path | None, *, create: bool = False, writes: bool = True) -> Iterator[Any]:
    """Open the database or exit with a one-line reason, also when damage shows only once it is read.
    Only ``score`` creates it (``create``): for the others a missing database is nothing scored yet. A
    command that only reads (``writes=False``) can browse a database in a read-only folder."""
    import sqlite3

    from aesthete.store import open_store

    with library_errors():
        store = open_store(db, create=create, writes=writes)
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


def paths_end(paths_only: bool, print0: bool) -> str | None:
    """What ends each path with ``--paths`` (a newline) or ``--print0`` (a NUL byte, as ``find -print0``:
    a file name may hold a newline, never a NUL); None when neither was asked for."""
    return "\0" if print0 else "\n" if paths_only else None


def print_paths(rows: Sequence[dict[str, Any]], end: str = "\n") -> None:
    """``--paths``/``--print0``: each row's path on disk, followed by ``end``, exactly as named:
    ``color=True`` keeps Click from stripping what looks like a colour code (``\x1b[31m``) off a file name
    when stdout is not a terminal, which would hand a script a path that does not exist."""
    for row in rows:
        typer.echo(row["real_path"] + end, nl=False, color=True)


def print_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """``rows`` as CSV, one value per cell as a spreadsheet wants it: lists (flags, companions) joined with
    "; ", and a predicted distribution as one column per bin, ``p1``..``pN``, after ``columns``."""
    from aesthete.select import public_row

    views = [public_row(row, (*columns, "dist")) for row in rows]
    bins = max((len(view["dist"]) for view in views if view["dist"]), default=0)
    names = [f"p{i}" for i in range(1, bins + 1)]
    writer = csv.DictWriter(sys.stdout, fieldnames=[*columns, *names], extrasaction="ignore")
    writer.writeheader()
    for view in views:
        cells = {k: CSV_JOIN.join(v) if isinstance(v, list) else v for k, v in view.items() if k != "dist"}
        writer.writerow({**cells, **dict(zip(names, view["dist"] or []))})


def print_notes(notes: Sequence[str]) -> None:
    """A ranking's notes (fallbacks, photos left out) on stderr, where they never mix with results."""
    for note in notes:
        # soft_wrap: the terminal wraps a long note, so a command in it is never broken by a newline
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


def display_path(path: str) -> str:
    """A table's short form of a path: relative to the working folder when inside it, else ``~/...``; a
    path with a character that cannot be shown (a newline, a tab, an escape code) is shown quoted with
    that character escaped, as Python writes it (``'a\\nb.jpg'``), so it stays on its table row. JSON,
    CSV and --paths keep absolute paths for scripts."""
    cwd = os.getcwd()
    home = os.path.expanduser("~")
    if path.startswith(cwd.rstrip(os.sep) + os.sep):
        path = os.path.relpath(path, cwd)
    elif home != os.sep and path.startswith(home + os.sep):
        path = "~" + path[len(home) :]
    return printable(path)


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


def shorten_path(path: str, width: int, keep: int = 0) -> str:
    """``path`` in at most ``width`` cells, cut from the middle: as many of the folders nearest the file as
    fit (at least ``keep`` of them), then its first folder where it fits too, and the file name, always
    whole (``2024/…/card 1/IMG_0042.jpg``). The end of a path tells photos apart, so it is never cut; what
    cannot fit even so (a long file name, ``keep`` folders) comes back longer than ``width``."""
    if cell_len(path) <= width:
        return path
    parts = path.split(os.sep)
    # "/photos" or "~/Pictures" lead a path: the root alone would say nothing.
    lead = 2 if parts[0] in ("", "~") and len(parts) > 2 else 1
    head, folders, name = os.sep.join(parts[:lead]), parts[lead:-1], parts[-1]
    if keep >= len(folders):  # nothing in the middle may go: the whole path
        return path
    tail = [name]
    for count in range(len(folders) - 1, keep - 1, -1):  # the most folders first
        tail = [*folders[len(folders) - count :], name]
        # The folders nearest the file tell it apart: they stay before the first folder does.
        for shortened in (os.sep.join([head, ELLIPSIS, *tail]), os.sep.join([ELLIPSIS, *tail])):
            if cell_len(shortened) <= width:
                return shortened
    return os.sep.join([ELLIPSIS, *tail])


def shorten_paths(paths: Sequence[str], width: int) -> list[str]:
    """``paths`` shortened from the middle to ``width`` cells each (:func:`shorten_path`); two different
    paths that would read alike keep more of their folders until they differ (whole, if need be)."""
    keep = dict.fromkeys(paths, 0)
    while True:
        shown = {path: shorten_path(path, width, kept) for path, kept in keep.items()}
        readers: dict[str, list[str]] = {}
        for path, text in shown.items():
            readers.setdefault(text, []).append(path)
        alike = [path for group in readers.values() if len(group) > 1 for path in group]
        if not alike:
            return [shown[path] for path in paths]
        for path in alike:  # ends when they differ: at the latest, once every path is shown whole
            keep[path] += 1


@dataclass
class Cells:
    """One column of a table that :func:`fitted_table` fits to the terminal's width."""

    header: str
    cells: list[str]
    # 0: always shown (unless every cell is empty). Otherwise dropped, smallest first, while the paths would
    # get too little room.
    drop: int = 0
    justify: JustifyMethod = "left"
    wrap: bool = False  # the cells may wrap over lines (flags, reasons) rather than widen the table
    min_width: int | None = None  # with wrap: the narrowest it gets (default: its longest word)
    paths: bool = False  # the one column of paths: shortened from the middle to the room the others leave

    def natural(self) -> int:
        return max(map(cell_len, [self.header, *self.cells]))

    def least(self, squeezed: bool = False) -> int:
        """The narrowest this column gets; ``squeezed`` (the paths need its room for their file names): a
        wrapping column down to :data:`WRAP_ROOM`."""
        if not self.wrap:
            return self.natural()
        longest_word = max((cell_len(word) for text in [self.header, *self.cells] for word in text.split()), default=1)
        # A min_width narrower than the header would split the header's word ("weigh" over "ts").
        wanted = longest_word if self.min_width is None else max(self.min_width, cell_len(self.header))
        least = min(self.natural(), wanted)
        return min(least, WRAP_ROOM) if squeezed else least


# Columns are dropped until the paths get this many cells, or all they need: a path is what a photographer
# reads first, and below ~30 cells it is little more than the file name. Whatever the width, they are dropped
# until every file name fits whole on its line, if they can be.
PATH_ROOM = 30
WRAP_ROOM = 10  # a wrapping column squeezed for the file names: a word or two a line, long words folded
ELLIPSIS = "…"


def _gaps(columns: int) -> int:
    """Cells between the columns of :func:`fitted_table`'s table: a divider and one cell of padding each."""
    return 2 * (columns - 1)


def fitted_table(
    columns: Sequence[Cells], title: str | None = None, width: int | None = None, sections: Collection[int] = ()
) -> Table:
    """A table of ``columns`` whose every line fits ``width`` (default: the terminal's), its paths' file
    names whole and no two paths alike: columns with nothing in them are left out, columns that may go are
    dropped (lowest ``drop`` first) while the paths would get under :data:`PATH_ROOM` cells or too few for
    their file names, the paths are shortened from the middle (:func:`shorten_paths`) to the room left,
    and wrapping columns share what remains (where even their longest words do not fit, the widest folds
    its words first). A path that cannot fit even so folds over lines, whole. An
    empty line follows each row whose index is in ``sections``. ``rank``, ``cull``, ``failures``,
    ``groups`` and ``models`` draw their tables with it."""
    width = width or out.width
    shown = [c for c in columns if c.paths or any(c.cells)]
    path_column = next((c for c in shown if c.paths), None)

    def room(kept: list[Cells], squeezed: bool = False) -> int:
        return width - _gaps(len(kept)) - sum(c.least(squeezed) for c in kept if not c.paths)

    narrowest = wanted = 0
    if path_column is not None:  # every file name whole (the narrowest forms), and PATH_ROOM where it helps
        narrowest = max(map(cell_len, [path_column.header, *shorten_paths(path_column.cells, 0)]))
        wanted = max(narrowest, min(PATH_ROOM, path_column.natural()))
    while room(shown) < wanted and any(c.drop for c in shown):
        shown.remove(min((c for c in shown if c.drop), key=lambda c: c.drop))
    squeezed = room(shown) < narrowest  # then the wrapping columns give up room too
    space = max(room(shown, squeezed), 1)
    if path_column is not None:
        path_column = replace(path_column, cells=shorten_paths(path_column.cells, space))
        shown = [path_column if c.paths else c for c in shown]
    widths = [min(c.natural(), space) if c.paths else c.least(squeezed) for c in shown]
    spare = width - _gaps(len(shown)) - sum(widths)
    while spare < 0:  # too narrow even for whole words: the widest wrapping column folds its words first
        widest = max((i for i, c in enumerate(shown) if c.wrap and widths[i] > 1), key=widths.__getitem__, default=None)
        if widest is None:
            break
        widths[widest] -= 1
        spare += 1
    # What is left widens the wrapping columns, up to all they need, a cell each in turn: given in column order,
    # the first took it all (`models`: parameter counts on one line, the input policies a word a line).
    while spare > 0 and (wanting := [i for i, c in enumerate(shown) if c.wrap and widths[i] < c.natural()]):
        for index in wanting[:spare]:
            widths[index] += 1
            spare -= 1
    table = Table(
        title=Text(title, no_wrap=False, overflow="fold") if title else None,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
        pad_edge=False,
        min_width=min(cell_len(title), width) if title else None,
    )
    for column, column_width in zip(shown, widths):
        # Fixed widths: the sums above are what Rich draws, so no line can outgrow ``width``; a path wider
        # than its column folds over lines rather than losing its end.
        table.add_column(
            column.header,
            justify=column.justify,
            width=column_width,
            no_wrap=not (column.wrap or column.paths),
            overflow="fold",
        )
    for index, cells in enumerate(zip(*(c.cells for c in shown))):
        # as written: a path or a reason may hold [brackets], never markup
        table.add_row(*map(Text, cells), end_section=index in sections)
    return table


def ranking_table(rows: list[dict[str, Any]], ranking: Ranking, title: str) -> Table:
    """The table ``rank`` and ``cull`` print, fitted to the terminal: place, photo (shortened from the
    middle), score, the column ranked by, flags; then, as the width allows, capture time, group (cull),
    technical quality and spread. Flags, then the place, give way too where a file name needs the room."""
    scalar = ranking.output == "score"  # a score model: one number, no distribution, no spread
    if ranking.basis == "aesthetic":  # the model and its weights, named as `score --weights` takes them
        column = ("score" if scalar else "mean score") if ranking.by == "mean" else ranking.by
        basis = f"{ranking.key.model} {column} (weights {ranking.weights or ranking.key.weights_id})"
    else:
        basis = "technical quality" if ranking.by == "technical" else ranking.by
    from aesthete.select import RANK_KEYS

    sort_key = RANK_KEYS[ranking.by]

    def numbers(key: str, drop: int, header: str | None = None) -> Cells:
        # The column the ranking sorts by is always shown; the others may give their room to the paths.
        fmt = "{:.3g}" if key == "sharpness" else "{:.2f}"
        cells = ["" if row[key] is None else fmt.format(row[key]) for row in rows]
        return Cells(header or key.replace("_", "-"), cells, drop=0 if key == sort_key else drop, justify="right")

    columns = [
        Cells("#", [str(i) for i in range(1, len(rows) + 1)], drop=6, justify="right"),
        Cells("photo", [display_path(row["path"]) for row in rows], paths=True),
    ]
    if ranking.basis == "aesthetic":
        columns.append(numbers("mean", 0, "score" if scalar else "mean"))
        if not scalar:
            columns.append(numbers("std", 1))
        if ranking.by == "p-high":
            columns.append(numbers("p_high", 0))
    if ranking.by == "sharpness":
        columns.append(numbers("sharpness", 0))
    columns.append(numbers("technical", 2))
    columns.append(Cells("flags", [", ".join(row["flags"]) for row in rows], drop=5, wrap=True))
    taken = Cells("taken", [(row["capture_time"] or "")[:16].replace("T", " ") for row in rows], drop=4)
    if any(row.get("group_size", 1) > 1 for row in rows):  # cull: which picks won over a burst
        cells = [f"{row['group']} (best of {row['group_size']})" if row["group_size"] > 1 else "" for row in rows]
        columns += [taken, Cells("group", cells, drop=3)]
    else:
        columns.append(taken)
    return fitted_table(columns, f"{counted(len(rows), 'photo')} {title} by {basis}")
