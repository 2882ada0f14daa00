"""The papers' metrics against scipy and against the formulas written out directly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from aesthete.training import metrics


def distributions(rng: np.random.Generator, n: int, bins: int, *, zeros: bool = False) -> np.ndarray:
    values = rng.gamma(1.0, size=(n, bins))
    if zeros:
        values[rng.random((n, bins)) < 0.3] = 0.0
        values[:, 0] += 1e-3  # no row entirely empty
    return values / values.sum(axis=1, keepdims=True)


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    return distributions(rng, 200, 10), distributions(rng, 200, 10, zeros=True)


def test_correlations_match_scipy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, target = pair
    a, b = metrics.mean_scores(pred), metrics.mean_scores(target)
    assert metrics.srcc(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-9)
    assert metrics.lcc(a, b) == pytest.approx(stats.pearsonr(a, b).statistic, abs=1e-9)
    tied = np.round(a, 1)  # many ties
    assert metrics.srcc(tied, b) == pytest.approx(stats.spearmanr(tied, b).statistic, abs=1e-9)
    np.testing.assert_allclose(metrics.rank_average(tied), stats.rankdata(tied))
    assert np.isnan(metrics.lcc(np.ones(5), np.arange(5.0)))


def test_distribution_metrics_match_direct_formulas(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, target = pair
    n, bins = pred.shape
    emd1 = emd2 = cd = kl = 0.0
    for p, g in zip(pred, target):
        diffs = [sum(p[: k + 1]) - sum(g[: k + 1]) for k in range(bins)]
        emd1 += sum(abs(d) for d in diffs) / bins
        emd2 += (sum(d * d for d in diffs) / bins) ** 0.5
        cd += sum(d * d for d in diffs)
        kl += sum(gk * np.log(gk / pk) for gk, pk in zip(g, p) if gk > 0)
    assert metrics.emd(pred, target, 1.0) == pytest.approx(emd1 / n, abs=1e-9)
    assert metrics.emd(pred, target, 2.0) == pytest.approx(emd2 / n, abs=1e-9)
    assert metrics.cdloss(pred, target) == pytest.approx(cd / n, abs=1e-9)
    assert metrics.kl(pred, target) == pytest.approx(kl / n, abs=1e-9)
    # scipy's views of the same quantities: W1 on the support 1..S is S * EMD1; entropy(g, p) is KL(g || p)
    support = np.arange(1, bins + 1)
    w1 = np.mean([stats.wasserstein_distance(support, support, p, g) for p, g in zip(pred, target)])
    assert metrics.emd(pred, target, 1.0) == pytest.approx(w1 / bins, abs=1e-9)
    scipy_kl = np.mean([stats.entropy(g, p) for p, g in zip(pred, target)])
    assert metrics.kl(pred, target) == pytest.approx(scipy_kl, abs=1e-9)


def test_evaluate_reports_every_metric(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, target = pair
    results = metrics.evaluate(pred, target, threshold=5.0)
    assert set(results) == set(metrics.METRIC_NAMES)
    a, b = metrics.mean_scores(pred), metrics.mean_scores(target)
    assert results["mse"] == pytest.approx(float(np.mean((a - b) ** 2)), abs=1e-12)
    assert results["accuracy"] == pytest.approx(float(np.mean((a >= 5) == (b >= 5))), abs=1e-12)
    perfect = metrics.evaluate(target, target, threshold=5.0)
    assert perfect["accuracy"] == 1.0 and perfect["emd2"] == 0.0 and perfect["kl"] == pytest.approx(0.0, abs=1e-9)
    assert perfect["srcc"] == pytest.approx(1.0)


def test_accuracy_threshold_rule_decides_the_boundary() -> None:
    predicted = np.array([5.0, 5.0, 6.0, 4.0])
    truth = np.array([5.0, 5.5, 4.0, 4.5])
    assert metrics.accuracy(predicted, truth, 5.0, ">=") == 0.75  # 5 is high: right, right, wrong, right
    assert metrics.accuracy(predicted, truth, 5.0, ">") == 0.5  # 5 is low: right, wrong, wrong, right
    assert metrics.labels(np.array([5.0]), 5.0, ">").tolist() == [False]
    with pytest.raises(ValueError):
        metrics.labels(predicted, 5.0, "=>")  # type: ignore[arg-type]


def test_binary_models_are_scored_on_accuracy() -> None:
    target = np.zeros((4, 10))
    target[[0, 1], 7] = 1.0  # mean 8: high
    target[[2, 3], 2] = 1.0  # mean 3: low
    pred = np.array([[0.2, 0.8], [0.6, 0.4], [0.9, 0.1], [0.5, 0.5]])
    assert metrics.evaluate(pred, target, threshold=5.0, rule=">") == {"accuracy": 0.5}
    with pytest.raises(ValueError, match="cannot be compared"):
        metrics.evaluate(np.full((4, 5), 0.2), target, threshold=5.0)
    assert metrics.evaluate(np.zeros((0, 10)), np.zeros((0, 10)), threshold=5.0) == {}
