"""Peak RSS while scoring many small photos: the main process, the largest decode worker, the whole tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import cores
from bench.probe import probed


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
