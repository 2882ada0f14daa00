"""The shared slots through which decode workers hand model inputs back (aesthete.pixel_slots)."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import imagegen as g
import numpy as np
import pytest
from PIL import Image

from aesthete import pixel_slots
from aesthete.input_policy import InputPolicy
from aesthete.pixel_slots import PixelSlots, WorkerSlots, lend_slots, slot_bytes
from aesthete.scoring import score
from aesthete.store import Store

POLICIES = {
    "warp": InputPolicy(resize="warp", size=300),
    "short_side": InputPolicy(resize="short_side", size=224, max_long_side=640),
    "center_crop": InputPolicy(resize="center_crop", size=224, resize_short=256),
    "patches": InputPolicy(resize="short_side", size=256, patch=224),
}


@pytest.mark.parametrize("name", POLICIES)
def test_a_slot_holds_the_input_of_a_16_by_9_photo_and_a_panorama_may_not_fit(name: str) -> None:
    policy = POLICIES[name]
    size = slot_bytes(policy)
    for width, height in [(1600, 900), (900, 1600), (1500, 1000), (1200, 900), (800, 800)]:
        assert policy.prepare(Image.new("RGB", (width, height))).nbytes <= size, (width, height)
    assert policy.prepare(Image.new("RGB", (1600, 900))).nbytes == size
    panorama = policy.prepare(Image.new("RGB", (3000, 1000))).nbytes
    assert panorama > size if name in ("short_side", "patches") else panorama <= size


def _write_in_slot(path: str, size: int, slot: int, pixels: np.ndarray, too_big: np.ndarray, answer) -> None:
    slots = WorkerSlots(path, size)
    answer.send((slots.put(slot, pixels), slots.put(slot, too_big)))


def test_an_input_written_by_another_process_is_read_back_whole_and_the_block_is_removed(tmp_path: Path) -> None:
    slots = PixelSlots(tmp_path, 3, 300 * 200 * 3)
    pixels = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    too_big = np.zeros((201, 300, 3), np.uint8)
    try:
        first = slots.take()
        second = slots.take()
        assert (first, second) == (0, 1)
        context = multiprocessing.get_context("spawn")  # not fork: this process may run torch's threads
        mine, theirs = context.Pipe()
        child = context.Process(
            target=_write_in_slot, args=(str(slots.path), slots.size, second, pixels, too_big, theirs)
        )
        child.start()
        child.join(30)
        assert child.exitcode == 0 and mine.recv() == (True, False)
        assert np.array_equal(slots.copy_out(second, pixels.shape), pixels)
        assert not slots.copy_out(first, pixels.shape).any()  # the neighbouring slot is untouched
        slots.give_back(second)
        assert [slots.take(), slots.take(), slots.take()] == [2, 1, None]  # all lent: the pipe carries it
        slots.give_back_all()
        assert sorted(slots.free) == [0, 1, 2]
    finally:
        slots.close()
    assert list(tmp_path.iterdir()) == []


def test_slots_stay_within_the_budget_and_inputs_beyond_them_come_through_the_pipe(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    policy = POLICIES["warp"]
    monkeypatch.setattr(pixel_slots, "MAX_SHARED_BYTES", slot_bytes(policy) - 1)
    assert lend_slots(policy, 10) is None
    monkeypatch.setattr(pixel_slots, "MAX_SHARED_BYTES", 3 * slot_bytes(policy) + 1)
    three = lend_slots(policy, 10)
    assert three is not None and three.count == 3 and len(three.free) == 3
    three.close()

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(12):
        (folder / f"p{i:02}.jpg").write_bytes(g.encode(g.scene(i, (96, 64)), "JPEG", quality=85))
    dists = []
    for budget in (2 * slot_bytes(InputPolicy(resize="warp", size=64)), 64 << 20):
        monkeypatch.setattr(pixel_slots, "MAX_SHARED_BYTES", budget)  # 2 slots for 12 photos, then plenty
        db = tmp_path / f"{budget}.db"
        summary = score([str(folder)], store=Store(db), weights=str(tiny_checkpoints["nima"]), device="cpu",
                        workers=2, batch_size=4)  # fmt: skip
        assert summary.scored == 12
        with sqlite3.connect(db) as conn:
            dists.append(dict(conn.execute(
                "SELECT f.path, s.dist FROM files f JOIN scores s ON s.content_hash = f.content_hash"
            ).fetchall()))  # fmt: skip
    assert dists[0] == dists[1]


def test_a_block_whose_run_is_gone_is_removed_by_the_next_run() -> None:
    """A run removes its block when it ends; after a kill -9 the next run does."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = pixel_slots.block_folder()
    orphan = folder / f"{pixel_slots.NAME_PREFIX}{int(gone.stdout)}-0badf00d"
    living = folder / f"{pixel_slots.NAME_PREFIX}{os.getpid()}-0badf00d"
    for block in (orphan, living):
        block.write_bytes(b"\0" * 4096)
    try:
        slots = lend_slots(POLICIES["warp"], 4)
        assert slots is not None
        slots.close()
        assert not orphan.exists() and living.exists() and not slots.path.exists()
    finally:
        orphan.unlink(missing_ok=True)
        living.unlink(missing_ok=True)


def _decode_with_slots(photo: str, slots: tuple[str, int], answer) -> None:
    from aesthete.decode_worker import init_worker, process_file
    from aesthete.jobs import FileJob, WorkerConfig

    init_worker(WorkerConfig(db_path=None, policy=InputPolicy(resize="warp", size=64).to_dict(), key=None,
                             rescore=True, pixel_slots=slots))  # fmt: skip
    result = process_file(FileJob(photo, os.stat(photo).st_size, 0, slot=0))
    answer.send((result.error, result.pixels_shape, None if result.pixels is None else result.pixels.shape))


def test_a_worker_that_cannot_map_the_block_sends_its_inputs_through_the_pipe(tmp_path: Path) -> None:
    """In a process of its own: a worker's set-up changes its niceness and signal handling."""
    photo = tmp_path / "p.jpg"
    photo.write_bytes(g.encode(g.scene(1, (96, 64)), "JPEG", quality=85))
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    child = context.Process(target=_decode_with_slots, args=(str(photo), (str(tmp_path / "gone"), 64 * 64 * 3), theirs))
    child.start()
    child.join(60)
    assert child.exitcode == 0 and mine.recv() == (None, None, (64, 64, 3))
