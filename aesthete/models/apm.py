"""APM: a deep architecture for unified aesthetic prediction (Murray & Gordo, 2017; paper 002).

What the paper fixes (sections 3.1-3.4, 4.1):
- ResNet-101 convolutions on the photo at its own aspect ratio, shorter side 500.
- Adaptive spatial pyramid pooling on one n x n grid, n = 3: the grid is the same for every photo and
  its cells stretch with it, so composition survives. The C x 9 = 18432 pooled values are stacked and
  L2-normalised, then two fully connected layers, each followed by ReLU; the second outputs S = 10
  non-negative values that are trained *unnormalised* and L1-normalised only at evaluation.
- Loss: Huber per bin with delta = 1 / sigma^2, sigma = 3, summed over bins (Eq. 1). ``huber_scale``
  (default 1, Eq. 1 as printed) multiplies it; Caffe's SmoothL1Loss, if the authors used it, is
  ``huber_scale = sigma^2 = 9`` (the paper does not say).
- "ResNet-AVA" semantic stage (3.3): first train an extra FC + softmax after the SPP to reproduce the
  1000-way ImageNet softmax that the original fixed-size ResNet-101 gives each AVA photo
  (cross-entropy), then train the aesthetic head.
- "-m" variant (4.1): a second branch after the last convolution -- global max pooling, L2
  normalisation, two FC layers -- initialised from the trained ResNet-AVA-dist model, the new FC layers
  at lr 1e-3 and everything else at 1e-4; the two branches' distributions are late-fused with weights
  fitted on the validation split.
- Training: SGD momentum 0.9, batch 128, lr 1e-3 (divided by 10 every 20k iterations), weight decay 5e-4.

How aesthete reads what the paper leaves open (config values):
- ``spp_pool="max"``: the paper says only "adaptively pooled". It follows SPP-net [11] and Mai et al.
  [30], which pool each cell with a maximum, and its own second branch is a global *max* pool, so max is
  the reading that keeps both branches consistent; ``"avg"`` is available.
- ``hidden=1024``: the width of the first FC layer is not given. 1024 keeps the head (18.9M) smaller
  than the ResNet-101 trunk (42.5M), so the head does not dominate the model.
- The last FC layer's bias starts at 1/S, so the initial prediction is near uniform and the final ReLU
  starts alive (an all-zero ReLU output has no gradient).
- ``probs`` is ``(p + eps) / (sum p + S * eps)``: the L1 normalisation of the paper, which turns an
  all-zero output into the uniform distribution instead of a division by zero.
- ``global_branch=True`` (the "-m" model): each branch is trained with its own Huber loss (the fusion
  weight is fitted afterwards, so it cannot be in the training loss), and ``fusion`` in [0, 1] is the
  global branch's weight in ``probs = (1 - fusion) * p_spp + fusion * p_global``; 0.5 until a recipe
  fits it on validation data. ``parameter_groups`` then trains the new global head at ``lr`` and the
  rest at ``lr / 10``, as the paper does.
- ``stage="semantic"`` builds the distillation head (FC over the L2-normalised SPP vector -> 1000
  classes) and trains the trunk and that head only (the aesthetic head is frozen for the stage) against
  ``batch["teacher_probs"]`` (B, 1000): the ImageNet softmax of a
  torchvision ResNet-101 with its ImageNet weights on the standard fixed-size view of the same photo
  (shorter side 256, centre crop 224), computed by the trainer -- offline once per photo, or on the fly
  with the frozen teacher. The aesthetic stage is built with ``stage="aesthetic"`` and loads the
  semantic checkpoint with ``strict=False``; the only unexpected keys are ``semantic_head.*``.

Input: (B, 3, H, W) with the shorter side 500 and the longer side capped at ``max_long_side`` = 1000
(only photos wider than 2:1 are shrunk below 500, never warped); batches must share one size.
"""

from __future__ import annotations

from typing import Any, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from aesthete.input_policy import InputPolicy
from aesthete.models.backbones import backbone_channels, build_backbone
from aesthete.models.base import AestheticModel, Batch
from aesthete.models.losses import distribution_cross_entropy, huber_distribution
from aesthete.models.registry import register_model

IMAGENET_CLASSES = 1000
NORMALISE_EPS = 1e-6


def l1_normalise(values: Tensor) -> Tensor:
    """Non-negative (B, S) values -> distributions; an all-zero row becomes uniform."""
    values = values.float()
    return (values + NORMALISE_EPS) / (values.sum(dim=-1, keepdim=True) + values.shape[-1] * NORMALISE_EPS)


class DistributionHead(nn.Sequential):
    """FC -> ReLU -> FC -> ReLU: S non-negative, unnormalised values."""

    def __init__(self, in_features: int, hidden: int, bins: int) -> None:
        super().__init__(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, bins), nn.ReLU())
        nn.init.constant_(self[2].bias, 1.0 / bins)


class Apm(AestheticModel):
    arch = "apm"

    def __init__(
        self,
        *,
        backbone: str,
        bins: int,
        input_size: int,
        max_long_side: int,
        grid: int,
        spp_pool: Literal["max", "avg"],
        hidden: int,
        sigma: float,
        huber_scale: float,
        global_branch: bool,
        fusion: float,
        stage: Literal["aesthetic", "semantic"],
        config: dict,
    ) -> None:
        policy = InputPolicy(resize="short_side", size=input_size, max_long_side=max_long_side)
        super().__init__(bins=bins, policy=policy, config=config)
        channels = backbone_channels(backbone)
        self.features = build_backbone(backbone)
        self.spp = nn.AdaptiveMaxPool2d(grid) if spp_pool == "max" else nn.AdaptiveAvgPool2d(grid)
        self.head = DistributionHead(channels * grid * grid, hidden, bins)
        self.global_head = DistributionHead(channels, hidden, bins) if global_branch else None
        self.fusion = fusion
        self.sigma = sigma
        self.huber_scale = huber_scale
        self.stage = stage
        if stage == "semantic":
            self.semantic_head = nn.Linear(channels * grid * grid, IMAGENET_CLASSES)
            # Only the trunk and the distillation head learn in this stage; freezing the aesthetic heads
            # keeps every trainable parameter in the loss, which DistributedDataParallel requires.
            self.head.requires_grad_(False)
            if self.global_head is not None:
                self.global_head.requires_grad_(False)

    def forward(self, images: Tensor, aspect: Tensor | None = None) -> dict[str, Tensor]:
        maps = self.features(images)
        pooled = F.normalize(self.spp(maps).flatten(1), dim=-1)  # (B, C * n * n): each channel's n * n cells
        raw = self.head(pooled)
        probs = l1_normalise(raw)
        # The embedding is the global average of the maps (the pyramid's 1x1 cell), not the C * n * n
        # pyramid itself: C values per photo keep the stored embedding compact (issue 15).
        outputs = {"raw": raw, "embedding": maps.mean(dim=(2, 3))}
        if self.global_head is not None:
            raw_global = self.global_head(F.normalize(maps.amax(dim=(2, 3)), dim=-1))
            probs = (1.0 - self.fusion) * probs + self.fusion * l1_normalise(raw_global)
            outputs["raw_global"] = raw_global
        if self.stage == "semantic":
            outputs["semantic_probs"] = self.semantic_head(pooled).softmax(dim=-1)
        outputs["probs"] = probs
        return outputs

    def loss(self, outputs: dict[str, Tensor], batch: Batch) -> Tensor:
        if self.stage == "semantic":
            return distribution_cross_entropy(outputs["semantic_probs"].float(), batch["teacher_probs"])
        loss = huber_distribution(outputs["raw"].float(), batch["dist"], sigma=self.sigma, scale=self.huber_scale)
        if self.global_head is not None:
            raw_global = outputs["raw_global"].float()
            loss = loss + huber_distribution(raw_global, batch["dist"], sigma=self.sigma, scale=self.huber_scale)
        return loss

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """With the global branch (the paper's "-m" fine-tuning), the new head learns at ``lr`` and every
        other layer at ``lr / 10``; otherwise one group at ``lr``."""
        if self.global_head is None:
            return super().parameter_groups(lr)
        new = {id(p) for p in self.global_head.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in new]
        return [
            {"params": [p for p in self.global_head.parameters() if p.requires_grad], "lr": lr},
            {"params": rest, "lr": lr / 10},
        ]


@register_model("apm")
def apm(
    *,
    backbone: str = "resnet101",
    bins: int = 10,
    input_size: int = 500,
    max_long_side: int = 1000,
    grid: int = 3,
    spp_pool: Literal["max", "avg"] = "max",
    hidden: int = 1024,
    sigma: float = 3.0,
    huber_scale: float = 1.0,
    global_branch: bool = False,
    fusion: float = 0.5,
    stage: Literal["aesthetic", "semantic"] = "aesthetic",
) -> Apm:
    """APM (ResNet-AVA-dist). ``global_branch=True`` is the paper's final "-m" model; ``stage="semantic"``
    is the distillation stage that precedes aesthetic training. ``huber_scale`` multiplies the Huber loss:
    1 is Eq. 1 as printed, ``sigma**2`` (9) is Caffe's ``SmoothL1Loss`` with the same sigma."""
    if huber_scale <= 0:
        raise ValueError("huber_scale must be positive")
    if spp_pool not in ("max", "avg"):
        raise ValueError("spp_pool must be 'max' or 'avg'")
    if stage not in ("aesthetic", "semantic"):
        raise ValueError("stage must be 'aesthetic' or 'semantic'")
    if not 0.0 <= fusion <= 1.0:
        raise ValueError("fusion must lie in [0, 1]")
    if global_branch and stage == "semantic":
        raise ValueError("the global branch is added after the semantic stage; build it with stage='aesthetic'")
    if max_long_side < input_size:
        raise ValueError("max_long_side must be at least input_size")
    config = {
        "backbone": backbone,
        "bins": bins,
        "input_size": input_size,
        "max_long_side": max_long_side,
        "grid": grid,
        "spp_pool": spp_pool,
        "hidden": hidden,
        "sigma": sigma,
        "huber_scale": huber_scale,
        "global_branch": global_branch,
        "fusion": fusion,
        "stage": stage,
    }
    return Apm(**config, config=config)
