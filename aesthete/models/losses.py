"""Training objectives, as plain functions of predictions and targets (tested against direct formulas)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


def emd(pred: Tensor, target: Tensor, r: float = 2.0) -> Tensor:
    """Earth mover's distance between distributions over ordered bins (NIMA, HLA-GCN Eq. 8).

    ``(mean_k |CDF_pred(k) - CDF_target(k)|^r)^(1/r)`` per sample, averaged over the batch.
    """
    cdf_diff = torch.cumsum(pred, dim=-1) - torch.cumsum(target, dim=-1)
    return cdf_diff.abs().pow(r).mean(dim=-1).pow(1.0 / r).mean()


def huber_distribution(pred: Tensor, target: Tensor, sigma: float = 3.0, scale: float = 1.0) -> Tensor:
    """APM's robust regression loss (paper 002, Eq. 1): a Huber loss on every bin, summed over bins.

    With ``d = pred_i - target_i`` and ``delta = 1 / sigma^2``: ``d^2 / 2`` where ``|d| <= delta``, else
    ``delta * (|d| - delta / 2)``; summed over the S bins, averaged over the batch, times ``scale``.
    ``pred`` is the model's *unnormalised* non-negative output (APM normalises only at evaluation).
    ``scale = 1`` is Eq. 1 as printed. Caffe's ``SmoothL1Loss`` with the same sigma is Eq. 1 divided by
    ``delta``, i.e. ``scale = sigma^2``: if the authors trained with Caffe's layer (the paper does not
    say), their gradients were sigma^2 = 9 times Eq. 1's, which under SGD acts as a 9x learning rate.
    """
    delta = 1.0 / sigma**2
    diff = (pred - target).abs()
    per_bin = torch.where(diff <= delta, 0.5 * diff**2, delta * (diff - 0.5 * delta))
    return scale * per_bin.sum(dim=-1).mean()


Reduction = Literal["mean", "sum"]


def reconstruction_mse(pred: Tensor, target: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Squared error between a reconstruction and its target image (PEAR's reconstruction term).

    ``"mean"``: averaged over every pixel and channel (``F.mse_loss``'s default), so the term is about
    ``1 / (3 * 256^2)`` of a per-image sum and stays small beside PEAR's KL terms, which are *sums* over
    their dimensions. ``"sum"``: summed over each image's pixels and channels, averaged over the batch --
    the scale a Gaussian log-likelihood (the VAE reading of Eq. 2) gives, on the KL terms' footing.
    """
    squared = (pred - target) ** 2
    if reduction == "mean":
        return squared.mean()
    if reduction == "sum":
        return squared.flatten(1).sum(dim=1).mean()
    raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")


def distribution_cross_entropy(pred_probs: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy of predicted probabilities against a target distribution, ``-sum_i t_i log p_i``,
    averaged over the batch (PEAR's aesthetic loss; APM's semantic distillation against teacher softmax).

    Probabilities are clamped at the dtype's smallest normal number so a saturated softmax gives a
    large finite loss instead of ``inf``.
    """
    log_probs = pred_probs.clamp_min(torch.finfo(pred_probs.dtype).tiny).log()
    return -(target * log_probs).sum(dim=-1).mean()


MpObjective = Literal["avg", "min", "ada"]


def mp_objective(
    patch_probs_correct: Tensor,
    kind: MpObjective,
    beta: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The multi-patch objectives of MP_ada (paper 001, Eq. 3, 5-6, 7-8), negated so that lower is better.

    ``patch_probs_correct`` (B, P) holds ``q_p = Pr(correct label | patch p)`` for the P patches of each
    image. Per image, with ``|P|`` patches:

    - ``avg``: ``(1/|P|) sum_p log q_p`` (Eq. 3).
    - ``min``: the soft minimum the paper trains with: one patch ``p*`` drawn with probability
      proportional to ``1 - q_p`` (no gradient through the draw), objective ``(1/|P|) log q_{p*}`` -- the
      ``1/|P|`` factor is Eq. 5's. ``generator`` makes the draw reproducible; a row where every
      ``q_p == 1`` draws uniformly.
    - ``ada``: ``(1/|P|) sum_p (1 - q_p^beta) log q_p`` (Eq. 7); the weight ``1 - q^beta`` is part of the
      objective, so its gradient is Eq. 8's ``lambda``, not a detached focal weight.

    Returns the negative of the per-image objective, averaged over the batch.
    """
    q = patch_probs_correct.clamp_min(torch.finfo(patch_probs_correct.dtype).tiny)
    log_q = q.log()
    patches = q.shape[-1]
    if kind == "avg":
        objective = log_q.mean(dim=-1)
    elif kind == "min":
        weights = (1.0 - q.detach()).clamp_min(0.0)
        weights = torch.where(weights.sum(dim=-1, keepdim=True) > 0, weights, torch.ones_like(weights))
        chosen = torch.multinomial(weights, 1, generator=generator)
        objective = log_q.gather(-1, chosen).squeeze(-1) / patches
    elif kind == "ada":
        objective = ((1.0 - q.pow(beta)) * log_q).mean(dim=-1)
    else:
        raise ValueError(f"unknown multi-patch objective {kind!r}; choose avg, min or ada")
    return -objective.mean()


def activation_l1(group_scores: Tensor, target: Tensor) -> Tensor:
    """SAF's activation loss: the L1 distance between the softmax of the M group-pooled bottleneck values
    and the vote distribution, ``sum_m |softmax(g)_m - t_m|``, averaged over the batch.

    L1 constrains each bin on its own, which the paper prefers to KL or JS as a deliberately weak tie
    between semantic features and the aesthetic distribution.
    """
    return (group_scores.softmax(dim=-1) - target).abs().sum(dim=-1).mean()


def bernoulli_kl(q_probs: Tensor, p_probs: Tensor) -> Tensor:
    """``KL(Bern(q) || Bern(p))`` summed over the k attributes, averaged over the batch (PEAR's
    photographic-injection term). Probabilities are clamped to [eps, 1 - eps] to keep the logs finite."""
    eps = torch.finfo(q_probs.dtype).eps
    q = q_probs.clamp(eps, 1.0 - eps)
    p = p_probs.clamp(eps, 1.0 - eps)
    kl = q * (q.log() - p.log()) + (1.0 - q) * ((1.0 - q).log() - (1.0 - p).log())
    return kl.sum(dim=-1).mean()


def gaussian_kl_standard(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, 1))`` summed over the j dimensions, averaged over the batch:
    ``-1/2 sum(1 + log sigma^2 - mu^2 - sigma^2)``, the closed form PEAR states. Takes the log-variance,
    which is what PEAR's sigma encoder outputs in aesthete."""
    return (-0.5 * (1.0 + logvar - mu**2 - logvar.exp())).sum(dim=-1).mean()
