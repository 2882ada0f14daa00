"""``rank``, ``show`` and ``failures``: read the cache, never the photos; no torch."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from aesthete.cli.common import (
    CSV_FIELDS,
    ROW_FIELDS,
    Cells,
    DbOption,
    Exit,
    JsonOption,
    ModelOption,
    PathsArgument,
    PathsOnly,
    Print0,
    WeightsOption,
    display_path,
    fail,
    fitted_table,
    library_errors,
    one_output,
    opened_store,
    out,
    paths_end,
    print_csv,
    print_json,
    print_notes,
    print_paths,
    print_unpadded,
    printable,
    ranking_table,
    scores_header,
)
from aesthete.discover import skipped_by_walk
from aesthete.formats import FORMAT_NAMES, SUPPORTED_EXTENSIONS, suffix
from aesthete.select import RANK_KEYS, Filters, Ranking, not_there, public_row
from aesthete.store import FILE_STATE_NOTES

TopOption = Annotated[int | None, typer.Option("--top", "-n", min=1, metavar="N", help="Show only the best N.")]


@library_errors()
def rank_command(
    paths: PathsArgument = None,
    by: Annotated[str, typer.Option(metavar="KEY", help=f"Sort key: {', '.join(RANK_KEYS)}.")] = "mean",
    min_score: Annotated[
        float | None, typer.Option(metavar="SCORE", help="Keep photos whose mean score is at least this.")
    ] = None,
    max_score: Annotated[
        float | None, typer.Option(metavar="SCORE", help="Keep photos whose mean score is at most this.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(metavar="DATE", help="Captured on or after (YYYY-MM-DD[THH:MM:SS]).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(metavar="DATE", help="Captured on or before (a bare date includes the day).")
    ] = None,
    camera: Annotated[
        str | None, typer.Option(metavar="TEXT", help="Camera make/model contains this (any case).")
    ] = None,
    lens: Annotated[str | None, typer.Option(metavar="TEXT", help="Lens contains this (any case).")] = None,
    faces: Annotated[
        str | None,
        typer.Option(metavar="N", help="Exactly N faces found (0: none); N+ for at least N, e.g. 2+."),
    ] = None,
    eyes_open: Annotated[
        bool, typer.Option("--eyes-open", help="At least one face, and every face with both eyes open.")
    ] = False,
    model: ModelOption = None,
    weights: WeightsOption = None,
    top: TopOption = None,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV on stdout.")] = False,
    paths_only: PathsOnly = False,
    print0: Print0 = False,
    db: DbOption = None,
) -> None:
    """List cached photos, best first, with filters."""
    from aesthete.select import rank

    one_output(json=as_json, csv=as_csv, paths=paths_only, print0=print0)
    filters = Filters(min_score, max_score, since, until, camera, lens, faces, eyes_open)
    with opened_store(db, writes=False) as store:
        ranking = rank(
            store, [str(p) for p in paths or []], by=by, model=model, weights=weights, filters=filters, top=top
        )
    _emit(ranking, as_json=as_json, as_csv=as_csv, paths=paths_end(paths_only, print0), title="ranked")


@library_errors()
def show_command(
    photo: Annotated[Path, typer.Argument(metavar="PHOTO", help="A photo that `score` has seen.", show_default=False)],
    model: ModelOption = None,
    weights: WeightsOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """One photo's scores (a predicted distribution as a histogram), with its EXIF line and signals."""
    from aesthete.exif import exif_line
    from aesthete.learning import PERSONAL_MODEL, head_name
    from aesthete.select import choose_scores
    from aesthete.weights import weights_label

    with opened_store(db, writes=False) as store:
        record = store.photo_by_path(str(photo))
        if record is None:
            try:
                exists = photo.exists()
            except OSError as error:  # a folder on its way that cannot be opened: Path.exists raises (field test)
                fail(f"{photo}: cannot be opened ({error.strerror}), and it is not in the database")
            if not exists:  # a mistyped name is a usage error, as for `score`
                fail(f"{photo}: no such file")
            if photo.is_dir():
                listing = f"aesthete rank {shlex.quote(str(photo))}"
                fail(f"{photo} is a folder: `show` takes one photo (`{listing}` lists its photos)")
            if (ext := suffix(str(photo))) not in SUPPORTED_EXTENSIONS:  # `score` would never record it
                kind = f"{ext[1:].upper()} is" if ext else "a file with no extension is"
                fail(f"{photo}: {kind} not a format aesthete reads (it reads {FORMAT_NAMES})")
            if skipped := skipped_by_walk(photo):  # `score` on its folder would skip it again (field test)
                kind, name = skipped
                command = f"aesthete score {shlex.quote(str(photo))}"
                fail(
                    escape(
                        f"{photo} is not in the database: `score` skips {kind}s ({name}) in the folders it walks;"
                        f" named, it is scored: `{command}`"
                    ),
                    Exit.NOTHING_USABLE,
                )
            fail(f"{photo} is not in the database (run `aesthete score` on its folder)", Exit.NOTHING_USABLE)
        chosen = choose_scores(store, model, weights)
        elsewhere = None
        if record["on_disk"] == "missing":  # moved, most likely, where score recorded it again (field test)
            twins = store.recorded_copies().get(record["content_hash"], [])
            elsewhere = next((p for p in twins if p != record["path"] and os.path.exists(p)), None)
    # A head learned again, or removed, leaves its scores behind where no --weights can reach them; listed
    # under bare digests they buried the heads that exist (field test: one more per `learn` run).
    record["scores"] = [s for s in record["scores"] if s["model"] != PERSONAL_MODEL or head_name(s["weights_id"])]
    for score in record["scores"]:
        score["weights"] = weights_label(score["weights_id"])
    # The scores `score` would write with these options first; the photo's other scores after them.
    key = chosen.key
    record["scores"].sort(
        key=lambda s: (
            key is None or (s["model"], s["weights_id"], s["preprocess"]) != (key.model, key.weights_id, key.preprocess)
        )
    )
    # A file `score` could not read exits 1, whichever form says so.
    unread = record["status"] not in ("ok", "paired")
    if as_json:
        print_json({"model": chosen.model, "weights": chosen.weights, "photo": record})
        if unread:
            raise typer.Exit(int(Exit.SOME_FAILED))
        return
    out.print(f"[bold]{escape(printable(record['path']))}[/]", highlight=False)
    if elsewhere is not None:  # not "deleted, or on a drive that is not mounted"
        where = display_path(elsewhere)
        moved = f"not on disk now: the same photo is at {where} (moved?); below is what `score` recorded"
        out.print(f"[yellow]{escape(moved)}[/]", highlight=False)
    elif record["on_disk"] in ON_DISK_NOTES:  # what follows was recorded from a file that is gone or changed
        out.print(f"[yellow]{ON_DISK_NOTES[record['on_disk']]}[/]", highlight=False)
    if record["status"] == "paired":  # a RAW beside its JPEG: one photo, scored through the JPEG
        out.print(f"RAW companion of {printable(record['pair_of'])}: its scores", highlight=False, markup=False)
    elif unread:
        out.print(f"[red]failed:[/] {escape(str(record['error']))}", highlight=False)
        raise typer.Exit(int(Exit.SOME_FAILED))
    image = record["image"] or {}
    # A RAW companion shows its partner's image: what lacks camera details there is the partner.
    described = record["pair_of"] if record["status"] == "paired" else record["path"]
    out.print(exif_line(image) or _no_details(described), highlight=False)
    flags = f"  flags {', '.join(image['flags'])}" if image.get("flags") else ""
    # None: too few rows (or columns) for the focus measure (signals.MIN_FOCUS_SIDE)
    sharpness = "not measurable" if image.get("sharpness") is None else f"{image['sharpness']:.3g}"
    out.print(
        f"{image.get('width')}x{image.get('height')}  sharpness {sharpness}  "
        f"clipped {image.get('clipped_shadows', 0):.1%} / {image.get('clipped_highlights', 0):.1%}  "
        f"noise {image.get('noise', 0):.2f}  technical {image.get('technical', 0):.2f}{flags}",
        highlight=False,
    )
    out.print(faces_text(image.get("faces")), highlight=False)
    if not record["scores"]:
        out.print("no aesthetic score yet (technical signals only)")
    for score in record["scores"]:
        if score["dist"] is None:  # a score model (LAION's): one number, no distribution to draw
            out.print(f"\n{score['model']} weights {score['weights']}: score {score['mean']:.2f}")
            continue
        out.print(f"\n{score['model']} weights {score['weights']}: mean {score['mean']:.2f}  std {score['std']:.2f}")
        out.print(histogram(score["dist"]), highlight=False)


# show's line for a photo whose file is not what `score` recorded (Store.photo_by_path's ``on_disk``)
ON_DISK_NOTES = {
    "missing": f"{FILE_STATE_NOTES['missing']}: below is what `score` recorded",
    "changed": f"{FILE_STATE_NOTES['changed']}: below is the earlier version (`aesthete score` its folder)",
}


def faces_text(found: list[dict] | None) -> str:
    """``show``'s lines on a photo's faces: each face's box (fractions of the picture: x0,y0-x1,y1), the
    detector's confidence, each eye's openness, the face's sharpness and its flags."""
    from aesthete.faces import Face, face_flags, how_to_look

    if found is None:
        return f"faces: not looked for ({how_to_look('its folder')})"
    if not found:
        return "faces: none found"
    lines = [f"faces: {len(found)}"]
    for number, record in enumerate(found, start=1):
        face = Face.from_dict(record)
        box = ",".join(f"{v:.2f}" for v in face.box[:2]) + "-" + ",".join(f"{v:.2f}" for v in face.box[2:])
        eyes = "/".join("?" if e is None else f"{e:.3f}" for e in face.eyes)
        state = "open" if face.eyes_open else "closed" if face.eyes_closed else "unsure"
        sharp = "?" if face.sharpness is None else f"{face.sharpness:.3g}"
        relative = "" if face.relative_sharpness is None else f" ({face.relative_sharpness:.2f} of the photo's)"
        flagged = ", ".join(face_flags([face])) or "no flags"
        lines.append(
            f"  {number}. box {box}  confidence {face.confidence:.2f}  eyes {eyes} ({state})  "
            f"sharpness {sharp}{relative}  {flagged}"
        )
    return "\n".join(lines)


def _no_details(path: str) -> str:
    """What to say when the cache has no camera details: "no EXIF" only when the file truly has none."""
    from aesthete.exif import exif_tag_names

    names = exif_tag_names(path)
    if names is None:
        return "no camera details (the file could not be read now)"
    return f"no camera details in its EXIF (only {', '.join(names)})" if names else "no EXIF"


@library_errors()
def failures_command(paths: PathsArgument = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Files that could not be read, with the reason recorded for each."""
    roots = [str(p) for p in paths or []]
    with opened_store(db, writes=False) as store:
        rows = store.failures(roots)
    # A typo is not a folder without failures (field test: `failures typo` said "no failures recorded"); a
    # file deleted since its failure was recorded still lists it.
    print_notes([reason for root in roots if not rows and (reason := not_there(root))])
    if as_json:  # paths as rank --json gives them: absolute, for scripts
        print_json({"count": len(rows), "failures": rows})
        return
    # Paths shortened from the middle (the file name whole: two failures never read alike); reasons wrap
    # rather than the paths, and the kind (which the reason says in words) goes when the paths need its room.
    table = fitted_table([
        Cells("path", [display_path(row["path"]) for row in rows], paths=True),
        Cells("kind", [row["kind"] for row in rows], drop=1),
        Cells("reason", [row["reason"] for row in rows], wrap=True, min_width=REASON_ROOM),
    ])  # fmt: skip
    print_unpadded(out, table if rows else "no failures recorded")


# A failure's reason wraps, but keeps enough width to be read: the paths get the rest, and this too where their
# file names need it (fitted_table's WRAP_ROOM).
REASON_ROOM = 24


def histogram(dist: list[float], width: int = 40) -> str:
    """One bar per bin; a 2-bin model's bins read low/high."""
    labels = ["low", "high"] if len(dist) == 2 else [str(i + 1) for i in range(len(dist))]
    peak = max(dist) or 1.0
    return "\n".join(f"{label:>4} {'█' * round(width * p / peak):<{width}} {p:6.1%}" for label, p in zip(labels, dist))


def _emit(ranking: Ranking, *, as_json: bool, as_csv: bool, paths: str | None, title: str) -> None:
    print_notes(ranking.notes)
    rows = ranking.rows
    if paths is not None:
        print_paths(rows, paths)
    elif as_json:
        print_json({**scores_header(ranking), "photos": [public_row(row, ROW_FIELDS) for row in rows]})
    elif as_csv:
        print_csv(rows, CSV_FIELDS)
    else:
        print_unpadded(out, ranking_table(rows, ranking, title))
