"""Model-only throughput: the model as ``score`` runs it (same runner, batch, threads and precision)."""

from __future__ import annotations

import time
from typing import Any


def model_only(
    checkpoint: str,
    device: str,
    precision: str,
    min_seconds: float,
    compile: str = "off",
    cache: str | None = None,
    *,
    batch: int | None = None,
    warmup: int = 3,
    min_runs: int = 5,
) -> dict[str, Any]:
    """Forward passes on uint8 batches of the model's input size, through the runner ``score`` uses
    (its device, precision, batch size and torch's default threads), normalisation included.

    ``compile`` is ``score``'s ``--compile`` (off, on); ``cache`` replaces aesthete's cache folder, so
    a fresh folder times a first compilation and a used one the cached one. ``first_call_s`` is the
    first batch's wall time: with compilation on, the compilation's cost. ``batch`` (default:
    ``score``'s), ``warmup`` and ``min_runs`` let a slow model on a small machine be timed in fewer
    passes; the row records the batch it ran."""
    import os

    import numpy as np

    if cache is not None:
        os.environ["AESTHETE_CACHE_DIR"] = cache
    from aesthete.pipeline import default_batch, load_runner

    started = time.perf_counter()
    runner = load_runner(checkpoint, device, precision, compile=compile)  # first: it sets what torch reads
    load_s = time.perf_counter() - started
    import torch

    batch = batch or default_batch(runner)
    runner.batch_size = batch
    policy = runner.model.policy
    if policy.patch:
        raise SystemExit("model-only timing supports single-crop models (nima, hla-gcn, apm, saf, pear, ...)")
    width, height = policy.resized_size(6000, 4000)  # a 3:2 photo, as the generated ones are
    if policy.resize == "center_crop":  # then cropped to a square, as InputPolicy.prepare does
        width = height = policy.size
    pixels = np.random.default_rng(0).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    aspect = np.full(batch, 1.5)
    started = time.perf_counter()
    runner(pixels, aspect)
    if runner.device.type == "cuda":
        torch.cuda.synchronize()
    first_call_s = time.perf_counter() - started
    for _ in range(warmup):  # warm-up: kernel selection and allocator growth
        runner(pixels, aspect)
    runs, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while runs < min_runs or time.perf_counter() - wall0 < min_seconds:
        runner(pixels, aspect)
        runs += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    images = runs * batch
    on_cpu = runner.device.type == "cpu"
    return {
        "img_s": images / wall,
        # Work done (process CPU time), and the cores held (threads x wall): sleeping OpenMP threads make
        # the first smaller, and the stage-sum limit computed from it the stricter of the two.
        "core_s_per_img": cpu / images if on_cpu else None,
        "held_core_s_per_img": torch.get_num_threads() * wall / images if on_cpu else None,
        "batch": batch,
        "input": f"{width}x{height}",
        "threads": torch.get_num_threads(),
        "precision": runner.precision,
        "device": str(runner.device),
        "compiled": runner.compiled,
        "compile_failure": runner.compile_failure,
        "load_s": load_s,
        "first_call_s": first_call_s,
        "arch": runner.model.arch,
    }
