"""Eager and compiled model-only rows side by side: ``score``'s runner with ``--compile off`` and ``on``.

For each model: eager throughput; then compiled, once with an empty inductor cache (the first run's
compilation cost) and once more in a new process with the cache that run left (the cost every later
run pays). Each row runs in a fresh interpreter, so no row inherits another's compiled code in memory."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench.common import in_fresh_process, log
from bench.stages.model_only import model_only


def compiled_rows(checkpoints: dict[str, str], device: str, seconds: float, work: Path) -> list[dict[str, Any]]:
    """``checkpoints``: label -> checkpoint path. One dict per model with its eager, cold and warm rows."""
    rows = []
    for label, checkpoint in checkpoints.items():
        cache = work / "compile-cache" / label.replace(" ", "_").replace("@", "-")
        shutil.rmtree(cache, ignore_errors=True)  # the cold row must compile from nothing
        log(f"compiled: {label}: eager")
        eager = in_fresh_process(model_only, checkpoint, device, "auto", seconds, "off", None)
        log(f"compiled: {label}: compiled, empty cache")
        cold = in_fresh_process(model_only, checkpoint, device, "auto", seconds, "on", str(cache))
        log(f"compiled: {label}: compiled, warm cache")
        warm = in_fresh_process(model_only, checkpoint, device, "auto", seconds, "on", str(cache))
        row = {
            "model": label, "eager": eager, "cold": cold, "warm": warm,
            "speedup": warm["img_s"] / eager["img_s"] if warm["compiled"] else None,
            # Per-photo saving and the photo count from which compiling repays itself (cold / warm cache):
            # the figures aesthete.scoring's --compile auto constants come from.
            "saving_s_per_img": 1 / eager["img_s"] - 1 / warm["img_s"],
        }  # fmt: skip
        saving = row["saving_s_per_img"]
        for name, run in (("cold", cold), ("warm", warm)):
            extra = run["first_call_s"] - eager["first_call_s"]  # the compilation, less an eager first batch
            row[f"{name}_compile_s"] = extra
            row[f"{name}_break_even_photos"] = extra / saving if saving > 0 else None
        # Every figure in the log too: a run cut short by a time limit still leaves the rows it finished.
        log(f"compiled: {label} ({eager['input']}, {eager['device']}, {eager['precision']}, batch {eager['batch']}): "
            f"eager {eager['img_s']:.1f} img/s, compiled {cold['img_s']:.1f} (cold) / {warm['img_s']:.1f} (warm) "
            f"img/s, compiled={warm['compiled']} failure={warm['compile_failure'] or cold['compile_failure']}, "
            f"compile {row['cold_compile_s']:.1f} s / cached {row['warm_compile_s']:.1f} s")  # fmt: skip
        rows.append(row)
    return rows
