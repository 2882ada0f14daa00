"""torchvision backbones by their torchvision names, cut where the aesthetics heads attach, and the one
place their ImageNet weights are loaded (as timm's ``_builder`` does it: find the state dict, map its
keys onto the module that takes it, load strictly).

Models build their trunks randomly initialised (:func:`build_backbone`): that is what tests and
checkpoint loading want. Training starts a trunk from ImageNet with :func:`load_imagenet_trunk`, and
APM's semantic stage distils a whole ImageNet classifier (:func:`imagenet_classifier`).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

# Channels of the last convolutional feature map of each supported backbone.
BACKBONE_CHANNELS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "vgg16": 512}

# torchvision's original ImageNet weights (the papers predate the V2 training recipe).
IMAGENET_WEIGHTS = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet34": "ResNet34_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "resnet101": "ResNet101_Weights.IMAGENET1K_V1",
    "vgg16": "VGG16_Weights.IMAGENET1K_V1",
}
# The children of a torchvision ResNet that ``build_backbone`` keeps, in order: the trunk is
# ``nn.Sequential`` of them, so its state-dict keys are their indices.
RESNET_TRUNK = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def build_backbone(name: str, *, keep_last_pool: bool = False) -> nn.Module:
    """The randomly initialised convolutional trunk of torchvision model ``name``: (B, 3, H, W) ->
    (B, C, h, w), at stride 32 for ResNets and 16 for VGG16 (conv5_3 after its ReLU, before the last
    max-pool). ``keep_last_pool`` keeps VGG16's fifth max-pool (stride 32), as pyiqa's NIMA-VGG16 does."""
    if name not in BACKBONE_CHANNELS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONE_CHANNELS)}")
    full = getattr(torchvision.models, name)(weights=None)
    if name.startswith("resnet"):
        return nn.Sequential(*list(full.children())[:-2])  # drop avgpool and fc
    return full.features if keep_last_pool else full.features[:-1]  # VGG: drop the last max-pool unless asked


def backbone_channels(name: str) -> int:
    return BACKBONE_CHANNELS[name]


def imagenet_state_dict(name: str, *, otherwise: str = "pass --no-pretrained") -> dict[str, torch.Tensor]:
    """torchvision's ImageNet classifier weights for ``name``: the file ``aesthete weights pull``
    verified, else torchvision's own download (cached by torch hub, unpickled with ``weights_only``),
    else a :class:`~aesthete.weights.WeightsError` that says how to get them, or ``otherwise`` what to do
    without them."""
    from aesthete.checkpoint import load_state_dict
    from aesthete.weights import WeightsError, backbone_weights_path

    path = backbone_weights_path(name)
    if path is not None and path.is_file():
        return load_state_dict(path)
    if name not in IMAGENET_WEIGHTS:
        raise WeightsError(f"no ImageNet weights known for backbone {name!r}; {otherwise}")
    try:
        weights = torchvision.models.get_weight(IMAGENET_WEIGHTS[name])
        return dict(weights.get_state_dict(progress=True, weights_only=True))
    except Exception as exc:  # no network, proxy, disk full: all end the same way for the user
        raise WeightsError(
            f"ImageNet weights for {name} are not available ({type(exc).__name__}: {exc}); "
            f"run `aesthete weights pull {name}-imagenet1k-v1` (see `aesthete weights list`); {otherwise}"
        ) from None


def trunk_state_dict(name: str, full_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision classifier's state dict renamed to the keys of ``build_backbone(name)``.

    ResNet: the trunk is ``Sequential(conv1, bn1, relu, maxpool, layer1..4)``, so ``layer1.0.conv1.weight``
    becomes ``4.0.conv1.weight``; ``fc.*`` is dropped. VGG16: the trunk is ``features[:-1]`` with the
    same indices, so ``features.`` is stripped and the classifier dropped."""
    from aesthete.weights import WeightsError

    if name.startswith("resnet"):
        index = {child: i for i, child in enumerate(RESNET_TRUNK)}
        out = {}
        for key, value in full_state.items():
            head, _, rest = key.partition(".")
            if head in index:
                out[f"{index[head]}.{rest}"] = value
        return out
    if name.startswith("vgg"):
        return {key.removeprefix("features."): v for key, v in full_state.items() if key.startswith("features.")}
    raise WeightsError(f"no ImageNet weight mapping for backbone {name!r}")


def load_imagenet_trunk(trunk: nn.Module, name: str, full_state: dict[str, torch.Tensor] | None = None) -> None:
    """Load ImageNet weights (``full_state``, a torchvision classifier's state dict, or else
    :func:`imagenet_state_dict`) strictly into ``trunk``, a module built by ``build_backbone(name)``."""
    from aesthete.weights import WeightsError

    state = imagenet_state_dict(name) if full_state is None else full_state
    try:
        trunk.load_state_dict(trunk_state_dict(name, state), strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"ImageNet weights do not fit {name}: {str(exc).splitlines()[0]}") from None


def teacher_state_dict(name: str) -> dict[str, torch.Tensor]:
    """:func:`imagenet_state_dict` for a teacher, whose missing weights --no-pretrained cannot excuse:
    its ImageNet softmax is what the stage learns."""
    return imagenet_state_dict(name, otherwise="a teacher needs them even with --no-pretrained")


def imagenet_classifier(name: str) -> nn.Module:
    """A whole torchvision ImageNet classifier with its weights, frozen and in eval mode (APM's semantic
    stage distils its softmax)."""
    classifier = torchvision.models.get_model(name, weights=None)
    classifier.load_state_dict(teacher_state_dict(name))
    classifier.requires_grad_(False)
    return classifier.eval()
