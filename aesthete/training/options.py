"""What a training run is told besides its recipe, what it writes, and how it reports.

Torch-free: the ``train`` command builds these, and checks them (:mod:`aesthete.training.preflight`),
before any process imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aesthete.errors import AestheteError

STATE_FILE = "state.pt"
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"

# Progress is reported through callbacks, as ``aesthete.scoring.score`` reports it, and only by rank 0;
# rendering it (Rich bars on a terminal, plain lines in a log) is the caller's business.
SayFn = Callable[[str], None]  # one line of news: what the data holds, an epoch's summary, the test
# (task, steps done, steps in the task, info): info is None when it did not change (reading the loss
# waits for the GPU, so it is refreshed every few steps only).
ProgressFn = Callable[[str, int, int, str | None], None]


class TrainingError(AestheteError, RuntimeError):
    """A run that cannot start or continue; the message says why and what to do."""


@dataclass
class RunOptions:
    """Everything about a run that is not the recipe: where, on what, and whether to show progress."""

    data_root: Path
    output: Path
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    resume: bool = False
    limit: int | None = None
    workers: int | None = None  # None: the recipe's value, capped by the CPUs per process
    progress: bool = True  # read by the launcher's processes, which render their own progress


def loader_workers(options: RunOptions, recipe_workers: int) -> int:
    """Data-loading processes per training process: ``--workers``, else the recipe's, capped so the
    processes on this machine leave a core each for their own work."""
    if options.workers is not None:
        return options.workers
    per_process = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(recipe_workers, (os.cpu_count() or 1) // per_process - 1))
