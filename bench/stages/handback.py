"""Handing model inputs back from the decode workers to ``score``'s process: pickled through the pool's
pipe, or left in shared slots (:mod:`aesthete.pixel_slots`) as ``score`` does. The workers do nothing
else, so this is the ceiling the hand-back alone puts on ``score``, and the main process's CPU it costs
per photo (on a GPU, the host's work per photo bounds the run)."""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

_slots: Any = None  # the worker's aesthete.pixel_slots.WorkerSlots, when the run lends slots


def _attach(path: str | None, size: int) -> None:
    global _slots
    from aesthete.pixel_slots import WorkerSlots

    _slots = WorkerSlots(path, size) if path else None


def _make_input(shape: tuple[int, ...], slot: int | None) -> np.ndarray | tuple[int, ...]:
    pixels = np.full(shape, 7, np.uint8)  # a fresh array per photo, as InputPolicy.prepare makes
    if slot is not None and _slots.put(slot, pixels):
        return pixels.shape
    return pixels


def _run(shape: tuple[int, ...], workers: int, count: int, shared: bool) -> dict[str, float]:
    from aesthete.pixel_slots import PixelSlots, block_folder

    window = 4 * workers + 8  # files in flight, as score had them before it sent several files a task
    slots = PixelSlots(block_folder(), window, int(np.prod(shape))) if shared else None
    context = multiprocessing.get_context("fork")
    initargs = (str(slots.path) if slots else None, slots.size if slots else 0)
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_attach, initargs=initargs) as pool:
            list(pool.map(_make_input, [shape] * workers, [None] * workers))  # start the workers
            started, cpu = time.perf_counter(), time.process_time()
            pending: deque = deque()
            submitted = checksum = 0
            while submitted < count or pending:
                while submitted < count and len(pending) < window:
                    slot = slots.take() if slots else None
                    pending.append((slot, pool.submit(_make_input, shape, slot)))
                    submitted += 1
                slot, future = pending.popleft()
                result = future.result()
                if slot is not None:
                    if isinstance(result, tuple):
                        result = slots.copy_out(slot, result)
                    slots.give_back(slot)
                checksum += int(result[0, 0, 0])
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        if slots:
            slots.close()
    assert checksum == 7 * count
    return {"img_s": count / wall, "main_cpu_ms": 1000 * cpu / count}


def handback(shape: tuple[int, ...], workers: int, count: int) -> dict[str, Any]:
    """img/s and main-process CPU ms per photo for ``count`` inputs of ``shape`` from ``workers``
    processes, through the pipe and through slots, each timed twice in turns."""
    runs = {"pipe": [], "slots": []}
    for _ in range(2):
        for way in runs:
            runs[way].append(_run(shape, workers, count, shared=way == "slots"))
    best = {way: max(rows, key=lambda row: row["img_s"]) for way, rows in runs.items()}
    return {"input": "x".join(map(str, shape)), "workers": workers, "photos": count, **best}
