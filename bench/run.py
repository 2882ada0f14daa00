"""aesthete's benchmark: every stage of ``score`` and the whole, side by side, in one run.

    python bench/run.py [--prepare] [--quick] [--device cpu|cuda|auto] [--gpu-only] [--compiled-only]
                        [--size LABEL] [--markdown FILE] [--json FILE]

On the same generated photos at 0.2, 12 and 24 MP, and DNGs holding the 24-MP ones as previews, it
measures model-only throughput (the model as ``score`` runs it: same runner, batch, threads and
precision), decode-only throughput (the decode worker's whole job per file, one worker and one per
core), end-to-end ``score`` on a cold database (the CLI in a fresh process, as a user runs it), the
naive pipeline (full decode, resize, NCHW float32, batch 1, same model and weights), rescans of 10,000
and 100,000 unchanged photos, peak RSS while scoring 1,000 and 10,000 photos, and ``aesthete --help``
start-up; then checks the targets of issues 7 and 16. First come the model-only rows of eager and
compiled (``--compile on``) runners side by side, with the first compilation's cost and the cached one's
(``--compiled-only`` stops after them, ``--skip-compiled`` leaves them out). On CUDA it adds the
nvJPEG decode lane and an end-to-end row of ``score --decode device``; ``--device cuda`` takes the
CUDA plan (``bench/plan.py``) and ``--gpu-only`` skips the CPU-only rows (rescans, RSS, start-up).
Weights are freshly initialised (speed does not depend on their values) and saved as a checkpoint
through ``aesthete.checkpoint.save_checkpoint``.

Every measurement that needs a clean interpreter gets one: torch is imported only in spawned
processes, so the decode workers this process forks are as small as those ``score`` forks.

The stages live in ``bench/stages/`` (one module each), the photo sizes and counts in ``bench/plan.py``,
the photos, checkpoints and databases in ``bench/assets.py`` and the tables and targets in
``bench/report.py``; this file runs them in order.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's aesthete and bench

from aesthete.checkpoint import read_meta  # noqa: E402 (torch-free)
from bench.assets import make_checkpoint, prepare  # noqa: E402
from bench.common import cores, in_fresh_process, log, machine, subprocess_env  # noqa: E402
from bench.plan import CUDA, FULL, MODEL, QUICK, SMALL  # noqa: E402
from bench.report import markdown, targets  # noqa: E402
from bench.stages.compiled import compiled_rows  # noqa: E402
from bench.stages.decode import decode_only, gpu_decode_lane, pixel_decode_seconds, takes_lane  # noqa: E402
from bench.stages.end_to_end import end_to_end, score_once  # noqa: E402
from bench.stages.handback import handback  # noqa: E402
from bench.stages.host import host_ceiling  # noqa: E402
from bench.stages.memory import peak_rss  # noqa: E402
from bench.stages.model_only import model_only  # noqa: E402
from bench.stages.naive import naive  # noqa: E402
from bench.stages.rescan import rescan  # noqa: E402
from bench.stages.startup import startup  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few photos of each kind: a smoke run")
    parser.add_argument("--prepare", action="store_true", help="only make the photos, checkpoints and databases")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (the table says which ran)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/aesthete-bench"), help="photos, checkpoints, DBs")
    parser.add_argument("--gpu-only", action="store_true", help="skip the CPU-only rows: rescans, RSS, start-up")
    parser.add_argument("--compiled-only", action="store_true", help="only the eager-vs-compiled model rows")
    parser.add_argument("--skip-compiled", action="store_true", help="no eager-vs-compiled model rows")
    parser.add_argument("--size", action="append", metavar="LABEL",
                        help="only this photo size of the plan, e.g. '0.2 MP' (repeatable)")  # fmt: skip
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    plan = QUICK if args.quick else CUDA if args.device.startswith("cuda") else FULL
    work: Path = args.work / ("quick" if args.quick else "cuda" if plan is CUDA else "full")
    if args.size:  # a short run on a lent GPU: the rows still missing, no others
        unknown = set(args.size) - {size.label for size in plan.sizes}
        if unknown:
            parser.error(f"no such size in the plan: {', '.join(sorted(unknown))}")
        plan = replace(plan, sizes=tuple(size for size in plan.sizes if size.label in args.size))
    work.mkdir(parents=True, exist_ok=True)
    env = subprocess_env(work / "home")
    os.environ.update({k: v for k, v in env.items() if k.startswith("AESTHETE_")})  # choose_model, in here too
    if args.compiled_only:  # the model rows need one checkpoint, none of the photos (minutes to make)
        checkpoint = str(work / f"{MODEL}-bench.safetensors")
        if not Path(checkpoint).exists():
            in_fresh_process(make_checkpoint, checkpoint, MODEL, {})
    else:
        assets = prepare(work, plan)
        checkpoint = assets.checkpoint
    if args.prepare:
        return
    results: dict[str, Any] = {"plan": {"rescans": plan.rescans, "rss": plan.rss}, "load_start": os.getloadavg()[:3]}
    log("machine")
    results["machine"] = machine(args.device)
    models = {}
    for label, arch, config in () if args.skip_compiled else plan.compile_models:
        path = work / f"{arch}-compile-bench.safetensors"
        if arch == MODEL and not config:
            models[label] = checkpoint
            continue
        if not path.exists():
            in_fresh_process(make_checkpoint, str(path), arch, config)
        models[label] = str(path)
    if models:
        results["compiled"] = compiled_rows(models, args.device, plan.model_seconds, work)
    if args.compiled_only:
        _finish(results, args)
        return
    rows = []
    for size in plan.sizes:
        paths, head = assets.sets[size.label]
        log(f"{size.label}: decode only")
        one = decode_only(paths[: size.decode_count], checkpoint, 1)
        workers = cores()
        many = decode_only(paths[: size.decode_count * workers], checkpoint, workers)
        # The workers' share of `score --decode device` (read, hash, EXIF; the bytes back): what they can feed
        # it, for the sizes it takes (24-MP JPEGs shrink while decoding and stay with the workers).
        lane_feed = {"img_s": None, "core_s_per_img": None, "lane_share": 0.0}
        if takes_lane(paths[0], checkpoint):
            lane_feed = decode_only(paths[: size.decode_count * workers], checkpoint, workers, device_lane=True)
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
        lane_e2e = None
        if gpu_lane is not None:  # score with the device lane (faces, if installed, skipped in its photos)
            log(f"{size.label}: end to end, --decode device")
            lane_e2e = end_to_end(paths[0].parent, head, size.count, size.head, checkpoint, args.device, work, env,
                                  plan.repeats, ("--decode", "device"))  # fmt: skip
        compiled = None
        if size.label in plan.compiled_e2e and not args.skip_compiled:
            compiled = compiled_end_to_end(size, paths[0].parent, head, checkpoint, args.device, work, env, plan,
                                           one["core_s_per_img"])  # fmt: skip
        log(f"{size.label}: score without the model's forward pass")
        host = host_ceiling(paths[0].parent, head, size.count, size.head, checkpoint, args.device, work)
        stage_sum = stage_sum_limit(model["core_s_per_img"], one["core_s_per_img"])
        rows.append({
            "size": size.label, "pixels": f"{size.width}x{size.height}",
            "jpeg_mb": statistics.mean(p.stat().st_size for p in paths) / 1e6,
            "model_img_s": model["img_s"], "model_core_ms": (model["core_s_per_img"] or 0) * 1000,
            "decode1_img_s": one["img_s"], "decodeN_img_s": many["img_s"],
            "lane_feed_img_s": lane_feed["img_s"], "lane_feed_core_ms": (lane_feed["core_s_per_img"] or 0) * 1000,
            "lane_feed_share": lane_feed["lane_share"],
            "decode_workers": workers, "decode_core_ms": one["core_s_per_img"] * 1000,
            "pixel_decode_ms": pixel_s * 1000, "stage_sum_img_s": stage_sum, "e2e_img_s": e2e["img_s"],
            "e2e_with_startup_img_s": e2e["img_s_with_startup"], "e2e_walls": e2e["walls"],
            "e2e_startup_s": e2e["startup_s"], "naive_img_s": naive_row["img_s"] if naive_row else None,
            "gpu_decode_lane_img_s": gpu_lane["img_s"] if gpu_lane else None,
            "e2e_device_lane_img_s": lane_e2e["img_s"] if lane_e2e else None,
            "e2e_device_lane_walls": lane_e2e["walls"] if lane_e2e else None,
            "e2e_device_decoded": lane_e2e["device_decoded"] if lane_e2e else None,
            "host_only_img_s": host["img_s"], "host_main_process_cpu_ms": host["main_process_cpu_ms"],
            "host_main_thread_cpu_ms": host["main_thread_cpu_ms"],
            "e2e_vs_model": e2e["img_s"] / model["img_s"] if e2e["img_s"] else None,
            "e2e_vs_stage_sum": e2e["img_s"] / stage_sum if stage_sum and e2e["img_s"] else None,
            "e2e_vs_naive": e2e["img_s"] / naive_row["img_s"] if naive_row and e2e["img_s"] else None,
            "compiled": compiled,
        })  # fmt: skip
        log(f"{size.label}: {rows[-1]}")
    results["sizes"] = rows
    log("hand-back of model inputs: pipe and shared slots")
    results["handback"] = handback(input_shape(checkpoint, plan.sizes[0]), cores(), plan.handback_photos)
    if args.gpu_only:
        _finish(results, args)
        return

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
    _finish(results, args)


def compiled_end_to_end(size: Any, folder: Path, head: Path, checkpoint: str, device: str, work: Path,
                        env: dict[str, str], plan: Any, decode_core_s: float) -> dict[str, Any]:  # fmt: skip
    """``score --compile on`` end to end, next to the compiled model-only figure and the stage-sum limit
    that figure sets. An untimed run fills the inductor cache first; loading the compiled code from it is
    then paid by both timed runs (the whole set and its head) and cancels in their difference, as the
    start-up does."""
    log(f"{size.label}: model only, compiled")
    model = in_fresh_process(model_only, checkpoint, device, "auto", plan.model_seconds, "on")
    if not model["compiled"]:
        raise RuntimeError(f"the compiled model-only runner did not compile: {model['compile_failure']}")
    log(f"{size.label}: end to end, --compile on")
    options = ("--compile", "on")
    # One untimed run first, so that every timed one finds the compiled code in the inductor cache.
    warm = score_once(head, size.head, checkpoint, device, work, env, options)[1]
    e2e = end_to_end(folder, head, size.count, size.head, checkpoint, device, work, env, plan.compiled_repeats,
                     options)  # fmt: skip
    if not (warm.get("compiled") and e2e["compiled"]):
        raise RuntimeError("score --compile on did not run compiled (its JSON summary's 'compiled')")
    stage_sum = stage_sum_limit(model["core_s_per_img"], decode_core_s)
    rate = e2e["img_s"]
    return {
        "model_img_s": model["img_s"], "model_core_ms": (model["core_s_per_img"] or 0) * 1000,
        "stage_sum_img_s": stage_sum, "e2e_img_s": rate, "e2e_walls": e2e["walls"],
        "e2e_vs_model": rate / model["img_s"] if rate else None,
        "e2e_vs_stage_sum": rate / stage_sum if rate and stage_sum else None,
    }  # fmt: skip


def stage_sum_limit(model_core_s: float | None, decode_core_s: float) -> float | None:
    """Photos a second if every core did nothing but the model's and the decoder's work (None: the model's
    CPU time was not measured)."""
    return cores() / (model_core_s + decode_core_s) if model_core_s else None


def input_shape(checkpoint: str, size: Any) -> tuple[int, ...]:
    """The model input's shape for a photo of ``size`` (a plan's Size), as the decode workers cut it."""
    from PIL import Image

    from aesthete.input_policy import InputPolicy

    policy = InputPolicy.from_dict(read_meta(checkpoint)["policy"])
    return policy.prepare(Image.new("RGB", (size.width, size.height))).shape


def _finish(results: dict[str, Any], args: argparse.Namespace) -> None:
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
