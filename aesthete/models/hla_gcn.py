"""HLA-GCN: Hierarchical Layout-Aware Graph Convolutional Network (She et al., CVPR 2021; paper 000).

What the paper fixes (sections 3.2-3.4, 4.2):
- ResNet convolutions on a 300x300 layout-preserving warp give a 10x10 map: L = 100 spatial nodes.
  A 1x1 convolution reduces 2048 channels to C = 1024.
- 1st LA-GCN, 3 blocks, on the spatial nodes. Each block rebuilds its graph from the current features:
  content similarity ``cos(w H_i, w' H_j)`` row-softmaxed (Eq. 2-3) plus the aspect-ratio-embedded
  spatial relation row-softmax(-dis) (Eq. 4), ``A~ = A_sim + A_spa + I`` and ``H' = act(A~ H Theta)``.
- Node aggregation ``Z = B X`` to K = L/4 = 25 latent nodes with learnable B, "similar to GloRe".
- 2nd LA-GCN, 1 block, content similarity only; reverse projection ``B^T H_l`` back to L nodes.
- GAP + FC heads on both outputs; ``p = (softmax(p_c) + softmax(p_l)) / 2``; EMD loss with r = 2.
- Table 4 parameter counts (ResNet-50, S = 10): LAGCN 35.0M, LAGCN w/o content 28.8M, HLA-GCN 38.2M.

What the project chose where the paper is silent (all config values):
- ``projection="dynamic"``: B is produced from X by a 1x1 convolution (C -> K), as GloRe does, so the
  aggregation adapts to each photo and works for any L; ``"static"`` is a learnable K x L matrix
  (fixed L). Both add under 0.03M parameters, so Table 4's counts hold either way.
- No bias in ``w``, ``w'``, ``Theta`` (graph-convolution convention; Table 4's counts leave no room to tell),
  and no activation after the 1x1 reduction (the paper names none).
- The spatial graph depends only on r and the grid: it is computed for the whole batch in one
  vectorised step on the device (10^4 elements per photo), which costs less than a cache lookup.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aesthete.input_policy import InputPolicy
from aesthete.models.backbones import backbone_channels, build_backbone
from aesthete.models.base import AestheticModel, Batch
from aesthete.models.losses import emd
from aesthete.models.registry import register_model


def spatial_relation(aspect: Tensor, height: int, width: int) -> Tensor:
    """Row-softmax of the negative aspect-ratio-embedded distance between grid nodes (Eq. 4).

    ``aspect``: (B,) original w / h. Returns (B, L, L) with L = height * width, nodes in row-major order.
    """
    ys, xs = torch.meshgrid(
        torch.arange(height, device=aspect.device, dtype=torch.float32),
        torch.arange(width, device=aspect.device, dtype=torch.float32),
        indexing="ij",
    )
    dx = xs.reshape(-1, 1) - xs.reshape(1, -1)
    dy = ys.reshape(-1, 1) - ys.reshape(1, -1)
    r = aspect.float().reshape(-1, 1, 1)
    portrait = torch.sqrt((dx * r) ** 2 + dy**2)
    landscape = torch.sqrt(dx**2 + (dy / r) ** 2)
    distance = torch.where(r < 1, portrait, landscape)
    return (-distance).softmax(dim=-1)


class LayoutAwareBlock(nn.Module):
    """One graph-convolution block: ``H' = act((A_sim + A_spa + I) H Theta)``."""

    def __init__(self, channels: int, *, content: bool, activate: bool) -> None:
        super().__init__()
        self.content = content
        if content:
            self.query = nn.Linear(channels, channels, bias=False)  # w in Eq. 2
            self.key = nn.Linear(channels, channels, bias=False)  # w' in Eq. 2
        self.theta = nn.Linear(channels, channels, bias=False)
        self.activate = activate

    def forward(self, nodes: Tensor, spatial: Tensor | None) -> Tensor:
        adjacency = torch.eye(nodes.shape[1], device=nodes.device, dtype=nodes.dtype).expand(nodes.shape[0], -1, -1)
        if self.content:
            query = F.normalize(self.query(nodes), dim=-1)
            key = F.normalize(self.key(nodes), dim=-1)
            adjacency = adjacency + (query @ key.transpose(1, 2)).softmax(dim=-1)
        if spatial is not None:
            adjacency = adjacency + spatial.to(nodes.dtype)
        out = adjacency @ self.theta(nodes)
        return F.relu(out) if self.activate else out


class LayoutAwareGCN(nn.Module):
    """A stack of blocks; ReLU after every block but the last."""

    def __init__(self, channels: int, blocks: int, *, content: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            LayoutAwareBlock(channels, content=content, activate=i < blocks - 1) for i in range(blocks)
        )

    def forward(self, nodes: Tensor, spatial: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            nodes = block(nodes, spatial)
        return nodes


class HlaGcn(AestheticModel):
    arch = "hla-gcn"

    def __init__(
        self,
        *,
        backbone: str,
        bins: int,
        input_size: int,
        channels: int,
        blocks: int,
        latent_blocks: int,
        content: bool,
        spatial: bool,
        hierarchical: bool,
        projection: Literal["dynamic", "static"],
        config: dict,
    ) -> None:
        super().__init__(bins=bins, policy=InputPolicy(resize="warp", size=input_size), config=config)
        if not (content or spatial):
            raise ValueError("hla-gcn needs the content term, the spatial term, or both")
        self.features = build_backbone(backbone)
        self.reduce = nn.Conv2d(backbone_channels(backbone), channels, kernel_size=1)
        self.use_spatial = spatial
        self.coordinate_gcn = LayoutAwareGCN(channels, blocks, content=content)
        self.head_coordinate = nn.Linear(channels, bins)
        self.hierarchical = hierarchical
        if hierarchical:
            grid = -(-input_size // 32)  # ResNet's padded stride-2 stages round up: 300 px -> 10 x 10
            nodes = grid * grid
            latent = nodes // 4  # K = L / 4, following GloRe as the paper does
            self.projection_kind = projection
            if projection == "dynamic":
                self.projection = nn.Conv1d(channels, latent, kernel_size=1)
            else:
                self.projection = nn.Parameter(torch.randn(latent, nodes) / nodes**0.5)
            self.latent_gcn = LayoutAwareGCN(channels, latent_blocks, content=True)
            self.head_latent = nn.Linear(channels, bins)

    def _project(self, nodes: Tensor) -> Tensor:
        """B (batch, K, L): the weights aggregating L spatial nodes into K latent nodes."""
        if self.projection_kind == "dynamic":
            return self.projection(nodes.transpose(1, 2))
        return self.projection.to(nodes.dtype).expand(nodes.shape[0], -1, -1)

    def forward(self, images: Tensor, aspect: Tensor | None = None) -> dict[str, Tensor]:
        maps = self.reduce(self.features(images))
        batch, channels, height, width = maps.shape
        nodes = maps.flatten(2).transpose(1, 2)  # (B, L, C)
        spatial = None
        if self.use_spatial:
            if aspect is None:
                aspect = torch.ones(batch, device=images.device)
            spatial = spatial_relation(aspect, height, width)
        coordinate = self.coordinate_gcn(nodes, spatial)
        logits_c = self.head_coordinate(coordinate.mean(dim=1))
        probs = logits_c.softmax(dim=-1)
        outputs = {"logits_coordinate": logits_c}
        if self.hierarchical:
            weights = self._project(coordinate)  # (B, K, L)
            latent = self.latent_gcn(weights @ coordinate)  # (B, K, C)
            back = weights.transpose(1, 2) @ latent  # reverse projection to (B, L, C)
            logits_l = self.head_latent(back.mean(dim=1))
            probs = (probs + logits_l.softmax(dim=-1)) / 2
            outputs["logits_latent"] = logits_l
        outputs["probs"] = probs
        return outputs

    def loss(self, outputs: dict[str, Tensor], batch: Batch) -> Tensor:
        return emd(outputs["probs"].float(), batch["dist"], r=2.0)


@register_model("hla-gcn")
def hla_gcn(
    *,
    backbone: str = "resnet50",
    bins: int = 10,
    input_size: int = 300,
    channels: int = 1024,
    blocks: int = 3,
    latent_blocks: int = 1,
    content: bool = True,
    spatial: bool = True,
    hierarchical: bool = True,
    projection: Literal["dynamic", "static"] = "dynamic",
) -> HlaGcn:
    """HLA-GCN with the paper's defaults. Ablations of Table 4 / Fig. 4:
    ``hierarchical=False`` (+LAGCN), ``spatial=False`` (w/o s.), ``content=False`` (w/o c.), ``blocks=1..4``."""
    if not 1 <= blocks <= 4:
        raise ValueError("blocks must be 1..4 (the paper's Fig. 4 range)")
    if projection not in ("dynamic", "static"):
        raise ValueError("projection must be 'dynamic' or 'static'")
    config = {
        "backbone": backbone,
        "bins": bins,
        "input_size": input_size,
        "channels": channels,
        "blocks": blocks,
        "latent_blocks": latent_blocks,
        "content": content,
        "spatial": spatial,
        "hierarchical": hierarchical,
        "projection": projection,
    }
    return HlaGcn(**config, config=config)
