"""One process or many: joining the process group ``torch.distributed.run`` describes, passing Python
objects between processes, and the RNG state each process saves and restores.

With one process every function here is a cheap no-op, so the training loop has one code path.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from aesthete.devices import pick_device
from aesthete.training.options import TrainingError


@dataclass
class Context:
    """This process's place in the run."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    owns_group: bool  # this process created the group and must destroy it

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device_option: str) -> Context:
    """Pick this process's device and join the process group the environment describes, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_option, local_rank if world > 1 else None)
    owns_group = False
    if world > 1 and not dist.is_initialized():
        if device.type == "mps":
            raise TrainingError("distributed training is not supported on mps")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns_group = True
    return Context(rank=rank, world=world, local_rank=local_rank, device=device, owns_group=owns_group)


def teardown(ctx: Context) -> None:
    if ctx.owns_group:
        dist.destroy_process_group()


def gather(ctx: Context, obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order, on every process."""
    if ctx.world == 1:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def broadcast(ctx: Context, obj: Any) -> Any:
    """Rank 0's ``obj`` on every process."""
    if ctx.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture_rng(device: torch.device) -> dict[str, Any]:
    """This process's RNG states, as types ``torch.load(weights_only=True)`` accepts."""
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(_as_tuples(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` wants tuples where a round trip through storage may give lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
