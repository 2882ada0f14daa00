"""The benchmark's verdict and tables: the targets of issue 7, checked, and the markdown of BENCHMARKS.md."""

from __future__ import annotations

from typing import Any

from bench.plan import MODEL


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
