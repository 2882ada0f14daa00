"""The benchmark's verdict and tables: the targets of issue 7, checked, and the markdown of BENCHMARKS.md."""

from __future__ import annotations

from typing import Any

from bench.plan import MODEL


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    by = {row["size"]: row for row in results.get("sizes", [])}
    out = []

    def add(name: str, value: float | None, limit: float, unit: str, higher_is_better: bool) -> None:
        met = None if value is None else (value >= limit if higher_is_better else value < limit)
        out.append({"target": name, "value": value, "limit": limit, "unit": unit, "met": met})

    on_cpu = results["machine"]["device"] == "cpu"
    for row in results.get("compiled", []):  # issue 16: compiled >= 1.35x eager for the ResNet-50 models (CPU)
        if on_cpu and "ResNet-50@300" in row["model"]:
            add(f"{row['model']}: compiled / eager model-only", row["speedup"], 1.35, "x", True)
    for row in results.get("sizes", []):  # issue 16: the end-to-end targets with the compiled model
        compiled = row.get("compiled")
        if compiled and row["size"] == "0.2 MP":
            add("0.2 MP e2e / model-only, both compiled", compiled["e2e_vs_model"], 0.90, "ratio", True)
        if compiled and row["size"] == "24 MP":
            add("24 MP e2e / stage-sum limit, both compiled", compiled["e2e_vs_stage_sum"], 0.90, "ratio", True)
    small = by.get("0.2 MP")
    if small and not on_cpu:
        add("0.2 MP e2e img/s (GPU)", small["e2e_img_s"], 3500, "img/s", True)
        if small.get("e2e_device_lane_img_s") is not None:
            add("0.2 MP e2e img/s (GPU, --decode device)", small["e2e_device_lane_img_s"], 3500, "img/s", True)
    if "rescan" not in results:  # --gpu-only / --compiled-only: the rows below were not measured
        big = by.get("24 MP")
        if big:
            add("24 MP e2e / stage-sum limit", big["e2e_vs_stage_sum"], 0.90, "ratio", True)
        if small:
            add("0.2 MP e2e / model-only", small["e2e_vs_model"], 0.90, "ratio", True)
        return out

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
        *compiled_table(results.get("compiled", [])),
    ]
    if "sizes" in results:
        lines += _sizes_table(results)
    if "rescan" in results:
        lines += _other_table(results)
    lines += _targets_table(results)
    return "\n".join(lines) + "\n"


def compiled_table(rows: list[dict[str, Any]]) -> list[str]:
    """The markdown lines of eager-vs-compiled rows (``bench.stages.compiled.compiled_rows``)."""
    if not rows:
        return []
    first = rows[0]["cold"]
    lines = [
        "",
        f"Eager and compiled model-only (`score --compile off` / `on`), batch {first['batch']}, {first['threads']} "
        f"threads, {first['precision']}, {first['device']}; both runners in one process, timed in turns:",
        "",
        "| model (input) | eager img/s | compiled img/s | compiled / eager | first compile s (empty cache) "
        "| cached compile s (compiled img/s then) | break-even photos (empty / warm cache) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["compile_failure"]:
            lines.append(f"| {row['model']} ({row['input']}) | {row['eager_img_s']:.1f} | failed: "
                         f"{row['compile_failure']} | n/a | n/a | n/a | n/a |")  # fmt: skip
            continue
        lines.append(
            f"| {row['model']} ({row['input']}) | {row['eager_img_s']:.1f} | {row['compiled_img_s']:.1f} "
            f"| {_fmt(row['speedup'], '{:.2f}x')} | {row['cold_compile_s']:.1f} "
            f"| {row['warm_compile_s']:.1f} ({row['warm_img_s']:.1f}) "
            f"| {_fmt(row['cold_break_even_photos'], '{:.0f}')} / {_fmt(row['warm_break_even_photos'], '{:.0f}')} |"
        )
    lines += ["", "Compile s: the compiled runner's first batch less the eager runner's; break-even: compile s / "
              "(1/eager - 1/compiled img/s), the photos from which compiling pays."]  # fmt: skip
    return lines


def _sizes_table(results: dict[str, Any]) -> list[str]:
    lines = [
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
    feeds = [f"{row['size']} {row['lane_feed_img_s']:.0f} img/s ({row['lane_feed_core_ms']:.2f} core-ms a photo)"
             for row in results["sizes"] if row.get("lane_feed_share")]  # fmt: skip
    if feeds:
        lines += [
            "",
            "Workers' share of `score --decode device` (read, hash, EXIF, the JPEG's bytes back; all "
            "workers): " + ", ".join(feeds) + "; what they can feed the device lane, on any machine.",
        ]
    lanes = [f"{row['size']} {row['gpu_decode_lane_img_s']:.0f} img/s" for row in results["sizes"]
             if row["gpu_decode_lane_img_s"]]  # fmt: skip
    if lanes:
        lines += ["", "GPU decode lane (nvJPEG, resize on the GPU, batch 32): " + ", ".join(lanes) + "."]
    lane_rows = [
        f"{row['size']} {_fmt(row['e2e_device_lane_img_s'])} img/s ({row['e2e_device_decoded']} of the "
        "last run's photos decoded on the GPU)"
        for row in results["sizes"]
        if row.get("e2e_device_decoded")
    ]
    if lane_rows:
        lines += [
            "",
            "e2e `score --decode device` (signals, pHash and model input on the GPU too): "
            + ", ".join(lane_rows)
            + ".",
        ]
    hosts = [
        f"{row['size']} {_fmt(row.get('host_only_img_s'), '{:,.0f}')} img/s, {row['host_main_process_cpu_ms']:.2f} "
        f"main-process CPU ms a photo ({row['host_main_thread_cpu_ms']:.2f} in its main thread)"
        for row in results["sizes"]
        if row.get("host_main_process_cpu_ms") is not None
    ]
    if hosts:
        lines += [
            "",
            "`score` without the model's forward pass (uniform outputs; everything else as in `score`): "
            + "; ".join(hosts)
            + ". The rate is the ceiling the workers and the host put on `score`, from the difference of a run on "
            "the whole set and one on its first photos (start-up left out); the CPU is the whole set's, from its "
            "first batch on.",
        ]
    if "handback" in results:
        hb = results["handback"]
        lines += [
            "",
            f"Hand-back of model inputs ({hb['input']} uint8) from {hb['workers']} workers doing nothing else, "
            f"{hb['photos']:,} photos, best of two runs each: through the pool's pipe {hb['pipe']['img_s']:,.0f} "
            f"img/s at {hb['pipe']['main_cpu_ms']:.3f} main-process CPU ms a photo; through shared slots, as "
            f"`score` hands them back, {hb['slots']['img_s']:,.0f} img/s at {hb['slots']['main_cpu_ms']:.3f} ms.",
        ]
    compiled = [row for row in results["sizes"] if row.get("compiled")]
    if compiled:
        lines += [
            "",
            "With `score --compile on` (the compiled model-only runner timed in a fresh process just before; "
            "an untimed run fills the inductor cache, and loading the compiled code from it, paid by both "
            "end-to-end runs, cancels in their difference as the start-up does):",
            "",
            "| photos | compiled model-only img/s (core-ms/photo) | stage-sum limit, compiled img/s | e2e `score "
            "--compile on` img/s | e2e eager img/s (above) | e2e / compiled model-only | e2e / stage-sum |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in compiled:
            c = row["compiled"]
            lines.append(
                f"| {row['size']} | {_fmt(c['model_img_s'])} ({c['model_core_ms']:.0f}) | "
                f"{_fmt(c['stage_sum_img_s'])} | {_fmt(c['e2e_img_s'])} | {_fmt(row['e2e_img_s'])} | "
                f"{_fmt(c['e2e_vs_model'], '{:.0%}')} | {_fmt(c['e2e_vs_stage_sum'], '{:.0%}')} |"
            )
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
    ]
    return lines


def _other_table(results: dict[str, Any]) -> list[str]:
    lines = ["", "| other | figure |", "|---|---|"]
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
    return lines


def _targets_table(results: dict[str, Any]) -> list[str]:
    lines = ["", "| target | measured | limit | met |", "|---|---|---|---|"]
    for t in results["targets"]:
        value = _fmt(t["value"], "{:.0%}" if t["unit"] in ("ratio", "growth") else "{:.2f}")
        limit = f"{t['limit']:.0%}" if t["unit"] in ("ratio", "growth") else f"{t['limit']:g}"
        limit = f"{'>=' if t['unit'] in ('ratio', 'x', 'img/s') else '<'} {limit}{' x' if t['unit'] == 'x' else ''}"
        limit += {"s": " s", "img/s": " img/s"}.get(t["unit"], "")
        lines.append(f"| {t['target']} | {value}{'x' if t['unit'] == 'x' else ''} | {limit} | "
                     f"{'n/a' if t['met'] is None else 'yes' if t['met'] else 'NO'} |")  # fmt: skip
    return lines


def _fmt(value: float | None, spec: str = "{:.1f}") -> str:
    return "n/a" if value is None else spec.format(value)
