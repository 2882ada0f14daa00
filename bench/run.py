"""aesthete's benchmark: every stage of ``score`` and the whole, side by side, in one run.

    python bench/run.py [--prepare] [--quick] [--device cpu|cuda|auto] [--markdown FILE] [--json FILE]

On the same generated photos at 0.2, 12 and 24 MP, and DNGs holding the 24-MP ones as previews, it
measures model-only throughput (the model as ``score`` runs it: same runner, batch, threads and
precision), decode-only throughput (the decode worker's whole job per file, one worker and one per
core), end-to-end ``score`` on a cold database (the CLI in a fresh process, as a user runs it), the
naive pipeline (full decode, resize, NCHW float32, batch 1, same model and weights), rescans of 10,000
and 100,000 unchanged photos, peak RSS while scoring 1,000 and 10,000 photos, and ``aesthete --help``
start-up; then checks the targets of issue 7. On CUDA it adds the nvJPEG decode lane. Weights are
freshly initialised (speed does not depend on their values) and saved as a checkpoint through
``aesthete.checkpoint.save_checkpoint``.

Every measurement that needs a clean interpreter gets one: torch is imported only in spawned
processes, so the decode workers this process forks are as small as those ``score`` forks.
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's aesthete and bench, not an installed copy

from aesthete.checkpoint import read_meta  # noqa: E402 (torch-free)
from bench import photos  # noqa: E402

MODEL = "nima"  # ResNet-50 at 300x300: the backbone of nima and hla-gcn
TINY = {"backbone": "resnet18", "input_size": 64}  # for the memory runs: 10,000 photos in seconds, not minutes
SMALL = (160, 120)  # the memory runs' photos
RAW_LABEL = "RAW previews"


@dataclass(frozen=True)
class Size:
    label: str
    width: int
    height: int
    count: int  # photos in the long end-to-end run
    head: int  # photos in the short one: the difference cancels the fixed start-up cost
    decode_count: int  # photos per decode-only measurement
    naive_count: int  # 0: no naive pipeline (a RAW's naive decode would be a demosaic of its raw data)
    raw: bool = False  # DNGs holding JPEGs of this size as their previews


@dataclass(frozen=True)
class Plan:
    sizes: tuple[Size, ...]
    rescans: tuple[int, int]
    rss: tuple[int, int]
    repeats: int  # end-to-end runs per photo set (the fastest counts: noise only ever slows a run)
    model_seconds: float


FULL = Plan(
    sizes=(
        Size("0.2 MP", 548, 365, count=480, head=96, decode_count=96, naive_count=24),
        Size("12 MP", 4000, 3000, count=120, head=24, decode_count=32, naive_count=8),
        Size("24 MP", 6000, 4000, count=120, head=24, decode_count=32, naive_count=8),
        Size(RAW_LABEL, 6000, 4000, count=120, head=24, decode_count=32, naive_count=0, raw=True),
    ),
    rescans=(10_000, 100_000),
    rss=(1_000, 10_000),
    repeats=2,
    model_seconds=5.0,
)
QUICK = Plan(
    sizes=(
        Size("0.2 MP", 548, 365, count=32, head=8, decode_count=16, naive_count=4),
        Size("12 MP", 4000, 3000, count=10, head=4, decode_count=4, naive_count=2),
        Size("24 MP", 6000, 4000, count=10, head=4, decode_count=4, naive_count=2),
        Size(RAW_LABEL, 6000, 4000, count=10, head=4, decode_count=4, naive_count=0, raw=True),
    ),
    rescans=(1_000, 5_000),
    rss=(100, 400),
    repeats=1,
    model_seconds=2.0,
)


# --- helpers -------------------------------------------------------------------------------------------


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
    env = dict(os.environ, PYTHONPATH=str(REPO))
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

    from aesthete.engine import autocast_dtype, cpu_has_native_bf16, pick_device

    torch_device = pick_device(device)
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast_dtype(torch_device, "auto")]
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


# --- checkpoints -----------------------------------------------------------------------------------------


def make_checkpoint(path: str, arch: str, config: dict[str, Any]) -> str:
    """A freshly initialised checkpoint of ``arch`` (seeded), written the way training writes one."""
    import torch

    from aesthete.checkpoint import save_checkpoint
    from aesthete.models import get_model

    torch.manual_seed(0)
    model = get_model(arch, **config)
    save_checkpoint(model, path, extra={"note": "benchmark: freshly initialised weights, scores are meaningless"})
    return path


# --- model only ------------------------------------------------------------------------------------------


def model_only(checkpoint: str, device: str, precision: str, min_seconds: float) -> dict[str, Any]:
    """Forward passes on uint8 batches of the model's input size, through the runner ``score`` uses
    (its device, precision, batch size and torch's default threads), normalisation included."""
    import numpy as np

    from aesthete.scoring import _default_batch, _load_runner

    runner = _load_runner(checkpoint, device, precision)  # first: it sets what torch reads as it loads
    import torch

    batch = _default_batch(runner)
    policy = runner.model.policy
    if policy.patch:
        raise SystemExit("model-only timing supports single-crop models (nima, hla-gcn, apm, saf, pear)")
    width, height = policy.resized_size(6000, 4000)  # a 3:2 photo, as the generated ones are
    pixels = np.random.default_rng(0).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    aspect = np.full(batch, 1.5)
    for _ in range(3):  # warm-up: kernel selection and allocator growth
        runner(pixels, aspect)
    runs, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while runs < 5 or time.perf_counter() - wall0 < min_seconds:
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
        "threads": torch.get_num_threads(),
        "precision": runner.precision,
        "device": str(runner.device),
    }


# --- decode only -----------------------------------------------------------------------------------------


def _timed_process_file(job: Any) -> tuple[Any, float]:
    from aesthete.decode_worker import process_file

    started = time.process_time()
    result = process_file(job)
    return result, time.process_time() - started


def decode_only(paths: Sequence[Path], checkpoint: str, workers: int) -> dict[str, Any]:
    """The decode worker's whole job per file (read, hash, EXIF, reduced-size decode, technical
    signals, perceptual hash, model input), in ``workers`` forked processes as ``score`` runs them,
    results shipped back to this process. No database, so every file is decoded."""
    from aesthete.checkpoint import read_meta
    from aesthete.decode_worker import FileJob, WorkerConfig, init_worker
    from aesthete.input_policy import InputPolicy
    from aesthete.store import ModelKey

    meta = read_meta(checkpoint)
    policy = InputPolicy.from_dict(meta["policy"])
    config = WorkerConfig(db_path=None, policy=policy.to_dict(), key=ModelKey(meta["arch"], "bench", policy.key),
                          rescore=False)  # fmt: skip
    jobs = [FileJob(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker, initargs=(config,)) as pool:
        list(pool.map(_timed_process_file, jobs[:workers]))  # warm-up: start the workers, load the codecs
        started = time.perf_counter()
        results = list(pool.map(_timed_process_file, jobs))
        wall = time.perf_counter() - started
    failed = [r.error for r, _ in results if r.error_kind or r.pixels is None]
    if failed:
        raise RuntimeError(f"decode failed: {failed[0]}")
    return {"img_s": len(jobs) / wall, "core_s_per_img": sum(cpu for _, cpu in results) / len(jobs)}


def pixel_decode_seconds(paths: Sequence[Path], checkpoint: str) -> float:
    """CPU seconds per photo of the reduced-size pixel decode alone (part of the worker's job)."""
    from aesthete.checkpoint import read_meta
    from aesthete.decode import decode
    from aesthete.decode_worker import _decode_target
    from aesthete.formats import raw_format
    from aesthete.input_policy import InputPolicy

    target = _decode_target(InputPolicy.from_dict(read_meta(checkpoint)["policy"]))
    blobs = [(p.read_bytes(), raw_format(str(p))) for p in paths]
    decode(blobs[0][0], target=target, raw=blobs[0][1])
    started = time.process_time()
    for blob, raw in blobs:
        decode(blob, target=target, raw=raw)
    return (time.process_time() - started) / len(blobs)


def gpu_decode_lane(paths: Sequence[str], side: int, batch: int = 32) -> dict[str, Any]:
    """nvJPEG decodes (``torchvision.io.decode_jpeg`` on CUDA) resized to the model's input on the GPU:
    the second decode lane a GPU machine has. Measured only when the device is CUDA."""
    import torch
    import torch.nn.functional as F
    from torchvision.io import decode_jpeg, read_file

    blobs = [read_file(path) for path in paths]

    def lane() -> None:
        for start in range(0, len(blobs), batch):
            for image in decode_jpeg(blobs[start : start + batch], device="cuda"):
                F.interpolate(image[None].float(), size=(side, side), mode="bilinear", antialias=True)
        torch.cuda.synchronize()

    lane()  # warm-up: nvJPEG handles and the allocator
    started = time.perf_counter()
    lane()
    return {"img_s": len(blobs) / (time.perf_counter() - started)}


# --- naive pipeline --------------------------------------------------------------------------------------


def naive(checkpoint: str, paths: Sequence[str], device: str) -> dict[str, Any]:
    """What a user would write: full decode, resize, NCHW float32 tensor, one photo at a time, the same
    model and weights (fp32, default memory layout, torch's default threads)."""
    import numpy as np
    import torch
    from PIL import Image

    from aesthete.checkpoint import load_model
    from aesthete.engine import pick_device

    torch_device = pick_device(device)
    model = load_model(checkpoint).to(torch_device).eval()
    size = model.policy.size
    mean = torch.tensor(model.policy.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.policy.std).view(1, 3, 1, 1)

    def one(path: str) -> float:
        image = Image.open(path).convert("RGB")
        aspect = torch.tensor([image.width / image.height])
        resized = image.resize((size, size), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255).permute(2, 0, 1).unsqueeze(0)
        x = ((x - mean) / std).to(torch_device)
        with torch.no_grad():
            probs = model(x, aspect.to(torch_device))["probs"][0].cpu()
        return float((probs * model.bin_values).sum())

    one(paths[0])  # warm-up
    started = time.perf_counter()
    for path in paths:
        one(path)
    return {"img_s": len(paths) / (time.perf_counter() - started)}


# --- end to end ------------------------------------------------------------------------------------------


def end_to_end(folder: Path, head: Path, count: int, head_count: int, checkpoint: str, device: str, work: Path,
               env: dict[str, str], repeats: int) -> dict[str, Any]:  # fmt: skip
    """``aesthete score`` on a fresh database, in a fresh process, on the whole set and on its first
    ``head_count`` photos. The difference of the two wall times is the cost of ``count - head_count``
    photos without the fixed start-up (interpreter, ``import torch``, model load), which is reported
    apart."""
    times: dict[str, list[float]] = {"all": [], "head": []}
    summary: dict[str, Any] = {}
    for _ in range(repeats):
        for name, target, expected in (("head", head, head_count), ("all", folder, count)):
            db = work / "e2e.db"
            for leftover in work.glob("e2e.db*"):
                leftover.unlink()
            cmd = aesthete_cmd("score", str(target), "--weights", checkpoint, "--db", str(db), "--device", device,
                               "--json")  # fmt: skip
            wall, done = timed(cmd, env)
            result = score_json(done)
            if result["scored"] != expected or result["failed"]:
                raise RuntimeError(f"score scored {result['scored']} of {expected}, failed {result['failed']}")
            times[name].append(wall)
            summary = result
    best_all, best_head = min(times["all"]), min(times["head"])
    # None when noise swamped the difference (a loaded machine): no figure rather than a wrong one.
    rate = (count - head_count) / (best_all - best_head) if best_all > best_head else None
    return {
        "img_s": rate,
        "img_s_with_startup": count / best_all,
        "startup_s": best_all - count / rate if rate else None,
        "walls": times,
        "workers_precision": (summary.get("device"), summary.get("precision")),
    }


# --- rescans ---------------------------------------------------------------------------------------------


def fill_database(db: Path, folder: Path, checkpoint: str) -> int:
    """Record every file under ``folder`` as scored, through ``Store.write``: the rows a finished
    ``score`` run leaves (files, images, scores for this checkpoint's key)."""
    from aesthete.discover import discover
    from aesthete.scoring import choose_model
    from aesthete.store import Store, now_iso

    key = choose_model(None, checkpoint).key
    assert key is not None
    store = Store(db)
    now, count, chunk = now_iso(), 0, 10_000
    found = list(discover([folder]))
    for start in range(0, len(found), chunk):
        files, images, scores = [], [], []
        for entry in found[start : start + chunk]:
            digest = f"xxh128:bench{count:027d}"
            count += 1
            files.append({"path": entry.path, "raw_path": None, "size": entry.size, "mtime_ns": entry.mtime_ns,
                          "content_hash": digest, "status": "ok", "error_kind": None, "error": None,
                          "first_seen": now, "last_seen": now})  # fmt: skip
            images.append({"content_hash": digest, "width": 6000, "height": 4000, "format": "JPEG"})
            scores.append({"content_hash": digest, "model": key.model, "weights_id": key.weights_id,
                           "preprocess": key.preprocess, "dist": "[" + ",".join(["0.1"] * 10) + "]", "mean": 5.5,
                           "std": 2.87, "p_high": 0.5, "scored_at": now})  # fmt: skip
        store.write(files=files, images=images, scores=scores)
    store.close()
    return count


# Runs the CLI in a fresh interpreter and reports what it imported and its memory. The workers' peaks
# are sampled from /proc (every 50 ms): RUSAGE_CHILDREN cannot tell them, since any child this big
# process forks to run a small program (torch's import does) keeps the parent's size as its peak.
_PROBE = """
import json, os, resource, runpy, sys, threading, time
peaks = {"workers_kib": 0, "tree_kib": 0}
def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return {k: int(v.split()[0]) for k, v in (l.split(":", 1) for l in f) if k in ("VmRSS", "VmHWM")}
def sample():
    me = os.getpid()
    while True:
        try:
            kids = [int(p) for t in os.listdir(f"/proc/{me}/task")
                    for p in open(f"/proc/{me}/task/{t}/children").read().split()]
            tree = status(me)["VmRSS"]
            for kid in kids:
                st = status(kid)
                tree += st["VmRSS"]
                peaks["workers_kib"] = max(peaks["workers_kib"], st["VmHWM"])
            peaks["tree_kib"] = max(peaks["tree_kib"], tree)
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
sys.argv = ["aesthete", *sys.argv[2:]]
try:
    runpy.run_module("aesthete", run_name="__main__")
except SystemExit:
    pass
finally:
    with open(os.environ["BENCH_PROBE"], "w") as out:
        json.dump({"torch_imported": "torch" in sys.modules,
                   "pil_jpeg_loaded": "PIL.JpegImagePlugin" in sys.modules,
                   "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, **peaks}, out)
"""


def probed(args: Sequence[str], env: dict[str, str], work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``aesthete ARGS`` in a fresh interpreter that reports what it imported and its peak RSS (its
    own, its largest decode worker's, and that of the whole process tree, sampled)."""
    probe = work / "probe.json"
    done = subprocess.run([sys.executable, "-c", _PROBE, "-", *args], env=dict(env, BENCH_PROBE=str(probe)),
                          capture_output=True, text=True, check=False)  # fmt: skip
    return score_json(done), json.loads(probe.read_text())


def rescan(folder: Path, count: int, db: Path, checkpoint: str, env: dict[str, str], work: Path,
           runs: int) -> dict[str, Any]:  # fmt: skip
    """Wall time of ``aesthete score`` over ``count`` unchanged, already-scored photos (after one run
    that warms the OS caches), and proof that it imported no torch and decoded nothing."""
    args = ("score", str(folder), "--weights", checkpoint, "--db", str(db), "--json")
    result, probe = probed(args, env, work)
    if result["cached"] != count or result["scored"] or result["failed"] or result.get("analysed"):
        raise RuntimeError(f"rescan was not a rescan: {result}")
    walls = [timed(aesthete_cmd(*args), env)[0] for _ in range(runs)]
    return {"count": count, "s": spread(walls), "torch_imported": probe["torch_imported"],
            "pil_jpeg_loaded": probe["pil_jpeg_loaded"]}  # fmt: skip


# --- peak memory -----------------------------------------------------------------------------------------


def peak_rss(folder: Path, count: int, checkpoint: str, env: dict[str, str], work: Path) -> dict[str, Any]:
    db = work / f"rss{count}.db"
    for leftover in work.glob(f"rss{count}.db*"):
        leftover.unlink()
    args = ("score", str(folder), "--weights", checkpoint, "--db", str(db), "--device", "cpu",
            "--workers", str(cores()), "--json")  # fmt: skip
    result, probe = probed(args, env, work)
    if result["scored"] != count:
        raise RuntimeError(f"memory run scored {result['scored']} of {count}: {result.get('failed')}")
    return {"main_mib": probe["maxrss_kib"] / 1024, "worker_mib": probe["workers_kib"] / 1024,
            "tree_mib": probe["tree_kib"] / 1024,
            "img_s": result["throughput"], "db": str(db)}  # fmt: skip


# --- start-up ----------------------------------------------------------------------------------------------


def startup(env: dict[str, str], runs: int) -> dict[str, Any]:
    timed(aesthete_cmd("--help"), env)  # warm-up: the OS file cache
    help_walls = [timed(aesthete_cmd("--help"), env)[0] for _ in range(runs)]
    bare = [timed([sys.executable, "-c", "pass"], env)[0] for _ in range(runs)]
    return {"help_s": spread(help_walls), "python_s": spread(bare)}


# --- RAW previews ---------------------------------------------------------------------------------------


def raw_supported() -> bool:
    """Whether this build scores camera RAW files (through their embedded previews)."""
    from aesthete.discover import SUPPORTED_EXTENSIONS

    return ".dng" in SUPPORTED_EXTENSIONS


# --- report ------------------------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    by = {row["size"]: row for row in results["sizes"]}
    out = []

    def add(name: str, value: float | None, limit: float, unit: str, higher_is_better: bool) -> None:
        met = None if value is None else (value >= limit if higher_is_better else value < limit)
        out.append({"target": name, "value": value, "limit": limit, "unit": unit, "met": met})

    big = by.get("24 MP")
    if big:
        add("24 MP e2e / stage-sum limit", big["e2e_vs_stage_sum"], 0.90, "ratio", True)
        add("24 MP e2e / naive", big["e2e_vs_naive"], 5.0, "x", True)
    small = by.get("0.2 MP")
    if small:
        add("0.2 MP e2e / model-only", small["e2e_vs_model"], 0.90, "ratio", True)
    placeholder = {row["count"]: row for what, row in results["rescan"].items() if "placeholder" in what}
    for count, limit in zip(results["plan"]["rescans"], (1.0, 5.0)):
        add(f"rescan {count:,} unchanged", placeholder[count]["s"]["median"], limit, "s", False)
    small_n, big_n = results["plan"]["rss"]
    many, few = results["rss"][str(big_n)], results["rss"][str(small_n)]
    growth = max(many[k] / few[k] for k in ("main_mib", "tree_mib")) - 1  # the main process and all together
    add(f"peak RSS {big_n:,} vs {small_n:,} photos", growth, 0.10, "growth", False)
    add("aesthete --help", results["startup"]["help_s"]["median"], 0.5, "s", False)
    return out


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM; Python {m['python']}, torch {m['torch']}, "
        f"Pillow {m['pillow']}; device {m['device']}" + (f" ({m['gpu']})" if m.get("gpu") else "") + f", precision "
        f"{m['precision']} (native bf16: {m['native_bf16']}), torch threads {m['torch_threads']}.",
        f"Model: `{MODEL}` (ResNet-50 at 300x300), freshly initialised weights saved as a checkpoint by the "
        "benchmark (speed does not depend on the values). Load average at start / end: "
        f"{results['load_start']} / {results['load_end']}.",
        "",
        "| photos | JPEG size | model-only img/s | decode-only img/s, 1 worker | decode-only img/s, all workers "
        "| decode core-ms/photo (of which pixel decode) | stage-sum limit img/s | e2e `score` img/s (with start-up) "
        "| naive img/s | e2e / model-only | e2e / stage-sum | e2e / naive |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["sizes"]:
        lines.append(
            f"| {row['size']} ({row['pixels']}) | {row['jpeg_mb']:.2f} MB | {row['model_img_s']:.1f} "
            f"| {row['decode1_img_s']:.1f} | {row['decodeN_img_s']:.1f} ({row['decode_workers']}) "
            f"| {row['decode_core_ms']:.1f} ({row['pixel_decode_ms']:.1f}) | {_fmt(row['stage_sum_img_s'])} "
            f"| {_fmt(row['e2e_img_s'])} ({row['e2e_with_startup_img_s']:.1f}) "
            f"| {_fmt(row['naive_img_s'], '{:.2f}')} "
            f"| {_fmt(row['e2e_vs_model'], '{:.0%}')} | {_fmt(row['e2e_vs_stage_sum'], '{:.0%}')} "
            f"| {_fmt(row['e2e_vs_naive'], '{:.1f}x')} |"
        )
    if results["raw_previews"]:
        lines.append(f"| {RAW_LABEL} | {results['raw_previews']} |" + " |" * 10)
    lanes = [f"{row['size']} {row['gpu_decode_lane_img_s']:.0f} img/s" for row in results["sizes"]
             if row["gpu_decode_lane_img_s"]]  # fmt: skip
    if lanes:
        lines += ["", "GPU decode lane (nvJPEG, resize on the GPU, batch 32): " + ", ".join(lanes) + "."]
    model = results["model"]
    startups = ", ".join(_fmt(row["e2e_startup_s"], "{:.1f} s") for row in results["sizes"])
    lines += [
        "",
        f"Model-only: batch {model['batch']}, {model['threads']} threads, {model['precision']}; measured in a "
        "fresh process just before each row's end-to-end runs, CPU time per photo "
        + ", ".join(f"{row['model_core_ms']:.0f}" for row in results["sizes"])
        + f" core-ms (last one held {_fmt(model['held_core_s_per_img'], '{:.3f}')} core-s/img: threads x wall); "
        "the stage-sum limit is cores / (model CPU core-s + decode core-s) per photo. End-to-end start-up "
        "(interpreter, torch import, "
        f"model load, fixed per run): {startups}.",
        "",
        "| other | figure |",
        "|---|---|",
    ]
    for what, row in results["rescan"].items():
        s = row["s"]
        lines.append(f"| rescan, nothing changed: {what} | {s['median']:.2f} s "
                     f"(min {s['min']:.2f}, max {s['max']:.2f}); torch imported: {row['torch_imported']}, "
                     f"JPEG decoder loaded: {row['pil_jpeg_loaded']} |")  # fmt: skip
    for n, row in results["rss"].items():
        lines.append(f"| peak RSS scoring {int(n):,} small photos ({results['rss_model']}) | main process "
                     f"{row['main_mib']:.0f} MiB, largest decode worker {row['worker_mib']:.0f} MiB, all processes "
                     f"{row['tree_mib']:.0f} MiB "
                     f"({row['img_s']:.0f} img/s) |")  # fmt: skip
    h, p = results["startup"]["help_s"], results["startup"]["python_s"]
    lines.append(f"| `aesthete --help` | {h['median']:.2f} s (min {h['min']:.2f}, max {h['max']:.2f}); "
                 f"bare `python -c pass` {p['median']:.2f} s |")  # fmt: skip
    lines += ["", "| target | measured | limit | met |", "|---|---|---|---|"]
    for t in results["targets"]:
        value = _fmt(t["value"], "{:.0%}" if t["unit"] in ("ratio", "growth") else "{:.2f}")
        limit = f"{t['limit']:.0%}" if t["unit"] in ("ratio", "growth") else f"{t['limit']:g}"
        limit = f"{'>=' if t['unit'] in ('ratio', 'x') else '<'} {limit}{' x' if t['unit'] == 'x' else ''}"
        limit += " s" if t["unit"] == "s" else ""
        lines.append(f"| {t['target']} | {value}{'x' if t['unit'] == 'x' else ''} | {limit} | "
                     f"{'n/a' if t['met'] is None else 'yes' if t['met'] else 'NO'} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, spec: str = "{:.1f}") -> str:
    return "n/a" if value is None else spec.format(value)


# --- main --------------------------------------------------------------------------------------------------


@dataclass
class Assets:
    checkpoint: str  # MODEL, full size
    tiny: str  # MODEL with a ResNet-18 trunk at 64 px, for the memory runs
    sets: dict[str, tuple[list[Path], Path]]  # size label -> (photos, folder of the first ``head`` of them)
    small: Path  # the memory runs' photos: all of them, and (``small_head``) the first rss[0]
    small_head: Path
    placeholders: dict[int, tuple[Path, Path]]  # count -> (folder, database recording them all as scored)


def prepare(work: Path, plan: Plan) -> Assets:
    """Everything the measurements read, made once and kept in ``work`` (photos take minutes to make)."""
    checkpoint, tiny = str(work / f"{MODEL}-bench.safetensors"), str(work / f"{MODEL}-tiny-bench.safetensors")
    for path, config in ((checkpoint, {}), (tiny, TINY)):
        if not Path(path).exists():
            in_fresh_process(make_checkpoint, path, MODEL, config)
    sets = {}
    for size in plan.sizes:
        if size.raw and not raw_supported():
            continue
        log(f"photos: {size.count} x {size.label}")
        name = f"{size.width}x{size.height}"
        paths = photos.photo_set(work / "photos" / name, (size.width, size.height), size.count, processes=cores())
        if size.raw:
            name = f"raw-{name}"
            paths = photos.raw_set(work / "photos" / name, paths)
        sets[size.label] = (paths, photos.linked_subset(paths[: size.head], work / "photos" / f"{name}-head"))
    small_n, big_n = plan.rss
    log(f"photos: {big_n} small")
    small = photos.small_photos(work / "small", big_n, size=SMALL)
    small_head = work / "small-head"
    if not small_head.exists():  # the first small_n photos, as their own tree of hard links
        for path in sorted(small.rglob("*.jpg"))[:small_n]:
            photos.linked_subset([path], small_head / path.parent.name)
    placeholders = {}
    for count in plan.rescans:
        log(f"placeholders: {count}")
        folder, db = work / f"placeholders{count}", work / f"placeholders{count}.db"
        if not db.exists():
            photos.placeholder_files(folder, count)
            fill_database(db, folder, checkpoint)
        placeholders[count] = (folder, db)
    return Assets(checkpoint, tiny, sets, small, small_head, placeholders)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few photos of each kind: a smoke run")
    parser.add_argument("--prepare", action="store_true", help="only make the photos, checkpoints and databases")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (the table says which ran)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/aesthete-bench"), help="photos, checkpoints, DBs")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    work: Path = args.work / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    env = subprocess_env(work / "home")
    os.environ.update({k: v for k, v in env.items() if k.startswith("AESTHETE_")})  # choose_model, in here too
    assets = prepare(work, plan)
    if args.prepare:
        return
    results: dict[str, Any] = {"plan": {"rescans": plan.rescans, "rss": plan.rss}, "load_start": os.getloadavg()[:3]}
    log("machine")
    results["machine"] = machine(args.device)
    checkpoint = assets.checkpoint
    rows = []
    for size in plan.sizes:
        if size.label not in assets.sets:
            continue  # RAW previews, where this build reads no RAW files
        paths, head = assets.sets[size.label]
        log(f"{size.label}: decode only")
        one = decode_only(paths[: size.decode_count], checkpoint, 1)
        workers = cores()
        many = decode_only(paths[: size.decode_count * workers], checkpoint, workers)
        pixel_s = pixel_decode_seconds(paths[: max(4, size.decode_count // 4)], checkpoint)
        gpu_lane = None
        if results["machine"]["device"].startswith("cuda"):
            log(f"{size.label}: GPU decode lane")
            side = read_meta(checkpoint)["policy"]["size"]
            gpu_lane = in_fresh_process(gpu_decode_lane, [str(p) for p in paths[: size.decode_count * 4]], side)
        naive_row = None
        if size.naive_count:
            log(f"{size.label}: naive")
            naive_paths = [str(p) for p in paths[: size.naive_count]]
            naive_row = in_fresh_process(naive, checkpoint, naive_paths, args.device)
        # Model-only next to each end-to-end run: this machine's speed drifts by tens of percent over
        # minutes (other tenants), and a ratio is only as good as the time between its two figures.
        log(f"{size.label}: model only")
        model = in_fresh_process(model_only, checkpoint, args.device, "auto", plan.model_seconds)
        results["model"] = model
        log(f"{size.label}: end to end")
        e2e = end_to_end(paths[0].parent, head, size.count, size.head, checkpoint, args.device, work, env,
                         plan.repeats)  # fmt: skip
        stage_sum = None
        if model["core_s_per_img"] is not None:
            stage_sum = cores() / (model["core_s_per_img"] + one["core_s_per_img"])
        rows.append({
            "size": size.label, "pixels": f"{size.width}x{size.height}",
            "jpeg_mb": statistics.mean(p.stat().st_size for p in paths) / 1e6,
            "model_img_s": model["img_s"], "model_core_ms": (model["core_s_per_img"] or 0) * 1000,
            "decode1_img_s": one["img_s"], "decodeN_img_s": many["img_s"],
            "decode_workers": workers, "decode_core_ms": one["core_s_per_img"] * 1000,
            "pixel_decode_ms": pixel_s * 1000, "stage_sum_img_s": stage_sum, "e2e_img_s": e2e["img_s"],
            "e2e_with_startup_img_s": e2e["img_s_with_startup"], "e2e_walls": e2e["walls"],
            "e2e_startup_s": e2e["startup_s"], "naive_img_s": naive_row["img_s"] if naive_row else None,
            "gpu_decode_lane_img_s": gpu_lane["img_s"] if gpu_lane else None,
            "e2e_vs_model": e2e["img_s"] / model["img_s"] if e2e["img_s"] else None,
            "e2e_vs_stage_sum": e2e["img_s"] / stage_sum if stage_sum and e2e["img_s"] else None,
            "e2e_vs_naive": e2e["img_s"] / naive_row["img_s"] if naive_row and e2e["img_s"] else None,
        })  # fmt: skip
        log(f"{size.label}: {rows[-1]}")
    results["sizes"] = rows
    results["raw_previews"] = None if raw_supported() else "not measured: this build reads no RAW files"

    log("peak RSS")
    small_n, big_n = plan.rss
    results["rss_model"] = f"{MODEL} with a ResNet-18 trunk at 64x64 on cpu, {cores()} decode workers; " \
        f"{SMALL[0]}x{SMALL[1]} JPEGs"  # fmt: skip
    results["rss"] = {
        str(small_n): peak_rss(assets.small_head, small_n, assets.tiny, env, work),
        str(big_n): peak_rss(assets.small, big_n, assets.tiny, env, work),
    }

    log("rescans")
    results["rescan"] = {}
    for count, (folder, db) in assets.placeholders.items():
        row = rescan(folder, count, db, checkpoint, env, work, 5)
        results["rescan"][f"{count:,} placeholder files, rows written through Store.write"] = row
    real = rescan(assets.small, big_n, Path(results["rss"][str(big_n)]["db"]), assets.tiny, env, work, 5)
    results["rescan"][f"{big_n:,} real photos, scored by the memory run"] = real

    log("start-up")
    results["startup"] = startup(env, 10)
    results["load_end"] = os.getloadavg()[:3]
    results["targets"] = targets(results)
    text = markdown(results)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
