"""``aesthete learn``: fit a personal head on the photographer's ratings (thin over :mod:`aesthete.learning`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from aesthete.cli.common import (
    DbOption,
    JsonOption,
    PathsArgument,
    err,
    fail,
    library_errors,
    opened_store,
    out,
    print_json,
    print_notes,
    print_unpadded,
    reachable,
)

SOURCE_HELP = "Where the ratings are: xmp (sidecars / embedded XMP), lightroom, darktable or digikam."


@library_errors()
def learn_command(
    paths: PathsArgument = None,
    name: Annotated[
        str, typer.Option("--name", "-n", metavar="NAME", help="Register the result as weights NAME.")
    ] = "",
    source: Annotated[str, typer.Option("--from", metavar="SOURCE", help=SOURCE_HELP)] = "xmp",
    catalog: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="The catalog file for --from lightroom|darktable|digikam (or give it after --from).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", metavar="NAME", help="Learn on this model's embeddings.")
    ] = None,
    weights: Annotated[
        str | None, typer.Option("--weights", "-w", metavar="NAME", help="Learn on these weights' embeddings.")
    ] = None,
    method: Annotated[str, typer.Option(metavar="METHOD", help="ridge, ordinal or pairwise.")] = "ridge",
    folds: Annotated[int, typer.Option(min=2, metavar="N", help="Cross-validation folds.")] = 5,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Learn your taste from the ratings you gave (stars, picks, rejects) on photos `score` has seen.

    Uses the embeddings and signals stored while scoring (no photo is decoded), prints cross-validated
    SRCC and pairwise accuracy beside the base model's own, and registers the result: then
    `rank/cull/show/report --weights NAME` use it, and `score --weights NAME` scores new photos with it.
    Ratings aesthete wrote itself (`cull --xmp`) are not learned from unless you changed them.
    Catalogs are only read. Example: `aesthete learn ~/Photos --name mine --from lightroom cat.lrcat`.
    """
    from aesthete.learning import learn
    from aesthete.ratings import SOURCES

    if not name:
        fail("--name NAME is required: the name to use the result by (`cull --weights NAME`)")
    if source not in SOURCES:
        fail(f"--from must be one of {', '.join(SOURCES)}, not {source!r}")
    roots = [str(p) for p in paths or []]
    # `--from lightroom FILE`: an option cannot take one value or two, so FILE arrives among PATHS; the
    # one that is a file (not a folder) is the catalog.
    for root in roots:  # a folder on the way that cannot be opened: one line, not a traceback from is_file
        reachable(Path(root))
    if source != "xmp" and catalog is None:
        files = [r for r in roots if Path(r).is_file()]
        if len(files) == 1:
            catalog = Path(files[0])
            roots = [r for r in roots if r != files[0]]
    for root in roots:
        if not Path(root).exists():
            fail(f"{root}: no such file or folder")
    with opened_store(db) as store:
        report = learn(
            store, name=name, roots=roots, source=source, catalog=catalog, model=model, weights=weights,
            method=method, folds=folds,
        )  # fmt: skip
    if as_json:
        print_json(report.to_dict())
        return
    print_notes(report.notes)  # each on one line: the terminal wraps it, not Rich in the middle of a path
    err.print(
        f"{report.ratings} rating(s) read, {report.matched} on scanned photos; {report.used} used "
        f"({report.corrected} corrected by you, weighted up); left out: {report.own} aesthete wrote, "
        f"{report.unusable} unrated or pick-only, {report.no_embedding} without an embedding",
        highlight=False,
    )
    cv = report.cv
    table = Table(title=f"{cv.folds}-fold cross-validation on {cv.photos} rated photos ({cv.method} on "
                  f"{report.base.model} embeddings + signals)")  # fmt: skip
    for column in ("model", "SRCC", "pairwise accuracy"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in cv.table():
        table.add_row(row["model"], _pm(row["srcc"], row["srcc_sd"]), _pm(row["pairwise"], row["pairwise_sd"]))
    print_unpadded(out, table)
    out.print(
        f"registered as weights {report.name!r} ({report.path}); {report.scored} photos scored. "
        f"Use it: aesthete cull --weights {report.name} --top 10",
        highlight=False,
        soft_wrap=True,
    )


def _pm(value: float, spread: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f} ± {spread:.3f}"
