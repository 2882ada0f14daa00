"""NIMA, the baseline of HLA-GCN's Table 4: backbone -> global average pooling -> dropout -> FC -> softmax.

Input: a 300x300 warp (the aspect ratio is lost; that is the baseline's point of comparison).
Loss: EMD with r = 2. ResNet-50 with S = 10 has 23.5M parameters, as Table 4 states.

The same module runs pyiqa's published NIMA-VGG16 (AVA) checkpoint, through config alone:
``backbone="vgg16", keep_last_pool=True`` (timm's VGG16 features end with the fifth max-pool, stride 32),
``resize="center_crop", resize_short=224, input_size=224`` (pyiqa resizes the shorter side to 224 and
centre-crops 224), ``dropout=0`` (pyiqa removed NIMA's dropout). See ``nima_vgg16_pyiqa_config``.
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

    def __init__(
        self,
        *,
        backbone: str,
        bins: int,
        dropout: float,
        input_size: int,
        resize: str,
        resize_short: int | None,
        keep_last_pool: bool,
        config: dict,
    ) -> None:
        if resize == "warp":
            policy = InputPolicy(resize="warp", size=input_size)
        elif resize == "center_crop":
            policy = InputPolicy(resize="center_crop", size=input_size, resize_short=resize_short or input_size)
        else:
            raise ValueError(f"nima: resize must be 'warp' or 'center_crop', not {resize!r}")
        super().__init__(bins=bins, policy=policy, config=config)
        self.features = build_backbone(backbone, keep_last_pool=keep_last_pool)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone_channels(backbone), bins)

    def forward(self, images: Tensor, aspect: Tensor | None = None) -> dict[str, Tensor]:
        pooled = self.features(images).mean(dim=(2, 3))
        logits = self.head(self.dropout(pooled))
        return {"logits": logits, "probs": logits.softmax(dim=-1), "embedding": pooled}

    def loss(self, outputs: dict[str, Tensor], batch: Batch) -> Tensor:
        return emd(outputs["probs"].float(), batch["dist"], r=2.0)


@register_model("nima")
def nima(
    *,
    backbone: str = "resnet50",
    bins: int = 10,
    dropout: float = 0.75,
    input_size: int = 300,
    resize: str = "warp",
    resize_short: int | None = None,
    keep_last_pool: bool = False,
) -> Nima:
    """NIMA baseline. ``dropout`` 0.75 follows the NIMA paper's own setting (HLA-GCN does not restate it).

    ``resize``, ``resize_short`` and ``keep_last_pool`` exist for pyiqa's published VGG16 variant; their
    defaults are the baseline's, and they are left out of the config when at their defaults so
    checkpoints written before they existed still load with an identical config.
    """
    config: dict = {"backbone": backbone, "bins": bins, "dropout": dropout, "input_size": input_size}
    if resize != "warp":
        config["resize"] = resize
    if resize_short is not None:
        config["resize_short"] = resize_short
    if keep_last_pool:
        config["keep_last_pool"] = True
    return Nima(
        backbone=backbone,
        bins=bins,
        dropout=dropout,
        input_size=input_size,
        resize=resize,
        resize_short=resize_short,
        keep_last_pool=keep_last_pool,
        config=config,
    )


# pyiqa's `nima-vgg16-ava` (pyiqa/archs/nima_arch.py with default_model_configs.py): timm vgg16
# features_only (ends with the fifth max-pool), global average pooling, Linear(512, 10), softmax, no
# dropout; eval preprocessing resizes the shorter side to timm's input size 224 and centre-crops 224,
# then normalises with timm vgg16's ImageNet mean/std.
NIMA_VGG16_PYIQA = {
    "backbone": "vgg16",
    "bins": 10,
    "dropout": 0.0,
    "input_size": 224,
    "resize": "center_crop",
    "resize_short": 224,
    "keep_last_pool": True,
}
