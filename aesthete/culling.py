"""One cull, start to finish: choose the keepers, then export them, rate them in XMP sidecars and move the
rest away, as asked. What ``aesthete cull`` does, as one library call (:func:`apply`) returning a
:class:`CullReport`; the command only parses options, calls it and prints the report.

No torch, no pixels: the picks come from the cache (:func:`aesthete.select.cull`), the file actions from
:mod:`aesthete.export` and :mod:`aesthete.xmp`. Nothing here changes an original except a move, and only
of the photos not picked, because ``move_rejects`` asked for it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aesthete import interrupts
from aesthete.errors import OptionError
from aesthete.export import MODES, Outcome, export_album, inside, move_rejects
from aesthete.ratings import Written, forget_written, record_written, written_by_path
from aesthete.select import RANK_KEYS, Ranking, check_score, cull, last_run_scope
from aesthete.store import Store, path_key
from aesthete.xmp import (
    PICK_RATING,
    SidecarResult,
    held_rating,
    quantile_stars,
    rated_by_hand,
    restore_sidecars,
    still_as_written,
    write_sidecars,
)


@dataclass(frozen=True)
class CullOptions:
    """What to pick (the options of :func:`aesthete.select.cull`) and what to do with the picks.

    Checked when made, before any database is opened: a bad ``mode``, an empty or blank ``label``,
    ``stars``/``label`` without ``xmp``, or an ``export``/``move_rejects`` folder that is an existing file raises
    :class:`aesthete.errors.OptionError`.
    """

    roots: Sequence[str] = ()  # empty: the folders of the last ``score`` run
    top: int | None = None
    keep_percent: float | None = None
    min_score: float | None = None
    model: str | None = None
    weights: str | None = None  # registered name or checkpoint path; default: what `score` would use
    group: bool = True
    reject_blurry: bool = True  # never pick a frame flagged blurry
    reject_exposure: bool = True  # nor one flagged under- or overexposed
    keep_flagged: bool = False  # pick flagged frames too (turns both rejections off)
    # Never pick a frame flagged eyes-closed. Off by default: a blink may be the only frame of a moment.
    reject_closed_eyes: bool = False
    export: str | None = None  # build an album of the picks in this folder
    mode: str = "copy"  # album entries: copy (a reflink clone where possible), symlink or link (hard link)
    order_by_time: bool = False
    xmp: bool = False  # write xmp:Rating into the picks' sidecars
    stars: bool = False  # with xmp: 1-5 stars by quintile among the picks, not PICK_RATING
    label: str | None = None  # with xmp: also set xmp:Label
    clear_previous: bool = False  # with xmp: clear what an earlier cull rated and this one does not pick
    overwrite_ratings: bool = False  # with xmp: rate picks the photographer already rated too
    move_rejects: str | None = None  # move the photos not picked into this folder
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptionError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        check_score(self.min_score, "--min-score")
        if self.label is not None and not self.label.strip():  # an unset shell variable: no label meant
            raise OptionError("--label needs some text, not an empty label")
        if (self.stars or self.label is not None or self.clear_previous or self.overwrite_ratings) and not self.xmp:
            raise OptionError("--stars, --label, --clear-previous and --overwrite-ratings only apply with --xmp")
        for option, folder in (("--export", self.export), ("--move-rejects", self.move_rejects)):
            if folder == "":  # an unset shell variable: it would have meant the working folder
                raise OptionError(f"{option} needs a folder, not an empty name")
            if folder is not None and os.path.exists(folder) and not os.path.isdir(folder):
                raise OptionError(f"{option}: {folder} is a file, not a folder")
        # The rejects (originals) would join the album, beside the picks' copies, under a manifest of the picks.
        both = (self.export, self.move_rejects)
        if None not in both and os.path.realpath(both[0]) == os.path.realpath(both[1]):
            raise OptionError(f"--export and --move-rejects name one folder ({self.export}): give two")


@dataclass
class ExportReport:
    folder: str
    outcome: Outcome
    inside_roots: bool  # the album is inside a scored folder: the next ``score`` will see it too


# A sidecar's status when it holds aesthete's rating after the cull (written now, or already there).
RATED_BY_AESTHETE = frozenset({"created", "updated", "unchanged"})


@dataclass
class XmpReport:
    # Each pick's sidecar with the rating aesthete gives the pick; a kept or skipped sidecar was not given it
    # and holds what it held (:func:`sidecar_outcome` says what each holds).
    sidecars: list[tuple[SidecarResult, int]]
    # Photos an earlier cull rated that this one does not pick, their sidecars still as aesthete wrote them:
    # cleared with ``clear_previous`` (``cleared``: each sidecar's result), else left rated (``still_rated``).
    cleared: list[SidecarResult] = field(default_factory=list)
    still_rated: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(photo, reason) for each existing sidecar left as it was because it could not be merged."""
        results = [r for r, _ in self.sidecars] + self.cleared
        return [(r.photo, r.message or "") for r in results if r.status == "skipped"]


@dataclass
class MoveReport:
    folder: str
    outcome: Outcome
    inside_roots: bool  # the folder is inside a scored folder: the next ``cull`` there will see the rejects


@dataclass
class CullReport:
    """The picks (``ranking.rows``), the photos not picked with why (``ranking.others``), and what each
    file action did; a section is None when its action was not asked for."""

    ranking: Ranking
    roots: list[str]
    dry_run: bool
    export: ExportReport | None = None
    xmp: XmpReport | None = None
    moved: MoveReport | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # the selection options, as the manifest records

    @property
    def failed(self) -> bool:
        """Whether some file action failed (an album entry, a sidecar, a move)."""
        return bool(
            (self.export and self.export.outcome.failed)
            or (self.xmp and self.xmp.skipped)
            or (self.moved and self.moved.outcome.failed)
        )

    def actions(self) -> dict[str, Any]:
        """The file actions as JSON-able sections (``export``, ``xmp``, ``moved``), as ``cull --json`` prints."""
        sections: dict[str, Any] = {}
        if self.export:
            outcome = self.export.outcome
            sections["export"] = {
                "folder": self.export.folder, "manifest": outcome.manifest, "notices": outcome.notices,
                "placed": [p.__dict__ for p in outcome.placed], "failed": outcome.failed,
                "removed": [r.__dict__ for r in outcome.removed], "left_alone": outcome.left_alone,
            }  # fmt: skip
        if self.xmp:
            sections["xmp"] = {
                "sidecars": [r.__dict__ | sidecar_outcome(r, n) for r, n in self.xmp.sidecars],
                "cleared": [r.__dict__ for r in self.xmp.cleared],
                "still_rated": self.xmp.still_rated,
                "failed": self.xmp.skipped,
            }
        if self.moved:
            outcome = self.moved.outcome
            sections["moved"] = {
                "folder": self.moved.folder,
                "placed": [p.__dict__ for p in outcome.placed],
                "failed": outcome.failed,
                "left_in_place": [row["path"] for row in self.ranking.copies_of_picks],
            }
        return sections


def sidecar_outcome(result: SidecarResult, given: int) -> dict[str, Any]:
    """The rating a pick's sidecar holds after the cull (``given``, aesthete's, where it wrote it or found it
    there; else what the sidecar kept, None for none) and ``rated_by``: ``aesthete``, ``photographer`` (a
    rating or label of theirs, kept), or None for a sidecar that could not be written (left as it was)."""
    if result.status in RATED_BY_AESTHETE:
        return {"rating": given, "rated_by": "aesthete"}
    return {"rating": held_rating(result.before), "rated_by": "photographer" if result.status == "kept" else None}


def apply(store: Store, options: CullOptions) -> CullReport:
    """Pick the keepers among ``options.roots`` and do the file actions ``options`` ask for, in this order:
    export the album, write the sidecars, move the rest (so a move never takes a photo the album needs). The
    rest is ``ranking.rejects``: a file not on disk has nothing to move, and a copy of a pick is the keeper.

    Raises :class:`aesthete.errors.NothingToDoError` when nothing is scored yet and
    :class:`aesthete.errors.OptionError` for options that cannot work together; a file action that fails
    for one photo is recorded in the report, never raised.
    """
    roots, recursive = last_run_scope(store, options.roots)
    roots = [os.path.abspath(root) for root in roots]  # as the report and the manifest give every path
    ranking = cull(
        store, roots, top=options.top, keep_percent=options.keep_percent, min_score=options.min_score,
        model=options.model, weights=options.weights, group=options.group, recursive=recursive,
        reject_blurry=options.reject_blurry and not options.keep_flagged,
        reject_exposure=options.reject_exposure and not options.keep_flagged,
        reject_closed_eyes=options.reject_closed_eyes,
    )  # fmt: skip
    keep = f"{options.keep_percent:g}%" if options.keep_percent is not None else None
    settings = {"top": options.top, "keep": keep, "min_score": options.min_score, "group": options.group,
                "reject_blurry": options.reject_blurry and not options.keep_flagged,
                "reject_exposure": options.reject_exposure and not options.keep_flagged,
                "reject_closed_eyes": options.reject_closed_eyes,
                "roots": roots, "recursive": recursive}  # fmt: skip
    report = CullReport(ranking=ranking, roots=roots, dry_run=options.dry_run, settings=settings)
    if options.export is not None:
        album = os.path.abspath(options.export)  # every target in it absolute too
        # Checked before any file action: the picks there would be "already there" as themselves, and the
        # manifest would mark their folder as one of aesthete's albums, whose files are taken for copies.
        if any(os.path.dirname(os.path.realpath(row["real_path"])) == os.path.realpath(album) for row in ranking.rows):
            raise OptionError(
                f"--export: {album} holds picks: the album would be the originals themselves; give a new folder"
            )
        outcome = export_album(
            ranking, album, mode=options.mode, order_by_time=options.order_by_time,
            dry_run=options.dry_run, settings=settings,
        )  # fmt: skip
        report.export = ExportReport(album, outcome, inside(album, roots))
    if options.xmp:
        report.xmp = _rate_and_record(store, ranking, options)
    if options.move_rejects is not None:
        rejects = os.path.abspath(options.move_rejects)
        # An album inside the folders culled: the copies of photos not picked that the export removed from it
        # are no rejects to move (before the export, they moved with their photos).
        removed = {os.path.realpath(r.target) for r in report.export.outcome.removed} if report.export else set()
        moving = [row for row in ranking.rejects if os.path.realpath(row["real_path"]) not in removed]
        outcome = move_rejects(moving, rejects, dry_run=options.dry_run, on_moved=store.move_file)
        report.moved = MoveReport(rejects, outcome, inside(rejects, roots))
    return report


def _rate_and_record(store: Store, ranking: Ranking, options: CullOptions) -> XmpReport:
    """Rate the picks, record what was written, and clear (or report) what an earlier cull rated that this
    one does not pick. A rating the photographer set is theirs: a pick they rated keeps it (unless
    ``overwrite_ratings``), and one they changed since aesthete wrote it is never cleared. What a sidecar
    held before aesthete first rated the photo is recorded, and clearing puts it back."""
    written = written_by_path(store)
    # A record whose photo is no longer at its path: the photo was renamed or moved (score knows it by its
    # content), its sidecars with it, so the record is of the photo at its new path.
    moved = {w.content_hash: w for w in written.values() if not os.path.lexists(w.path)}
    report = XmpReport([])
    records, forget = [], []
    try:
        for row, rating in zip(ranking.rows, _ratings(ranking, stars=options.stars)):
            photo, companions = row["real_path"], row.get("companions", ())
            mine = _still_mine(row, written, moved)
            if mine is None and not options.overwrite_ratings:
                kept = rated_by_hand(photo, companions, label=options.label is not None)
                if kept:
                    report.sidecars += [(result, rating) for result in kept]
                    continue
            with interrupts.held():  # a sidecar rated is in ``records`` before a Ctrl-C can stop the loop
                results = write_sidecars(photo, companions, rating=rating, label=options.label, dry_run=options.dry_run)
                report.sidecars += [(result, rating) for result in results]
                wrote = {r.sidecar: r.before for r in results if r.status != "skipped" and r.before is not None}
                if wrote:
                    # A photo rated before keeps what its sidecars held before that first rating (unknown, None,
                    # for a record older than this bookkeeping: clearing then removes the rating, as it always did).
                    previous = wrote if mine is None else None if mine.previous is None else {**wrote, **mine.previous}
                    records.append(Written(photo, row["content_hash"], rating, options.label, previous))
                    if mine is not None and mine is moved.get(row["content_hash"]):
                        forget.append(mine.path)  # recorded again, at the photo's path now
        previous_picks = [
            (row, mine) for row in ranking.rejects if (mine := _still_mine(row, written, moved)) is not None
        ]
        for row, mine in previous_picks:
            if not options.clear_previous:
                report.still_rated.append(row["path"])
                continue
            results = restore_sidecars(row["real_path"], row.get("companions", ()), previous=mine.previous or {},
                                       label=mine.label is not None, dry_run=options.dry_run)  # fmt: skip
            report.cleared += results
            if all(r.status != "skipped" for r in results):
                forget.append(mine.path)
    finally:
        # Also when a Ctrl-C stops the loops: a sidecar rated and not recorded would read as the photographer's
        # own rating from then on (kept by the next cull, never cleared).
        if not options.dry_run:
            forget_written(store, forget)
            record_written(store, records)
    return report


def _still_mine(row: dict[str, Any], written: dict[str, Written], moved: dict[str, Written]) -> Written | None:
    """What aesthete last wrote into this photo's sidecars (at its path, else, by its content, at the path it
    was renamed or moved from: ``moved``), while they still say it; None when aesthete never rated it or the
    photographer has changed the rating since (it is theirs then)."""
    mine = written.get(path_key(os.path.abspath(row["real_path"]))[0]) or moved.get(row["content_hash"])
    if mine is None:
        return None
    still = still_as_written(
        row["real_path"], row.get("companions", ()), rating=mine.rating, label=mine.label, previous=mine.previous
    )
    return mine if still else None


def _ratings(ranking: Ranking, *, stars: bool) -> list[int]:
    """Each pick's rating: PICK_RATING, or with ``stars`` the quintiles of the picks (a top 10 of 113 photos
    still spreads 1..5 stars over the ten). A RAW companion's sidecars get its JPEG's rating: one photo."""
    if not stars:
        return [PICK_RATING] * len(ranking.rows)
    column = RANK_KEYS[ranking.by]
    return quantile_stars([r[column] or 0.0 for r in ranking.rows])


def parse_keep(text: str) -> float:
    """``10%`` or ``10`` -> 10.0, the ``keep_percent`` of a ``--keep`` value."""
    try:
        return float(text.strip().removesuffix("%"))
    except ValueError:
        raise OptionError(f"--keep takes a percentage like 10%, not {text!r}") from None


__all__ = ["CullOptions", "CullReport", "ExportReport", "MoveReport", "XmpReport", "apply", "parse_keep"]
