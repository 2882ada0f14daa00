"""What the measurements read (photos, checkpoints, databases), made once and kept in the work folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import photos
from bench.common import cores, in_fresh_process, log
from bench.plan import MODEL, SMALL, TINY, Plan
from bench.stages.rescan import fill_database


def make_checkpoint(path: str, arch: str, config: dict[str, Any]) -> str:
    """A freshly initialised checkpoint of ``arch`` (seeded), written the way training writes one."""
    import torch

    from aesthete.checkpoint import save_checkpoint
    from aesthete.models import get_model

    torch.manual_seed(0)
    model = get_model(arch, **config)
    save_checkpoint(model, path, extra={"note": "benchmark: freshly initialised weights, scores are meaningless"})
    return path


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
