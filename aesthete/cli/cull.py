"""``cull``, ``groups`` and ``report``: choose the keepers, show the bursts, draw the contact sheet.

They read the cache and, for the report, the photos' pixels; they never import torch and never change an
original. Only ``cull --move-rejects`` moves files, and only the ones not picked, because it was asked.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from aesthete.cli.common import (
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
    counted,
    display_path,
    err,
    fail,
    fitted_table,
    library_errors,
    one_output,
    opened_store,
    out,
    paths_end,
    print_json,
    print_notes,
    print_paths,
    print_unpadded,
    ranking_table,
    reachable,
    scores_header,
    scores_label,
)
from aesthete.select import public_row
from aesthete.wording import as_stored

if TYPE_CHECKING:
    from aesthete.culling import CullReport
    from aesthete.export import Removed

MODE_HELP = (
    "Album entries: copy (a copy-on-write clone where the file system offers one, else a full copy), symlink, "
    "or link (hard link: it shares the original's inode, so an editor saving into the album file in place "
    "changes the original too)."
)
STARS_HELP = (
    "With --xmp: spread 1-5 stars over the picks by their place among the picks (the best fifth of the picks "
    "5 stars, the last fifth 1), not 1 star each."
)
CLEAR_HELP = (
    "With --xmp: undo the rating (and label) an earlier cull wrote into photos this cull does not pick, "
    "putting back what their sidecars held before; a rating changed since by hand is left alone."
)
OVERWRITE_HELP = (
    "With --xmp: also rate picks you have already rated or labelled (by default your rating stays); what "
    "it held is remembered, and --clear-previous puts it back."
)


@library_errors()
def cull_command(
    paths: PathsArgument = None,
    top: Annotated[
        int | None, typer.Option("--top", "-n", min=1, metavar="N", help="Keep the best N (default 50).")
    ] = None,
    keep: Annotated[
        str | None, typer.Option(metavar="PERCENT", help="Keep this share of the photos, e.g. 10%.")
    ] = None,
    min_score: Annotated[
        float | None, typer.Option(metavar="SCORE", help="Keep photos whose mean score is at least this.")
    ] = None,
    no_group: Annotated[bool, typer.Option("--no-group", help="Allow several frames of one burst.")] = False,
    keep_flagged: Annotated[
        bool, typer.Option("--keep-flagged", help="Also pick frames flagged blurry, underexposed or overexposed.")
    ] = False,
    reject_closed_eyes: Annotated[
        bool,
        typer.Option(
            "--reject-closed-eyes",
            help="Never pick a frame where a face has both eyes shut (by default such a frame only loses "
            "to a frame of its burst where no face is flagged).",
        ),
    ] = False,
    # Flagged frames are rejected by default now; the old switches stay accepted, out of the help.
    reject_blurry: Annotated[bool, typer.Option(hidden=True)] = True,
    reject_exposure: Annotated[bool, typer.Option(hidden=True)] = True,
    model: ModelOption = None,
    weights: WeightsOption = None,
    # str, not Path: Path("") is ".", so an unset `--export "$ALBUM"` meant the working folder
    export: Annotated[
        str | None,
        typer.Option(
            metavar="DIR",
            help="Build an album of the picks in this folder. In an album an earlier cull made, its picks no "
            "longer picked are removed (only files aesthete placed, unchanged since).",
        ),
    ] = None,
    mode: Annotated[str, typer.Option(metavar="MODE", help=MODE_HELP)] = "copy",
    order_by_time: Annotated[bool, typer.Option(help="Prefix album names with the capture time.")] = False,
    xmp: Annotated[bool, typer.Option("--xmp", help="Write xmp:Rating into the picks' .xmp sidecars.")] = False,
    stars: Annotated[bool, typer.Option(help=STARS_HELP)] = False,
    label: Annotated[str | None, typer.Option(metavar="TEXT", help="With --xmp: also set xmp:Label to this.")] = None,
    clear_previous: Annotated[bool, typer.Option(help=CLEAR_HELP)] = False,
    overwrite_ratings: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
    move_rejects: Annotated[
        str | None, typer.Option(metavar="DIR", help="Move the photos NOT picked into this folder.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would be done; change nothing.")] = False,
    as_json: JsonOption = False,
    paths_only: PathsOnly = False,
    print0: Print0 = False,
    db: DbOption = None,
) -> None:
    """Pick the best photos of PATHS (or of the last `score` run): one per burst, then export, rate or move.

    Best-of-group by default: frames of the same moment (same camera, seconds apart, similar pixels)
    compete and only the best can be picked; a frame whose faces all have open eyes and are sharp comes
    before one with a face flagged eyes-closed or face-soft. Frames flagged blurry or under-/overexposed
    are never picked unless --keep-flagged. Ties go to the technically better frame, then to the one
    the model is surer of. Exit 1 if some file action failed.
    """
    from aesthete.culling import CullOptions, apply, parse_keep

    one_output(json=as_json, paths=paths_only, print0=print0)  # before any file action
    options = CullOptions(
        roots=[str(p) for p in paths or []], top=top, keep_percent=parse_keep(keep) if keep is not None else None,
        min_score=min_score, model=model, weights=weights, group=not no_group, reject_blurry=reject_blurry,
        reject_exposure=reject_exposure, keep_flagged=keep_flagged, reject_closed_eyes=reject_closed_eyes,
        export=export, mode=mode,
        order_by_time=order_by_time, xmp=xmp, stars=stars, label=label, clear_previous=clear_previous,
        overwrite_ratings=overwrite_ratings,
        move_rejects=move_rejects, dry_run=dry_run,
    )  # fmt: skip
    with opened_store(db) as store:
        report = apply(store, options)
    _print_actions(report, labelled=label is not None)
    _print_cull(report, as_json=as_json, paths=paths_end(paths_only, print0))
    if report.failed:
        raise typer.Exit(int(Exit.SOME_FAILED))


def _print_actions(report: CullReport, *, labelled: bool) -> None:
    """What the file actions did, on stderr: one summary line each, then every failure. ``labelled``: --label
    was given, so a sidecar may have been kept for the photographer's label as well as for a rating."""
    if report.export:
        dest, outcome = report.export.folder, report.export.outcome
        if report.export.inside_roots:
            _note_inside(dest, "the next `score` will see the album too")
        for notice in outcome.notices:
            err.print(f"[yellow]note:[/] {escape(notice)}", highlight=False)
        done = Counter(p.how for p in outcome.placed)
        verb = "would put" if report.dry_run else "put"
        made = [counted(done[how], noun, plural) for how, (noun, plural) in PLACED_NOUNS.items() if done[how]]
        summary = ", ".join(made) or ("nothing new" if done["present"] else "nothing")
        if done["present"]:
            summary += f" ({done['present']} already there)"
        manifest = outcome.manifest or "not written"
        err.print(f"export: {verb} {summary} in {dest}; manifest {manifest}", highlight=False, markup=False)
        if outcome.removed:
            removing = "would remove" if report.dry_run else "removed"
            err.print(f"export: {removing} {_removed(outcome.removed)}", highlight=False, markup=False)
        if outcome.left_alone:
            err.print(
                f"[yellow]note:[/] kept {counted(len(outcome.left_alone), 'file')} aesthete did not place or that "
                "changed since",
                highlight=False,
            )
        _report_failures("export", outcome.failed)
    if report.xmp:
        done = Counter(r.status for r, _ in report.xmp.sidecars)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(done.items())) or "no picks"
        err.print(f"xmp{' (dry run)' if report.dry_run else ''}: sidecars {summary}", highlight=False)
        kept = len({r.photo for r, _ in report.xmp.sidecars if r.status == "kept"})
        if kept:
            given = "rating or label" if labelled else "rating"
            err.print(
                f"xmp: kept the {given} you gave {counted(kept, 'pick')} (--overwrite-ratings replaces it)",
                highlight=False,
            )
        undone = [r for r in report.xmp.cleared if r.status in ("cleared", "restored")]
        if undone:
            photos = len({r.photo for r in undone})
            restored = len({r.photo for r in undone if r.status == "restored"})
            verb = "would clear" if report.dry_run else "cleared"
            back = f" ({restored} back to the rating they had before)" if restored else ""
            err.print(
                f"xmp: {verb} the earlier rating of {counted(photos, 'photo')} no longer picked{back}", highlight=False
            )
        if report.xmp.still_rated:
            err.print(
                f"[yellow]warning:[/] {counted(len(report.xmp.still_rated), 'photo')} rated by an earlier cull "
                "and no longer picked: the rating stays (--clear-previous removes it)",
                highlight=False,
            )
        _report_failures("xmp", report.xmp.skipped)
    if report.moved:
        dest, outcome = report.moved.folder, report.moved.outcome
        if report.moved.inside_roots:
            _note_inside(dest, "the next `cull` there will see the rejects")
        verb = "would move" if report.dry_run else "moved"
        kept = len(report.ranking.copies_of_picks)
        left = f"; left {counted(kept, 'copy', 'copies')} of picked photos where they are" if kept else ""
        there = sum(p.how == "present" for p in outcome.placed)
        already = f" ({there} already there)" if there else ""
        moved = f"move: {verb} {len(outcome.placed) - there} photo(s) not picked to {dest}{already}{left}"
        err.print(moved, highlight=False, markup=False)
        _report_failures("move", outcome.failed)


def _removed(removed: list[Removed]) -> str:
    """What a re-export removed from the album, counted by photo (its RAW companion goes with it)."""
    gone = len({r.source for r in removed if not r.still_picked})
    renamed = len({r.source for r in removed if r.still_picked})
    parts = [f"{counted(gone, 'earlier pick')} no longer picked"] if gone else []
    parts += [f"the earlier album names of {counted(renamed, 'pick')}"] if renamed else []
    return " and ".join(parts)


# How an album entry was made (export.Placed.how) -> its noun, singular and plural, for the summary line.
PLACED_NOUNS = {
    "clone": ("copy-on-write copy", "copy-on-write copies"), "copy": ("copy", "copies"),
    "symlink": ("symlink", "symlinks"), "link": ("hard link", "hard links"),
}  # fmt: skip


def _note_inside(dest: str, consequence: str) -> None:
    err.print(f"[yellow]note:[/] {escape(dest)} is inside a scored folder; {consequence}", highlight=False)


def _report_failures(what: str, failed: list[tuple[str, str]]) -> None:
    for path, reason in failed:
        err.print(f"[red]{what} failed:[/] {escape(f'{path}: {reason}')}", highlight=False)


def _print_cull(report: CullReport, *, as_json: bool, paths: str | None) -> None:
    ranking = report.ranking
    print_notes(ranking.notes)
    if paths is not None:
        print_paths(ranking.rows, paths)
    elif as_json:
        fields = (*ROW_FIELDS, "pick", "group", "group_size")
        print_json({
            **scores_header(ranking), "dry_run": report.dry_run,
            "picks": [public_row(row, fields) for row in ranking.rows],
            "not_picked": [{"path": row["path"], "why": row["why"]} for row in ranking.others], **report.actions(),
        })  # fmt: skip
    else:
        print_unpadded(out, ranking_table(ranking.rows, ranking, "picked"))
    reasons = Counter(_why_kind(row["why"]) for row in ranking.others)
    left = "".join(f", {n} {kind}" for kind, n in reasons.most_common())
    err.print(f"picked {len(ranking.rows)} of {len(ranking.rows) + len(ranking.others)}{left}", highlight=False)


def _why_kind(why: str) -> str:
    """A reason, without the photo-specific details, for the summary line."""
    if why.startswith("group "):
        return "behind a better frame of their group"
    if why.startswith("score "):
        return "below --min-score"
    if why.startswith("identical to "):
        return "identical to another file in scope"
    return why


@library_errors()
def groups_command(
    paths: PathsArgument = None,
    model: ModelOption = None,
    weights: WeightsOption = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Bursts and near-duplicates among the photos of PATHS (or of the last `score` run), best frame first;
    the frame `cull` keeps is marked, and a frame it never picks says why (a flag, not on disk, a copy)."""
    from aesthete.exif import camera_name
    from aesthete.groups import annotate, ensure_groups
    from aesthete.select import kept_frames, scope_ranking

    with opened_store(db, writes=False) as store:
        _, ranking = scope_ranking(store, [str(p) for p in paths or []], model=model, weights=weights)
        members = annotate(ranking.rows, ensure_groups(store))
    print_notes(ranking.notes)
    found = sorted((g, rows) for g, rows in members.items() if len(rows) > 1)
    kept, ruled_out = kept_frames(ranking.rows)

    def verdict(row: dict) -> str:
        if kept.get(row["group"]) is row:
            return "keeps"
        why = ruled_out.get(id(row), "")
        # The original's path as the photo column shows paths, not absolute (a table's; JSON keeps it whole).
        original = why.removeprefix("identical to ")
        return f"identical to {display_path(original)}" if original != why else why

    if as_json:
        print_json({**scores_header(ranking), "groups": [
            {"group": g, "size": len(rows), "photos": [
                {**{k: r.get(k) for k in ("path", "mean", "technical", "flags", "capture_time", "make", "camera")},
                 "cull_keeps": kept.get(g) is r, "ruled_out": ruled_out.get(id(r))}
                for r in rows
            ]}
            for g, rows in found
        ]})  # fmt: skip
        return
    score = "mean" if ranking.basis == "aesthetic" else "technical"
    title = (
        f"{counted(len(found), 'group')} of similar frames among {counted(len(ranking.rows), 'photo')}, best first by "
        f"{'mean score, ' + scores_label(ranking) if ranking.basis == 'aesthetic' else 'technical quality'}"
    )
    # One line a frame, best first, its path as rank shows it (copies in two folders never read alike); the
    # group's number, size, camera and time on its first line, and a gap before the next group.
    frames = [(i == 0, g, group, row) for g, group in found for i, row in enumerate(group)]

    def firsts(text: Callable[[int, list[dict]], str]) -> list[str]:
        return [text(g, group) if first else "" for first, g, group, _ in frames]

    table = fitted_table(
        [
            Cells("group", firsts(lambda g, _: str(g)), justify="right"),
            Cells("frames", firsts(lambda _, group: str(len(group))), drop=1, justify="right"),
            Cells("photo", [display_path(row["path"]) for *_, row in frames], paths=True),
            Cells(score, [f"{row[score]:.2f}" for *_, row in frames], justify="right"),
            Cells("cull", [verdict(row) for *_, row in frames], drop=4, wrap=True),
            Cells("camera", firsts(lambda _, group: camera_name(group[0])), drop=2, wrap=True),
            Cells("taken", firsts(lambda _, group: _taken(group)), drop=3, wrap=True),
        ],
        title,
        sections={index - 1 for index, (first, *_) in enumerate(frames) if first and index},
    )
    print_unpadded(out, table if found else "no groups: every photo stands alone")


def _taken(group: list[dict]) -> str:
    """When a group's frames were taken: the first capture time and the last one's time of day."""
    times = sorted(r["capture_time"] or "" for r in group)
    return f"{times[0][:19].replace('T', ' ')} … {times[-1][11:19]}" if times[0] else "no EXIF time (file times)"


@library_errors()
def report_command(
    html_name: Annotated[
        str, typer.Option("--html", metavar="FILE", help="Write the contact sheet to this file.", show_default=False)
    ],
    paths: PathsArgument = None,
    model: ModelOption = None,
    weights: WeightsOption = None,
    db: DbOption = None,
) -> None:
    """A self-contained HTML contact sheet: thumbnails in score order, distributions, flags, groups boxed."""
    from aesthete.fileops import atomic_write, staged
    from aesthete.report import build_report, is_our_report
    from aesthete.weights import human_size

    if not html_name.strip():  # str, not Path: Path("") is ".", so an unset "$SHEET" named the working folder
        fail("--html needs a file name, not an empty one")
    html = Path(html_name)
    # Said before the sheet is built: thumbnailing a large library takes minutes, all lost at the write.
    reachable(html)  # a folder on its way that cannot be opened: one line, not a traceback from is_dir
    if html.is_dir():
        fail(f"{html} is a folder: --html takes the file to write, e.g. {html / 'contact-sheet.html'}")
    # A link (to a shared folder, say) is followed: the sheet it points at is replaced, the link stays.
    target = Path(os.path.realpath(html)) if html.is_symlink() else html
    if not target.parent.is_dir():
        fail(f"cannot write {html}: there is no folder {target.parent}")
    if target.exists() and not is_our_report(target):  # an earlier sheet is replaced; a file of someone's never
        what = "a contact sheet aesthete wrote" if target.suffix.lower() in (".html", ".htm") else "an .html file"
        fail(f"{html} exists and is not {what}; refusing to overwrite it")
    try:  # a folder that cannot be written to is said now, not after minutes of thumbnails
        with staged(target):
            pass
    except OSError as exc:
        fail(f"cannot write {html}: {exc.strerror or exc}")
    with opened_store(db, writes=False) as store:
        page, ranking = build_report(store, [str(p) for p in paths or []], model=model, weights=weights)
    print_notes(ranking.notes)
    data = page.encode("utf-8")
    try:
        atomic_write(str(target), data, overwrite=True)
    except OSError as exc:
        fail(f"cannot write {html}: {exc.strerror or exc}")
    size = f"{counted(len(ranking.rows), 'photo')}, {human_size(len(data))}"
    # (a name in another encoding than UTF-8 shown as the sheet and the database write it: caf\xe9.html)
    shown = as_stored(str(html))
    err.print(f"wrote {shown} ({size})", highlight=False, markup=False, soft_wrap=True)  # a path, never broken
