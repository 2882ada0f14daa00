"""The papers' evaluation metrics, in NumPy (scipy is a test-only dependency; the tests check these
against it and against direct formulas).

All take predicted distributions ``pred`` (N, S) and ground-truth vote distributions ``target``
(N, S), rows summing to 1, over the bins' scores ``values`` (1..S):

- ``accuracy``: binary labels from the mean score of each, thresholded per recipe -- ``mu >= 5`` high
  for HLA-GCN and APM (HLA-GCN writes ``1(mu >= ceil(S/2))``), ``mu > 5`` for MP_ada ("<= 5 negative").
- ``srcc`` / ``lcc``: Spearman rank / Pearson linear correlation of predicted and true mean scores.
- ``mse``: mean squared error of the mean scores.
- ``emd1`` / ``emd2``: NIMA's earth mover's distance ``(mean_k |CDF_p(k) - CDF_g(k)|^r)^(1/r)`` per
  image with r = 1 and 2, averaged over images (HLA-GCN Table 1 follows NIMA).
- ``cdloss``: APM's Eq. 3, ``sum_k (CDF_p(k) - CDF_g(k))^2`` per image, averaged.
- ``kl``: ``KL(g || p) = sum_k g_k log(g_k / p_k)`` per image, averaged; APM does not state the
  direction, this is the one that stays finite when a vote bin is empty. Predicted probabilities are
  clamped at 1e-12 so an exact zero cannot give infinity.

A binary model (MP_ada, 2 bins [p_low, p_high]) is scored on accuracy only: its prediction is high when
``p_high >= 0.5``, the ground truth from the dataset's mean score as above.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

Rule = Literal[">=", ">"]
KL_EPS = 1e-12
METRIC_NAMES = ("accuracy", "srcc", "lcc", "mse", "emd1", "emd2", "cdloss", "kl")
HIGHER_IS_BETTER = {"accuracy", "srcc", "lcc"}


def json_ready(data: Any) -> Any:
    """``data`` with every NaN or infinite number as None. An undefined metric (the SRCC of a constant
    prediction) or a diverged loss is then ``null`` in ``metrics.json`` and ``eval --json``: Python's json
    writes ``NaN``, which is not JSON, and strict parsers (JavaScript's, Go's, serde) refuse the file."""
    if isinstance(data, (float, np.floating)):
        return float(data) if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: json_ready(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_ready(value) for value in data]
    return data


def mean_scores(dist: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
    dist = np.asarray(dist, dtype=np.float64)
    if values is None:
        values = np.arange(1, dist.shape[-1] + 1, dtype=np.float64)
    return dist @ np.asarray(values, dtype=np.float64)


def labels(scores: np.ndarray, threshold: float, rule: Rule = ">=") -> np.ndarray:
    if rule == ">=":
        return scores >= threshold
    if rule == ">":
        return scores > threshold
    raise ValueError(f"threshold rule must be '>=' or '>', not {rule!r}")


def accuracy(pred_scores: np.ndarray, true_scores: np.ndarray, threshold: float, rule: Rule = ">=") -> float:
    return float(np.mean(labels(pred_scores, threshold, rule) == labels(true_scores, threshold, rule)))


def rank_average(x: np.ndarray) -> np.ndarray:
    """Ranks 1..N with ties sharing the mean of the ranks they span."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts_group = np.concatenate([[True], sorted_x[1:] != sorted_x[:-1]])
    group_of_sorted = np.cumsum(starts_group) - 1
    group_start = np.flatnonzero(starts_group)
    group_end = np.concatenate([group_start[1:], [len(x)]])  # exclusive
    mean_rank = (group_start + group_end + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = mean_rank[group_of_sorted]
    return ranks


def lcc(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / denominator) if denominator > 0 else float("nan")


def srcc(a: np.ndarray, b: np.ndarray) -> float:
    return lcc(rank_average(a), rank_average(b))


def emd(pred: np.ndarray, target: np.ndarray, r: float) -> float:
    diff = np.abs(np.cumsum(pred, axis=-1) - np.cumsum(target, axis=-1))
    return float(np.mean(np.mean(diff**r, axis=-1) ** (1.0 / r)))


def cdloss(pred: np.ndarray, target: np.ndarray) -> float:
    diff = np.cumsum(pred, axis=-1) - np.cumsum(target, axis=-1)
    return float(np.mean(np.sum(diff * diff, axis=-1)))


def kl(pred: np.ndarray, target: np.ndarray) -> float:
    pred = np.clip(np.asarray(pred, dtype=np.float64), KL_EPS, None)
    target = np.asarray(target, dtype=np.float64)
    terms = np.where(target > 0, target * np.log(np.where(target > 0, target, 1.0) / pred), 0.0)
    return float(np.mean(np.sum(terms, axis=-1)))


def evaluate(pred: np.ndarray, target: np.ndarray, *, threshold: float, rule: Rule = ">=") -> dict[str, float]:
    """Every metric that applies to a model with ``pred.shape[1]`` bins on data with ``target.shape[1]``."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if len(pred) != len(target):
        raise ValueError(f"{len(pred)} predictions for {len(target)} targets")
    if len(pred) == 0:
        return {}
    true_scores = mean_scores(target)
    if pred.shape[1] == 2 and target.shape[1] != 2:
        predicted_high = pred[:, 1] >= 0.5
        return {"accuracy": float(np.mean(predicted_high == labels(true_scores, threshold, rule)))}
    if pred.shape[1] != target.shape[1]:
        raise ValueError(f"{pred.shape[1]} predicted bins cannot be compared with {target.shape[1]} vote bins")
    pred_scores = mean_scores(pred)
    return {
        "accuracy": accuracy(pred_scores, true_scores, threshold, rule),
        "srcc": srcc(pred_scores, true_scores),
        "lcc": lcc(pred_scores, true_scores),
        "mse": float(np.mean((pred_scores - true_scores) ** 2)),
        "emd1": emd(pred, target, 1.0),
        "emd2": emd(pred, target, 2.0),
        "cdloss": cdloss(pred, target),
        "kl": kl(pred, target),
    }
