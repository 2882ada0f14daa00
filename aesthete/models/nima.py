"""NIMA, the baseline of HLA-GCN's Table 4: backbone -> global average pooling -> dropout -> FC -> softmax.

Input: a 300x300 warp (the aspect ratio is lost; that is the baseline's point of comparison).
Loss: EMD with r = 2. ResNet-50 with S = 10 has 23.5M parameters, as Table 4 states.
"""

from __future__ import annotations

from torch import Tensor, nn

from aesthete.input_policy import InputPolicy
from aesthete.models.backbones import backbone_channels, build_backbone
from aesthete.models.base import AestheticModel, Batch
from aesthete.models.losses import emd
from aesthete.models.registry import register_model


class Nima(AestheticModel):
    arch = "nima"

    def __init__(self, *, backbone: str, bins: int, dropout: float, input_size: int, config: dict) -> None:
        super().__init__(bins=bins, policy=InputPolicy(resize="warp", size=input_size), config=config)
        self.features = build_backbone(backbone)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone_channels(backbone), bins)

    def forward(self, images: Tensor, aspect: Tensor | None = None) -> dict[str, Tensor]:
        pooled = self.features(images).mean(dim=(2, 3))
        logits = self.head(self.dropout(pooled))
        return {"logits": logits, "probs": logits.softmax(dim=-1)}

    def loss(self, outputs: dict[str, Tensor], batch: Batch) -> Tensor:
        return emd(outputs["probs"].float(), batch["dist"], r=2.0)


@register_model("nima")
def nima(*, backbone: str = "resnet50", bins: int = 10, dropout: float = 0.75, input_size: int = 300) -> Nima:
    """NIMA baseline. ``dropout`` 0.75 follows the NIMA paper's own setting (HLA-GCN does not restate it)."""
    config = {"backbone": backbone, "bins": bins, "dropout": dropout, "input_size": input_size}
    return Nima(**config, config=config)
