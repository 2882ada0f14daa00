"""Ranking, filtering and culling cached photos. Pure Python over store rows: no torch, no pixels."""

from __future__ import annotations

import functools
import math
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import ModuleType
from typing import Any

from aesthete.errors import NothingToDoError, OptionError
from aesthete.groups import annotate, ensure_groups
from aesthete.paths import Paths, is_within, path_list
from aesthete.store import ModelKey, Store

# ``--by`` keys: the column each sorts on, largest first.
RANK_KEYS = {"mean": "mean", "std": "std", "p-high": "p_high", "sharpness": "sharpness", "technical": "technical"}
AESTHETIC_KEYS = ("mean", "std", "p-high")
DEFAULT_TOP = 50  # what ``cull`` keeps when asked for no limit at all
EXPOSURE_FLAGS = ("underexposed", "overexposed")
TECHNICAL_QUALITY = "technical quality (sharpness, exposure, noise, size)"
NO_AESTHETIC_SCORES = f"no aesthetic scores yet: ranked by {TECHNICAL_QUALITY}"  # the note when nothing is scored
NOT_ON_DISK = "not found on disk"  # why ``cull`` passes over a photo whose file is missing now


def parse_faces(text: str | int | None) -> tuple[int, bool] | None:
    """``--faces`` as (count, at least): ``2`` is exactly two faces, ``2+`` two or more, ``0`` none."""
    if text is None:
        return None
    value = str(text).strip()
    at_least = value.endswith("+")
    digits = value.removesuffix("+")
    if not digits.isdigit():
        raise OptionError(f"--faces takes a number of faces like 1, or 2+ for at least two, not {text!r}")
    return int(digits), at_least


def parse_when(text: str | None, option: str = "date") -> str | None:
    """``text`` as the ISO form capture times are stored in (``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SS``),
    or :class:`OptionError` for anything else: a date that silently filtered nothing would hide photos."""
    if text is None:
        return None
    value = text.strip()
    try:
        if len(value) == 10:
            return date.fromisoformat(value).isoformat()
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is not None or len(value) < 16:
        raise OptionError(
            f"{option} {text!r} is not an ISO date or date-time: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] "
            "(capture times are the camera's local time, without a time zone)"
        )
    # Keep the precision given: --until 10:00 includes the whole minute, as a bare date the whole day.
    return moment.isoformat(timespec="seconds" if len(value) > 16 else "minutes")


@dataclass
class Filters:
    min_score: float | None = None
    max_score: float | None = None
    since: str | None = None  # ISO date or date-time, compared with EXIF capture time
    until: str | None = None
    camera: str | None = None  # case-insensitive substring of make + model
    lens: str | None = None
    faces: str | int | None = None  # "N" (or N) exactly N detected faces, "N+" at least N (parse_faces)
    eyes_open: bool = False  # at least one face, and every face has both eyes measured open

    def __post_init__(self) -> None:
        self.since = parse_when(self.since, "--since")
        self.until = parse_when(self.until, "--until")
        self.face_count = parse_faces(self.faces)
        check_score(self.min_score, "--min-score")
        check_score(self.max_score, "--max-score")
        # A range no photo can be in is a slip of the keyboard, not an empty result to show.
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            above = f"--min-score {self.min_score:g} is above --max-score {self.max_score:g}"
            raise OptionError(f"{above}: no photo is both")
        if self.since and self.until and self.since[: len(self.until)] > self.until:
            raise OptionError(f"--since {self.since} is after --until {self.until}: no photo was taken in between")

    @property
    def need_faces(self) -> bool:
        """Whether these filters read the face signals (a photo never looked at for faces then fails)."""
        return self.face_count is not None or self.eyes_open

    def accepts(self, row: dict[str, Any]) -> bool:
        mean = row.get("mean")
        if self.min_score is not None and (mean is None or mean < self.min_score):
            return False
        if self.max_score is not None and (mean is None or mean > self.max_score):
            return False
        taken = row.get("capture_time")
        if self.since and (taken is None or taken < self.since):
            return False
        # A bare date as --until includes that whole day.
        if self.until and (taken is None or taken[: len(self.until)] > self.until):
            return False
        if self.camera and self.camera.lower() not in f"{row.get('make') or ''} {row.get('camera') or ''}".lower():
            return False
        if self.lens and self.lens.lower() not in (row.get("lens") or "").lower():
            return False
        return not self.need_faces or self._faces_accepted(row.get("faces"))

    def _faces_accepted(self, found: list[dict[str, Any]] | None) -> bool:
        if found is None:  # never looked for: whether it qualifies is unknown, so it does not
            return False
        if self.face_count is not None:
            count, at_least = self.face_count
            if len(found) < count or (not at_least and len(found) != count):
                return False
        # A photo without faces has no open eyes to show; a wink or an unmeasured eye is not open.
        return not self.eyes_open or (bool(found) and all(_faces().Face.from_dict(f).eyes_open for f in found))


@dataclass
class ScoresChoice:
    """Which cached predictions a reading command uses, and how to name them."""

    model: str  # the architecture asked for, or score's default ("" when the user has no weights at all)
    key: ModelKey | None  # None: no aesthetic scores to use
    weights: str | None  # the weights' registry name (or id, for a checkpoint never registered)
    notes: list[str] = field(default_factory=list)


def choose_scores(store: Store, model: str | None = None, weights: str | None = None) -> ScoresChoice:
    """The scores ``rank``, ``cull``, ``groups``, ``report`` and ``show`` read: those ``score`` would
    write with the same ``--model``/``--weights`` (:func:`aesthete.scoring.choose_model`, torch-free).

    Only when ``score`` would compute no aesthetic scores at all (no weights available for the model) do
    the most recent cached scores of that model (of any model, when none is named) stand in, and a note
    says whose they are.
    """
    from aesthete.scoring import choose_model
    from aesthete.weights import weights_label

    if weights:
        from aesthete.learning import head_path, scores_key

        if head_path(weights) is not None:  # a personal head (`aesthete learn --name`): its stored scores
            key = scores_key(weights, model)
            assert key is not None
            notes = [] if store.has_scores(key) else [f"no scores from personal weights {weights} in the database"]
            return ScoresChoice(key.model, key, weights, notes)
    choice = choose_model(model, weights)
    if choice.embed_only:  # ImageNet weights: embeddings, never a score; rank by technical quality
        note = f"weights {weights} store embeddings only, no aesthetic score: learn a head on them (`aesthete learn`)"
        return ScoresChoice(choice.model or "", None, choice.weights_name, [note])
    if choice.key is not None:
        notes = []
        if not store.has_scores(choice.key):
            notes.append(
                f"no scores from {choice.model} weights {choice.weights_name} in the database: "
                f"run `aesthete score` (or pass the --model/--weights that scored these photos)"
            )
        return ScoresChoice(choice.model, choice.key, choice.weights_name, notes)
    key = store.latest_model_key(model)
    if key is None:
        if model:
            return ScoresChoice(model, None, None, [f"no scores from model {model!r} in the database"])
        return ScoresChoice(choice.model or "", None, None)
    label = weights_label(key.weights_id)
    wanted = f"for {choice.model} " if choice.model else ""
    note = f"no weights {wanted}are available: using the latest cached scores, {key.model} weights {label}"
    return ScoresChoice(key.model, key, label, [note])


@dataclass
class Ranking:
    rows: list[dict[str, Any]]
    by: str  # the key actually used
    key: ModelKey | None  # the predictions ranked on, if any
    notes: list[str] = field(default_factory=list)
    weights: str | None = None  # the registry name of ``key``'s weights
    # cull only: the ranked photos in scope that were not picked, each with a ``why`` saying why not.
    others: list[dict[str, Any]] = field(default_factory=list)
    # cull only, each also in ``others``: files not on disk now, and files with the same bytes as a pick
    # (the picked photo itself, at another path).
    missing: list[dict[str, Any]] = field(default_factory=list)
    copies_of_picks: list[dict[str, Any]] = field(default_factory=list)
    # What the aesthetic number is: "distribution" (a predicted distribution's mean) or "score" (a model
    # that predicts one number, such as LAION's); None when ranked by technical quality.
    output: str | None = None

    @property
    def basis(self) -> str:
        return "aesthetic" if self.by in AESTHETIC_KEYS else "technical"

    @property
    def rejects(self) -> list[dict[str, Any]]:
        """cull only: the photos not picked as ``--move-rejects`` moves them and ``--clear-previous``
        un-rates them, which is ``others`` less the files not on disk (nothing there to move) and the
        copies of a pick (they are the keeper). A copy of a photo not picked is a reject like it."""
        aside = {id(row) for row in (*self.missing, *self.copies_of_picks)}
        return [row for row in self.others if id(row) not in aside]


def public_row(row: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """``fields`` of a ranked row as JSON, CSV and manifests show it: ``score`` is the aesthetic number
    ranked on (a distribution's mean, or a score model's one score) and ``output`` says which; ``mean``,
    ``std``, ``p_high`` and ``dist`` belong to a distribution and are null for a score model."""
    view = {**row, "score": row.get("mean")}
    if row.get("output") == "score":
        view["mean"] = view["std"] = view["p_high"] = view["dist"] = None
    return {k: view.get(k) for k in fields}


def _order(column: str) -> Any:
    """Best first; ties go to the technically better photo, then to the more confident prediction
    (the smaller spread of its distribution), then by path so the order is stable."""
    return lambda r: (-(r[column] or 0.0), -(r["technical"] or 0.0), r["std"] or 0.0, r["path"])


def rank(
    store: Store,
    roots: Paths = (),
    *,
    by: str = "mean",
    model: str | None = None,
    weights: str | None = None,
    filters: Filters | None = None,
    top: int | None = None,
    recursive: bool = True,
) -> Ranking:
    """Photos under ``roots`` (all, if empty; with ``recursive`` off, only those right in each of ``roots``,
    not in a subfolder) sorted by ``by``, best first.

    Aesthetic keys use the scores :func:`choose_scores` picks for ``model`` and ``weights`` (what
    ``score`` would use). When no aesthetic scores exist the ranking falls back to technical quality and
    says so in ``notes``.
    """
    if by not in RANK_KEYS:
        raise OptionError(f"unknown sort key {by!r}; use one of {', '.join(RANK_KEYS)}")
    _check_top(top)
    roots = _distinct_roots(roots)
    chosen = choose_scores(store, model, weights)
    key, notes = chosen.key, list(chosen.notes)
    recorded = store.recorded_copies()
    rows = _without_moved_away(store.photos(key, roots), recorded)
    names_of = {root: store.folder_names(root) for root in roots}
    if roots and not recursive:
        folders = {name for names in names_of.values() for name in names}
        rows = [row for row in rows if os.path.dirname(row["path"]) in folders]
        notes.append("photos in subfolders are left out (--no-recursive)")
    for root, names in names_of.items():  # a mistyped, never scanned or unreadable folder: say so, not an empty table
        if not any(is_within(row["path"], name) for row in rows for name in names):
            notes.append(nothing_under(store, root))
    if not (roots or rows):  # an empty database: no fallback to explain, a first step to name
        notes.append(nothing_under(store, None))
    rows = _without_aliases(rows, recorded)  # (after the check above: a folder of aliases is no empty folder)
    from aesthete.signals import technical_quality

    for row in rows:  # from the cached signals: photos scored by an older formula rank by today's too
        row["technical"] = technical_quality(row, row.get("width"), row.get("height"))
    output = None
    if by in AESTHETIC_KEYS:
        scored = [r for r in rows if r["mean"] is not None]
        if scored:
            if len(scored) < len(rows):
                missing = f"{len(rows) - len(scored)} photo(s) have no {key.model} score and are not ranked"
                from aesthete.learning import PERSONAL_MODEL

                if key.model == PERSONAL_MODEL:  # photos scored with the base weights since `learn`
                    missing += f" (`aesthete score --weights {chosen.weights} FOLDER` gives them one)"
                notes.append(missing)
            rows = scored
            output = "score" if all(r["dist"] is None for r in scored) else "distribution"
            if output == "score" and by != "mean":
                # A score model predicts no distribution: it has no spread or p_high to sort on.
                raise OptionError(
                    f"--by {by} needs a predicted distribution; {key.model} predicts one score: use --by mean"
                )
        else:
            if rows:
                notes.append(NO_AESTHETIC_SCORES)
            by = "technical"
    filters = filters or Filters()
    if filters.need_faces and (unlooked := sum(r.get("faces") is None for r in rows)):
        from aesthete.faces import how_to_look

        notes.append(
            f"{unlooked} photo(s) were never looked at for faces and are left out: {how_to_look('their folders')}"
        )
    rows = [r for r in rows if filters.accepts(r)]
    rows.sort(key=_order(RANK_KEYS[by]))
    if top is not None:
        rows = rows[:top]
    return Ranking(rows=rows, by=by, key=key, notes=notes, output=output, weights=chosen.weights)


def _without_moved_away(rows: list[dict[str, Any]], recorded: dict[str, list[str]]) -> list[dict[str, Any]]:
    """``rows`` less the old paths of moved photos: a path that no longer exists while the same content is
    recorded at one that does (:meth:`Store.recorded_copies`, ``recorded``), wherever in the database: a
    photo moved out of the folders ranked is still recorded at its new path, and is not also one here. A
    missing file with no such twin stays: it may be on a drive that is not mounted. Only paths whose
    content is recorded twice are looked at."""
    exists = functools.cache(os.path.exists)  # (twins share their list of paths: each is looked at once)
    gone = {
        id(row)
        for row in rows
        if (paths := recorded.get(row["content_hash"]))
        and not exists(row["real_path"])
        and any(exists(path) for path in paths if path != row["real_path"])
    }
    return [row for row in rows if id(row) not in gone] if gone else rows


def _without_aliases(rows: list[dict[str, Any]], recorded: dict[str, list[str]]) -> list[dict[str, Any]]:
    """``rows`` less the other paths of one file: a folder scanned once through a symlink and once by its
    real path records each photo under both, and that is one file, not a copy of it (a cull would pass it
    over as a copy of itself, and ``--move-rejects`` move it twice). The path kept is the file's real path
    where it is among ``rows``, else the first. A hard link is a copy (another name to move). Only contents
    recorded at two paths or more (``recorded``) are looked at."""
    kept: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["content_hash"] not in recorded:
            continue
        real = os.path.realpath(row["real_path"])
        other = kept.get(real)
        if other is None or (other["real_path"] != real and row["real_path"] == real):
            kept[real] = row
    aliases = {id(row) for row in rows if row["content_hash"] in recorded} - {id(row) for row in kept.values()}
    return [row for row in rows if id(row) not in aliases] if aliases else rows


def check_score(value: float | None, option: str) -> None:
    """A score bound must be a number: no score compares with NaN, so ``--min-score nan`` dropped the bound
    in silence (every photo kept)."""
    if value is not None and math.isnan(value):
        raise OptionError(f"{option} takes a number, not {value:g}")


def _check_top(top: int | None) -> None:
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise OptionError(f"--top takes a whole number of photos, at least 1, not {top!r}")


def _distinct_roots(roots: Paths) -> list[str]:
    """``roots`` with each folder once, as first spelt (``nope``, ``./nope`` and ``nope/`` are one folder):
    a folder named twice is looked in, and reported on, once."""
    spelt: dict[str, str] = {}
    for root in path_list(roots):
        spelt.setdefault(os.path.abspath(root), root)
    return list(spelt.values())


def last_run_scope(store: Store, roots: Paths, recursive: bool = True) -> tuple[list[str], bool]:
    """(folders, whether their subfolders count): ``roots`` and ``recursive`` as given or, with no roots,
    the folders of the last ``score`` run and whether it descended into them (not with ``--no-recursive``).
    The scores read are those ``score`` would use (:func:`choose_scores`), not necessarily the last run's."""
    roots = _distinct_roots(roots)
    if roots:
        return roots, recursive
    last = store.last_run()
    if last is None:
        raise NothingToDoError("nothing scored yet: run `aesthete score FOLDER` first, or pass folders")
    return last["roots"], last["recursive"]


def not_there(path: str) -> str | None:
    """Why ``path`` cannot be looked at -- it does not exist, or it is behind a folder that cannot be opened
    (there, not missing: field test) -- or None when it is there."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return f"no such file or folder: {path}"
    except OSError as error:
        return f"{path}: cannot be opened ({error.strerror})"
    return None


def nothing_under(store: Store, root: str | None) -> str:
    """Why no photo under ``root`` (None: in the whole database) is in the database, and what to run: files
    that were found but could not be read point to ``aesthete failures``, a folder never scored to ``score``."""
    failed = len(store.failures([root] if root is not None else []))
    where = f" under {root}" if root is not None else ""
    if failed:
        listing = "aesthete failures" + (f" {shlex.quote(root)}" if root is not None else "")
        files = "1 file" if failed == 1 else f"{failed} files"
        return f"no photo{where} could be read: {files} failed (`{listing}` says why)"
    if root is None:
        return "nothing scored yet: run `aesthete score FOLDER` first"
    # A typo, most likely: scoring it would not help (field test), nor is a missing folder one that a run of
    # a folder above it "found no photos under" (field test: `rank LIBRARY/typo` said so).
    unreachable = not_there(root)
    if unreachable:
        return unreachable
    if store.scanned(root):
        return f"`aesthete score` found no photos under {root}"
    return f"no photos{where} in the database: run `aesthete score` on it first"


def scope_ranking(
    store: Store,
    roots: Paths = (),
    *,
    model: str | None = None,
    weights: str | None = None,
    recursive: bool = True,
) -> tuple[list[str], Ranking]:
    """The folders ``cull``, ``groups`` and ``report`` work on (``roots``, or the folders of the last
    ``score`` run, as :func:`last_run_scope`) and their photos, best first by aesthetic mean (technical
    quality when nothing is scored). Raises :class:`NothingToDoError` when there are none: nothing scored
    there, or no file there could be read."""
    roots, recursive = last_run_scope(store, roots, recursive)
    ranking = rank(store, roots, by="mean", model=model, weights=weights, recursive=recursive)
    if not ranking.rows:
        raise NothingToDoError("; ".join(nothing_under(store, root) for root in roots))
    return roots, ranking


def cull(
    store: Store,
    roots: Paths = (),
    *,
    top: int | None = None,
    keep_percent: float | None = None,
    min_score: float | None = None,
    model: str | None = None,
    weights: str | None = None,
    group: bool = True,
    reject_blurry: bool = True,
    reject_exposure: bool = True,
    reject_closed_eyes: bool = False,
    filters: Filters | None = None,
    recursive: bool = True,
) -> Ranking:
    """The photos worth keeping from ``roots`` (with ``recursive`` off, not from their subfolders), or from
    the folders the most recent ``score`` run looked in.

    Candidates are ranked by aesthetic mean (technical quality when nothing is scored, which the notes
    say), then photos failing ``filters`` or ``min_score`` drop out, and so do, unless ``reject_blurry`` /
    ``reject_exposure`` are turned off, frames flagged blurry or under-/overexposed, and with
    ``reject_closed_eyes`` frames flagged eyes-closed; then with ``group`` only one remaining photo of
    each burst / near-duplicate group (:mod:`aesthete.groups`) stays a candidate, the best-ranked frame
    without a face flag (:func:`group_picks`), and finally ``top`` (or ``keep_percent`` of the ranked
    photos that can be picked) cuts the list. With no limit given at all the best :data:`DEFAULT_TOP` are
    kept. A file not on disk now is never picked, and byte-identical files are one photo, seen as their
    original (:func:`not_candidates`). Each pick gets ``pick`` (its place), and ``group``/``group_size``;
    every other ranked file lands in ``others`` with ``why`` it was not picked (the files not on disk also
    in ``missing``, the copies of a pick also in ``copies_of_picks``).
    """
    if top is not None and keep_percent is not None:
        raise OptionError("use either --top or --keep, not both")
    _check_top(top)
    check_score(min_score, "--min-score")
    if keep_percent is not None and not 0 < keep_percent <= 100:
        raise OptionError(f"--keep must be a percentage above 0 and at most 100, not {keep_percent:g}")
    if top is None and keep_percent is None and min_score is None:
        top = DEFAULT_TOP
    _, ranking = scope_ranking(store, roots, model=model, weights=weights, recursive=recursive)
    if min_score is not None and ranking.basis != "aesthetic":
        raise OptionError("--min-score compares aesthetic scores and none are cached here; use --top or --keep")
    aside, candidates, rejected = _sorted_out(
        ranking.rows, filters or Filters(), min_score, reject_blurry, reject_exposure, reject_closed_eyes
    )
    limit = top if keep_percent is None else math.ceil(len(candidates) * keep_percent / 100)
    cut = f"top {top}" if keep_percent is None else f"{keep_percent:g}% kept ({limit} photos)"
    if group:
        annotate(candidates, ensure_groups(store))
    preferred = group_picks(candidates, rejected) if group else {}
    best_of: dict[int, dict[str, Any]] = {}
    picks: list[dict[str, Any]] = []
    passed: set[int] = set()
    for row in candidates:
        why = rejected[id(row)]
        if why is None and group and row["group"] in best_of:
            why = f"group {row['group']}: {best_of[row['group']]['path']} ranks higher"
        elif why is None and group and (winner := preferred[row["group"]]) is not row and id(winner) not in passed:
            # Ranked above the group's pick, but a face here has closed eyes or is soft and the pick's are not.
            why = f"group {row['group']}: {', '.join(face_flags_of(row))}; {winner['path']} has no face flagged"
        passed.add(id(row))
        if why is None and limit is not None and len(picks) >= limit:
            why = f"beyond the {cut}"
        if why is None:
            row["pick"] = len(picks) + 1
            picks.append(row)
            if group:
                best_of[row["group"]] = row
        else:
            row["why"] = why
    picked = {id(row) for row in picks}
    missing, copies_of_picks = [], []
    for row in ranking.rows:  # after the picks: whether a copy's original was picked is known only now
        if id(row) not in aside:
            continue
        original = aside[id(row)]
        if original is None:
            row["why"] = NOT_ON_DISK
            missing.append(row)
        elif id(original) in picked:
            row["why"] = f"identical to {original['path']}, which is picked"
            copies_of_picks.append(row)
        else:
            row["why"] = f"identical to {original['path']}, which is not picked"
    notes = list(ranking.notes)
    if missing:
        notes.append(
            f"{len(missing)} photo(s) are not on disk now and cannot be picked (deleted, or on a drive that is "
            "not mounted); `aesthete rank` still lists them"
        )
    return Ranking(
        rows=picks,
        by=ranking.by,
        key=ranking.key,
        notes=notes,
        others=[row for row in ranking.rows if id(row) not in picked],
        missing=missing,
        copies_of_picks=copies_of_picks,
        output=ranking.output,
        weights=ranking.weights,
    )


def not_candidates(rows: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any] | None]:
    """The rows (by id) that a cull cannot pick whatever their score, each with the row of the photo it is a
    copy of, or None when its file is not on disk now.

    A file missing now cannot be exported, rated, moved or looked at (``rank`` and ``report`` still list
    it: it may be on a drive that is not mounted). Byte-identical files (one content hash) are one photo,
    which a cull sees once, as its original: the file outside aesthete's own export albums
    (:func:`aesthete.export.is_album`), then the one modified first, then the first path. Every other file
    holding those bytes is a copy of it, so that two copies of a photo are never both picked nor one the
    other's worse frame.
    """
    from aesthete.export import is_album  # (aesthete.export imports this module)

    in_album = functools.cache(is_album)  # one manifest read per folder
    aside: dict[int, dict[str, Any] | None] = {}
    present: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if os.path.exists(row["real_path"]):
            present.setdefault(row["content_hash"], []).append(row)
        else:
            aside[id(row)] = None
    for same in present.values():
        if len(same) > 1:
            original = min(same, key=lambda r: (in_album(os.path.dirname(r["real_path"])), r["mtime_ns"], r["path"]))
            aside.update((id(row), original) for row in same if row is not original)
    return aside


def face_flags_of(row: dict[str, Any]) -> list[str]:
    """The face flags (``eyes-closed``, ``face-soft``) among a row's flags."""
    return [flag for flag in row["flags"] if flag in _faces().FACE_FLAGS]


@functools.cache
def _faces() -> ModuleType:
    """:mod:`aesthete.faces`, imported on first use (once, not per row): it imports numpy and Pillow,
    which `--help` and the commands that never look at faces do not need."""
    from aesthete import faces

    return faces


def kept_frames(rows: Sequence[dict[str, Any]]) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
    """What a cull with its default options does with each group of ``rows`` (annotated by
    :func:`aesthete.groups.annotate`, in rank order): the frame it keeps of each group (none where every
    frame is ruled out), and why each frame it could never pick is ruled out (row id -> a flag, not on disk,
    a copy) or, ranked above its group's kept frame, passed over (its face flags). ``report`` outlines the
    kept frames and ``groups`` marks them, so both say what ``cull`` does."""
    aside, candidates, rejected = _sorted_out(rows, Filters(), None, reject_blurry=True, reject_exposure=True)
    why = {key: NOT_ON_DISK if original is None else f"identical to {original['path']}"
           for key, original in aside.items()}  # fmt: skip
    why.update({key: reason for key, reason in rejected.items() if reason is not None})
    picks = group_picks(candidates, rejected)
    # A frame ranked above its group's kept frame lost for a face flag alone (group_picks): without a word,
    # "best first" and a "keeps" further down read as a mistake (field test).
    reached: set[int] = set()  # groups whose kept frame is passed already
    for row in candidates:
        pick = picks.get(row["group"])
        if row is pick:
            reached.add(row["group"])
        elif pick is not None and row["group"] not in reached and id(row) not in why:
            why[id(row)] = f"{', '.join(face_flags_of(row))}: passed over"
    return picks, why


def _sorted_out(
    rows: Sequence[dict[str, Any]],
    filters: Filters,
    min_score: float | None,
    reject_blurry: bool,
    reject_exposure: bool,
    reject_closed_eyes: bool = False,
) -> tuple[dict[int, dict[str, Any] | None], list[dict[str, Any]], dict[int, str | None]]:
    """(the rows a cull sees not at all, :func:`not_candidates`; the candidates; why each candidate cannot be
    picked, or None): what :func:`cull` and :func:`kept_frames` both start from."""
    aside = not_candidates(rows)
    candidates = [row for row in rows if id(row) not in aside]
    rejected = {
        id(row): _rejected(row, filters, min_score, reject_blurry, reject_exposure, reject_closed_eyes)
        for row in candidates
    }
    return aside, candidates, rejected


def group_picks(
    rows: Sequence[dict[str, Any]], rejected: dict[int, str | None] | None = None
) -> dict[int, dict[str, Any]]:
    """The frame each group (``row["group"]``, from :func:`aesthete.groups.annotate`) offers a cull, among
    ``rows`` in rank order: the best-ranked frame with no face flag (every face with open eyes and in
    focus), else the best-ranked frame. A frame without faces has no face flag: it competes with a frame
    of good faces on its score alone. ``rejected`` (row id -> why, None when it may be picked) leaves out
    frames that cannot be picked at all."""
    out: dict[int, dict[str, Any]] = {}
    for row in rows:
        if rejected is not None and rejected[id(row)] is not None:
            continue
        current = out.get(row["group"])
        if current is None or (face_flags_of(current) and not face_flags_of(row)):
            out[row["group"]] = row
    return out


def _rejected(
    row: dict[str, Any],
    filters: Filters,
    min_score: float | None,
    reject_blurry: bool,
    reject_exposure: bool,
    reject_closed_eyes: bool = False,
) -> str | None:
    """Why ``row`` cannot be picked whatever else is in the shoot, or None."""
    if min_score is not None and row["mean"] < min_score:
        return f"score {row['mean']:.2f} below {min_score:g}"
    if not filters.accepts(row):
        return "excluded by the filters"
    if reject_blurry and "blurry" in row["flags"]:
        return "blurry"
    bad_exposure = [f for f in row["flags"] if f in EXPOSURE_FLAGS]
    if reject_exposure and bad_exposure:
        return bad_exposure[0]
    if reject_closed_eyes and "eyes-closed" in row["flags"]:
        return "eyes-closed"
    return None
