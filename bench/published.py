"""Model-only throughput of the published checkpoints' architectures, on the CPU by default.

    python bench/published.py [--device cpu] [--seconds 10] [--batch N] [--quick] [--markdown FILE]

One row per published checkpoint: TOPIQ IAA on ResNet-50 (``topiq-iaa-r50-ava``, 384 px shorter side,
a 3:2 photo gives 576x384), NIMA on VGG16 with the last max-pool (``nima-vgg16-ava``, 224x224 centre
crop) and LAION's head on CLIP ViT-L/14 (``laion-aesthetic-v2``, 224x224 centre crop). Each is built at
its published size with freshly initialised weights (speed does not depend on their values), saved as an
aesthete checkpoint and timed by ``bench/stages/model_only.py`` in a fresh process: the runner ``score``
uses, its layout (channels-last, folded batch norm) and ``--precision auto``. ``--quick`` times one
warm-up and two batches of two photos: a smoke run for a small or shared machine, not a measurement to
compare with the full bench's rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's aesthete and bench

from aesthete.models.nima import NIMA_VGG16_PYIQA  # noqa: E402
from bench.assets import make_checkpoint  # noqa: E402
from bench.common import in_fresh_process, log, machine  # noqa: E402
from bench.stages.model_only import model_only  # noqa: E402

# entry name -> (architecture, config): the configs the converters write (aesthete/convert.py's recipes).
PUBLISHED = {
    "topiq-iaa-r50-ava": ("topiq-iaa", {}),
    "nima-vgg16-ava": ("nima", dict(NIMA_VGG16_PYIQA)),
    "laion-aesthetic-v2": ("laion-aesthetic", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seconds", type=float, default=10.0, help="least timed seconds per model")
    parser.add_argument("--batch", type=int, help="photos per batch (default: score's)")
    parser.add_argument("--quick", action="store_true", help="1 warm-up, 2 batches of 2: a smoke run")
    parser.add_argument("--only", help="one entry name")
    parser.add_argument("--work", type=Path, default=Path("/tmp/aesthete-bench/published"))
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    batch, warmup, runs, seconds = args.batch, 3, 5, args.seconds
    if args.quick:
        batch, warmup, runs, seconds = args.batch or 2, 1, 2, 0.0
    rows = []
    for name, (arch, config) in PUBLISHED.items():
        if args.only and name != args.only:
            continue
        path = args.work / f"{name}-bench.safetensors"
        if not path.exists():
            log(f"{name}: building {arch} with fresh weights")
            in_fresh_process(make_checkpoint, str(path), arch, config)
        log(f"{name}: model only")
        row = in_fresh_process(_timed, str(path), args.device, args.precision, seconds, batch, warmup, runs)
        rows.append({"entry": name, "arch": arch, **row})
        log(f"{name}: {row}")
    results = {"machine": machine(args.device), "quick": args.quick, "rows": rows}
    text = markdown(results)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _timed(path: str, device: str, precision: str, seconds: float, batch: int | None, warmup: int, runs: int) -> dict:
    return model_only(path, device, precision, seconds, batch=batch, warmup=warmup, min_runs=runs)


def markdown(results: dict) -> str:
    machine_line = ", ".join(f"{k} {v}" for k, v in results["machine"].items())
    lines = [
        f"Machine: {machine_line}" + (" (quick smoke run: few passes)" if results["quick"] else ""),
        "",
        "| checkpoint | model | input | batch | precision | threads | photos/s | core-ms/photo |",
        "|---|---|---|---:|---|---:|---:|---:|",
    ]
    for row in results["rows"]:
        core = f"{row['core_s_per_img'] * 1000:.0f}" if row["core_s_per_img"] is not None else "-"
        lines.append(
            f"| {row['entry']} | {row['arch']} | {row['input']} | {row['batch']} | {row['precision']} "
            f"| {row['threads']} | {row['img_s']:.2f} | {core} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
