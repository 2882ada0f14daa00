"""Ranking and filtering cached photos. Pure Python over store rows: no torch, no pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aesthete.store import ModelKey, Store

# ``--by`` keys: the column each sorts on, largest first.
RANK_KEYS = {"mean": "mean", "std": "std", "p-high": "p_high", "sharpness": "sharpness", "technical": "technical"}
AESTHETIC_KEYS = ("mean", "std", "p-high")


@dataclass
class Filters:
    min_score: float | None = None
    max_score: float | None = None
    since: str | None = None  # ISO date or date-time, compared with EXIF capture time
    until: str | None = None
    camera: str | None = None  # case-insensitive substring of make + model
    lens: str | None = None

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
        return not (self.lens and self.lens.lower() not in (row.get("lens") or "").lower())


@dataclass
class Ranking:
    rows: list[dict[str, Any]]
    by: str  # the key actually used
    key: ModelKey | None  # the predictions ranked on, if any
    notes: list[str] = field(default_factory=list)

    @property
    def basis(self) -> str:
        return "aesthetic" if self.by in AESTHETIC_KEYS else "technical"


def rank(
    store: Store,
    roots: Sequence[str] = (),
    *,
    by: str = "mean",
    model: str | None = None,
    filters: Filters | None = None,
    top: int | None = None,
) -> Ranking:
    """Photos under ``roots`` (all, if empty) sorted by ``by``, best first.

    Aesthetic keys use the most recent scores of ``model`` (or of whichever model scored last). When
    no aesthetic scores exist the ranking falls back to technical quality and says so in ``notes``.
    """
    if by not in RANK_KEYS:
        raise ValueError(f"unknown sort key {by!r}; use one of {', '.join(RANK_KEYS)}")
    notes: list[str] = []
    key = store.latest_model_key(model)
    if model and key is None:
        notes.append(f"no scores from model {model!r} in the database")
    rows = store.photos(key, roots)
    if by in AESTHETIC_KEYS:
        scored = [r for r in rows if r["mean"] is not None]
        if scored:
            if len(scored) < len(rows):
                notes.append(f"{len(rows) - len(scored)} photo(s) have no {key.model} score and are not ranked")
            rows = scored
        else:
            notes.append("no aesthetic scores yet: ranked by technical quality (sharpness and exposure)")
            by = "technical"
    filters = filters or Filters()
    rows = [r for r in rows if filters.accepts(r)]
    column = RANK_KEYS[by]
    # Ties broken by technical quality, then by path so the order is stable.
    rows.sort(key=lambda r: (-(r[column] or 0.0), -(r["technical"] or 0.0), r["path"]))
    if top is not None:
        rows = rows[:top]
    return Ranking(rows=rows, by=by, key=key, notes=notes)


def cull(store: Store, roots: Sequence[str] = (), *, top: int = 50, model: str | None = None) -> Ranking:
    """The best ``top`` photos of ``roots``, or of the folders of the most recent ``score`` run."""
    if not roots:
        last = store.last_run()
        if last is None:
            raise LookupError("nothing scored yet: run `aesthete score FOLDER` first, or pass folders to cull")
        roots = last["roots"]
        model = model or last["model"]
    return rank(store, roots, by="mean", model=model, top=top)
