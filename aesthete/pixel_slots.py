"""Shared memory through which the decode workers hand the model's input back to ``score``'s process.

A result sent through the pool's pipe is pickled, written, read in 64 KB pieces and unpickled, and every
worker's results go through that one pipe: on the 2-core EPYC it carried ~2,300 300x300 inputs (270 KB
each) a second at ~0.3 ms of the main process's CPU apiece (BENCHMARKS.md, "Host side"). On a GPU,
where the model takes ~0.2 ms a photo, the pipe would bound the whole run. So each file in flight is
lent a slot of one shared block: its worker writes the input there, the result says only its shape, and
the main process copies it out and frees the slot. An input larger than a slot (a panorama under an
aspect-keeping policy), or one that finds every slot lent, still goes through the pipe.

The block is a file mapped into memory by every process: in ``/dev/shm`` on Linux (memory, not disk),
else in the temporary folder. Not :mod:`multiprocessing.shared_memory`: before Python 3.13 it registers
the block with a resource tracker process, which outlives ``score`` by a moment and may remove a block a
worker still maps (CPython gh-82300). The file is named after ``score``'s pid; a block whose owner is
gone (a ``kill -9``) is removed by the next run.
"""

from __future__ import annotations

import mmap
import os
import secrets
import tempfile
from collections import deque
from pathlib import Path

import numpy as np

from aesthete.input_policy import InputPolicy

# At most this much shared memory, and at most half of what its folder has free: a container's /dev/shm
# is often 64 MB.
MAX_SHARED_BYTES = 64 << 20
SHM_FOLDER = Path("/dev/shm")  # Linux's memory-backed folder for shared memory
NAME_PREFIX = "aesthete-slots-"  # + the owner's pid: a block whose owner is gone is removed (remove_orphans)


def block_folder() -> Path:
    """Where the blocks are made: memory on Linux, else the temporary folder (mapped, mostly cached)."""
    return SHM_FOLDER if SHM_FOLDER.is_dir() else Path(tempfile.gettempdir())


def slot_bytes(policy: InputPolicy) -> int:
    """Bytes of the model input ``policy`` makes from a 16:9 photo: 1:1, 4:3, 3:2 and 16:9 fit, either way round."""
    return policy.typical_pixels() * 3


def lend_slots(policy: InputPolicy, wanted: int) -> PixelSlots | None:
    """Up to ``wanted`` slots for ``policy``'s inputs, as many as the shared-memory budget allows; None when
    there is no room for one (every input then comes through the pipe)."""
    folder = block_folder()
    remove_orphans(folder)
    size = slot_bytes(policy)
    free = os.statvfs(folder)
    count = min(wanted, min(MAX_SHARED_BYTES, free.f_bavail * free.f_frsize // 2) // size)
    if count < 1:
        return None
    try:
        return PixelSlots(folder, count, size)
    except OSError:  # no room after all (another program filled the folder meanwhile)
        return None


def remove_orphans(folder: Path) -> None:
    """Remove the blocks of ``score`` runs that are gone. A run removes its own block when it ends, even
    after Ctrl-C or an error; a ``kill -9`` leaves it behind."""
    for block in folder.glob(f"{NAME_PREFIX}*"):
        owner = block.name.removeprefix(NAME_PREFIX).split("-")[0]
        if owner.isdigit() and not _alive(int(owner)):
            block.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return True


class PixelSlots:
    """The main process's side: a block of ``count`` slots of ``size`` bytes, lent one per file in flight."""

    def __init__(self, folder: Path, count: int, size: int) -> None:
        self.size, self.count = size, count
        self.path = folder / f"{NAME_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if hasattr(os, "posix_fallocate"):  # claim the memory now: writing into a full tmpfs kills the writer
                os.posix_fallocate(handle, 0, count * size)
            else:
                os.ftruncate(handle, count * size)
            self.memory = mmap.mmap(handle, count * size)
        except OSError:
            self.path.unlink(missing_ok=True)
            raise
        finally:
            os.close(handle)
        self.free: deque[int] = deque(range(count))

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
        return np.ndarray(shape, np.uint8, buffer=self.memory, offset=slot * self.size).copy()

    def close(self) -> None:
        self.memory.close()
        self.path.unlink(missing_ok=True)


class WorkerSlots:
    """A worker's side: the block, mapped from its path."""

    def __init__(self, path: str, size: int) -> None:
        self.size = size
        handle = os.open(path, os.O_RDWR)
        try:
            self.memory = mmap.mmap(handle, 0)
        finally:
            os.close(handle)

    def put(self, slot: int, pixels: np.ndarray) -> bool:
        """Write ``pixels`` (uint8) into ``slot``; False, writing nothing, when they do not fit."""
        if pixels.dtype != np.uint8 or pixels.nbytes > self.size:
            return False
        np.ndarray(pixels.shape, np.uint8, buffer=self.memory, offset=slot * self.size)[...] = pixels
        return True
