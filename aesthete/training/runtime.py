"""What training and evaluation share once torch is loaded: the splits every process sees (read once,
by rank 0), the frozen ImageNet teacher APM distils, and mixed precision."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aesthete.training.datasets import read_dataset
from aesthete.training.distributed import Context, broadcast
from aesthete.training.options import RunOptions, SayFn, TrainingError
from aesthete.training.splits import SPLITS, DatasetSplits, limit_splits, scan_images


def load_splits(
    ctx: Context,
    recipe: dict[str, Any],
    options: RunOptions,
    say: SayFn,
    names: tuple[str, ...] = SPLITS,
) -> DatasetSplits:
    """Rank 0 reads the labels and scans the images of the ``names`` splits; every process gets the same."""
    splits = None
    error = None
    if ctx.main:
        try:
            splits = scan_images(read_dataset(recipe["dataset"], options.data_root, recipe["data"]), names=names)
            if options.limit:
                splits = limit_splits(splits, options.limit, recipe["data"]["split_seed"], names)
        except Exception as exc:  # re-raised on every rank below, so no process waits forever
            error = exc
    splits, error = broadcast(ctx, (splits, error))
    if error is not None:
        raise error
    assert splits is not None
    for line in splits.report.lines(splits):
        say(line)
    return splits


def require_images(splits: DatasetSplits, names: tuple[str, ...], data_root: Path) -> None:
    """Refuse a split that must be measured or trained on but holds no usable image -- an empty or
    mismatched test list, every image missing -- before any work, not after a run that tests nothing."""
    for name in names:
        if not len(splits.split(name)):
            raise TrainingError(f"the {name} split of {data_root} holds no usable images")


def build_teacher(name: str, device: torch.device) -> nn.Module:
    """A frozen torchvision ImageNet classifier on ``device`` (APM's semantic stage distils its softmax)."""
    from aesthete.models.backbones import imagenet_classifier

    teacher = imagenet_classifier(name)
    if device.type == "cuda":
        teacher.to(memory_format=torch.channels_last)
    return teacher.to(device).eval()


def add_teacher_probs(teacher: nn.Module | None, batch: dict[str, Any], device: torch.device, amp: str) -> None:
    """Put the teacher's softmax over ``batch["teacher_images"]`` in ``batch["teacher_probs"]``."""
    if teacher is None:
        return
    with torch.no_grad(), autocast(device, amp):
        batch["teacher_probs"] = teacher(batch["teacher_images"]).float().softmax(dim=-1)


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager[Any]:
    """The recipe's ``train.amp`` (bf16 | fp16 | none) as an autocast context; CUDA only."""
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
