"""The device a model runs on, for scoring and training alike, and the one way pixels are normalised
once they are there.

Torch-lazy: importing this module imports no torch (``import aesthete``, ``--help`` and ``rank`` stay
fast); torch is imported by the functions that need it, which only run once a model is loaded.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aesthete.errors import AestheteError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
DEVICE_NAMES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")  # what DEVICE_CHOICES says, and nothing else
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPILE_MODES = ("auto", "on", "off")


class EngineError(AestheteError, RuntimeError):
    """A device or precision the machine cannot give; one line for the user."""


def check_device_name(spec: str) -> None:
    """Raise :class:`EngineError` unless ``spec`` is one of :data:`DEVICE_CHOICES`. Torch-free, so a
    mistyped ``--device`` fails before any work, whether or not a model is ever loaded; whether the
    machine has that device is :func:`pick_device`'s question."""
    if not DEVICE_NAMES.fullmatch(spec):
        raise EngineError(f"unknown device {spec!r}; use {DEVICE_CHOICES}")


def check_run_options(device: str, precision: str, compile: str) -> None:
    """Raise :class:`EngineError` for a ``--device``, ``--precision`` or ``--compile`` that names no choice.
    Torch-free: ``score`` checks them before any work, so a typo is refused even when every photo is
    cached and no model is ever loaded."""
    check_device_name(device)
    check_precision(precision)
    check_compile_mode(compile)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise EngineError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")


def check_compile_mode(mode: str) -> None:
    if mode not in COMPILE_MODES:
        raise EngineError(f"unknown --compile {mode!r}; use auto, on or off")


def pick_device(spec: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto`` prefers CUDA, then Apple MPS, then the CPU; explicit requests are checked, not guessed.

    ``local_rank`` is set for one of several processes on a machine (``torchrun``): a CUDA request then
    means that process's own GPU, ``cuda:<local_rank>``, whatever index ``spec`` names."""
    import torch

    check_device_name(spec)
    if spec == "auto":
        if torch.cuda.is_available():
            spec = "cuda"
        elif torch.backends.mps.is_available():
            spec = "mps"
        else:
            spec = "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise EngineError("CUDA was requested but no CUDA device is available (try --device cpu)")
        if local_rank is not None:
            device = torch.device("cuda", local_rank)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise EngineError(f"{device} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise EngineError("MPS was requested but is not available on this machine (try --device cpu)")
    return device


def normalise(
    pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float], *, channels_last: bool
) -> torch.Tensor:
    """uint8 channels-first pixels, already on their device -> ``(x / 255 - mean) / std`` in float32.

    Batches travel to the device as uint8 (4x fewer bytes than float) and are normalised there; scoring
    and training both come through here, so a model trains on exactly the numbers it later scores.
    ``channels_last`` lays a 4-D batch out as convolutions prefer it on CUDA and CPU."""
    import torch

    offset, scale = _scaled(tuple(mean), tuple(std), pixels.device)
    images = pixels.float().sub_(offset).div_(scale)  # (x - 255 mean) / (255 std): one pass fewer
    if channels_last and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


@functools.lru_cache(maxsize=16)
def _scaled(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``255 * mean`` and ``255 * std`` as (3, 1, 1) tensors on ``device``, made once per device (a new
    tensor per batch would be a host-to-device copy per batch)."""
    import torch

    offset = torch.tensor(mean, device=device).view(3, 1, 1) * 255
    scale = torch.tensor(std, device=device).view(3, 1, 1) * 255
    return offset, scale
