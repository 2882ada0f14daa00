"""What every stage of the benchmark shares: the machine's cores, logging, fresh processes and the CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a spawned interpreter (its own torch import, threads and memory)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def subprocess_env(home: Path) -> dict[str, str]:
    """This checkout on the path, and aesthete's data, cache and config inside the work folder."""
    # This checkout first; an existing PYTHONPATH (a GPU machine's carried wheels) stays after it.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    for name in ("DATA", "CACHE", "CONFIG"):
        env[f"AESTHETE_{name}_DIR"] = str(home / name.lower())
    env.pop("AESTHETE_DB", None)
    return env


def aesthete_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "aesthete", *args]


def timed(cmd: Sequence[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done


def score_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"score printed no JSON (exit {done.returncode}): {done.stderr.strip()[-500:]}") from None


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def machine(device: str) -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in info if "model name" in line), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    return {
        "cpu": cpu,
        "cores": cores(),
        "ram_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **in_fresh_process(_torch_facts, device),
    }


def _torch_facts(device: str) -> dict[str, Any]:
    import PIL
    import torch

    from aesthete.engine import autocast_dtype, cpu_has_native_bf16, pick_device, precision_name

    torch_device = pick_device(device)
    precision = precision_name(autocast_dtype(torch_device, "auto"))
    facts = {
        "torch": torch.__version__,
        "pillow": PIL.__version__,
        "device": str(torch_device),
        "precision": precision,
        "torch_threads": torch.get_num_threads(),
        "native_bf16": cpu_has_native_bf16(),
    }
    if torch_device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(torch_device)
    return facts
