"""SAF: an auto-encoder with semantic-aesthetic fusing and spatial pyramid pooling (paper 003).

The paper's text survives but its equations and most numbers do not, so this module is the project's
reading of the structure it describes in words (see ``../shared/spec/models.md``).

What the paper fixes:
- An auto-encoder: a VGG16 convolutional encoder and a decoder of transposed convolutions with batch
  normalisation that reconstructs the input; an L2 reconstruction loss makes the bottleneck keep the
  photo's semantic content without labels.
- At the bottleneck, c feature maps split into M groups of P maps. Group average pooling (GAP) gives
  one value per group, and an L1 "activation" loss ties those M values to the vote distribution -- a
  deliberately weak constraint (L1 beat KL and JS in its Table 4). With M = S every group stands for a
  score bin: the aesthetic information is "pre-activated" in the semantic features.
- Prediction: spatial pyramid pooling with 1, 4 and 16 bins (21 values per map, whatever the photo's
  size), then a *separated* multi-way regressor: each group's pooled maps feed their own regressor,
  which gives that bin's logit (Table 3 "w/o Split" uses one joint regressor instead); softmax; EMD loss
  (NIMA's, r = 2). No fully connected layer before the regressor, so any aspect ratio is accepted.
- Total loss: a weighted sum of EMD, reconstruction and activation losses.
- Input: shorter side 256, aspect kept, horizontal flips; SGD with momentum 0.9.

What the project chose (config values; the paper's values were lost):
- ``group_maps=51`` (P): VGG16 ends with 512 maps, which do not split into 10 groups, so a 1x1
  convolution maps them to M * P = 510 channels -- the nearest width to VGG16's own. No activation
  follows it: the group averages are the raw "pre-activated" values the activation loss reads.
- The activation loss compares the softmax of the M group averages with the distribution
  (``losses.activation_l1``), since raw averages are not a distribution.
- ``decoder_channels=(256, 128, 64, 32)``: one ConvTranspose2d(k4, s2, p1) + BN + ReLU per halving of the
  encoder (4 for VGG16's stride 16, 5 for a stride-32 ResNet), then a 3x3 convolution to 3 channels with
  no activation. It reconstructs the *normalised* input, so the target needs no de-normalisation. When a
  side is not a multiple of the stride, the encoder floors it, and the reconstruction is resized
  (bilinear) to the input's exact size before the loss: at most stride - 1 pixels of interpolation.
- ``regressor_hidden=0``: each group's regressor is one fully connected layer (P * 21 -> 1), as the
  paper's description of projecting features to logits with a fully connected layer reads; a positive
  value inserts a hidden layer of that width per group. ``separated=False`` is the joint regressor.
- ``spp_pool="max"``: spatial pyramid pooling as in SPP-net, which the paper cites for it.
- ``lambda_rec=0.1``, ``lambda_act=0.1``: the two auxiliary losses weigh a tenth of the EMD;
  ``lambda_act=0`` is the paper's "w/o Act" ablation.
- ``max_long_side=512``: photos wider than 2:1 are shrunk (never warped) to bound memory.

Input: (B, 3, H, W) with the shorter side 256 (longer side <= 512); batches must share one size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aesthete.input_policy import InputPolicy
from aesthete.models.backbones import backbone_channels, build_backbone
from aesthete.models.base import AestheticModel, Batch
from aesthete.models.losses import activation_l1, emd
from aesthete.models.registry import register_model

SPP_LEVELS = (1, 2, 4)  # 1 + 4 + 16 = 21 bins per map
SPP_BINS = sum(level * level for level in SPP_LEVELS)


def encoder_stride(backbone: str) -> int:
    """Downsampling factor of ``build_backbone(backbone)``: 16 for VGG16 (last max-pool dropped), 32 for ResNets."""
    return 16 if backbone.startswith("vgg") else 32


def spatial_pyramid(maps: Tensor, kind: Literal["max", "avg"]) -> Tensor:
    """(B, C, h, w) -> (B, C, 21): each map pooled on 1x1, 2x2 and 4x4 grids that stretch with the map."""
    pool = F.adaptive_max_pool2d if kind == "max" else F.adaptive_avg_pool2d
    return torch.cat([pool(maps, level).flatten(2) for level in SPP_LEVELS], dim=2)


class Decoder(nn.Sequential):
    """Transposed convolutions doubling the resolution once per stage, back to the encoder's input scale."""

    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [
                nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_channels
        layers.append(nn.Conv2d(in_channels, 3, kernel_size=3, padding=1))
        super().__init__(*layers)


class Saf(AestheticModel):
    arch = "saf"

    def __init__(
        self,
        *,
        backbone: str,
        bins: int,
        input_size: int,
        max_long_side: int,
        group_maps: int,
        decoder_channels: Sequence[int],
        regressor_hidden: int,
        separated: bool,
        spp_pool: Literal["max", "avg"],
        lambda_rec: float,
        lambda_act: float,
        config: dict,
    ) -> None:
        policy = InputPolicy(resize="short_side", size=input_size, max_long_side=max_long_side)
        super().__init__(bins=bins, policy=policy, config=config)
        width = bins * group_maps  # c = M * P
        self.group_maps = group_maps
        self.features = build_backbone(backbone)
        self.bottleneck = nn.Conv2d(backbone_channels(backbone), width, kernel_size=1)
        self.decoder = Decoder(width, decoder_channels)
        # A grouped 1x1 convolution over the (B, c * 21, 1) pooled vector is M independent regressors,
        # each seeing only its own group's P * 21 values (groups=1 gives the joint regressor).
        groups = bins if separated else 1
        if regressor_hidden:
            self.regressor = nn.Sequential(
                nn.Conv1d(width * SPP_BINS, bins * regressor_hidden, kernel_size=1, groups=groups),
                nn.ReLU(inplace=True),
                nn.Conv1d(bins * regressor_hidden, bins, kernel_size=1, groups=groups),
            )
        else:
            self.regressor = nn.Conv1d(width * SPP_BINS, bins, kernel_size=1, groups=groups)
        self.spp_pool = spp_pool
        self.lambda_rec = lambda_rec
        self.lambda_act = lambda_act

    def forward(self, images: Tensor, aspect: Tensor | None = None) -> dict[str, Tensor]:
        fused = self.bottleneck(self.features(images))  # (B, M * P, h, w), group-major channels
        batch = fused.shape[0]
        group_scores = fused.mean(dim=(2, 3)).reshape(batch, self.bins, self.group_maps).mean(dim=-1)
        pooled = spatial_pyramid(fused, self.spp_pool).reshape(batch, -1, 1)  # group m's maps are contiguous
        logits = self.regressor(pooled).reshape(batch, self.bins)
        reconstruction = self.decoder(fused)
        if reconstruction.shape[-2:] != images.shape[-2:]:
            reconstruction = F.interpolate(reconstruction, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return {
            "logits": logits,
            "probs": logits.softmax(dim=-1),
            "group_scores": group_scores,
            "reconstruction": reconstruction,
            # The fused maps' global average (the pyramid's 1x1 level), not the M * P * SPP_BINS pyramid:
            # M * P values per photo keep the stored embedding compact (issue 15).
            "embedding": fused.mean(dim=(2, 3)),
        }

    def loss(self, outputs: dict[str, Tensor], batch: Batch) -> Tensor:
        dist = batch["dist"]
        loss = emd(outputs["probs"].float(), dist, r=2.0)
        if self.lambda_rec:
            loss = loss + self.lambda_rec * F.mse_loss(outputs["reconstruction"].float(), batch["images"].float())
        if self.lambda_act:
            loss = loss + self.lambda_act * activation_l1(outputs["group_scores"].float(), dist)
        return loss


@register_model("saf")
def saf(
    *,
    backbone: str = "vgg16",
    bins: int = 10,
    input_size: int = 256,
    max_long_side: int = 512,
    group_maps: int = 51,
    decoder_channels: Sequence[int] = (256, 128, 64, 32),
    regressor_hidden: int = 0,
    separated: bool = True,
    spp_pool: Literal["max", "avg"] = "max",
    lambda_rec: float = 0.1,
    lambda_act: float = 0.1,
) -> Saf:
    """SAF with the project's reading of the paper; ``separated=False`` and ``lambda_act=0`` are Table 3's
    "w/o Split" and "w/o Act" ablations."""
    stages = int(math.log2(encoder_stride(backbone)))
    if len(decoder_channels) != stages:
        raise ValueError(f"decoder_channels needs {stages} stages to undo {backbone}'s stride")
    if spp_pool not in ("max", "avg"):
        raise ValueError("spp_pool must be 'max' or 'avg'")
    if max_long_side < input_size:
        raise ValueError("max_long_side must be at least input_size")
    config = {
        "backbone": backbone,
        "bins": bins,
        "input_size": input_size,
        "max_long_side": max_long_side,
        "group_maps": group_maps,
        "decoder_channels": list(decoder_channels),
        "regressor_hidden": regressor_hidden,
        "separated": separated,
        "spp_pool": spp_pool,
        "lambda_rec": lambda_rec,
        "lambda_act": lambda_act,
    }
    return Saf(**config, config=config)
