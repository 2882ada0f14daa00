"""``score`` with the model taken out: what the decode workers and the host alone allow.

Everything runs as in ``score`` (discovery, workers, hand-back, batching, pinned stacking on CUDA,
SQLite writes) except the model's forward pass, replaced by uniform distributions. The photos per second,
start-up taken out, are then the ceiling the CPU side puts on ``score`` (a model infinitely fast), and
the main process's CPU per photo is the host work that, on a GPU, competes with feeding the device.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from bench.common import in_fresh_process


def host_ceiling(folder: Path, head: Path, count: int, head_count: int, checkpoint: str, device: str,
                 work: Path) -> dict[str, Any]:  # fmt: skip
    """:func:`host_only` on the whole set and on its first ``head_count`` photos, each in a fresh process;
    as in ``bench.stages.end_to_end``, the difference of the two is the cost of ``count - head_count``
    photos without the start-up (during which the workers already decode the first few dozen)."""
    runs = {name: in_fresh_process(host_only, str(target), checkpoint, device, str(work))
            for name, target in (("head", head), ("all", folder))}  # fmt: skip
    photos = count - head_count
    assert runs["all"]["scored"] == count and runs["head"]["scored"] == head_count
    wall, cpu, main = (runs["all"][key] - runs["head"][key] for key in ("wall_s", "cpu_s", "main_s"))
    return {
        "img_s": photos / wall if wall > 0 else None,  # None: noise swamped the difference
        "main_process_cpu_ms": 1000 * cpu / photos,  # all the process's threads
        "main_thread_cpu_ms": 1000 * main / photos,
        "device": runs["all"]["device"],
    }


def host_only(folder: str, checkpoint: str, device: str, work: str) -> dict[str, Any]:
    """One ``score`` of ``folder`` without the forward pass: its wall time and the main process's CPU
    time (all threads, and the main thread alone). Run it in a fresh process: it patches ``aesthete`` in
    place. Torch is imported by ``score`` itself, as in a real run: after the workers are forked, and
    after ``score`` has set OpenMP's wait policy."""
    from aesthete import scoring
    from aesthete.store import Store

    real_load = scoring.load_runner

    def no_forward_runner(*args: Any, **kwargs: Any) -> Any:
        runner = real_load(*args, **kwargs)
        runner.launch = functools.partial(no_forward, runner)
        return runner

    def no_forward(runner: Any, pixels: Any, aspect: Any) -> Any:
        import torch

        from aesthete.engine import LaunchedBatch

        bins = len(runner.model.bin_values)
        return LaunchedBatch(runner.output, {"probs": torch.full((len(pixels), bins), 1.0 / bins)})

    scoring.load_runner = no_forward_runner
    db = Path(work) / "host-only.db"
    for leftover in Path(work).glob("host-only.db*"):
        leftover.unlink()
    wall, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
    summary = scoring.score([folder], store=Store(db), weights=checkpoint, device=device)
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "main_s": time.thread_time() - main,
        "scored": summary.scored,
        "device": summary.device,
    }
