"""Embed-only base models: an ImageNet classifier's trunk (torchvision's BSD-3-Clause weights, the
``kind = "backbone"`` entries of weights.toml) with no aesthetic head.

``aesthete score PATH --weights resnet50-imagenet1k-v1`` runs the trunk and global average pooling over
each photo and stores the pooled features as its embedding (with the technical signals, as always), but
no aesthetic score: there is none to give. ``aesthete learn`` then fits a personal head on those
embeddings, and ``--weights NAME`` uses the head everywhere. It is the permissive route to a personal
model: no non-commercial checkpoint is involved.

Scores and embeddings are keyed by :class:`~aesthete.store.ModelKey`; here the model is named after the
backbone (``resnet50-imagenet``), the weights id is the file's digest and the preprocessing is
torchvision's ImageNet evaluation transform. This module does not import torch; :func:`build` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aesthete.input_policy import InputPolicy

if TYPE_CHECKING:
    from pathlib import Path

SUFFIX = "-imagenet"
# torchvision's evaluation transform for the IMAGENET1K_V1 weights: shorter side 256, centre crop 224.
POLICY = InputPolicy(resize="center_crop", size=224, resize_short=256)


def model_name(backbone: str) -> str:
    """The model name an ImageNet ``backbone``'s embeddings are stored under: ``resnet50-imagenet``."""
    return backbone + SUFFIX


def build(backbone: str, path: str | Path) -> Any:
    """The embedding network for ``backbone`` with the torchvision classifier weights in ``path``, in eval
    mode: (B, 3, H, W) -> ``{"embedding": (B, C)}``, the trunk's globally average-pooled features."""
    import torch
    from torch import nn

    from aesthete.checkpoint import load_state_dict
    from aesthete.models.backbones import build_backbone, load_imagenet_trunk

    class ImageNetEmbedder(nn.Module):
        # What ModelRunner reads of a model: its name, input policy and what it outputs.
        output = "embedding"

        def __init__(self) -> None:
            super().__init__()
            self.arch, self.policy = model_name(backbone), POLICY
            self.features = build_backbone(backbone)

        def forward(self, images: torch.Tensor, aspect: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
            return {"embedding": self.features(images).mean(dim=(2, 3))}

    model = ImageNetEmbedder()
    load_imagenet_trunk(model.features, backbone, load_state_dict(path))
    return model.eval()
