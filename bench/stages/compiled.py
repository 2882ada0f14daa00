"""Eager and compiled model-only rows side by side: ``score``'s runner with ``--compile off`` and ``on``.

For each model, in a fresh interpreter with an empty inductor cache: both runners are loaded, the
compiled one's first batch is timed (the first run's compilation), then the two are timed in turns,
several rounds each, and each one's best round counts. Turns, not one after the other: on a shared
machine the speed drifts by tens of percent over a minute, and a ratio of two figures taken minutes
apart measures the drift. Then a second fresh interpreter times the compiled runner's first batch with
the cache the first one left (the cost every later run pays) and its throughput again."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from bench.common import in_fresh_process, log

ROUNDS = 3


def side_by_side(checkpoint: str, device: str, seconds: float, cache: str, with_eager: bool) -> dict[str, Any]:
    """Model-only img/s of the eager and the compiled runner (``score``'s, ``--precision auto``), in
    turns; and the compiled runner's first-batch wall time, less the eager one's: the compilation."""
    import os

    os.environ["AESTHETE_CACHE_DIR"] = cache  # before aesthete reads it: the compiled code goes here
    import numpy as np

    from aesthete.pipeline import default_batch, load_runner

    runners = {"compiled": load_runner(checkpoint, device, "auto", compile="on")}
    if with_eager:
        runners["eager"] = load_runner(checkpoint, device, "auto", compile="off")
    compiled = runners["compiled"]
    batch = default_batch(compiled)
    compiled.batch_size = batch
    policy = compiled.model.policy
    width, height = policy.resized_size(6000, 4000)  # a 3:2 photo, as the generated ones are
    if policy.resize == "center_crop":
        width = height = policy.size
    pixels = np.random.default_rng(0).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    aspect = np.full(batch, 1.5)
    first = {}
    for name, runner in runners.items():
        started = time.perf_counter()
        runner(pixels, aspect)  # returns numpy: a CUDA batch has finished when it returns
        first[name] = time.perf_counter() - started
        runner(pixels, aspect)  # warm-up: allocator growth, kernel selection
    best = dict.fromkeys(runners, 0.0)
    for _ in range(ROUNDS):
        for name, runner in runners.items():
            runs, started = 0, time.perf_counter()
            while runs < 3 or time.perf_counter() - started < seconds / ROUNDS:
                runner(pixels, aspect)
                runs += 1
            best[name] = max(best[name], runs * batch / (time.perf_counter() - started))
    return {
        "img_s": best,
        "first_call_s": first,
        "compiled": compiled.compiled,
        "compile_failure": compiled.compile_failure,
        "batch": batch,
        "input": f"{width}x{height}",
        "precision": compiled.precision,
        "device": str(compiled.device),
        "threads": __import__("torch").get_num_threads(),
    }


def compiled_rows(checkpoints: dict[str, str], device: str, seconds: float, work: Path) -> list[dict[str, Any]]:
    """``checkpoints``: label -> checkpoint path. One dict per model: eager and compiled img/s, measured in
    turns, the first compilation's cost and the cached one's."""
    rows = []
    for label, checkpoint in checkpoints.items():
        cache = work / "compile-cache" / label.replace(" ", "_").replace("@", "-").replace("/", "-")
        shutil.rmtree(cache, ignore_errors=True)  # the first process must compile from nothing
        log(f"compiled: {label}: eager and compiled in turns, empty cache")
        cold = in_fresh_process(side_by_side, checkpoint, device, seconds, str(cache), True)
        log(f"compiled: {label}: compiled, warm cache")
        warm = in_fresh_process(side_by_side, checkpoint, device, seconds / 2, str(cache), False)
        eager_s, compiled_s = cold["img_s"]["eager"], cold["img_s"]["compiled"]
        row = {
            "model": label, "cold": cold, "warm": warm, "input": cold["input"], "eager_img_s": eager_s,
            "compiled_img_s": compiled_s, "warm_img_s": warm["img_s"]["compiled"],
            "compiled": cold["compiled"] and warm["compiled"],
            "compile_failure": cold["compile_failure"] or warm["compile_failure"],
            "speedup": compiled_s / eager_s if cold["compiled"] else None,
            # Per-photo saving and the photo count from which compiling repays itself (empty / warm cache):
            # the figures aesthete.scoring's --compile auto constants come from.
            "saving_s_per_img": 1 / eager_s - 1 / compiled_s,
            "cold_compile_s": cold["first_call_s"]["compiled"] - cold["first_call_s"]["eager"],
            # The warm process has no eager runner: the cold one's eager first batch stands in for it.
            "warm_compile_s": warm["first_call_s"]["compiled"] - cold["first_call_s"]["eager"],
        }  # fmt: skip
        saving = row["saving_s_per_img"]
        for name in ("cold", "warm"):
            row[f"{name}_break_even_photos"] = row[f"{name}_compile_s"] / saving if saving > 0 else None
        # Every figure in the log too: a run cut short by a time limit still leaves the rows it finished.
        log(f"compiled: {label} ({cold['input']}, {cold['device']}, {cold['precision']}, batch {cold['batch']}): "
            f"eager {eager_s:.1f} img/s, compiled {compiled_s:.1f} img/s (warm-cache process {row['warm_img_s']:.1f}), "
            f"compiled={row['compiled']} failure={row['compile_failure']}, "
            f"compile {row['cold_compile_s']:.1f} s / cached {row['warm_compile_s']:.1f} s")  # fmt: skip
        rows.append(row)
    return rows
