"""``score`` with the model taken out: what the decode workers and the host alone allow.

Everything runs as in ``score`` (discovery, workers, hand-back, batching, pinned stacking on CUDA,
SQLite writes) except the model's forward pass, replaced by uniform distributions. The photos per second
after the first batch are then the ceiling the CPU side puts on ``score`` (a model infinitely fast), and
the main process's CPU per photo is the host work that, on a GPU, competes with feeding the device.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def host_only(folder: str, checkpoint: str, device: str, work: str) -> dict[str, Any]:
    """Run in a fresh process (``bench.common.in_fresh_process``): it patches ``aesthete`` in place."""
    import torch

    from aesthete import engine, scoring
    from aesthete.store import Store

    load = {"cpu": 0.0, "main": 0.0}
    batches: list[tuple[float, int]] = []  # (when launched, photos)
    real_load = scoring.load_runner

    def timed_load(*args: Any, **kwargs: Any) -> Any:
        cpu, main = time.process_time(), time.thread_time()
        runner = real_load(*args, **kwargs)
        load["cpu"] += time.process_time() - cpu
        load["main"] += time.thread_time() - main
        return runner

    def no_forward(runner: Any, pixels: Any, aspect: Any) -> Any:
        batches.append((time.perf_counter(), len(pixels)))
        bins = len(runner.model.bin_values)
        return engine.LaunchedBatch(runner.output, {"probs": torch.full((len(pixels), bins), 1.0 / bins)})

    scoring.load_runner = timed_load
    engine.ModelRunner.launch = no_forward
    db = Path(work) / "host-only.db"
    for leftover in Path(work).glob("host-only.db*"):
        leftover.unlink()
    cpu, main = time.process_time(), time.thread_time()
    summary = scoring.score([folder], store=Store(db), weights=checkpoint, device=device)
    ended = time.perf_counter()
    cpu, main = time.process_time() - cpu - load["cpu"], time.thread_time() - main - load["main"]
    after_first = sum(photos for _, photos in batches[1:])
    return {
        "img_s": after_first / (ended - batches[0][0]) if len(batches) > 1 else None,
        "main_process_cpu_ms": 1000 * cpu / summary.scored,  # all its threads, the model's load excluded
        "main_thread_cpu_ms": 1000 * main / summary.scored,
        "scored": summary.scored,
        "device": summary.device,
    }
