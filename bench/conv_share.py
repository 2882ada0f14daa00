"""How much of the CPU model stage is oneDNN's convolutions: the ceiling of any compiler that calls them.

    python bench/conv_share.py [--checkpoint FILE] [--batches 6] [--json FILE]

``score``'s runner (eager, then ``--compile on``; each in a fresh interpreter with ``ONEDNN_VERBOSE=1``)
scores the same uint8 batch a few times after its warm-up; oneDNN reports every primitive it executes
with its time, and this sums them by kind over the timed batches. Inductor (with ``freezing``) prepacks
the weights and fuses activations and adds into the convolutions, but oneDNN still runs them, so batch /
(the compiled runner's convolution ms per batch) bounds its speed: however well the rest is fused, it
cannot beat its convolutions alone. Without ``--checkpoint``: ``bench/run.py``'s nima (ResNet-50 at 300x300), made if
missing. Timings include oneDNN's logging (a line per primitive, ~100 per batch): the shares are what
this reports, ``bench/run.py --compiled-only`` the speeds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's aesthete and bench

from bench.assets import make_checkpoint  # noqa: E402
from bench.common import REPO, in_fresh_process, log, machine  # noqa: E402
from bench.plan import MODEL  # noqa: E402

MARK = "aesthete-bench: timed batches start"

CHILD = """
import sys, time
import numpy as np
from aesthete.pipeline import default_batch, load_runner
runner = load_runner(sys.argv[1], "cpu", "auto", compile=sys.argv[2])
batch = runner.batch_size = default_batch(runner)
policy = runner.model.policy
width, height = policy.resized_size(6000, 4000)
if policy.resize == "center_crop":
    width = height = policy.size
pixels = np.random.default_rng(0).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
aspect = np.full(batch, 1.5)
for _ in range(3):  # compilation (with --compile on), kernel selection, allocator growth
    runner(pixels, aspect)
print("{mark}", flush=True)
started = time.perf_counter()
for _ in range(int(sys.argv[3])):
    runner(pixels, aspect)
print("wall_s", time.perf_counter() - started, batch, runner.compiled, flush=True)
""".replace("{mark}", MARK)


def measure(checkpoint: str, compile: str, batches: int, cache: Path) -> dict[str, Any]:
    """One fresh interpreter's timed batches: wall ms per batch and oneDNN's ms per batch by primitive."""
    env = dict(os.environ, ONEDNN_VERBOSE="1", PYTHONPATH=str(REPO), AESTHETE_CACHE_DIR=str(cache))
    done = subprocess.run([sys.executable, "-c", CHILD, checkpoint, compile, str(batches)], env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    lines = done.stdout.splitlines()
    timed = lines[lines.index(MARK) + 1 :]
    by_kind: dict[str, float] = defaultdict(float)
    wall_s = batch = compiled = None
    for line in timed:
        fields = line.split(",")
        if line.startswith("onednn_verbose") and len(fields) > 6 and fields[3] == "exec":
            by_kind[fields[5]] += float(fields[-1])  # ms
        elif line.startswith("wall_s"):
            _, wall, size, flag = line.split()
            wall_s, batch, compiled = float(wall), int(size), flag == "True"
    if wall_s is None:
        raise RuntimeError(f"the timed child printed no wall time: {done.stderr.strip()[-400:]}")
    wall_ms = wall_s * 1000 / batches
    per_batch = {kind: ms / batches for kind, ms in sorted(by_kind.items())}
    conv_ms = per_batch.get("convolution", 0.0)
    return {
        "compile": compile, "compiled": compiled, "batch": batch, "wall_ms_per_batch": wall_ms,
        "onednn_ms_per_batch": per_batch, "conv_share": conv_ms / wall_ms,
        "img_s": batch * 1000 / wall_ms, "conv_only_img_s": batch * 1000 / conv_ms if conv_ms else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help=f"default: bench/run.py's {MODEL} (ResNet-50 at 300x300)")
    parser.add_argument("--batches", type=int, default=6, help="timed batches per runner")
    parser.add_argument("--work", type=Path, default=Path("/tmp/aesthete-bench/conv-share"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint or str(args.work / f"{MODEL}-bench.safetensors")
    if not Path(checkpoint).exists():
        in_fresh_process(make_checkpoint, checkpoint, MODEL, {})
    load_start = os.getloadavg()[:3]
    rows = []
    for compile in ("off", "on"):
        log(f"{Path(checkpoint).name}: --compile {compile}, ONEDNN_VERBOSE=1")
        rows.append(measure(checkpoint, compile, args.batches, args.work / "cache"))
    results = {"machine": machine("cpu"), "checkpoint": checkpoint, "rows": rows,
               "load": (load_start, os.getloadavg()[:3])}  # fmt: skip
    print(f"Load average at start / end: {results['load'][0]} / {results['load'][1]}\n")
    print("| runner | ms per batch | oneDNN convolution ms | other oneDNN ms | convolution share "
          "| img/s | convolutions alone img/s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        conv = row["onednn_ms_per_batch"].get("convolution", 0.0)
        other = sum(row["onednn_ms_per_batch"].values()) - conv
        name = "compiled (inductor, freezing)" if row["compiled"] else "eager"
        ceiling = row["conv_only_img_s"]
        print(f"| {name}, batch {row['batch']} | {row['wall_ms_per_batch']:.0f} | {conv:.0f} | {other:.0f} "
              f"| {row['conv_share']:.0%} | {row['img_s']:.1f} | {ceiling:.1f} |")  # fmt: skip
    eager = rows[0]
    if eager["conv_only_img_s"]:
        print(f"\nCeiling over eager: {eager['conv_only_img_s'] / eager['img_s']:.2f}x (the convolutions alone, "
              "at eager's own kernel speed)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
