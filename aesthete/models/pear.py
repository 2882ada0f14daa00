"""PEAR: Photographic Embedding for Aesthetic Rating (Wu & Yao; paper 004).

What the paper fixes (sections 2.2-3.2):
- ResNet-50 features, flattened (2048), feed three encoders: photographic ``2048 -> k = 11`` giving the
  Bernoulli probabilities of q(z|x), and ``mu``, ``sigma``: ``2048 -> j = 100`` giving the Gaussian q(s|x).
- Sampler: the Gumbel-sigmoid relaxation ``z = sigmoid(logit q + log u - log(1 - u))`` (temperature
  "ignored", i.e. 1) and the Gaussian reparameterisation for s.
- Decoders on ``[z, s]`` (k + j = 111): an aesthetic FC ``111 -> d`` (d = 10 on AVA, 6 on AADB) with a
  cross-entropy against the vote distribution; a reconstruction head FC ``111 -> 8192`` reshaped to
  (128, 8, 8), then five ConvTranspose2d (k4, s2, p1) with 64, 32, 16, 8, 3 channels, BatchNorm + ReLU
  after each but the last, which ends in a Sigmoid: a 256x256 image, MSE loss.
- A prior network of the same architecture, pre-trained on AADB's 11 photographic attributes (the
  ``pear-prior`` model here), gives p(z|x), so AVA photos without attributes still get one.
- Eq. 2: ``CE + lambda * MSE + (1 + lambda) * KL(q(z|x) || p(z|x)) + beta * KL(q(s|x) || N(0, 1))`` with
  lambda = beta = 0.1. Adam, batch 128, lr 1e-4 for the backbone and the prior, 1e-3 for the rest.

What the project chose where the paper is silent (config values unless stated):
- The sigma encoder outputs the log-variance ``log sigma^2`` (any real number is valid, and the KL's
  closed form uses it directly). Sampling is ``s = mu + sigma * eps``: the paper prints ``sigma^2 * eps``,
  but the KL term it pairs with treats sigma^2 as the variance, which only ``sigma * eps`` samples.
- ``temperature=1.0`` divides the Gumbel-sigmoid logit; 1 is the paper's "temperature ignored".
- Inference uses the means -- ``z = sigmoid(logits)``, ``s = mu`` -- so scores are deterministic.
- The reconstruction target is the network's input with the normalisation undone (the Sigmoid output
  lives in [0, 1]) and resized bilinearly to 256x256; the MSE is averaged over pixels
  (``recon_reduction="mean"``) while both KL terms are sums over their dimensions, so with lambda = 0.1
  the reconstruction weighs about 1/(3 * 256^2) of a per-image sum. ``recon_reduction="sum"`` sums it
  per image instead; the paper does not say which it used.
- The prior runs only in training mode (its output is needed only by the KL term), so scoring costs one
  ResNet-50. The validation loss, computed in eval mode, therefore lacks the photographic KL term.
  The prior is fine-tuned through that KL at the backbone's rate, as the paper's learning rates imply.
  To start from a trained ``pear-prior`` checkpoint, load its tensors into ``model.prior`` (same keys).
- ``prior=False`` (an ablation the paper does not run) replaces p(z|x) by Bernoulli(0.5).
- Input: the paper does not say how photos are sized; aesthete resizes the shorter side to 256 and
  takes the centre 224x224 crop, the usual ImageNet view of a ResNet-50 (aspect ratio is not preserved
  as information; nothing is warped).
- ``pear-prior``: the attributes in ``batch["attributes"]`` are in [0, 1] (AADB's per-attribute scores
  rescaled from [-1, 1] by the dataset reader); loss is binary cross-entropy per attribute.

Input: (B, 3, 224, 224).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aesthete.input_policy import InputPolicy
from aesthete.models.backbones import backbone_channels, build_backbone
from aesthete.models.base import AestheticModel, Batch
from aesthete.models.losses import (
    Reduction,
    bernoulli_kl,
    distribution_cross_entropy,
    gaussian_kl_standard,
    reconstruction_mse,
)
from aesthete.models.registry import register_model

AADB_ATTRIBUTES = 11
RECONSTRUCTION_SIZE = 256  # 8 * 2**5: fixed by the head's five stride-2 deconvolutions
HEAD_LR_FACTOR = 10.0  # the paper: 1e-3 for the heads vs 1e-4 for the backbone and the prior


def _policy(input_size: int, resize_short: int) -> InputPolicy:
    return InputPolicy(resize="center_crop", size=input_size, resize_short=resize_short)


class PearPrior(AestheticModel):
    """The prior network: backbone -> global average pooling -> FC -> one logit per photographic attribute."""

    arch = "pear-prior"  # never scores photos: see its entry in aesthete.architectures

    def __init__(self, *, backbone: str, attributes: int, input_size: int, resize_short: int, config: dict) -> None:
        super().__init__(bins=0, policy=_policy(input_size, resize_short), config=config)
        self.features = build_backbone(backbone)
        self.head = nn.Linear(backbone_channels(backbone), attributes)

    def forward(self, images: Tensor, aspect: Tensor | None = None) -> dict[str, Tensor]:
        logits = self.head(self.features(images).mean(dim=(2, 3)))
        return {"attribute_logits": logits, "attributes": logits.sigmoid()}

    def loss(self, outputs: dict[str, Tensor], batch: Batch) -> Tensor:
        return F.binary_cross_entropy_with_logits(outputs["attribute_logits"].float(), batch["attributes"])


class ReconstructionHead(nn.Module):
    """FC -> (128, 8, 8) -> five stride-2 transposed convolutions -> (3, 256, 256) in [0, 1]."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.expand = nn.Linear(code, 128 * 8 * 8)
        layers: list[nn.Module] = []
        channels = 128
        for out_channels in (64, 32, 16, 8):
            layers += [
                nn.ConvTranspose2d(channels, out_channels, kernel_size=4, stride=2, padding=1),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            channels = out_channels
        layers += [nn.ConvTranspose2d(channels, 3, kernel_size=4, stride=2, padding=1), nn.Sigmoid()]
        self.deconv = nn.Sequential(*layers)

    def forward(self, code: Tensor) -> Tensor:
        return self.deconv(self.expand(code).reshape(-1, 128, 8, 8))


class Pear(AestheticModel):
    arch = "pear"

    def __init__(
        self,
        *,
        backbone: str,
        bins: int,
        attributes: int,
        latent: int,
        input_size: int,
        resize_short: int,
        temperature: float,
        lam: float,
        beta: float,
        prior: bool,
        recon_reduction: Reduction,
        config: dict,
    ) -> None:
        super().__init__(bins=bins, policy=_policy(input_size, resize_short), config=config)
        channels = backbone_channels(backbone)
        self.features = build_backbone(backbone)
        self.photo_encoder = nn.Linear(channels, attributes)
        self.mu_encoder = nn.Linear(channels, latent)
        self.logvar_encoder = nn.Linear(channels, latent)
        self.aesthetic_head = nn.Linear(attributes + latent, bins)
        self.reconstruction_head = ReconstructionHead(attributes + latent)
        self.prior = None
        if prior:
            prior_config = {
                "backbone": backbone,
                "attributes": attributes,
                "input_size": input_size,
                "resize_short": resize_short,
            }
            self.prior = PearPrior(**prior_config, config=prior_config)
        self.temperature = temperature
        self.lam = lam
        self.beta = beta
        self.recon_reduction = recon_reduction

    def forward(self, images: Tensor, aspect: Tensor | None = None) -> dict[str, Tensor]:
        pooled = self.features(images).mean(dim=(2, 3))
        photo_logits = self.photo_encoder(pooled)
        mu, logvar = self.mu_encoder(pooled), self.logvar_encoder(pooled)
        if self.training:
            tiny = torch.finfo(photo_logits.dtype).tiny
            uniform = torch.rand_like(photo_logits).clamp(tiny, 1.0 - torch.finfo(photo_logits.dtype).eps)
            gumbel = uniform.log() - (1.0 - uniform).log()
            z = ((photo_logits + gumbel) / self.temperature).sigmoid()
            s = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        else:
            z, s = photo_logits.sigmoid(), mu
        code = torch.cat([z, s], dim=-1)
        logits = self.aesthetic_head(code)
        outputs = {
            "logits": logits,
            "probs": logits.softmax(dim=-1),
            "photo_logits": photo_logits,
            "mu": mu,
            "logvar": logvar,
            "reconstruction": self.reconstruction_head(code),
            "embedding": code,  # [z, s]: the aesthetic head's input
        }
        if self.training and self.prior is not None:
            outputs["prior_probs"] = self.prior(images)["attributes"]
        return outputs

    def reconstruction_target(self, images: Tensor) -> Tensor:
        """The input with the normalisation undone, in [0, 1], resized to the head's 256x256."""
        mean = torch.tensor(self.policy.mean, device=images.device, dtype=images.dtype).reshape(1, 3, 1, 1)
        std = torch.tensor(self.policy.std, device=images.device, dtype=images.dtype).reshape(1, 3, 1, 1)
        pixels = (images * std + mean).clamp(0.0, 1.0)
        size = (RECONSTRUCTION_SIZE, RECONSTRUCTION_SIZE)
        return F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=True)

    def loss(self, outputs: dict[str, Tensor], batch: Batch) -> Tensor:
        loss = distribution_cross_entropy(outputs["probs"].float(), batch["dist"])
        target = self.reconstruction_target(batch["images"].float())
        reconstruction = reconstruction_mse(outputs["reconstruction"].float(), target, self.recon_reduction)
        loss = loss + self.lam * reconstruction
        q = outputs["photo_logits"].float().sigmoid()
        if self.prior is None:
            loss = loss + (1.0 + self.lam) * bernoulli_kl(q, torch.full_like(q, 0.5))
        elif "prior_probs" in outputs:
            loss = loss + (1.0 + self.lam) * bernoulli_kl(q, outputs["prior_probs"].float())
        return loss + self.beta * gaussian_kl_standard(outputs["mu"].float(), outputs["logvar"].float())

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """Backbone and prior at ``lr`` (the paper's 1e-4), everything else at ``10 * lr`` (its 1e-3)."""
        slow = list(self.features.parameters())
        if self.prior is not None:
            slow += list(self.prior.parameters())
        slow_ids = {id(p) for p in slow}
        fast = [p for p in self.parameters() if id(p) not in slow_ids]
        return [
            {"params": [p for p in slow if p.requires_grad], "lr": lr},
            {"params": [p for p in fast if p.requires_grad], "lr": lr * HEAD_LR_FACTOR},
        ]


@register_model("pear")
def pear(
    *,
    backbone: str = "resnet50",
    bins: int = 10,
    attributes: int = AADB_ATTRIBUTES,
    latent: int = 100,
    input_size: int = 224,
    resize_short: int = 256,
    temperature: float = 1.0,
    lam: float = 0.1,
    beta: float = 0.1,
    prior: bool = True,
    recon_reduction: Reduction = "mean",
) -> Pear:
    """PEAR with the paper's settings. ``lam`` is Eq. 2's lambda (reconstruction weight; the photographic
    KL weighs ``1 + lam``), ``beta`` the Gaussian KL's weight. The paper uses ``d = 6`` bins on AADB
    (scores 0..5); the AADB recipe keeps 5, matching the released 1..5 ratings. ``recon_reduction``:
    the reconstruction MSE averaged over pixels (``"mean"``, the default) or summed per image (``"sum"``,
    the KL terms' convention); the paper does not say which."""
    if recon_reduction not in ("mean", "sum"):
        raise ValueError("recon_reduction must be 'mean' or 'sum'")
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    if resize_short < input_size:
        raise ValueError("resize_short must be at least input_size")
    config = {
        "backbone": backbone,
        "bins": bins,
        "attributes": attributes,
        "latent": latent,
        "input_size": input_size,
        "resize_short": resize_short,
        "temperature": temperature,
        "lam": lam,
        "beta": beta,
        "prior": prior,
        "recon_reduction": recon_reduction,
    }
    return Pear(**config, config=config)


@register_model("pear-prior")
def pear_prior(
    *, backbone: str = "resnet50", attributes: int = AADB_ATTRIBUTES, input_size: int = 224, resize_short: int = 256
) -> PearPrior:
    """PEAR's prior network, trained first on AADB's photographic attributes; it never scores photos."""
    if resize_short < input_size:
        raise ValueError("resize_short must be at least input_size")
    config = {"backbone": backbone, "attributes": attributes, "input_size": input_size, "resize_short": resize_short}
    return PearPrior(**config, config=config)
