"""A personal model: a small head fitted on per-photo features against the photographer's own ratings.

Features are what scoring already stored for each photo (no photo is decoded again): the base model's
embedding (float16, any length) and aesthete's technical signals (:data:`SIGNAL_FEATURES`, a few of
them transformed so that a linear head can express "too dark AND too bright are both bad"). Targets
are the ratings on the star scale: a reject is 0, stars 1-5 (:func:`targets`).

The head is linear on standardised features. Three ways to fit it were measured (docs/personal.md has
the numbers): closed-form ridge regression on the star values, an ordinal (cumulative logit) model and
a pairwise (RankNet-style logistic) ranker, both by gradient descent. Ridge was as good as the others
on held-out Spearman correlation and pairwise accuracy within noise, and is one linear solve instead of
hundreds of gradient steps, so :data:`DEFAULT_METHOD` is ridge; the other two stay selectable for
measuring again on real libraries. The ridge penalty is chosen per fit on an inner split of the rows
that fit sees (:func:`_ridge`), so the k-fold figures are honest: no penalty is tuned on a held-out fold.

numpy only: no scipy at run time.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aesthete.errors import AestheteError
from aesthete.fileops import atomic_path

FORMAT = "aesthete-personal/1"
MIN_RATINGS = 20  # below this a 5-fold cross-validation has 4 photos per fold: its figures mean nothing
DEFAULT_FOLDS = 5
METHODS = ("ridge", "ordinal", "pairwise")
DEFAULT_METHOD = "ridge"
# (name, store column, transform): the technical signals as features. log1p(sharpness) because blur
# shrinks it multiplicatively; (mean_luma - 0.5)^2 so that a linear head can penalise both ends.
SIGNAL_FEATURES = (
    ("log_sharpness", "sharpness", "log1p"),
    ("mean_luma", "mean_luma", "identity"),
    ("luma_off_mid_sq", "mean_luma", "offmid2"),
    ("clipped_shadows", "clipped_shadows", "identity"),
    ("clipped_highlights", "clipped_highlights", "identity"),
    ("noise", "noise", "identity"),
    ("technical", "technical", "identity"),
)
_TRANSFORMS = {
    "identity": lambda v: v,
    "log1p": lambda v: np.log1p(np.maximum(v, 0.0)),
    "offmid2": lambda v: (v - 0.5) ** 2,
}
_LAMBDA_GRID = 10.0 ** np.arange(-3.0, 3.01, 1.0)  # times the mean eigenvalue of the Gram matrix


class PersonalError(AestheteError):
    """A personal model cannot be fitted or loaded; the message says why, in one line."""


class NotEnoughRatings(PersonalError):
    """Too few rated photos, or ratings that are all equal: nothing to learn from."""


# ------------------------------------------------------------------------------------------ features


def signal_matrix(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """The :data:`SIGNAL_FEATURES` of store image rows, float32, NaN where a signal is missing."""
    out = np.full((len(rows), len(SIGNAL_FEATURES)), np.nan, dtype=np.float64)
    for j, (_, column, transform) in enumerate(SIGNAL_FEATURES):
        values = np.array([np.nan if r.get(column) is None else float(r[column]) for r in rows], dtype=np.float64)
        out[:, j] = _TRANSFORMS[transform](values)
    return out.astype(np.float32)


def feature_matrix(rows: Sequence[dict[str, Any]], embeddings: np.ndarray | None = None) -> np.ndarray:
    """Per-photo feature vectors: the signals of ``rows`` and, when given, one embedding row per photo."""
    signals = signal_matrix(rows)
    if embeddings is None:
        return signals
    if len(embeddings) != len(rows):
        raise PersonalError(f"{len(embeddings)} embeddings for {len(rows)} photos")
    return np.hstack([signals, np.asarray(embeddings, dtype=np.float32)])


def feature_spec(embedding_dim: int = 0, embedding_source: str | None = None) -> dict[str, Any]:
    """What each column of :func:`feature_matrix` is, recorded in the saved head."""
    return {
        "signals": [{"name": n, "column": c, "transform": t} for n, c, t in SIGNAL_FEATURES],
        "embedding_dim": embedding_dim,
        "embedding_source": embedding_source,
    }


def targets(ratings: Sequence[Any]) -> np.ndarray:
    """Star-scale targets of :class:`aesthete.ratings.Rating` records: reject 0, stars 1-5, NaN unusable.

    A pick without stars says "keep" but not how good: when the library has star ratings it is left
    out (NaN); when it has none at all (pick/reject flags only, a common Lightroom habit) picks are 1
    and rejects 0, a two-level target."""
    any_stars = any(r.rating > 0 for r in ratings)
    out = np.full(len(ratings), np.nan)
    for i, r in enumerate(ratings):
        if r.rating < 0 or r.pick < 0:
            out[i] = 0.0
        elif r.rating > 0:
            out[i] = float(r.rating)
        elif r.pick > 0 and not any_stars:
            out[i] = 1.0
    return out


# ------------------------------------------------------------------------------------------- metrics


def _ranks(values: np.ndarray) -> np.ndarray:
    """Mid-ranks (ties share the mean of their ranks), as Spearman's coefficient needs."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    for s, e in zip(starts, ends):
        if e - s > 1:
            ranks[order[s:e]] = (s + e - 1) / 2
    return ranks


def srcc(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Spearman's rank correlation with mid-ranks for ties; NaN when either side is constant."""
    a, b = _ranks(np.asarray(truth, dtype=np.float64)), _ranks(np.asarray(predicted, dtype=np.float64))
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / denominator) if denominator > 0 else float("nan")


def pairwise_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Among pairs of photos with different ratings, the share the prediction orders the same way (a
    tie in the prediction counts half). O(n^2) memory in blocks of 2,000 rows."""
    truth, predicted = np.asarray(truth, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    agree = total = 0.0
    for start in range(0, len(truth), 2000):
        dt = np.sign(truth[start : start + 2000, None] - truth[None, :])
        dp = np.sign(predicted[start : start + 2000, None] - predicted[None, :])
        mask = dt != 0
        total += mask.sum()
        agree += (dt == dp)[mask].sum() + 0.5 * (dp == 0)[mask].sum()
    return float(agree / total) if total else float("nan")


# ----------------------------------------------------------------------------------------- the head


@dataclass
class Head:
    """A fitted linear head: ``prediction = ((x - mean) / scale) @ coef + intercept`` on the star scale."""

    method: str
    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    spec: dict[str, Any]
    penalty: float
    base_model: str | None = None
    base_weights: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted star value per row (not clipped: ranking keeps the order beyond 0..5)."""
        x = np.asarray(features, dtype=np.float32)
        if x.shape[1] != len(self.coef):
            raise PersonalError(f"the head takes {len(self.coef)} features per photo, not {x.shape[1]}")
        x = np.where(np.isnan(x), self.mean, x)
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill missing values with the column mean, then centre and scale each column (a constant one
    keeps scale 1 and contributes nothing)."""
    mean = np.nanmean(x, axis=0) if np.isnan(x).any() else x.mean(axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean).astype(np.float32)
    x = np.where(np.isnan(x), mean, x)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-8, scale, 1.0).astype(np.float32)
    return ((x - mean) / scale).astype(np.float32), mean, scale


_EMBEDDING_SCALES = (0.0, 0.1, 0.3, 1.0)  # the embedding block's weight against the signals' (see _ridge)


def _ridge_system(z: np.ndarray, y: np.ndarray, w: np.ndarray, signals: int) -> tuple:
    """The weighted, centred normal equations of ridge with an unpenalised intercept, split into the
    first ``signals`` columns and the rest: (Gram of the signal block, Gram of the rest, right-hand sides
    of both, primal?, zc, feature means, target mean). Primal (d x d Grams, zero outside each block's
    rows and columns of the full matrix) with at least as many photos as features, else dual (n x n)."""
    sw = np.sqrt(w / w.mean()).astype(np.float32)
    target_mean = float(np.average(y, weights=w))
    means = np.average(z, axis=0, weights=w).astype(np.float32)
    zc = (z - means) * sw[:, None]
    yc = ((y - target_mean) * sw).astype(np.float32)
    primal = zc.shape[0] >= zc.shape[1]
    if primal:
        gram = (zc.T @ zc).astype(np.float64)
        b = (zc.T @ yc).astype(np.float64)
        return gram, None, b, primal, zc, means, target_mean, signals
    head, rest = zc[:, :signals], zc[:, signals:]
    grams = ((head @ head.T).astype(np.float64), (rest @ rest.T).astype(np.float64))
    return grams[0], grams[1], yc.astype(np.float64), primal, zc, means, target_mean, signals


def _ridge_coef(system: tuple, lam: float, scale: float) -> tuple[np.ndarray, float]:
    """Ridge with penalty ``lam`` on the signal columns and ``lam / scale**2`` on the embedding columns,
    solved as plain ridge on the embedding columns multiplied by ``scale`` (the coefficients are mapped
    back to the unscaled columns); ``scale`` 0 leaves the embedding out."""
    a, a_rest, b, primal, zc, means, target_mean, signals = system
    d = np.ones(zc.shape[1])
    d[signals:] = scale
    if primal:
        solved = np.linalg.solve(d[:, None] * a * d[None, :] + lam * np.eye(len(a)), d * b)
        coef = d * solved
    else:
        alpha = np.linalg.solve(a + scale * scale * a_rest + lam * np.eye(len(a)), b)
        coef = d * d * (zc.T @ alpha.astype(np.float32)).astype(np.float64)
    return coef.astype(np.float32), target_mean - float(means @ coef)


def _level(system: tuple, scale: float) -> float:
    """The mean eigenvalue of the (scaled) Gram matrix, from its trace: the unit of the penalty grid."""
    a, a_rest, _, primal, zc, _, _, signals = system
    if primal:
        diagonal = np.diag(a).copy()
        diagonal[signals:] *= scale * scale
        return max(float(diagonal.sum()) / len(a), 1e-12)
    return max(float(np.trace(a) + scale * scale * np.trace(a_rest)) / len(a), 1e-12)


class _RidgePath:
    """Ridge for every (penalty, embedding scale) pair at once, from one eigendecomposition.

    :func:`_ridge_coef` solves ``[S, s E]`` (signal columns ``S``, embedding columns ``E`` times ``scale``
    s) with penalty ``lam``: one d x d (or n x n) linear solve per candidate. Here the embedding block's
    Gram is decomposed once (``E^T E = V diag(ev) V^T``, or ``E E^T`` in the dual when there are fewer
    photos than features); in that basis the embedding block's part of the system is diagonal for any s
    and lam, so eliminating it (a Schur complement) leaves a system of the few signal columns only, and
    each candidate costs O(d * signals) instead of O(d^3). The coefficients are :func:`_ridge_coef`'s to
    rounding (tests/test_personal.py compares both with a plain float64 solve)."""

    def __init__(self, system: tuple) -> None:
        a, a_rest, b, primal, zc, means, target_mean, signals = system
        self.primal, self.means, self.target_mean, self.signals = primal, means, target_mean, signals
        k = signals
        if primal:  # a: the full d x d Gram, b: its right-hand side
            self.g_s, self.b_s = a[:k, :k], b[:k]
            ev, basis = np.linalg.eigh(a[k:, k:])
            self.p = basis.T @ a[k:, :k]  # the signal/embedding cross terms in the eigenbasis
            self.q = basis.T @ b[k:]
            self.back = basis  # embedding coefficients = back @ (coefficients in the eigenbasis)
        else:  # a: the signals' n x n Gram, a_rest: the embedding's, b: the targets
            ev, basis = np.linalg.eigh(a_rest)
            s = zc[:, :k].astype(np.float64)
            self.p = basis.T @ s
            self.q = basis.T @ b
            self.back = zc[:, k:].T.astype(np.float64) @ basis
        self.ev = np.maximum(ev, 0.0)  # rounding can leave tiny negative eigenvalues of a PSD matrix

    def coef(self, lam: float, scale: float) -> tuple[np.ndarray, float]:
        """What ``_ridge_coef(system, lam, scale)`` returns (float32 coefficients, intercept)."""
        k, s2 = self.signals, scale * scale
        inverse = 1.0 / (s2 * self.ev + lam)  # the embedding block, diagonal in the eigenbasis
        weighted = self.p * inverse[:, None]
        if self.primal:
            # (G_s + lam I - s^2 P^T D P) a = b_s - s^2 P^T D q
            system = self.g_s + lam * np.eye(k) - s2 * (self.p.T @ weighted)
            rhs = self.b_s - s2 * (weighted.T @ self.q)
        else:
            # Woodbury on K = S S^T + s^2 E E^T + lam I: (I + P^T D P) a = P^T D q, with a = S^T alpha
            system = np.eye(k) + self.p.T @ weighted
            rhs = weighted.T @ self.q
        a = np.linalg.solve(system, rhs) if k else np.zeros(0)
        rotated = inverse * (self.q - self.p @ a)
        coef = np.concatenate([a, s2 * (self.back @ rotated)])
        return coef.astype(np.float32), self.target_mean - float(self.means @ coef)


def _ridge(z: np.ndarray, y: np.ndarray, w: np.ndarray, signals: int = 0) -> tuple[np.ndarray, float, float]:
    """Weighted ridge on standardised ``z``: (coef, intercept, penalty).

    Two blocks: the first ``signals`` columns (aesthete's few technical signals) and the embedding after
    them (hundreds to thousands of values). One penalty for both lets the many embedding columns drown
    the few signals on a small library (measured: 54 rated photos on a random-weight ResNet-18's 512
    values, held-out SRCC 0.68 with one penalty); so the embedding's penalty is chosen apart, as a
    weight ``scale`` from :data:`_EMBEDDING_SCALES` (0 = signals only) alongside the penalty grid.

    Both are chosen on a stratified fifth of the rows ``z`` holds, fitted on the other four fifths (so a
    cross-validation fold's held-out photos never tune them), by squared error, from a grid scaled by
    the mean eigenvalue of the Gram matrix (its trace / size). The inner fit's Gram matrix is built and
    decomposed once (:class:`_RidgePath`), which gives every candidate's coefficients without another
    d x d solve; the chosen pair is then fitted on all the rows with one linear solve."""
    signals = signals if 0 < signals < z.shape[1] else 0
    scales = _EMBEDDING_SCALES if signals else (1.0,)
    inner = fold_ids(y, 5, seed=1) == 0
    best = (math.inf, 1.0, 1.0)
    if inner.sum() >= 4 and len(np.unique(y[~inner])) > 1:
        system = _ridge_system(z[~inner], y[~inner], w[~inner], signals)
        path = _RidgePath(system)
        held, held_y, held_w = z[inner], y[inner], w[inner]
        for scale in scales:
            level = _level(system, scale)
            for lam in _LAMBDA_GRID * level:
                coef, intercept = path.coef(lam, scale)
                error = float(np.average((held @ coef + intercept - held_y) ** 2, weights=held_w))
                if error < best[0]:
                    best = (error, lam / level, scale)
    system = _ridge_system(z, y, w, signals)
    lam = best[1] * _level(system, best[2])
    coef, intercept = _ridge_coef(system, lam, best[2])
    return coef, intercept, float(lam)


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))  # no overflow warnings for large |t|


def _ordinal(z: np.ndarray, y: np.ndarray, w: np.ndarray, steps: int = 300) -> tuple[np.ndarray, float, float]:
    """Cumulative-logit (proportional odds) model, all thresholds, L2, full-batch Adam; returns a linear
    score mapped to the expected star value by a least-squares line (so heads are interchangeable)."""
    levels = np.unique(y)
    n, d = z.shape
    beta = np.zeros(d)
    theta = np.linspace(-1, 1, len(levels) - 1)
    above = (y[:, None] > levels[None, :-1]).astype(np.float64)  # is the rating above threshold k?
    penalty = 1.0 / n
    params = [beta, theta]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    ww = w / w.sum()
    for step in range(1, steps + 1):
        eta = z @ beta
        p = _sigmoid(eta[:, None] - theta[None, :])
        g = (p - above) * ww[:, None]
        grads = [z.T @ g.sum(axis=1) + penalty * beta, -g.sum(axis=0)]
        for param, grad, m in zip(params, grads, moments):
            m[0] = 0.9 * m[0] + 0.1 * grad
            m[1] = 0.999 * m[1] + 0.001 * grad * grad
            param -= 0.05 * (m[0] / (1 - 0.9**step)) / (np.sqrt(m[1] / (1 - 0.999**step)) + 1e-8)
    return _calibrated(z, y, w, beta, penalty)


def _pairwise(
    z: np.ndarray, y: np.ndarray, w: np.ndarray, steps: int = 300, pairs_per_photo: int = 20, seed: int = 0
) -> tuple[np.ndarray, float, float]:
    """RankNet-style logistic loss on sampled pairs of differently rated photos, L2, Adam."""
    rng = np.random.default_rng(seed)
    n, d = z.shape
    i = np.repeat(np.arange(n), pairs_per_photo)
    j = rng.integers(0, n, size=len(i))
    keep = y[i] != y[j]
    i, j = i[keep], j[keep]
    sign = np.sign(y[i] - y[j])
    pw = (w[i] + w[j]) / 2
    pw = pw / pw.sum()
    diff = z[i] - z[j]
    beta = np.zeros(d)
    penalty = 1.0 / n
    m1, m2 = np.zeros(d), np.zeros(d)
    for step in range(1, steps + 1):
        margin = sign * (diff @ beta)
        grad = -(diff.T @ (sign * _sigmoid(-margin) * pw)) + penalty * beta
        m1 = 0.9 * m1 + 0.1 * grad
        m2 = 0.999 * m2 + 0.001 * grad * grad
        beta -= 0.05 * (m1 / (1 - 0.9**step)) / (np.sqrt(m2 / (1 - 0.999**step)) + 1e-8)
    return _calibrated(z, y, w, beta, penalty)


def _calibrated(z: np.ndarray, y: np.ndarray, w: np.ndarray, beta: np.ndarray, penalty: float) -> tuple:
    """Map a linear score to the star scale with a weighted least-squares line, so every method's
    head predicts stars and stores the same way."""
    score = z @ beta
    a, b = np.polyfit(score, y, 1, w=np.sqrt(w)) if np.ptp(score) > 0 else (0.0, float(np.average(y, weights=w)))
    return (beta * a).astype(np.float32), float(b), penalty


_FITTERS = {"ridge": _ridge, "ordinal": _ordinal, "pairwise": _pairwise}


def _check(y: np.ndarray) -> None:
    if len(y) < MIN_RATINGS:
        raise NotEnoughRatings(f"{len(y)} rated photo(s); a personal model needs at least {MIN_RATINGS}")
    if len(np.unique(y)) < 2:
        raise NotEnoughRatings(f"all {len(y)} rated photos have the same rating; nothing to learn from")


def fit_head(
    features: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    method: str = DEFAULT_METHOD,
    spec: dict[str, Any] | None = None,
    base_model: str | None = None,
    base_weights: str | None = None,
) -> Head:
    """Fit a head on ``features`` (n x d) against star-scale ``y``; rows with a NaN target are dropped."""
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    usable = ~np.isnan(y)
    x, y, w = x[usable], y[usable], w[usable]
    _check(y)
    return _fitted(x, y, w, method, spec, base_model, base_weights)


def _fitted(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    method: str,
    spec: dict[str, Any] | None = None,
    base_model: str | None = None,
    base_weights: str | None = None,
) -> Head:
    """:func:`fit_head` without the checks on how many ratings there are: a cross-validation's training
    folds hold fewer photos than the whole set that passed them."""
    if method not in _FITTERS:
        raise PersonalError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    z, mean, scale = _standardise(x)
    if method == "ridge":  # the signals lead every feature matrix (feature_matrix)
        coef, intercept, penalty = _ridge(z, y, w, signals=min(len(SIGNAL_FEATURES), x.shape[1]))
    else:
        coef, intercept, penalty = _FITTERS[method](z, y, w)
    return Head(method, coef, intercept, mean, scale, spec or feature_spec(x.shape[1] - len(SIGNAL_FEATURES)),
                penalty, base_model, base_weights)  # fmt: skip


# ---------------------------------------------------------------------------------- cross-validation


@dataclass
class CrossValidation:
    folds: int
    photos: int
    method: str
    personal_srcc: list[float]
    personal_pairwise: list[float]
    baseline_srcc: list[float] | None
    baseline_pairwise: list[float] | None

    @staticmethod
    def _summary(values: list[float] | None) -> tuple[float, float] | None:
        if values is None:
            return None
        a = np.array(values, dtype=np.float64)
        a = a[~np.isnan(a)]
        return (float(a.mean()), float(a.std())) if len(a) else (float("nan"), float("nan"))

    def table(self) -> list[dict[str, Any]]:
        """Rows for a report: model, SRCC mean and spread over folds, pairwise accuracy likewise."""
        rows = []
        for name, s, p in (("personal", self.personal_srcc, self.personal_pairwise),
                           ("base model", self.baseline_srcc, self.baseline_pairwise)):  # fmt: skip
            if s is None:
                continue
            (sm, ss), (pm, ps) = self._summary(s), self._summary(p)  # type: ignore[misc]
            rows.append({"model": name, "srcc": sm, "srcc_sd": ss, "pairwise": pm, "pairwise_sd": ps})
        return rows

    def doubts(self) -> list[str]:
        """What the held-out figures say against using the head, in words: "registered" reads as "good",
        and a head that orders held-out photos no better than chance, or worse than the base model, is not."""
        rows = {row["model"]: row for row in self.table()}
        mine, base = rows["personal"], rows.get("base model")
        figure = f"SRCC {mine['srcc']:.3f} ± {mine['srcc_sd']:.3f}"
        if not mine["srcc"] - mine["srcc_sd"] > 0:  # (NaN too)
            return [f"on held-out photos this head orders your ratings no better than chance ({figure}): "
                    "rate more photos, and more varied ones, before trusting it"]  # fmt: skip
        if base is not None and base["srcc"] - base["srcc_sd"] > mine["srcc"] + mine["srcc_sd"]:
            theirs = f"SRCC {base['srcc']:.3f} ± {base['srcc_sd']:.3f}"
            return [f"the base model's own scores order your ratings better than this head ({theirs}; the "
                    f"head's {figure}): its weights rank better for now"]  # fmt: skip
        return []

    def to_dict(self) -> dict[str, Any]:
        return {"folds": self.folds, "photos": self.photos, "method": self.method, "table": self.table()}


def fold_ids(y: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per photo, stratified by rating: each fold gets its share of every star level."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=np.int64)
    order = np.lexsort((rng.random(len(y)), y))
    out[order] = np.arange(len(y)) % folds
    return out


def cross_validate(
    features: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    baseline: np.ndarray | None = None,
    *,
    method: str = DEFAULT_METHOD,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> CrossValidation:
    """k-fold held-out SRCC and pairwise accuracy of the head, and of ``baseline`` (e.g. the base model's
    mean scores) on the same held-out photos. Weights only weight the fit; every held-out photo counts
    once in the figures."""
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    usable = ~np.isnan(y)
    x, y, w = x[usable], y[usable], w[usable]
    base = None if baseline is None else np.asarray(baseline, dtype=np.float64)[usable]
    _check(y)
    folds = max(2, min(folds, len(y) // 4))
    ids = fold_ids(y, folds, seed)
    result = CrossValidation(folds, len(y), method, [], [], None if base is None else [], None if base is None else [])
    for k in range(folds):
        test = ids == k
        train_y = y[~test]
        if len(np.unique(train_y)) < 2:
            continue
        head = _fitted(x[~test], train_y, w[~test], method)
        predicted = head.predict(x[test])
        result.personal_srcc.append(srcc(y[test], predicted))
        result.personal_pairwise.append(pairwise_accuracy(y[test], predicted))
        if base is not None:
            ok = ~np.isnan(base[test])
            result.baseline_srcc.append(srcc(y[test][ok], base[test][ok]))  # type: ignore[union-attr]
            result.baseline_pairwise.append(pairwise_accuracy(y[test][ok], base[test][ok]))  # type: ignore[union-attr]
    return result


# ----------------------------------------------------------------------------------- serialisation


def save_head(head: Head, path: str | os.PathLike[str], cv: CrossValidation | None = None) -> None:
    """Write the head as a small self-describing safetensors file (tensors + JSON metadata)."""
    from safetensors.numpy import save_file

    from aesthete.store import now_iso

    metadata = {
        "format": FORMAT,
        "method": head.method,
        "base_model": head.base_model or "",
        "base_weights": head.base_weights or "",
        "feature_spec": json.dumps(head.spec),
        "penalty": repr(head.penalty),
        "scale": "stars: 0 = rejected, 1-5 stars",
        "created": now_iso(),
        "cross_validation": json.dumps(cv.to_dict() if cv else None),
        "extra": json.dumps(head.extra),
    }
    tensors = {
        "coef": np.ascontiguousarray(head.coef, dtype=np.float32),
        "intercept": np.array([head.intercept], dtype=np.float32),
        "mean": np.ascontiguousarray(head.mean, dtype=np.float32),
        "scale": np.ascontiguousarray(head.scale, dtype=np.float32),
    }
    with atomic_path(path, overwrite=True) as temporary:  # (and the mode any new file gets: see atomic_path)
        save_file(tensors, str(temporary), metadata=metadata)


def _open_head(path: str | os.PathLike[str], tensors: Sequence[str] = ()) -> tuple[dict[str, str], dict[str, Any]]:
    """(metadata, the named tensors) of a head written by :func:`save_head`; anything else is a
    one-line :class:`PersonalError`."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise PersonalError(f"{path}: not an aesthete personal head (format {meta.get('format')!r})")
            return meta, {k: f.get_tensor(k) for k in tensors}
    except PersonalError:
        raise
    except Exception as exc:  # safetensors raises its own types for truncated or foreign files
        raise PersonalError(f"{path}: cannot read it ({exc})") from None


def load_head(path: str | os.PathLike[str]) -> Head:
    """Read a head written by :func:`save_head`; anything else is a one-line :class:`PersonalError`."""
    meta, t = _open_head(path, ("coef", "intercept", "mean", "scale"))
    return Head(
        meta["method"], t["coef"], float(t["intercept"][0]), t["mean"], t["scale"], json.loads(meta["feature_spec"]),
        float(meta["penalty"]), meta["base_model"] or None, meta["base_weights"] or None, json.loads(meta["extra"]),
    )  # fmt: skip


def head_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A saved head's description without its tensors: base model and weights, method, rated photos
    used and the cross-validated SRCC (mean over folds; None when no cross-validation was recorded)."""
    meta, _ = _open_head(path)
    extra = json.loads(meta.get("extra") or "{}")
    cv = json.loads(meta.get("cross_validation") or "null")
    row = next((r for r in (cv or {}).get("table", []) if r.get("model") == "personal"), None)
    value = row.get("srcc") if row else None
    return {
        "base_model": meta.get("base_model") or None,
        "base_weights": meta.get("base_weights") or extra.get("base_weights_id") or None,
        "method": meta.get("method"),
        "ratings": extra.get("rated_photos", cv.get("photos") if cv else None),
        "cv_srcc": None if value is None or math.isnan(value) else float(value),
        "created": meta.get("created"),
    }
