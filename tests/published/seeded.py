"""Seeded publisher-format weights that the fixture script (with the reference libraries) and the tests
(without them) generate identically from tensor names and shapes alone.

Each tensor gets its own generator, seeded by the run's seed and the CRC-32 of its name, so values do
not depend on the order of the list. Values are chosen so every layer stays in a sensible range and
batch norm is not the identity: weights ~ N(0, 1/fan_in), biases and embeddings small, norm scales
near 1, running means ~ N(0, 0.1) and running variances in [0.5, 1.5].
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable

import torch
from torch import Tensor


def seeded_tensor(name: str, shape: Iterable[int], dtype: str, seed: int) -> Tensor:
    shape = tuple(shape)
    generator = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % 2**63)
    leaf = name.rsplit(".", 1)[-1]
    if dtype.startswith("int") or leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=getattr(torch, dtype))
    if leaf == "running_var":
        value = 0.5 + torch.rand(shape, generator=generator)
    elif leaf == "running_mean":
        value = 0.1 * torch.randn(shape, generator=generator)
    elif len(shape) <= 1 and (leaf == "weight" or leaf.startswith("ln") or "norm" in name or ".bn" in name):
        value = 1.0 + 0.1 * torch.randn(shape, generator=generator)  # norm scales
    elif len(shape) <= 1:
        value = 0.02 * torch.randn(shape, generator=generator)  # biases, class token
    else:
        fan_in = math.prod(shape[1:]) if leaf != "proj" else shape[0]
        value = torch.randn(shape, generator=generator) / math.sqrt(max(fan_in, 1))
    return value.to(getattr(torch, dtype))


def seeded_state(layout: list[list], seed: int) -> dict[str, Tensor]:
    """``layout`` is [[name, shape, dtype], ...] as stored in a fixture file."""
    return {name: seeded_tensor(name, shape, dtype, seed) for name, shape, dtype in layout}


def layout_of(state: dict[str, Tensor]) -> list[list]:
    return [[name, list(t.shape), str(t.dtype).removeprefix("torch.")] for name, t in state.items()]
