"""Every loss against a direct formula written independently with numpy and explicit loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aesthete.models.losses import (
    activation_l1,
    bernoulli_kl,
    distribution_cross_entropy,
    emd,
    gaussian_kl_standard,
    huber_distribution,
    mp_objective,
    reconstruction_mse,
)


def _dists(rows: int, bins: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.random((rows, bins)) + 0.05
    return values / values.sum(axis=1, keepdims=True)


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.tensor(array, dtype=torch.float64)


@pytest.mark.parametrize("r", [1.0, 2.0])
def test_emd_matches_loops(r: float) -> None:
    pred, target = _dists(4, 10, 0), _dists(4, 10, 1)
    expected = 0.0
    for p, t in zip(pred, target):
        cdf_p = cdf_t = 0.0
        total = 0.0
        for k in range(10):
            cdf_p += p[k]
            cdf_t += t[k]
            total += abs(cdf_p - cdf_t) ** r
        expected += (total / 10) ** (1 / r)
    expected /= 4
    assert emd(_t(pred), _t(target), r=r).item() == pytest.approx(expected, rel=1e-12)


def test_huber_distribution_matches_apm_eq1() -> None:
    # Differences on both sides of delta = 1/9: small ones take the quadratic branch, large the linear one.
    target = _dists(3, 10, 2)
    offsets = np.array([0.05, -0.2, 0.3, 0.0, 0.11, -0.112, 0.5, -0.01, 0.0, 1.0])
    pred = target + offsets * np.array([[1], [0.5], [2]])
    delta = 1 / 9
    expected = 0.0
    for p_row, g_row in zip(pred, target):
        for p, g in zip(p_row, g_row):
            d = abs(p - g)
            expected += 0.5 * d * d if d <= delta else delta * (d - 0.5 * delta)
    expected /= 3
    got = huber_distribution(_t(pred), _t(target), sigma=3.0).item()
    assert got == pytest.approx(expected, rel=1e-12)
    # sigma changes delta: sigma = 1 makes delta = 1 and every difference here quadratic but the 2.0.
    assert huber_distribution(_t(pred), _t(target), sigma=1.0).item() != pytest.approx(got)


def test_distribution_cross_entropy_matches_formula() -> None:
    pred, target = _dists(5, 6, 3), _dists(5, 6, 4)
    expected = np.mean([-sum(t * math.log(p) for p, t in zip(pr, tr)) for pr, tr in zip(pred, target)])
    assert distribution_cross_entropy(_t(pred), _t(target)).item() == pytest.approx(expected, rel=1e-12)


def test_distribution_cross_entropy_is_finite_for_a_saturated_prediction() -> None:
    pred = torch.tensor([[1.0, 0.0]])
    assert torch.isfinite(distribution_cross_entropy(pred, torch.tensor([[0.0, 1.0]])))


def _q() -> np.ndarray:
    return np.array([[0.9, 0.2, 0.6, 0.4], [0.05, 0.99, 0.5, 0.7]])


def test_mp_avg_is_negative_mean_log_q() -> None:
    q = _q()
    expected = -np.mean([np.mean([math.log(v) for v in row]) for row in q])
    assert mp_objective(_t(q), "avg").item() == pytest.approx(expected, rel=1e-12)


def test_mp_ada_value_and_gradient_match_eq7_eq8() -> None:
    q = _q()
    beta = 0.5
    expected = -np.mean([np.mean([(1 - v**beta) * math.log(v) for v in row]) for row in q])
    q_t = _t(q).requires_grad_(True)
    loss = mp_objective(q_t, "ada", beta=beta)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    # Eq. 8: d objective / d q = lambda = (1 - (1 + beta log q) * q^beta) / q, scaled by 1/|P| per image,
    # 1/B for the batch mean, and negated.
    rows, patches = q.shape
    for i in range(rows):
        for j in range(patches):
            v = q[i, j]
            lam = (1 - (1 + beta * math.log(v)) * v**beta) / v
            assert q_t.grad[i, j].item() == pytest.approx(-lam / patches / rows, rel=1e-10)


def test_mp_min_samples_proportional_to_one_minus_q() -> None:
    q = np.array([[0.9, 0.3, 0.6]] * 20000)
    weights = (1 - q[0]) / (1 - q[0]).sum()  # [0.1, 0.7, 0.4] / 1.2
    generator = torch.Generator().manual_seed(0)
    loss = mp_objective(_t(q), "min", generator=generator).item()
    # E[-(1/|P|) log q_{p*}] under the sampling distribution
    expected = -sum(w * math.log(v) for w, v in zip(weights, q[0])) / 3
    assert loss == pytest.approx(expected, rel=0.02)


def test_mp_min_is_reproducible_with_a_generator_and_picks_the_only_wrong_patch() -> None:
    q = _t(_q())
    first = mp_objective(q, "min", generator=torch.Generator().manual_seed(7))
    second = mp_objective(q, "min", generator=torch.Generator().manual_seed(7))
    assert first.item() == second.item()
    # Only one patch with q < 1 in each row: it is always the one chosen.
    certain = torch.tensor([[1.0, 0.25, 1.0], [0.5, 1.0, 1.0]], dtype=torch.float64)
    expected = -(math.log(0.25) / 3 + math.log(0.5) / 3) / 2
    assert mp_objective(certain, "min").item() == pytest.approx(expected, rel=1e-12)
    # Every patch already certain: a uniform draw of log 1 = 0, not an error.
    assert mp_objective(torch.ones(2, 3), "min").item() == 0.0


def test_mp_objective_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown multi-patch objective"):
        mp_objective(torch.full((1, 2), 0.5), "max")  # type: ignore[arg-type]


def test_activation_l1_matches_softmax_then_l1() -> None:
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(3, 10))
    target = _dists(3, 10, 6)
    expected = 0.0
    for s_row, t_row in zip(scores, target):
        exp = [math.exp(v) for v in s_row]
        total = sum(exp)
        expected += sum(abs(e / total - t) for e, t in zip(exp, t_row))
    expected /= 3
    assert activation_l1(_t(scores), _t(target)).item() == pytest.approx(expected, rel=1e-12)


def test_bernoulli_kl_matches_formula_and_vanishes_at_equality() -> None:
    rng = np.random.default_rng(8)
    q, p = rng.uniform(0.05, 0.95, size=(4, 11)), rng.uniform(0.05, 0.95, size=(4, 11))
    expected = np.mean(
        [
            sum(a * math.log(a / b) + (1 - a) * math.log((1 - a) / (1 - b)) for a, b in zip(q_row, p_row))
            for q_row, p_row in zip(q, p)
        ]
    )
    assert bernoulli_kl(_t(q), _t(p)).item() == pytest.approx(expected, rel=1e-10)
    assert bernoulli_kl(_t(q), _t(q)).item() == pytest.approx(0.0, abs=1e-12)
    assert torch.isfinite(bernoulli_kl(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])))


def test_gaussian_kl_matches_formula() -> None:
    rng = np.random.default_rng(9)
    mu, logvar = rng.normal(size=(3, 100)), rng.normal(scale=0.5, size=(3, 100))
    expected = 0.0
    for m_row, lv_row in zip(mu, logvar):
        for m, lv in zip(m_row, lv_row):
            var = math.exp(lv)
            # KL(N(m, var) || N(0, 1)) = (var + m^2 - 1 - log var) / 2
            expected += (var + m * m - 1 - lv) / 2
    expected /= 3
    assert gaussian_kl_standard(_t(mu), _t(logvar)).item() == pytest.approx(expected, rel=1e-10)
    assert gaussian_kl_standard(torch.zeros(2, 5), torch.zeros(2, 5)).item() == 0.0


def test_huber_scale_sigma_squared_is_caffes_smooth_l1() -> None:
    """Caffe's SmoothL1Loss with sigma: 0.5 (sigma d)^2 where |d| < 1/sigma^2, else |d| - 0.5/sigma^2;
    that is sigma^2 times Eq. 1, so ``scale = sigma**2`` reproduces it."""
    sigma = 3.0
    pred = torch.tensor([[0.05, 0.5, 0.0]])
    target = torch.tensor([[0.0, 0.1, 0.02]])
    d = (pred - target).abs()
    caffe = torch.where(d < 1 / sigma**2, 0.5 * (sigma * d) ** 2, d - 0.5 / sigma**2).sum()
    torch.testing.assert_close(huber_distribution(pred, target, sigma=sigma, scale=sigma**2), caffe)
    torch.testing.assert_close(huber_distribution(pred, target, sigma=sigma), caffe / sigma**2)


def test_reconstruction_mse_mean_over_pixels_or_sum_per_image() -> None:
    pred = torch.zeros(2, 3, 2, 2)
    target = torch.ones(2, 3, 2, 2)
    target[1] = 2.0  # image 0: 12 squared errors of 1; image 1: 12 of 4
    assert reconstruction_mse(pred, target, "mean").item() == pytest.approx((12 * 1 + 12 * 4) / 24)
    assert reconstruction_mse(pred, target, "sum").item() == pytest.approx((12 * 1 + 12 * 4) / 2)
    with pytest.raises(ValueError, match="reduction"):
        reconstruction_mse(pred, target, "max")  # type: ignore[arg-type]
