"""MP_ada: attention-based multi-patch aggregation (Sheng et al., ACM MM 2018; paper 001).

What the paper fixes (sections 3-4.2, Table 1):
- ResNet-18 convolutions -> global average pooling -> a 2-way FC -> softmax: a binary low/high
  classifier applied to square 224x224 patches, never to the whole warped image.
- Images: shorter side resized to 256, aspect ratio kept; training feeds several random 224 crops per
  image with horizontal flips (the crop count is a recipe value, the trainer cuts the crops).
- AVA labels: mean score <= 5 is negative, > 5 positive (section 4.1).
- Objectives over the patches of one image with ``q_p = Pr(correct | p)``: ``avg`` (Eq. 3), soft ``min``
  (Eq. 5-6) and ``ada`` with ``beta = 0.5`` (Eq. 7-8); see ``losses.mp_objective``.
- Training (4.2): Nesterov SGD, batch 32, lr 1e-3 halved every 20 epochs, weight decay 1e-4, 32 epochs.

What the project chose where the paper is silent (config values):
- Inference averages ``p_high`` over the deterministic grid of 224 patches that ``InputPolicy`` cuts to
  cover the whole resized image (the paper predicts "the aesthetic label of an image" without saying
  which patches); ``probs`` is then ``[1 - mean, mean]``.
- ``threshold=5.0``: the mean score of ``batch["dist"]`` over bins 1..S above which a photo is positive.
- No cap on the longer side: a panorama yields more patches, never a smaller image.

Input: (B, P, 3, 224, 224) patches (a plain (B, 3, H, W) batch counts as one patch per photo).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aesthete.input_policy import InputPolicy
from aesthete.models.backbones import backbone_channels, build_backbone
from aesthete.models.base import AestheticModel, Batch
from aesthete.models.losses import MpObjective, mp_objective
from aesthete.models.registry import register_model


class MpAda(AestheticModel):
    arch = "mp-ada"

    def __init__(
        self,
        *,
        backbone: str,
        input_size: int,
        patch_size: int,
        objective: MpObjective,
        beta: float,
        threshold: float,
        config: dict,
    ) -> None:
        policy = InputPolicy(resize="short_side", size=input_size, patch=patch_size)
        super().__init__(bins=2, policy=policy, config=config)
        self.features = build_backbone(backbone)
        self.head = nn.Linear(backbone_channels(backbone), 2)
        self.objective: MpObjective = objective
        self.beta = beta
        self.threshold = threshold

    def forward(self, images: Tensor, aspect: Tensor | None = None) -> dict[str, Tensor]:
        if images.dim() == 4:
            images = images.unsqueeze(1)
        batch, patches = images.shape[:2]
        pooled = self.features(images.flatten(0, 1)).mean(dim=(2, 3))
        logits = self.head(pooled).reshape(batch, patches, 2)
        patch_probs = logits.softmax(dim=-1)
        p_high = patch_probs[..., 1].mean(dim=1)
        return {
            "patch_logits": logits,
            "patch_probs": patch_probs,
            "probs": torch.stack([1.0 - p_high, p_high], dim=-1),
            "embedding": pooled.reshape(batch, patches, -1).mean(dim=1),  # the head's input, over patches
        }

    def labels(self, dist: Tensor) -> Tensor:
        """Binary label per photo from the dataset's vote distribution over bins 1..S: 1 if mean > threshold."""
        scores = torch.arange(1, dist.shape[-1] + 1, device=dist.device, dtype=dist.dtype)
        return ((dist * scores).sum(dim=-1) > self.threshold).long()

    def loss(self, outputs: dict[str, Tensor], batch: Batch) -> Tensor:
        patch_probs = outputs["patch_probs"].float()
        label = self.labels(batch["dist"]).reshape(-1, 1, 1).expand(-1, patch_probs.shape[1], 1)
        correct = patch_probs.gather(-1, label).squeeze(-1)  # (B, P): q_p
        return mp_objective(correct, self.objective, beta=self.beta)


@register_model("mp-ada")
def mp_ada(
    *,
    backbone: str = "resnet18",
    input_size: int = 256,
    patch_size: int = 224,
    objective: MpObjective = "ada",
    beta: float = 0.5,
    threshold: float = 5.0,
) -> MpAda:
    """MP_ada with the paper's settings; ``objective="avg"`` / ``"min"`` are its MP_avg / MP_min variants."""
    if objective not in ("avg", "min", "ada"):
        raise ValueError("objective must be 'avg', 'min' or 'ada'")
    if patch_size > input_size:
        raise ValueError("patch_size must not exceed input_size (the shorter side after resizing)")
    config = {
        "backbone": backbone,
        "input_size": input_size,
        "patch_size": patch_size,
        "objective": objective,
        "beta": beta,
        "threshold": threshold,
    }
    return MpAda(**config, config=config)
