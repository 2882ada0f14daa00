"""Training objectives, as plain functions of predictions and targets (tested against direct formulas)."""

from __future__ import annotations

import torch
from torch import Tensor


def emd(pred: Tensor, target: Tensor, r: float = 2.0) -> Tensor:
    """Earth mover's distance between distributions over ordered bins (NIMA, HLA-GCN Eq. 8).

    ``(mean_k |CDF_pred(k) - CDF_target(k)|^r)^(1/r)`` per sample, averaged over the batch.
    """
    cdf_diff = torch.cumsum(pred, dim=-1) - torch.cumsum(target, dim=-1)
    return cdf_diff.abs().pow(r).mean(dim=-1).pow(1.0 / r).mean()
