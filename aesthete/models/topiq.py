"""TOPIQ for image aesthetics (``topiq-iaa``): Chen et al., "TOPIQ: A Top-down Approach from Semantics
to Distortions for Image Quality Assessment", IEEE TIP 2024, its no-reference aesthetics (IAA) variant
on ResNet-50 as trained on AVA and published by the pyiqa project (``cfanet_iaa_ava_res50``).

Written from the paper, with layer names and shapes taken from the published state dict so that the
file loads after a key-for-key conversion (``aesthete.convert``):

1. A ResNet-50 gives five feature levels: after the stem's ReLU (stride 2, 64 channels) and after
   layer1..layer4 (256, 512, 1024, 2048 channels).
2. Each level goes through gated local pooling (a 1x1 conv split into a value half, GELU, and a gate
   half turned into a one-channel sigmoid map by a small conv stack), is average-pooled down to the
   last level's grid when larger in both directions, reduced to ``inter_dim`` channels (1x1 conv +
   GELU), flattened to tokens, given a learned 2-D position embedding (a 32x32 grid resized bicubically
   to the level's size) and refined by one pre-norm self-attention block.
3. Top-down cross-attention: the top level's tokens query the next lower level's, then the next, down
   to the stem level (one pre-norm decoder block each).
4. Attention pooling (one more self-attention block), the mean over tokens, and an MLP
   (LayerNorm, Linear, GELU, LayerNorm, Linear, GELU, Linear) ending in a softmax over 10 AVA bins.

Test-time input (pyiqa's ``topiq_iaa_res50`` config, ``test_img_size=384``): the shorter side resized to
384 with the aspect ratio kept and no crop, ImageNet mean/std. Dropout (0.1) only acts in training.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from aesthete.input_policy import InputPolicy
from aesthete.models.base import AestheticModel, Batch
from aesthete.models.losses import emd
from aesthete.models.registry import register_model

RESNET50_LEVEL_CHANNELS = (64, 256, 512, 1024, 2048)
POS_GRID = 32  # the learned position embedding is a 32x32 grid, resized to each level


class _ResNetLevels(nn.Module):
    """ResNet-50 returning its five levels; attribute names follow torchvision (and timm), so the
    publisher's ``semantic_model.*`` tensors load unchanged."""

    conv_bn_pairs = (("conv1", "bn1"),)  # the stem, for aesthete.engine.fold_batchnorm

    def __init__(self) -> None:
        super().__init__()
        full = torchvision.models.resnet50(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = full.conv1, full.bn1, full.relu, full.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = full.layer1, full.layer2, full.layer3, full.layer4

    def forward(self, x: Tensor) -> list[Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        c1 = self.layer1(self.maxpool(stem))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        return [stem, c1, c2, c3, self.layer4(c3)]


class _GatedPool(nn.Module):
    """Gated local pooling: value half through GELU, times a sigmoid gate computed from the other half."""

    def __init__(self, channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.splitconv = nn.Conv2d(channels, channels * 2, 1)
        self.weight_blk = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, 1, 3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.splitconv(x).chunk(2, dim=1)
        return F.gelu(value) * self.weight_blk(gate)


class _FeedForward(nn.Module):
    """The blocks' MLP; ``linear1``/``linear2`` are the publisher's names."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def ff(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(F.gelu(self.linear1(x))))


class _SelfAttentionBlock(_FeedForward):
    """Pre-norm self-attention block over (tokens, batch, dim) sequences."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float) -> None:
        super().__init__(dim, hidden, dropout)
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.dropout1(self.self_attn(h, h, h, need_weights=False)[0])
        return x + self.dropout2(self.ff(self.norm2(x)))


class _CrossAttentionBlock(_FeedForward):
    """Pre-norm cross-attention: ``query`` tokens attend to (normalised) ``memory`` tokens.

    The publisher's decoder layer also holds a self-attention that its forward never calls; those
    tensors are dropped at conversion, not carried here.
    """

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float) -> None:
        super().__init__(dim, hidden, dropout)
        self.multihead_attn = nn.MultiheadAttention(dim, heads, dropout=dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout2, self.dropout3 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, query: Tensor, memory: Tensor) -> Tensor:
        memory = self.norm2(memory)
        h = self.norm1(query)
        query = query + self.dropout2(self.multihead_attn(h, memory, memory, need_weights=False)[0])
        return query + self.dropout3(self.ff(self.norm3(query)))


class _Stack(nn.Module):
    """One block in a ``layers`` list: the publisher's nesting (``sa_attn_blks.i.layers.0.*``)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList([block])


class TopiqIaa(AestheticModel):
    arch = "topiq-iaa"

    def __init__(
        self, *, bins: int, inter_dim: int, heads: int, dropout: float, input_size: int, config: dict[str, Any]
    ) -> None:
        super().__init__(bins=bins, policy=InputPolicy(resize="short_side", size=input_size), config=config)
        hidden = min(4 * inter_dim, 2048)  # the publisher's feed-forward width
        self.semantic_model = _ResNetLevels()
        self.weight_pool = nn.ModuleList(_GatedPool(c) for c in RESNET50_LEVEL_CHANNELS)
        self.dim_reduce = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, inter_dim, 1), nn.GELU()) for c in RESNET50_LEVEL_CHANNELS
        )
        self.sa_attn_blks = nn.ModuleList(
            _Stack(_SelfAttentionBlock(inter_dim, heads, hidden, dropout)) for _ in RESNET50_LEVEL_CHANNELS
        )
        self.attn_blks = nn.ModuleList(
            _Stack(_CrossAttentionBlock(inter_dim, heads, hidden, dropout)) for _ in RESNET50_LEVEL_CHANNELS[1:]
        )
        self.attn_pool = _SelfAttentionBlock(inter_dim, heads, hidden, dropout)
        self.score_linear = nn.Sequential(
            nn.LayerNorm(inter_dim),
            nn.Linear(inter_dim, inter_dim),
            nn.GELU(),
            nn.LayerNorm(inter_dim),
            nn.Linear(inter_dim, inter_dim),
            nn.GELU(),
            nn.Linear(inter_dim, bins),
        )
        # Learned position embedding, split between rows (h) and columns (w), as in the published file.
        self.h_emb = nn.Parameter(torch.zeros(1, inter_dim // 2, POS_GRID, 1))
        self.w_emb = nn.Parameter(torch.zeros(1, inter_dim // 2, 1, POS_GRID))
        nn.init.trunc_normal_(self.h_emb, std=0.02)
        nn.init.trunc_normal_(self.w_emb, std=0.02)

    def forward(self, images: Tensor, aspect: Tensor | None = None) -> dict[str, Tensor]:
        levels = self.semantic_model(images)
        top_h, top_w = levels[-1].shape[2:]
        pos = torch.cat((self.h_emb.expand(-1, -1, -1, POS_GRID), self.w_emb.expand(-1, -1, POS_GRID, -1)), dim=1)
        tokens = []
        for i in reversed(range(len(levels))):  # top (semantic) level first
            feat = self.weight_pool[i](levels[i])
            if feat.shape[2] > top_h and feat.shape[3] > top_w:
                feat = F.adaptive_avg_pool2d(feat, (top_h, top_w))
            level_pos = F.interpolate(pos, size=feat.shape[2:], mode="bicubic", align_corners=False)
            seq = self.dim_reduce[i](feat).flatten(2).permute(2, 0, 1) + level_pos.flatten(2).permute(2, 0, 1)
            tokens.append(self.sa_attn_blks[i].layers[0](seq))
        query = tokens[0]
        for block, memory in zip(self.attn_blks, tokens[1:], strict=True):
            query = block.layers[0](query, memory)
        pooled = self.attn_pool(query).mean(dim=0)
        logits = self.score_linear(pooled)
        return {"logits": logits, "probs": logits.softmax(dim=-1), "embedding": pooled}

    def loss(self, outputs: dict[str, Tensor], batch: Batch) -> Tensor:
        # aesthete's choice for fine-tuning (the published checkpoint is only converted, never retrained
        # here): EMD r = 2 on the vote distribution, as for NIMA.
        return emd(outputs["probs"].float(), batch["dist"], r=2.0)


@register_model("topiq-iaa")
def topiq_iaa(
    *, bins: int = 10, inter_dim: int = 512, heads: int = 8, dropout: float = 0.1, input_size: int = 384
) -> TopiqIaa:
    """TOPIQ IAA on ResNet-50 with pyiqa's ``topiq_iaa_res50`` values (inter_dim 512, 8 heads, 10 bins,
    shorter side 384)."""
    config = {"bins": bins, "inter_dim": inter_dim, "heads": heads, "dropout": dropout, "input_size": input_size}
    return TopiqIaa(**config, config=config)
