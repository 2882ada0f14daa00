"""LAION's improved aesthetic predictor (``laion-aesthetic``): a linear head on OpenAI CLIP ViT-L/14
image embeddings, trained by LAION on SAC + LAION-Logos + AVA with an MSE loss
(``sac+logos+ava1-l14-linearMSE.pth``, github.com/christophschuhmann/improved-aesthetic-predictor).

The image tower is written here rather than taken from a CLIP library: it is a plain ViT (about 60 lines)
whose attribute names are OpenAI's (``clip/model.py``'s ``VisionTransformer``), so the ``visual.*``
tensors of OpenAI's ``ViT-L-14.pt`` load after a key-for-key conversion, and aesthete gains no dependency
for one model. Its facts, from OpenAI's code and the archive's tensor shapes: 14x14 patches by a
bias-free convolution, a class token and learned positions (16x16 + 1 at 224x224), a LayerNorm before
the transformer (``ln_pre``), 24 pre-norm residual blocks of width 1024 with 16 heads and a 4x MLP with
QuickGELU (``x * sigmoid(1.702 x)``), a LayerNorm on the class token (``ln_post``) and a 1024 -> 768
projection (``proj``).

The head (LAION's ``MLP``) is Linear 768 -> 1024 -> 128 -> 64 -> 16 -> 1 with dropout between the first
four and no activation anywhere, so in eval it is one affine map; its tensor names ``layers.{0,2,4,6,7}``
are LAION's. Its input is the L2-normalised embedding; its output is ONE score on AVA's 1-10 scale, not a
distribution: ``output = "score"``, ``bins = 0``, forward returns ``{"score": (B,)}``.

Input: CLIP's preprocessing, shorter side to 224 (bicubic), centre crop 224, CLIP's mean/std.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aesthete.input_policy import CLIP_MEAN, CLIP_STD, InputPolicy
from aesthete.models.base import AestheticModel, Batch, OutputKind
from aesthete.models.registry import register_model

# OpenAI CLIP ViT-L/14 (clip/model.py build_model reads these from the archive's tensor shapes).
VIT_L14 = {"width": 1024, "layers": 24, "heads": 16, "patch": 14, "image_size": 224, "embed_dim": 768}
HEAD_WIDTHS = (1024, 128, 64, 16)


class QuickGELU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width))]
            )
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: Tensor) -> Tensor:
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    """CLIP's image tower: (B, 3, S, S) normalised pixels -> (B, embed_dim) embeddings (not normalised)."""

    def __init__(self, *, width: int, layers: int, heads: int, patch: int, image_size: int, embed_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        scale = width**-0.5  # OpenAI's initialisation scale; real weights replace these values
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((image_size // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, embed_dim))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x).flatten(2).transpose(1, 2)  # (B, grid*grid, width)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x).permute(1, 0, 2)  # (tokens, B, width): OpenAI's sequence-first layout
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class LaionAesthetic(AestheticModel):
    arch = "laion-aesthetic"
    output: ClassVar[OutputKind] = "score"

    def __init__(self, *, vit: dict[str, int], dropout: bool, config: dict[str, Any]) -> None:
        policy = InputPolicy(
            resize="center_crop",
            size=vit["image_size"],
            resize_short=vit["image_size"],
            mean=CLIP_MEAN,
            std=CLIP_STD,
            resample="bicubic",
        )
        # LAION's head was trained on AVA-style 1-10 ratings; its output is not clipped to that range.
        super().__init__(bins=0, policy=policy, config=config, score_range=(1.0, 10.0))
        self.visual = VisionTransformer(**vit)
        widths = (vit["embed_dim"], *HEAD_WIDTHS)
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:], strict=False)):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < 3:  # LAION's dropout sits after the first three Linear layers (0.2, 0.2, 0.1)
                layers.append(nn.Dropout((0.2, 0.2, 0.1)[i] if dropout else 0.0))
        layers.append(nn.Linear(widths[-1], 1))
        self.layers = nn.Sequential(*layers)

    def embed(self, images: Tensor) -> Tensor:
        """The L2-normalised CLIP image embedding (the head's input), in fp32 like LAION's code."""
        return F.normalize(self.visual(images).float(), p=2, dim=-1)

    def forward(self, images: Tensor, aspect: Tensor | None = None) -> dict[str, Tensor]:
        embedding = self.embed(images)
        return {"score": self.layers(embedding.to(self.layers[0].weight.dtype)).squeeze(-1), "embedding": embedding}

    def loss(self, outputs: dict[str, Tensor], batch: Batch) -> Tensor:
        # LAION's objective: MSE against the mean rating on the 1..S scale of the batch's distribution.
        dist = batch["dist"]
        target = (dist * torch.arange(1, dist.shape[-1] + 1, device=dist.device, dtype=dist.dtype)).sum(-1)
        return F.mse_loss(outputs["score"].float(), target.float())


@register_model("laion-aesthetic")
def laion_aesthetic(
    *,
    width: int = VIT_L14["width"],
    layers: int = VIT_L14["layers"],
    heads: int = VIT_L14["heads"],
    patch: int = VIT_L14["patch"],
    image_size: int = VIT_L14["image_size"],
    embed_dim: int = VIT_L14["embed_dim"],
    dropout: bool = True,
) -> LaionAesthetic:
    """LAION's predictor on CLIP ViT-L/14; the ViT sizes are config so tests can build a small tower."""
    vit = {
        "width": width,
        "layers": layers,
        "heads": heads,
        "patch": patch,
        "image_size": image_size,
        "embed_dim": embed_dim,
    }
    return LaionAesthetic(vit=vit, dropout=dropout, config={**vit, "dropout": dropout})
