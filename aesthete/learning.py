"""``aesthete learn``: a personal head fitted on what scoring stored, registered as weights by name.

The flow (issue 15): read the photographer's ratings (:mod:`aesthete.ratings`), tie them to photos
aesthete scanned, leave out ratings aesthete wrote itself, take each photo's stored embedding (from the
base model's penultimate layer) and technical signals, fit and cross-validate a head
(:mod:`aesthete.personal`), save it as ``<data dir>/personal/NAME.safetensors`` (its metadata names the
base model and weights) and write a score per photo: the head's prediction on the star scale (0 =
rejected, 1-5 stars; not clipped, so the order beyond the ends is kept), under the model name
:data:`PERSONAL_MODEL`. No photo is decoded.

Scores are stored as one number per photo (``mean``; ``dist``, ``std`` and ``p_high`` NULL): a ridge
head predicts a value, not a distribution.

``--weights NAME`` then means the head wherever weights are named: ``score`` runs the base model (so new
photos get embeddings) and applies the head; ``rank``, ``cull``, ``show`` and ``report`` read its scores
(:func:`scores_key`). Names are shared with the weights registry: a personal name may not shadow a
registered one.

numpy and :mod:`aesthete.personal` (the head's numerics) are imported where a head is read, fitted or
applied: `score`, `rank` and `show` ask this module whether a name is a personal head, and start without
them when it is not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aesthete import paths
from aesthete.errors import AestheteError, NothingToDoError
from aesthete.store import ModelKey, Store, now_iso

if TYPE_CHECKING:
    import numpy as np

    from aesthete import personal
    from aesthete.ratings import Judgement, Rating

PERSONAL_MODEL = "personal"


class LearnError(AestheteError):
    """Learning cannot start (no scores, no embeddings, an unusable name); one line says why."""


def heads_dir(*, create: bool = False) -> Path:
    """Where personal heads live: ``<data dir>/personal``."""
    folder = paths.data_dir(create=create) / "personal"
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def head_path(name: str) -> Path | None:
    """The file of the personal head called ``name``, or None when there is none."""
    from aesthete.weights import NAME_RE

    if not NAME_RE.fullmatch(name):
        return None
    path = heads_dir() / f"{name}.safetensors"
    return path if path.is_file() else None


def _digest(path: Path) -> str:
    from aesthete.weights import file_sha256

    return file_sha256(path)[:16]


def head_paths() -> list[Path]:
    """Every personal head's file, by name."""
    folder = heads_dir()
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []


def head_name(weights_id: str) -> str | None:
    """The name of the personal head whose scores are stored under ``weights_id`` (its digest), if any:
    how tables label a head's scores (:func:`aesthete.weights.weights_label`)."""
    for path in head_paths():
        if _digest(path)[: len(weights_id)] == weights_id:
            return path.stem
    return None


def list_heads() -> list[dict[str, Any]]:
    """What ``aesthete weights list`` shows of each personal head: name, kind ``personal``, base model
    and weights, rated photos used, cross-validated SRCC (None when not recorded) and path. A file
    that cannot be read is listed with its error rather than hiding the rest."""
    heads = head_paths()
    if not heads:  # the usual case: no numpy for `weights list`
        return []
    from aesthete import personal

    rows = []
    for path in heads:
        row: dict[str, Any] = {"name": path.stem, "kind": "personal", "path": str(path)}
        try:
            row.update(personal.head_summary(path))
        except personal.PersonalError as exc:
            row["error"] = str(exc)
        rows.append(row)
    return rows


def personal_key(path: Path, head: personal.Head) -> ModelKey:
    """The key the head's scores are stored under: its file's digest and the base model's preprocessing."""
    return ModelKey(PERSONAL_MODEL, _digest(path), head.extra.get("base_preprocess", ""))


def base_key(head: personal.Head) -> ModelKey:
    return ModelKey(head.base_model or "", head.extra.get("base_weights_id", ""), head.extra.get("base_preprocess", ""))


def scores_key(weights: str | None, model: str | None = None) -> ModelKey | None:
    """The stored scores ``--weights`` names for ``rank``/``cull``/``show``/``report``: a personal head's,
    or a registered checkpoint's (its model, weights id and preprocessing). None without ``weights``."""
    if not weights:
        return None
    path = head_path(weights)
    if path is not None:
        from aesthete import personal

        return personal_key(path, personal.load_head(path))
    from aesthete.scoring import choose_model

    return choose_model(model, weights).key


# ------------------------------------------------------------------------------------------ learning


@dataclass
class LearnReport:
    name: str
    path: str
    base: ModelKey
    ratings: int  # read from the source
    matched: int  # tied to a photo aesthete scanned (and under the roots, when given)
    unmatched: int
    own: int  # ratings aesthete wrote itself and that are unchanged: left out
    corrected: int  # ratings the photographer changed after aesthete wrote one (weighted up)
    unusable: int  # unrated, or a pick without stars where the library has stars
    no_embedding: int  # rated photos the base model has not stored an embedding for
    used: int
    cv: personal.CrossValidation
    scored: int  # photos given a personal score
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("cv", "base")}
        data["base"] = dict(self.base.__dict__)
        data["cross_validation"] = self.cv.to_dict()
        return data


def _base_with_embeddings(store: Store, model: str | None) -> ModelKey:
    """The model, weights and preprocessing (``model``'s, when given) of the most recent ``score`` run
    that stored embeddings, else of the most recent scores that did. Runs first: an embed-only run
    (ImageNet weights, :mod:`aesthete.embed_only`) stores embeddings and no scores."""
    runs = (
        "SELECT r.model, r.weights_id, r.preprocess FROM runs r WHERE r.model IS NOT NULL AND r.model != ? "
        "AND EXISTS (SELECT 1 FROM embeddings e WHERE e.model = r.model AND e.weights_id = r.weights_id "
        "AND e.preprocess = r.preprocess)"
    )
    params: list[Any] = [PERSONAL_MODEL]
    if model:
        runs, params = runs + " AND r.model = ?", [*params, model]
    row = store.conn.execute(runs + " ORDER BY r.id DESC LIMIT 1", params).fetchone()
    if row is not None:
        return ModelKey(*row)
    sql = (
        "SELECT s.model, s.weights_id, s.preprocess FROM scores s WHERE s.model != ? "
        "AND EXISTS (SELECT 1 FROM embeddings e WHERE e.content_hash = s.content_hash AND e.model = s.model "
        "AND e.weights_id = s.weights_id AND e.preprocess = s.preprocess)"
    )
    params = [PERSONAL_MODEL]
    if model:
        sql, params = sql + " AND s.model = ?", [*params, model]
    row = store.conn.execute(sql + " ORDER BY s.scored_at DESC, s.rowid DESC LIMIT 1", params).fetchone()
    if row is None:
        which = f"model {model!r}" if model else "any model"
        ran = "SELECT 1 FROM scores WHERE model != ? UNION ALL SELECT 1 FROM embeddings LIMIT 1"
        if store.conn.execute(ran, [PERSONAL_MODEL]).fetchone() is None:
            # Only technical signals so far: scoring again without weights would not help. Nothing to learn
            # on yet, as `cull` on a database with nothing scored: exit 3.
            raise NothingToDoError(
                f"no stored embeddings from {which}: no model has scored a photo in this database yet. "
                "Get weights (`aesthete weights list`), then run `aesthete score FOLDER`"
            )
        raise LearnError(
            f"no stored embeddings from {which}: run `aesthete score FOLDER` first "
            "(photos scored before embeddings were stored need `aesthete score --rescore FOLDER`)"
        )
    return ModelKey(*row)


def _check_name(name: str) -> None:
    from aesthete.weights import NAME_RE, list_weights

    if not NAME_RE.fullmatch(name):
        raise LearnError(f"{name!r}: a weights name is letters, digits and ._+- (at most 100 characters)")
    if any(entry.name == name for entry in list_weights()):
        raise LearnError(f"{name!r} already names registered weights (`aesthete weights list`); choose another --name")


def learn(
    store: Store,
    *,
    name: str,
    roots: Sequence[str] = (),
    source: str = "xmp",
    catalog: str | os.PathLike[str] | None = None,
    model: str | None = None,
    weights: str | None = None,
    method: str | None = None,
    folds: int | None = None,
) -> LearnReport:
    """Fit the personal head ``name`` from the ratings of ``source`` on the photos under ``roots`` (all
    scanned photos when empty), register it and score every photo that has a base embedding.

    The base is the checkpoint ``weights`` (with ``model``), else the latest scores that stored
    embeddings. ``method`` and ``folds`` default to :data:`aesthete.personal.DEFAULT_METHOD` and
    :data:`~aesthete.personal.DEFAULT_FOLDS`. Raises :class:`LearnError`,
    :class:`aesthete.personal.NotEnoughRatings` (too few or all-equal ratings) and
    :class:`aesthete.ratings.RatingsError` (an unreadable catalog)."""
    import numpy as np

    from aesthete import personal
    from aesthete import ratings as rt

    method = personal.DEFAULT_METHOD if method is None else method
    folds = personal.DEFAULT_FOLDS if folds is None else folds
    _check_name(name)
    if weights and head_path(weights) is not None:  # a head learns on a model's embeddings, not on another head
        raise LearnError(
            f"{weights!r} is a personal head; learn on the weights it was learned on (`aesthete weights list`), "
            "or leave out --weights"
        )
    if weights:
        from aesthete.scoring import choose_model

        key = choose_model(model, weights).key
        assert key is not None  # resolve_weights raised otherwise
        base = key
    else:
        base = _base_with_embeddings(store, model)
    roots = [os.path.abspath(r) for r in roots]
    if source == "xmp":  # `learn ~/Photos cat.lrcat` without --from: the catalog would be a folder of no photos
        for root in roots:
            kind = rt.catalog_kind(root) if os.path.isfile(root) else None
            if kind:
                raise LearnError(f"{root} is a {kind[1]}: read its ratings with --from {kind[0]} "
                                 "(--from xmp, the default, reads the sidecars beside the photos)")  # fmt: skip
    scanned = store.photos(None, roots)
    notes: list[str] = []
    if roots and not scanned:  # "read 0 ratings" would not say that the folders were never scored
        from aesthete.select import nothing_under

        raise NothingToDoError("; ".join(nothing_under(store, root) for root in roots))
    if source == "xmp":
        if catalog is not None:
            raise LearnError("--from xmp reads the sidecars beside the photos; it takes no FILE")
        found, trouble = rt.read_xmp_reporting([row["real_path"] for row in scanned])
        notes += trouble.notes() + _never_scored_note(store, roots)
    else:
        if catalog is None:
            raise LearnError(f"--from {source} needs the catalog FILE")
        found = rt.read_source(source, catalog)
    result = rt.match_ratings(found, store)
    # Kept to the roots by content, not by the path a rating landed on: a library moved and scored again
    # keeps the rows of its old place, and a catalog's (old) paths match those rows.
    under = {row["content_hash"] for row in scanned}
    matched = [m for m in result.matched if not roots or m.content_hash in under]
    judged, own = rt.photographers_own(matched, rt.written_ratings(store))
    judgements, copies_note = _one_per_photo(judged)
    notes += copies_note
    y = personal.targets([j.rating for j in judgements])
    usable = [j for j, t in zip(judgements, y) if not np.isnan(t)]
    hashes, vectors = store.embeddings(base, [j.content_hash for j in usable])
    position = {h: i for i, h in enumerate(hashes)}
    have = [j for j in usable if j.content_hash in position]
    if len(have) < len(usable):
        notes.append(
            f"{len(usable) - len(have)} rated photo(s) have no stored {base.model} embedding and were left out "
            "(scored before embeddings were stored: `aesthete score --rescore` adds them)"
        )
    images = store.images_by_hash(j.content_hash for j in have)
    embedding = vectors[[position[j.content_hash] for j in have]] if have else None
    features = personal.feature_matrix([images[j.content_hash] for j in have], embedding)
    target = personal.targets([j.rating for j in have]) if have else np.zeros(0)
    weights_ = np.array([j.weight for j in have])
    base_scores: np.ndarray | None = _base_means(store, base, [j.content_hash for j in have])
    if base_scores is not None and np.isnan(base_scores).all():
        base_scores = None  # embed-only weights (or scores since replaced): no base-model row to compare
        notes.append(f"{base.model} stored no aesthetic scores for these photos: no base-model figures to compare")
    try:
        cv = personal.cross_validate(features, target, weights_, base_scores, method=method, folds=folds)
    except personal.NotEnoughRatings as exc:  # say where the ratings went: a bare count explains nothing
        elsewhere = "not on a photo aesthete scanned" + (" under the folders given" if roots else "")
        kept = {
            "matched to scanned photos": len(matched), elsewhere: len(found) - len(matched),
            "written by aesthete (left out)": own,
            "unrated": len(judgements) - len(usable), "without a stored embedding": len(usable) - len(have),
        }  # fmt: skip
        where = ", ".join(f"{n} {what}" for what, n in kept.items() if n)
        raise personal.NotEnoughRatings(f"{exc} (read {len(found)} rating(s){': ' + where if where else ''})") from None
    notes += cv.doubts()
    if cv.folds != folds:
        notes.append(f"{cv.folds} folds, not {folds}: each fold holds out at least 4 of the {cv.photos} photos")
    dim = 0 if embedding is None else embedding.shape[1]
    head = personal.fit_head(
        features, target, weights_, method=method, spec=personal.feature_spec(dim, f"{base.model}:{base.weights_id}"),
        base_model=base.model, base_weights=weights or _weights_name(base.weights_id),
    )  # fmt: skip
    head.extra = {"base_weights_id": base.weights_id, "base_preprocess": base.preprocess, "name": name,
                  "rated_photos": len(have), "learned": now_iso()}  # fmt: skip
    notes += _replacing(name)
    path = save(head, name, cv)
    scored = apply_head(store, path)
    return LearnReport(
        name=name, path=str(path), base=base, ratings=len(found), matched=len(matched),
        unmatched=len(found) - len(matched), own=own, corrected=sum(j.changed for j in judgements),
        unusable=len(judgements) - len(usable), no_embedding=len(usable) - len(have), used=len(have), cv=cv,
        scored=scored, notes=notes,
    )  # fmt: skip


def _never_scored_note(store: Store, roots: Sequence[str]) -> list[str]:
    """A note on the photos under ``roots`` that have a sidecar but were never scanned (added after the
    last ``score``): learning reads the sidecars of scanned photos only, so their ratings were not read."""
    from aesthete.discover import discover
    from aesthete.ratings import xmp_candidates

    known = store.known_files()
    unscanned = [
        found.path
        for found in discover(roots)
        if found.path not in known and any(os.path.isfile(sidecar) for sidecar in xmp_candidates(found.path))
    ]
    if not unscanned:
        return []
    return [
        f"{len(unscanned)} photo(s) with a sidecar were never scored, so their ratings were not read (first: "
        f"{unscanned[0]}): `aesthete score` their folder, then learn again"
    ]


def _one_per_photo(judged: Sequence[Judgement]) -> tuple[list[Judgement], list[str]]:
    """One judgement per photo content: of copies rated more than once, the one read last, and a note
    naming the first photo whose copies were rated differently (a photographer can open both)."""
    by_hash: dict[str, Judgement] = {}
    differing: dict[str, tuple[Judgement, Judgement]] = {}
    for j in judged:
        earlier = by_hash.get(j.content_hash)
        if earlier is not None and (earlier.rating.rating, earlier.rating.pick) != (j.rating.rating, j.rating.pick):
            differing.setdefault(j.content_hash, (earlier, j))
        by_hash[j.content_hash] = j
    if not differing:
        return list(by_hash.values()), []
    first, other = next(iter(differing.values()))
    return list(by_hash.values()), [
        f"{len(differing)} photo(s) have copies rated differently; the one read last was used (first: "
        f"{first.rating.path}: {_said(first.rating)}, its copy {other.rating.path}: {_said(other.rating)})"
    ]


def _said(rating: Rating) -> str:
    """A rating as a photographer names it."""
    if rating.rejected:
        return "rejected"
    if rating.rating > 0:
        return f"{rating.rating} star{'s' if rating.rating > 1 else ''}"
    return "picked" if rating.pick > 0 else "unrated"


def _replacing(name: str) -> list[str]:
    """A note when learning again under a name replaces a head, with its figures: the photographer sees
    what was there to compare the new table with (and a name reused by mistake)."""
    path = head_path(name)
    if path is None:
        return []
    from aesthete import personal

    try:
        was = personal.head_summary(path)
    except personal.PersonalError:
        return [f"replaced the earlier head {name!r}, which could not be read"]
    srcc = "" if was["cv_srcc"] is None else f", cross-validated SRCC {was['cv_srcc']:.3f}"
    when = f"learned {was['created'][:10]} " if was["created"] else ""
    return [f"replaced the earlier head {name!r} ({when}on {was['ratings']} rated photos{srcc})"]


def _weights_name(weights_id: str) -> str | None:
    """The registered name of the weights (aesthetic, or an ImageNet backbone's for embed-only scoring)
    whose digest starts with ``weights_id``, if any."""
    from aesthete.weights import list_weights

    for entry in list_weights():
        if entry.sha256 and entry.sha256.startswith(weights_id):
            return entry.name
    return None


def personal_choice(name: str, model: str | None) -> tuple[Path, Any] | None:
    """For ``score --weights NAME``: (the head's file, the base model's :class:`~aesthete.scoring.ModelChoice`)
    when NAME is a personal head, else None. The base must still be the weights the head learned on."""
    path = head_path(name)
    if path is None:
        return None
    from aesthete import personal
    from aesthete.scoring import choose_model

    head = personal.load_head(path)
    if model and model != head.base_model:
        raise LearnError(f"{name!r} was learned on {head.base_model} embeddings, not {model}")
    if not head.base_weights:
        raise LearnError(
            f"{name!r} was learned on unregistered {head.base_model} weights ({head.extra.get('base_weights_id')}); "
            "register them (`aesthete weights add FILE --name N`) and learn again with --weights N"
        )
    from aesthete.weights import UnknownWeights

    try:
        choice = choose_model(head.base_model, head.base_weights)
    except UnknownWeights:  # removed since (`weights remove`): "unknown weights 'tiny'" would not name the head
        raise LearnError(
            f"{name!r} was learned on weights {head.base_weights!r}, which are no longer registered: get them back "
            f"(pulled again, or `aesthete weights add FILE --name {head.base_weights}` with the same file) to score "
            "new photos; `rank`/`cull --weights "
            f"{name}` still use the scores stored"
        ) from None
    if choice.key is None or choice.key.weights_id != head.extra.get("base_weights_id"):
        raise LearnError(f"{name!r}: the base weights {head.base_weights!r} changed since it was learned; learn again")
    return path, choice


def _base_means(store: Store, key: ModelKey, hashes: Sequence[str]) -> np.ndarray:
    import numpy as np

    means = dict(
        store.conn.execute(
            "SELECT content_hash, mean FROM scores WHERE model = ? AND weights_id = ? AND preprocess = ?",
            (key.model, key.weights_id, key.preprocess),
        ).fetchall()
    )
    return np.array([np.nan if means.get(h) is None else float(means[h]) for h in hashes], dtype=np.float64)


def save(head: personal.Head, name: str, cv: personal.CrossValidation | None) -> Path:
    """Write the head as ``<data dir>/personal/NAME.safetensors``, atomically (learning again replaces it)."""
    from aesthete import fileops, personal

    path = heads_dir(create=True) / f"{name}.safetensors"
    with fileops.staged(path) as (_, temporary):
        personal.save_head(head, temporary, cv)
        fileops.publish(temporary, path, overwrite=True)
    return path


def apply_head(store: Store, path: Path) -> int:
    """Score every photo that has an embedding from the head's base model with the head; returns how many.

    Reads only the store: embeddings and technical signals, no photo."""
    from aesthete import personal

    head = personal.load_head(path)
    base = base_key(head)
    key = personal_key(path, head)
    hashes, vectors = store.embeddings(base)
    if not hashes:
        return 0
    expected = int(head.spec.get("embedding_dim", 0))
    if vectors.shape[1] != expected:
        raise LearnError(f"{path}: the head takes {expected}-value embeddings; the store has {vectors.shape[1]}")
    images = store.images_by_hash(hashes)
    kept = [i for i, h in enumerate(hashes) if h in images]
    rows = [images[hashes[i]] for i in kept]
    predicted = head.predict(personal.feature_matrix(rows, vectors[kept] if expected else None))
    stamp = now_iso()
    scores = [
        {"content_hash": hashes[i], "model": key.model, "weights_id": key.weights_id, "preprocess": key.preprocess,
         "dist": None, "mean": float(value), "std": None, "p_high": None, "scored_at": stamp}
        for i, value in zip(kept, predicted)
    ]  # fmt: skip
    store.write(scores=scores)
    return len(scores)
