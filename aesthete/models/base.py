"""The interface every aesthetics model implements.

A model takes a uniform batch of images (B, 3, H, W) -- or (B, P, 3, h, w) for patch models -- plus
each photo's original aspect ratio ``w / h``, and returns a dict whose ``"probs"`` is a distribution
over its S score bins (B, S): non-negative, rows summing to 1. Other keys carry what the model's own
training loss needs (logits, reconstructions, latent codes).

A few published models (LAION's aesthetic predictor) regress one number per photo instead: their
``output`` is ``"score"``, ``bins`` is 0, and the dict's ``"score"`` is (B,) on the scale given by
``score_range`` (AVA's 1-10 for LAION's head). No distribution is invented for them: consumers must
check ``output`` (or the checkpoint header's ``output``) before reading ``"probs"``.

Every model that scores photos also returns ``"embedding"`` (B, E): the input of its score layer (its
penultimate features; for the spatial-pyramid heads of APM and SAF, the global average of the same maps,
to stay compact). Scoring stores it (float16) so a personal head (:mod:`aesthete.personal`) can be
learned and applied later without decoding any photo again.

``loss(outputs, batch)`` is the model's training objective, a pure function of its outputs and the
batch, so the trainer stays generic and DistributedDataParallel still wraps ``forward``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypedDict

import torch
from torch import Tensor, nn

from aesthete.architectures import ARCHITECTURES
from aesthete.input_policy import InputPolicy


class Batch(TypedDict, total=False):
    """What the trainer hands to ``AestheticModel.loss``.

    ``dist`` is the dataset's vote distribution over *its* bins (10 for AVA, 5 for AADB), normalised;
    a model with a different output (MP_ada's 2 bins) derives its own target from it.
    """

    images: Tensor  # (B, 3, H, W) or (B, P, 3, h, w), normalised
    aspect: Tensor  # (B,) original width / height
    dist: Tensor  # (B, S_data)
    attributes: Tensor  # (B, 11) AADB photographic attributes, where the dataset has them


OutputKind = Literal["distribution", "score"]


class AestheticModel(nn.Module):
    """Base class: subclasses set ``arch``, build layers in ``__init__`` and implement ``forward``/``loss``.

    ``config`` holds the builder's keyword arguments (JSON-able) so a checkpoint can rebuild the model;
    ``policy`` is the model's input policy, saved with its weights.
    """

    arch: ClassVar[str]
    # "distribution": forward returns "probs" (B, bins). "score": forward returns "score" (B,) within
    # ``score_range`` and bins is 0 (a regressor has no bins to invent).
    output: ClassVar[OutputKind] = "distribution"

    def __init__(
        self,
        *,
        bins: int,
        policy: InputPolicy,
        config: dict[str, Any],
        score_range: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if self.output == "score" and bins != 0:  # (PEAR's prior also has 0 bins: it never scores photos)
            raise ValueError(f"{self.arch}: a score model has no bins (bins = 0)")
        self.bins = bins
        self.policy = policy
        self.config = dict(config)
        # The scale the model's mean (or score) lives on: (1, S) for S bins unless the model says otherwise.
        self.score_range = score_range or ((0.0, 1.0) if bins == 2 else (1.0, float(max(bins, 1))))

    @property
    def scores_photos(self) -> bool:
        """False for auxiliary networks (PEAR's attribute prior) that train but never score photos; read
        from the one table of architectures, :data:`aesthete.architectures.ARCHITECTURES`."""
        return ARCHITECTURES[self.arch].scores_photos

    def forward(self, images: Tensor, aspect: Tensor | None = None) -> dict[str, Tensor]:
        raise NotImplementedError

    def loss(self, outputs: dict[str, Tensor], batch: Batch) -> Tensor:
        raise NotImplementedError

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups; papers that train parts at different rates (PEAR) override this."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    @property
    def bin_values(self) -> Tensor:
        """The score each bin stands for: 1..S, or (0, 1) for a binary low/high model."""
        if self.bins == 2:
            return torch.tensor([0.0, 1.0])
        return torch.arange(1, self.bins + 1, dtype=torch.float32)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
