"""End-to-end ``score`` on a cold database: the CLI in a fresh process, as a user runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import aesthete_cmd, score_json, timed


def score_once(target: Path, expected: int, checkpoint: str, device: str, work: Path, env: dict[str, str],
               options: tuple[str, ...] = ()) -> tuple[float, dict[str, Any]]:  # fmt: skip
    """One ``aesthete score`` of ``target`` (``expected`` photos) on a fresh database: its wall time and
    JSON summary; raises unless every photo was scored and none failed."""
    db = work / "e2e.db"
    for leftover in work.glob("e2e.db*"):
        leftover.unlink()
    cmd = aesthete_cmd("score", str(target), "--weights", checkpoint, "--db", str(db), "--device", device,
                       "--json", *options)  # fmt: skip
    wall, done = timed(cmd, env)
    result = score_json(done)
    if result["scored"] != expected or result["failed"]:
        raise RuntimeError(f"score scored {result['scored']} of {expected}, failed {result['failed']}")
    return wall, result


def end_to_end(folder: Path, head: Path, count: int, head_count: int, checkpoint: str, device: str, work: Path,
               env: dict[str, str], repeats: int, options: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """``aesthete score`` (with ``options``) on a fresh database, in a fresh process, on the whole set and
    on its first ``head_count`` photos. The difference of the two wall times is the cost of
    ``count - head_count`` photos without the fixed start-up (interpreter, ``import torch``, model load),
    which is reported apart."""
    times: dict[str, list[float]] = {"all": [], "head": []}
    summary: dict[str, Any] = {}
    for _ in range(repeats):
        for name, target, expected in (("head", head, head_count), ("all", folder, count)):
            wall, summary = score_once(target, expected, checkpoint, device, work, env, options)
            times[name].append(wall)
    best_all, best_head = min(times["all"]), min(times["head"])
    # None when noise swamped the difference (a loaded machine): no figure rather than a wrong one.
    rate = (count - head_count) / (best_all - best_head) if best_all > best_head else None
    return {
        "img_s": rate,
        "img_s_with_startup": count / best_all,
        "startup_s": best_all - count / rate if rate else None,
        "walls": times,
        "workers_precision": (summary.get("device"), summary.get("precision")),
        "compiled": summary.get("compiled"),
        "device_decoded": summary.get("device_decoded"),
    }
