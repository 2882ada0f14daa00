"""torchvision backbones by their torchvision names, cut where the aesthetics heads attach."""

from __future__ import annotations

from pathlib import Path

import torchvision
from torch import nn

# Channels of the last convolutional feature map of each supported backbone.
BACKBONE_CHANNELS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "vgg16": 512}


def build_backbone(name: str, weights_path: str | Path | None = None, *, keep_last_pool: bool = False) -> nn.Module:
    """The convolutional trunk of torchvision model ``name``: (B, 3, H, W) -> (B, C, h, w), at stride 32
    for ResNets and 16 for VGG16 (conv5_3 after its ReLU, before the last max-pool). ``keep_last_pool``
    keeps VGG16's fifth max-pool (stride 32), as pyiqa's NIMA-VGG16 does (timm's ``features_only`` VGG
    ends with that pool).

    ``weights_path`` is a torchvision ImageNet state dict (see ``aesthete weights pull``); without it
    the trunk is randomly initialised, which is what tests and checkpoint loading want.
    """
    if name not in BACKBONE_CHANNELS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONE_CHANNELS)}")
    full = getattr(torchvision.models, name)(weights=None)
    if weights_path is not None:
        from aesthete.checkpoint import load_state_dict

        full.load_state_dict(load_state_dict(weights_path))
    if name.startswith("resnet"):
        return nn.Sequential(*list(full.children())[:-2])  # drop avgpool and fc
    return full.features if keep_last_pool else full.features[:-1]  # VGG: drop the last max-pool unless asked


def backbone_channels(name: str) -> int:
    return BACKBONE_CHANNELS[name]
