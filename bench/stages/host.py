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
    """:func:`host_only` on the whole set and on its first ``head_count`` photos, each in a fresh process.
    The rate is the difference of the two, as in ``bench.stages.end_to_end``: the cost of ``count -
    head_count`` photos without the start-up, during which the workers already decode the first few
    dozen. The CPU is the whole set's, from its first batch on: a difference of CPU times would also
    count how much slower ``import torch`` runs while the workers keep every core busy (on 2 cores the
    whole-set run's main thread spent ~1.4 s more before its first batch than the head run's, whose
    workers had finished by then)."""
    runs = {name: in_fresh_process(host_only, str(target), checkpoint, device, str(work))
            for name, target in (("head", head), ("all", folder))}  # fmt: skip
    assert runs["all"]["scored"] == count and runs["head"]["scored"] == head_count
    wall = runs["all"]["wall_s"] - runs["head"]["wall_s"]
    steady = runs["all"]["after_first_batch"]
    return {
        "img_s": (count - head_count) / wall if wall > 0 else None,  # None: noise swamped the difference
        "main_process_cpu_ms": 1000 * steady["cpu_s"] / steady["photos"],  # all the process's threads
        "main_thread_cpu_ms": 1000 * steady["main_s"] / steady["photos"],
        "device": runs["all"]["device"],
    }


def host_only(folder: str, checkpoint: str, device: str, work: str) -> dict[str, Any]:
    """One ``score`` of ``folder`` without the forward pass: its wall time, and the main process's CPU
    time (all threads, and the main thread alone) from its first batch to its end with the photos in
    those batches. Run it in a fresh process: it patches ``aesthete`` in place. Torch is imported by
    ``score`` itself, as in a real run: after the workers are forked, and after ``score`` has set
    OpenMP's wait policy."""
    from aesthete import pipeline, scoring
    from aesthete.store import Store

    real_load = pipeline.load_runner
    batches: list[int] = []  # photos per batch launched
    first: dict[str, float] = {}  # the clocks at the first batch

    def no_forward_runner(*args: Any, **kwargs: Any) -> Any:
        runner = real_load(*args, **kwargs)
        runner.launch = functools.partial(no_forward, runner)
        return runner

    def no_forward(runner: Any, pixels: Any, aspect: Any) -> Any:
        import torch

        from aesthete.engine import LaunchedBatch

        if not batches:
            first.update(cpu=time.process_time(), main=time.thread_time())
        batches.append(len(pixels))
        bins = len(runner.model.bin_values)
        return LaunchedBatch(runner.output, {"probs": torch.full((len(pixels), bins), 1.0 / bins)})

    pipeline.load_runner = no_forward_runner
    db = Path(work) / "host-only.db"
    for leftover in Path(work).glob("host-only.db*"):
        leftover.unlink()
    wall = time.perf_counter()
    summary = scoring.score([folder], store=Store(db), weights=checkpoint, device=device)
    return {
        "wall_s": time.perf_counter() - wall,
        "after_first_batch": {
            "photos": sum(batches[1:]),
            "cpu_s": time.process_time() - first["cpu"],
            "main_s": time.thread_time() - first["main"],
        },
        "scored": summary.scored,
        "device": summary.device,
    }
