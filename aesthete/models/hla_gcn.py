"""HLA-GCN: Hierarchical Layout-Aware Graph Convolutional Network (She et al., CVPR 2021; paper 000).

Two variants, chosen by ``variant`` (a config value, so a checkpoint rebuilds the one it was trained as):

``"official"`` (the default) -- the forward pass of the authors' released Jittor code, GitHub
``shedy-pub/hlagcn-jittor`` at commit e1d83fd (``utils_jittor/model.py``, ``utils_jittor/hlagcn_layer.py``),
the implementation that produced the paper's numbers:
- 1x1 reduction 2048 -> 1024 without bias, Kaiming-normal (fan-out) init (model.py:185, 191-196).
- 1st LA-GCN, ``blocks`` blocks (3 in parameter.py:27), ReLU between blocks (hlagcn_layer.py:94-97). A
  block: ``A_sim = row-softmax(trans_1(x) trans_2(x)^T)`` -- a raw dot product, no cosine
  (hlagcn_layer.py:55-58); ``A = (A_sim + A_spa) / 2`` (:60); ``x' = W(A x + x)`` (:61-63), so the
  effective adjacency ``A + I`` has rows summing to 2. ``trans_1``, ``trans_2``, ``W`` are bias-free
  (:19, 28-31) with uniform(+-1/sqrt(C)) init (:35-40).
- Spatial relation (:157-172): with ``d_row``, ``d_col`` the grid offsets and ``r = w / h`` (dataset.py:91, 177,
  PIL's ``size[0] / size[1]``), ``a = sqrt(d_row^2 r^2 + d_col^2)``, then ``(max_row(a) - a) / (sum_row +
  1e-8)``: a node's farthest neighbour gets 0 and every row sums to 1. Note that the released code scales
  the *row* offset by w/h (``x_square`` holds row offsets, :141-150), where Eq. 4 scales the column offset.
- 2nd LA-GCN, GloRe-like (:112-136): ``conv_state`` 1x1 (C -> C, bias), ``conv_proj`` 1x1 (C -> K = 25,
  bias, used raw: no softmax, no 1/L), ``Z = state @ proj^T``, one content-only block (same form,
  ``A_sim`` alone), reverse projection ``proj^T``, ``conv_extend`` 1x1 (C -> C, no bias) and
  ``BatchNorm2d(C, eps=1e-4)``, no residual. The latent head reads that output (model.py:240-248).
- Heads: GAP + FC on each module's output, ``p = (softmax(o1) + softmax(o2)) / 2`` (model.py:188-189, 237-250).
- Parameters with ResNet-50, S = 10: 40,334,445 with 3 blocks, 34,042,989 with 1 (asserted in the tests).

``"paper"`` -- sections 3.2-3.4 as printed:
- ResNet convolutions on a 300x300 layout-preserving warp give a 10x10 map: L = 100 spatial nodes.
  A 1x1 convolution reduces 2048 channels to C = 1024.
- 1st LA-GCN, 3 blocks, on the spatial nodes. Each block rebuilds its graph from the current features:
  content similarity ``cos(w H_i, w' H_j)`` row-softmaxed (Eq. 2-3) plus the aspect-ratio-embedded
  spatial relation row-softmax(-dis) (Eq. 4), ``A~ = A_sim + A_spa + I`` and ``H' = act(A~ H Theta)``.
- Node aggregation ``Z = B X`` to K = L/4 = 25 latent nodes with learnable B, "similar to GloRe".
- 2nd LA-GCN, 1 block, content similarity only; reverse projection ``B^T H_l`` back to L nodes.
- GAP + FC heads on both outputs; ``p = (softmax(p_c) + softmax(p_l)) / 2``; EMD loss with r = 2.
- Table 4 parameter counts (ResNet-50, S = 10): LAGCN 35.0M, LAGCN w/o content 28.8M, HLA-GCN 38.2M.
  (The released code's 40.33M is Table 4's 38.2M plus conv_state and conv_extend, 2.10M.)

What the project chose for ``"paper"`` where the paper is silent (all config values):
- ``projection="dynamic"``: B is produced from X by a 1x1 convolution (C -> K), as GloRe does, so the
  aggregation adapts to each photo and works for any L; ``"static"`` is a learnable K x L matrix
  (fixed L). Both add under 0.03M parameters, so Table 4's counts hold either way.
- No bias in ``w``, ``w'``, ``Theta`` (graph-convolution convention; Table 4's counts leave no room to tell),
  and no activation after the 1x1 reduction (the paper names none).

Both: the spatial graph depends only on r and the grid, so it is computed for the whole batch in one
vectorised step on the device (10^4 elements per photo), which costs less than a cache lookup. The
ablation switches (``content``, ``spatial``, ``hierarchical``, ``blocks``) apply to both; in the official
variant ``content=False`` keeps ``A_spa`` alone (the released code has no such mode: an extension).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aesthete.input_policy import InputPolicy
from aesthete.models.backbones import backbone_channels, build_backbone
from aesthete.models.base import AestheticModel, Batch
from aesthete.models.losses import emd
from aesthete.models.registry import register_model

Variant = Literal["official", "paper"]
VARIANTS: tuple[str, ...] = ("official", "paper")


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


def official_spatial_relation(aspect: Tensor, height: int, width: int, eps: float = 1e-8) -> Tensor:
    """The released code's spatial graph (hlagcn_layer.py:157-172), for a ``height`` x ``width`` grid.

    ``a_ij = sqrt(d_row^2 * r^2 + d_col^2)`` with ``r`` = ``aspect`` (B,) = w / h, then
    ``(max_j a_ij - a_ij) / (sum_j (max_j a_ij - a_ij) + eps)``. Returns (B, L, L), nodes row-major.
    The row offset is the one scaled by r, as released (its ``x_square`` is built from the row index).
    """
    ys, xs = torch.meshgrid(
        torch.arange(height, device=aspect.device, dtype=torch.float32),
        torch.arange(width, device=aspect.device, dtype=torch.float32),
        indexing="ij",
    )
    row_sq = (ys.reshape(-1, 1) - ys.reshape(1, -1)) ** 2
    col_sq = (xs.reshape(-1, 1) - xs.reshape(1, -1)) ** 2
    r_sq = aspect.float().reshape(-1, 1, 1) ** 2
    distance = torch.sqrt(row_sq * r_sq + col_sq)
    closeness = distance.amax(dim=-1, keepdim=True) - distance
    return closeness / (closeness.sum(dim=-1, keepdim=True) + eps)


class OfficialBlock(nn.Module):
    """One released graph convolution (hlagcn_layer.py:7-64): ``x' = W(((A_sim + A_spa) / 2) x + x)``.

    With ``content=False`` the adjacency is ``A_spa`` alone, with ``spatial=False`` (the 2nd module)
    ``A_sim`` alone. Weights are bias-free, initialised uniform(+-1/sqrt(C)) as released (:35-40).
    """

    def __init__(self, channels: int, *, content: bool, spatial: bool) -> None:
        super().__init__()
        self.content, self.spatial = content, spatial
        bound = 1.0 / math.sqrt(channels)
        if content:
            self.trans_1 = nn.Linear(channels, channels, bias=False)
            self.trans_2 = nn.Linear(channels, channels, bias=False)
            nn.init.uniform_(self.trans_1.weight, -bound, bound)
            nn.init.uniform_(self.trans_2.weight, -bound, bound)
        self.W = nn.Linear(channels, channels, bias=False)
        nn.init.uniform_(self.W.weight, -bound, bound)

    def forward(self, nodes: Tensor, spatial: Tensor | None) -> Tensor:
        parts = []
        if self.content:
            parts.append((self.trans_1(nodes) @ self.trans_2(nodes).transpose(1, 2)).softmax(dim=-1))
        if self.spatial:
            if spatial is None:
                raise ValueError("this block needs the spatial graph")
            parts.append(spatial.to(nodes.dtype))
        adjacency = parts[0] if len(parts) == 1 else (parts[0] + parts[1]) / 2
        return self.W(adjacency @ nodes + nodes)


class OfficialFirstModule(nn.Module):
    """The 1st LA-GCN as released (hlagcn_layer.py:66-99): blocks with a ReLU between them, not after."""

    def __init__(self, channels: int, blocks: int, *, content: bool, spatial: bool) -> None:
        super().__init__()
        self.gcns = nn.ModuleList(OfficialBlock(channels, content=content, spatial=spatial) for _ in range(blocks))

    def forward(self, maps: Tensor, spatial: Tensor | None) -> Tensor:
        batch, channels, height, width = maps.shape
        nodes = maps.flatten(2).transpose(1, 2)  # (B, L, C)
        for i, gcn in enumerate(self.gcns):
            nodes = gcn(nodes, spatial)
            if i < len(self.gcns) - 1:
                nodes = F.relu(nodes)
        return nodes.transpose(1, 2).reshape(batch, channels, height, width)


class OfficialSecondModule(nn.Module):
    """The 2nd LA-GCN as released (hlagcn_layer.py:101-136): GloRe's layout without its residual."""

    conv_bn_pairs = (("conv_extend", "blocker"),)  # forward's last two steps (aesthete.engine.fold_batchnorm)

    def __init__(self, channels: int, latent: int, blocks: int) -> None:
        super().__init__()
        self.conv_state = nn.Conv2d(channels, channels, kernel_size=1)
        self.conv_proj = nn.Conv2d(channels, latent, kernel_size=1)
        self.gcns = nn.ModuleList(OfficialBlock(channels, content=True, spatial=False) for _ in range(blocks))
        self.conv_extend = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.blocker = nn.BatchNorm2d(channels, eps=1e-4)

    def forward(self, maps: Tensor) -> Tensor:
        batch, channels, height, width = maps.shape
        state = self.conv_state(maps).flatten(2)  # (B, C, L)
        proj = self.conv_proj(maps).flatten(2)  # (B, K, L): B of the paper, used raw
        latent = (state @ proj.transpose(1, 2)).transpose(1, 2)  # (B, K, C)
        for i, gcn in enumerate(self.gcns):  # one block as released; more are an extension
            latent = gcn(latent, None)
            if i < len(self.gcns) - 1:
                latent = F.relu(latent)
        back = latent.transpose(1, 2) @ proj  # reverse projection, (B, C, L)
        return self.blocker(self.conv_extend(back.reshape(batch, channels, height, width)))


class HlaGcn(AestheticModel):
    arch = "hla-gcn"
    variants = VARIANTS  # `aesthete models` lists each one's parameter count

    def __init__(
        self,
        *,
        variant: Variant,
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
        self.variant = variant
        self.features = build_backbone(backbone)
        grid = -(-input_size // 32)  # ResNet's padded stride-2 stages round up: 300 px -> 10 x 10
        latent = grid * grid // 4  # K = L / 4, following GloRe as the paper does (25 in model.py:187)
        self.use_spatial = spatial
        self.hierarchical = hierarchical
        if variant == "official":
            # Released names (conv1x1, lagcn1, lagcn2, aesfc1/2), so converted weights map one to one.
            self.conv1x1 = nn.Conv2d(backbone_channels(backbone), channels, kernel_size=1, bias=False)
            self.lagcn1 = OfficialFirstModule(channels, blocks, content=content, spatial=spatial)
            self.aesfc1 = nn.Linear(channels, bins)
            if hierarchical:
                self.lagcn2 = OfficialSecondModule(channels, latent, latent_blocks)
                self.aesfc2 = nn.Linear(channels, bins)
            # model.py:191-196 re-initialises every Conv2d Kaiming-normal (fan-out) and every BatchNorm to
            # weight 1, bias 0, after building; the backbone's are then overwritten by ImageNet weights.
            for module in [self.conv1x1, *(self.lagcn2.modules() if hierarchical else [])]:
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
            return
        self.reduce = nn.Conv2d(backbone_channels(backbone), channels, kernel_size=1)
        self.coordinate_gcn = LayoutAwareGCN(channels, blocks, content=content)
        self.head_coordinate = nn.Linear(channels, bins)
        if hierarchical:
            nodes = grid * grid
            self.projection_kind = projection
            if projection == "dynamic":
                self.projection = nn.Conv1d(channels, latent, kernel_size=1)
            else:
                self.projection = nn.Parameter(torch.randn(latent, nodes) / nodes**0.5)
            self.latent_gcn = LayoutAwareGCN(channels, latent_blocks, content=True)
            self.head_latent = nn.Linear(channels, bins)

    def _project(self, nodes: Tensor) -> Tensor:
        """B (batch, K, L): the weights aggregating L spatial nodes into K latent nodes (paper variant)."""
        if self.projection_kind == "dynamic":
            return self.projection(nodes.transpose(1, 2))
        return self.projection.to(nodes.dtype).expand(nodes.shape[0], -1, -1)

    def forward(self, images: Tensor, aspect: Tensor | None = None) -> dict[str, Tensor]:
        if self.variant == "official":
            return self._forward_official(images, aspect)
        maps = self.reduce(self.features(images))
        batch, channels, height, width = maps.shape
        nodes = maps.flatten(2).transpose(1, 2)  # (B, L, C)
        spatial = None
        if self.use_spatial:
            if aspect is None:
                aspect = torch.ones(batch, device=images.device)
            spatial = spatial_relation(aspect, height, width)
        coordinate = self.coordinate_gcn(nodes, spatial)
        pooled = coordinate.mean(dim=1)
        logits_c = self.head_coordinate(pooled)
        probs = logits_c.softmax(dim=-1)
        outputs = {"logits_coordinate": logits_c}
        embedding = [pooled]  # the inputs of the score layers, concatenated
        if self.hierarchical:
            weights = self._project(coordinate)  # (B, K, L)
            latent = self.latent_gcn(weights @ coordinate)  # (B, K, C)
            back = weights.transpose(1, 2) @ latent  # reverse projection to (B, L, C)
            embedding.append(back.mean(dim=1))
            logits_l = self.head_latent(embedding[-1])
            probs = (probs + logits_l.softmax(dim=-1)) / 2
            outputs["logits_latent"] = logits_l
        outputs["probs"] = probs
        outputs["embedding"] = torch.cat(embedding, dim=-1)
        return outputs

    def _forward_official(self, images: Tensor, aspect: Tensor | None) -> dict[str, Tensor]:
        """model.py:237-250: reduction, 1st module, GAP + FC; 2nd module on the 1st's maps, GAP + FC."""
        maps = self.conv1x1(self.features(images))
        batch, _, height, width = maps.shape
        spatial = None
        if self.use_spatial:
            if aspect is None:
                aspect = torch.ones(batch, device=images.device)
            spatial = official_spatial_relation(aspect, height, width)
        coordinate = self.lagcn1(maps, spatial)
        pooled = coordinate.mean(dim=(2, 3))
        logits_c = self.aesfc1(pooled)
        probs = logits_c.softmax(dim=-1)
        outputs = {"logits_coordinate": logits_c}
        embedding = [pooled]  # the inputs of the score layers, concatenated
        if self.hierarchical:
            embedding.append(self.lagcn2(coordinate).mean(dim=(2, 3)))
            logits_l = self.aesfc2(embedding[-1])
            probs = (probs + logits_l.softmax(dim=-1)) / 2
            outputs["logits_latent"] = logits_l
        outputs["probs"] = probs
        outputs["embedding"] = torch.cat(embedding, dim=-1)
        return outputs

    def loss(self, outputs: dict[str, Tensor], batch: Batch) -> Tensor:
        return emd(outputs["probs"].float(), batch["dist"], r=2.0)


@register_model("hla-gcn")
def hla_gcn(
    *,
    variant: Variant = "official",
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
    """HLA-GCN with the paper's defaults. ``variant``: ``"official"`` (the authors' released code, the
    default) or ``"paper"`` (the text's equations). Ablations of Table 4 / Fig. 4, for both:
    ``hierarchical=False`` (+LAGCN), ``spatial=False`` (w/o s.), ``content=False`` (w/o c.), ``blocks=1..4``."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    if not 1 <= blocks <= 4:
        raise ValueError("blocks must be 1..4 (the paper's Fig. 4 range)")
    if projection not in ("dynamic", "static"):
        raise ValueError("projection must be 'dynamic' or 'static'")
    if variant == "official" and projection != "dynamic":
        raise ValueError("projection='static' exists only in the paper variant (the released B is a 1x1 convolution)")
    config = {
        "variant": variant,
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
