"""Model-only throughput of the published checkpoints' architectures, on the CPU by default.

    python bench/published.py [--device cpu] [--seconds 10] [--batch N] [--quick] [--compiled]
                              [--end-to-end N] [--markdown FILE]

One row per published checkpoint: TOPIQ IAA on ResNet-50 (``topiq-iaa-r50-ava``, 384 px shorter side,
a 3:2 photo gives 576x384), NIMA on VGG16 with the last max-pool (``nima-vgg16-ava``, 224x224 centre
crop) and LAION's head on CLIP ViT-L/14 (``laion-aesthetic-v2``, 224x224 centre crop). Each is built at
its published size with freshly initialised weights (speed does not depend on their values), saved as an
aesthete checkpoint and timed by ``bench/stages/model_only.py`` in a fresh process: the runner ``score``
uses, its layout (channels-last, folded batch norm) and ``--precision auto``. ``--quick`` times one
warm-up and two batches of two photos: a smoke run for a small or shared machine, not a measurement to
compare with the full bench's rows.

``--end-to-end N`` adds, per checkpoint, the 24-MP rows of ``bench/run.py``: decode-only (the decode
worker's whole job at that checkpoint's input policy, one worker), the stage-sum limit (cores / (model
core-s + decode core-s per photo)) and ``aesthete score`` end to end on a cold database over N generated
6000x4000 JPEGs, less a run over the first quarter of them (so start-up cancels).

``--compiled`` adds, per checkpoint, ``bench/run.py``'s eager-vs-compiled rows (``score --compile off``
and ``on`` timed in turns in one process, the first compilation's cost with an empty inductor cache and
the cached one's in a second process).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's aesthete and bench

from aesthete.models.nima import NIMA_VGG16_PYIQA  # noqa: E402
from bench import photos  # noqa: E402
from bench.assets import make_checkpoint  # noqa: E402
from bench.common import cores, in_fresh_process, log, machine, subprocess_env  # noqa: E402
from bench.report import compiled_table  # noqa: E402
from bench.stages.compiled import compiled_rows  # noqa: E402
from bench.stages.decode import decode_only  # noqa: E402
from bench.stages.end_to_end import end_to_end  # noqa: E402
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
    parser.add_argument("--compiled", action="store_true", help="also eager-vs-compiled rows (--compile on)")
    parser.add_argument("--end-to-end", type=int, metavar="N", help="also 24-MP end-to-end rows on N photos")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    batch, warmup, runs, seconds = args.batch, 3, 5, args.seconds
    if args.quick:
        batch, warmup, runs, seconds = args.batch or 2, 1, 2, 0.0
    rows, compiled = [], []
    load_start = os.getloadavg()[:3]
    big = None
    if args.end_to_end:
        log(f"photos: {args.end_to_end} x 24 MP")
        paths = photos.photo_set(args.work / "photos" / "6000x4000", (6000, 4000), args.end_to_end, processes=cores())
        head_count = max(1, args.end_to_end // 4)
        big = (paths, head_count, photos.linked_subset(paths[:head_count], args.work / "photos" / "6000x4000-head"))
    for name, (arch, config) in PUBLISHED.items():
        if args.only and name != args.only:
            continue
        path = args.work / f"{name}-bench.safetensors"
        if not path.exists():
            log(f"{name}: building {arch} with fresh weights")
            in_fresh_process(make_checkpoint, str(path), arch, config)
        log(f"{name}: model only")
        row = in_fresh_process(_timed, str(path), args.device, args.precision, seconds, batch, warmup, runs)
        if big is not None:
            row.update(_end_to_end(str(path), row, big, args))
        rows.append({"entry": name, "arch": arch, **row})
        log(f"{name}: {row}")
        if args.compiled:
            compiled += compiled_rows({name: str(path)}, args.device, seconds or 1.0, args.work)
    results = {
        "machine": machine(args.device), "quick": args.quick, "rows": rows, "compiled": compiled,
        "load": (load_start, os.getloadavg()[:3]),
    }  # fmt: skip
    text = markdown(results)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _timed(path: str, device: str, precision: str, seconds: float, batch: int | None, warmup: int, runs: int) -> dict:
    return model_only(path, device, precision, seconds, batch=batch, warmup=warmup, min_runs=runs)


def _end_to_end(path: str, model: dict, big: tuple[list[Path], int, Path], args: argparse.Namespace) -> dict:
    """The 24-MP rows for one checkpoint: decode-only, the stage-sum limit and ``score`` end to end."""
    paths, head_count, head = big
    log(f"{Path(path).name}: 24 MP decode only")
    one = decode_only(paths[: min(len(paths), 16)], path, 1)
    stage_sum = cores() / (model["core_s_per_img"] + one["core_s_per_img"]) if model["core_s_per_img"] else None
    log(f"{Path(path).name}: 24 MP end to end")
    work = args.work / "e2e"
    work.mkdir(exist_ok=True)
    e2e = end_to_end(paths[0].parent, head, len(paths), head_count, path, args.device, work,
                     subprocess_env(args.work / "home"), 1)  # fmt: skip
    return {
        "decode_core_ms": one["core_s_per_img"] * 1000, "stage_sum_img_s": stage_sum, "e2e_img_s": e2e["img_s"],
        "e2e_startup_s": e2e["startup_s"], "e2e_photos": len(paths),
        "e2e_vs_stage_sum": e2e["img_s"] / stage_sum if stage_sum and e2e["img_s"] else None,
    }  # fmt: skip


def markdown(results: dict) -> str:
    machine_line = ", ".join(f"{k} {v}" for k, v in results["machine"].items())
    lines = [
        f"Machine: {machine_line}" + (" (quick smoke run: few passes)" if results["quick"] else ""),
        f"Load average (1, 5, 15 min) at start / end: {results['load'][0]} / {results['load'][1]}",
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
    e2e = [row for row in results["rows"] if "e2e_img_s" in row]
    if e2e:
        lines += [
            "",
            f"24 MP (6000x4000 JPEGs), `aesthete score` on a cold database, {e2e[0]['e2e_photos']} photos "
            "less a run over the first quarter:",
            "",
            "| checkpoint | model-only img/s | decode core-ms/photo | stage-sum limit img/s | e2e img/s "
            "| e2e / stage-sum | start-up s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in e2e:
            lines.append(
                f"| {row['entry']} | {row['img_s']:.2f} | {row['decode_core_ms']:.0f} | {_fmt(row['stage_sum_img_s'])} "
                f"| {_fmt(row['e2e_img_s'])} | {_fmt(row['e2e_vs_stage_sum'], '{:.0%}')} "
                f"| {_fmt(row['e2e_startup_s'], '{:.1f}')} |"
            )
    lines += compiled_table(results["compiled"])
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, spec: str = "{:.2f}") -> str:
    return "-" if value is None else spec.format(value)


if __name__ == "__main__":
    main()
