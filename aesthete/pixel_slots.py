"""Shared memory through which the decode workers hand the model's input back to ``score``'s process.

A result sent through the pool's pipe is pickled, written, read in 64 KB pieces and unpickled: for a
300x300 input (270 KB) that cost ~0.5 ms of the main process's CPU per photo on the 2-core EPYC, and every
worker's results go through that one pipe (BENCHMARKS.md). On a GPU, where the model takes ~0.2 ms a
photo, the pipe would bound the whole run. So each file in flight is lent a slot of one shared block:
its worker writes the input there, the result says only its shape, and the main process copies it out
and frees the slot. An input larger than a slot (a panorama under an aspect-keeping policy) still goes
through the pipe.
"""

from __future__ import annotations

import os
import secrets
from collections import deque
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

from aesthete.input_policy import InputPolicy

# Slots are sized for the input of a 16:9 photo: 1:1, 4:3, 3:2 and 16:9 fit, in either orientation.
SLOT_SHAPE_RATIO = (16, 9)
# At most this much shared memory, and at most half of what /dev/shm has free: a container's /dev/shm is
# often 64 MB, and a write beyond a full tmpfs kills the writer (SIGBUS) instead of failing.
MAX_SHARED_BYTES = 64 << 20
SHM_FOLDER = Path("/dev/shm")  # where Linux keeps POSIX shared memory, as files
NAME_PREFIX = "aesthete-"  # + the owner's pid: a block whose owner is gone is removed (remove_orphans)


def slot_bytes(policy: InputPolicy) -> int:
    """Bytes of the model input ``policy`` makes from a 16:9 photo."""
    width, height = policy.resized_size(*SLOT_SHAPE_RATIO)
    if policy.resize == "center_crop":
        width, height = min(width, policy.size), min(height, policy.size)
    if policy.patch:
        return len(policy.patch_origins(width, height)) * policy.patch * policy.patch * 3
    return width * height * 3


def lend_slots(policy: InputPolicy, wanted: int) -> PixelSlots | None:
    """Up to ``wanted`` slots for ``policy``'s inputs, as many as the shared-memory budget allows; None when
    there is no room for one, or no shared memory (every input then comes through the pipe)."""
    size = slot_bytes(policy)
    budget = MAX_SHARED_BYTES
    if SHM_FOLDER.is_dir():
        remove_orphans()
        free = os.statvfs(SHM_FOLDER)
        budget = min(budget, free.f_bavail * free.f_frsize // 2)
    count = min(wanted, budget // size)
    if count < 1:
        return None
    try:
        return PixelSlots(count, size)
    except OSError:
        return None


def remove_orphans() -> list[str]:
    """Remove the blocks of ``score`` runs that are gone (the names removed). A run's block is removed when it
    ends, and after a ``kill -9`` of it alone by Python's resource tracker, but a kill of its whole process
    group takes the tracker too."""
    removed = []
    for block in SHM_FOLDER.glob(f"{NAME_PREFIX}*"):
        owner = block.name.removeprefix(NAME_PREFIX).split("-")[0]
        if owner.isdigit() and not _alive(int(owner)):
            block.unlink(missing_ok=True)
            removed.append(block.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class PixelSlots:
    """The main process's side: a block of ``count`` slots of ``size`` bytes, lent one per file in flight."""

    def __init__(self, count: int, size: int) -> None:
        self.size, self.count = size, count
        name = f"{NAME_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.memory = shared_memory.SharedMemory(name, create=True, size=count * size)
        self.free: deque[int] = deque(range(count))

    @property
    def name(self) -> str:
        return self.memory.name

    def take(self) -> int | None:
        """A free slot, or None when all are lent (the file's input then comes through the pipe)."""
        return self.free.popleft() if self.free else None

    def give_back(self, slot: int) -> None:
        self.free.append(slot)

    def give_back_all(self) -> None:
        """Every slot free again: for when no worker is alive to write in one."""
        self.free = deque(range(self.count))

    def copy_out(self, slot: int, shape: tuple[int, ...]) -> np.ndarray:
        """The uint8 array of ``shape`` a worker wrote in ``slot`` (copied: the slot is free again after)."""
        return np.ndarray(shape, np.uint8, buffer=self.memory.buf, offset=slot * self.size).copy()

    def close(self) -> None:
        self.memory.close()
        self.memory.unlink()


class WorkerSlots:
    """A worker's side: the block, attached by name."""

    def __init__(self, name: str, size: int) -> None:
        self.size = size
        # Attaching registers the block with the resource tracker again (CPython gh-82300), but a worker shares
        # the main process's tracker, which keeps one entry per name: the main process's unlink clears it.
        self.memory = shared_memory.SharedMemory(name)

    def put(self, slot: int, pixels: np.ndarray) -> bool:
        """Write ``pixels`` (uint8) into ``slot``; False, writing nothing, when they do not fit."""
        if pixels.dtype != np.uint8 or pixels.nbytes > self.size:
            return False
        np.ndarray(pixels.shape, np.uint8, buffer=self.memory.buf, offset=slot * self.size)[...] = pixels
        return True
