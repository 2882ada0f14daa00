"""bf16 autocast scores like fp32, for every model: the speed of ``--precision bf16`` costs no ranking.

Small seeded configs of each model (tests/test_models.py) score 16 varied generated photos through the
real :class:`ModelRunner` in fp32 and in bf16. Agreement means every photo's mean score moves by less
than 0.05 (on the 1-10 scale; MP_ada's 0-1 scale is held to the same share of its range) and the
photos' order is kept (Spearman > 0.99).

The rank check is only meaningful when the photos' fp32 scores differ by much more than bf16 moves
them, so each case first asserts that spread (a standard deviation over 5x the largest bf16 change).
Randomly initialised models pass as they are, except APM: its last layer's bias starts at 1/S (the
paper's initialisation, so that training starts from a uniform distribution), which at random init
swamps the photo-dependent term and leaves every photo within ~0.006 of the same score, the size of
bf16's own rounding; ranks are then noise in either precision. Its last layer's weights are scaled up
100x here, so its scores vary between photos as a trained head's do.
"""

from __future__ import annotations

import imagegen as g
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from test_models import SMALL, build

from aesthete.engine import ModelRunner

PHOTOS = [g.scene(seed, (144, 96)) for seed in range(16)]
APM_LAST_LAYER_GAIN = 100.0


@pytest.mark.parametrize("case", sorted(SMALL))
def test_bf16_scores_agree_with_fp32(case: str) -> None:
    model = build(case)
    if case == "apm":
        with torch.no_grad():
            model.head[2].weight.mul_(APM_LAST_LAYER_GAIN)
    pixels = np.stack([model.policy.prepare(photo) for photo in PHOTOS])
    aspect = np.array([photo.width / photo.height for photo in PHOTOS])
    bins = model.bin_values.numpy().astype(np.float64)
    fp32 = ModelRunner(model, torch.device("cpu"), None)(pixels, aspect) @ bins
    bf16 = ModelRunner(model, torch.device("cpu"), torch.bfloat16)(pixels, aspect) @ bins
    change = np.abs(bf16 - fp32).max()
    assert fp32.std() > 5 * change, f"{case}: scores too alike ({fp32.std():.4f}) for ranks to mean anything"
    assert change < 0.05 * (bins[-1] - bins[0]) / 9, f"{case}: bf16 moved a score by {change:.4f}"
    rho = spearmanr(fp32, bf16).statistic
    assert rho > 0.99, f"{case}: rank correlation {rho:.4f}"
