"""Rescans of unchanged, already-scored photos: their wall time, and proof that nothing was decoded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import aesthete_cmd, spread, timed
from bench.probe import probed


def fill_database(db: Path, folder: Path, checkpoint: str) -> int:
    """Record every file under ``folder`` as scored, through ``Store.write``: the rows a finished
    ``score`` run leaves (files, images with their faces looked for, scores for this checkpoint's key)."""
    from aesthete.discover import discover
    from aesthete.faces import VERSION as FACES_VERSION
    from aesthete.scoring import choose_model
    from aesthete.store import Store, file_row, now_iso

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
            files.append(file_row(entry.path, entry.size, entry.mtime_ns, "ok", content_hash=digest))
            images.append({"content_hash": digest, "width": 6000, "height": 4000, "format": "JPEG",
                           "faces": "[]", "face_count": 0, "faces_looked": FACES_VERSION})  # fmt: skip
            scores.append({"content_hash": digest, "model": key.model, "weights_id": key.weights_id,
                           "preprocess": key.preprocess, "dist": "[" + ",".join(["0.1"] * 10) + "]", "mean": 5.5,
                           "std": 2.87, "p_high": 0.5, "scored_at": now})  # fmt: skip
        store.write(files=files, images=images, scores=scores)
    store.close()
    return count


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
