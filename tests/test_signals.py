"""Technical signals: they must order photos the way a photographer would, on generated scenes."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from pathlib import Path

import imagegen as g
import numpy as np
import pytest
from PIL import Image

from aesthete import signals as s
from aesthete.signals import flags, hash_distance, perceptual_hash, technical_quality, technical_signals


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_sharpness_ranks_every_blur_below_the_original(seed: int) -> None:
    original = g.scene(seed, (512, 384))
    sharp = technical_signals(original)["sharpness"]
    values = [technical_signals(g.blurred(original, r))["sharpness"] for r in (0.3, 0.5, 1, 2, 4, 8, 16, 32, 64)]
    assert all(v < sharp for v in values), (sharp, values)
    # Strictly falling with the radius until the picture is a smooth wash (~2% of its width), where
    # what remains is the 8-bit quantisation of the wash.
    assert all(a > b for a, b in zip(values[:6], values[1:6])), values


def test_sharpness_ranks_blur_below_original_on_a_large_image() -> None:
    original = g.scene(3, (1600, 1200))
    sharp = technical_signals(original)["sharpness"]
    for radius in (1, 2, 4):
        assert technical_signals(g.blurred(original, radius))["sharpness"] < sharp


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sharpness_does_not_depend_on_image_size(seed: int) -> None:
    large = technical_signals(g.scene(seed, (4000, 3000)))["sharpness"]
    small = technical_signals(g.scene(seed, (1000, 750)))["sharpness"]
    assert small == pytest.approx(large, rel=0.05)


def test_sharpness_is_not_fooled_by_noise() -> None:
    """A blurred frame with heavy noise must not outrank the clean sharp frame."""
    sharp = g.scene(1, (800, 600))
    noisy_blurred = g.noisy(g.blurred(sharp, 2), sigma=12)
    assert technical_signals(noisy_blurred)["sharpness"] < 0.8 * technical_signals(sharp)["sharpness"]


@pytest.mark.parametrize("sigma", [1, 2, 5, 10, 20])
def test_noise_estimate_recovers_known_sigma(sigma: float) -> None:
    flat = g.noisy(Image.new("L", (512, 384), 128), sigma)
    assert technical_signals(flat)["noise"] == pytest.approx(sigma, rel=0.06)


def test_noise_rises_with_added_noise_and_ignores_edges() -> None:
    scene = g.scene(2, (512, 384))
    clean = technical_signals(scene)["noise"]
    assert clean < 0.5  # a scene of hard edges and gradients, but no noise
    values = [technical_signals(g.noisy(scene, sigma))["noise"] for sigma in (2, 4, 8, 16)]
    assert clean < values[0] and all(a < b for a, b in zip(values, values[1:]))


def test_exposure_signals() -> None:
    image = Image.new("L", (100, 100), 128)
    image.paste(0, (0, 0, 100, 10))  # 10% black
    image.paste(255, (0, 90, 100, 100))  # 10% white
    out = technical_signals(image)
    assert out["clipped_shadows"] == pytest.approx(0.10)
    assert out["clipped_highlights"] == pytest.approx(0.10)
    assert out["mean_luma"] == pytest.approx((0.8 * 128 + 0.1 * 255) / 255)


def test_signals_are_computed_at_working_size() -> None:
    """Clipping fractions and brightness are the same at any size; the work is bounded by WORKING_SIDE."""
    big, small = g.scene(4, (3000, 2000)), g.scene(4, (600, 400))
    a, b = technical_signals(big), technical_signals(small)
    assert a["mean_luma"] == pytest.approx(b["mean_luma"], abs=0.01)
    assert s.WORKING_SIDE == 512


def test_tiny_images_do_not_crash() -> None:
    for size in [(1, 1), (2, 7), (8, 8), (20000, 10)]:
        out = technical_signals(Image.new("RGB", size, (90, 90, 90)))
        assert set(out) == {"sharpness", "clipped_shadows", "clipped_highlights", "mean_luma", "noise"}
        # sharpness: None (not measurable) under MIN_FOCUS_SIDE a side, see the test below
        assert (out["sharpness"] is None) == (min(size) < s.MIN_FOCUS_SIDE)
        assert all(math.isfinite(v) for k, v in out.items() if k != "sharpness" or v is not None)
        assert perceptual_hash(Image.new("RGB", size)) == "0" * 16


def test_a_thin_panorama_keeps_rows_enough_to_judge_its_focus() -> None:
    """Field test: a panorama wider than ~57:1 kept under 9 rows at working size (longer side 512), too
    few for the blur measure, so every one, however sharp, was flagged blurry."""
    panorama = g.scene(1, (6000, 80))
    sharp = technical_signals(panorama)
    assert "blurry" not in flags(sharp), sharp
    blurred = technical_signals(g.blurred(panorama, 4))
    assert blurred["sharpness"] < sharp["sharpness"] / 2 and "blurry" in flags(blurred), (sharp, blurred)


@pytest.mark.parametrize(
    ("size", "least_rows"),
    [((6000, 80), 55), ((20000, 200), 50), ((100_000, 100), 16), ((600, 40), 40), ((4000, 3000), 384)],
)
def test_the_working_size_keeps_a_short_side_within_a_square_photos_pixels(
    size: tuple[int, int], least_rows: int
) -> None:
    """A strip keeps rows (never more than the file has, never enlarged), but never more pixels than a
    square photo's working image, so a 1000:1 strip costs no more memory than any photo."""
    for turned in (size, size[::-1]):
        gray = s.working_gray(Image.new("L", turned))
        assert min(gray.size) >= least_rows and max(gray.size) <= max(size), gray.size
        assert gray.width * gray.height <= s.WORKING_SIDE**2 * 1.01, gray.size
    assert s.working_gray(Image.new("L", (4000, 3000))).size == (512, 384)  # an ordinary photo: as it was


@pytest.mark.parametrize("size", [(1, 1), (2, 7), (8, 8), (600, 8), (8, 600)])
def test_a_photo_too_small_to_judge_focus_has_no_sharpness_and_is_not_blurry(size: tuple[int, int]) -> None:
    """Fewer rows (or columns) than the blur kernel needs: the sharpness cannot be measured, so it is
    recorded as missing (None), which raises no flag; it was 0, "blurry"."""
    out = technical_signals(g.noisy(Image.new("RGB", size, (90, 120, 150)), 20))
    assert out["sharpness"] is None
    assert "blurry" not in flags(out)
    assert math.isfinite(out["mean_luma"]) and 0 < out["mean_luma"] < 1


def test_a_photo_too_small_to_judge_is_not_culled_as_blurry_and_shows(tmp_path: Path) -> None:
    """Through score, the database and cull: the tiny photos' sharpness is NULL, no "blurry" flag, so cull
    picks them as it picks the sharp panorama; `show` says the sharpness could not be measured."""
    from typer.testing import CliRunner

    from aesthete.cli import app
    from aesthete.scoring import score
    from aesthete.select import cull, rank
    from aesthete.store import Store

    folder = tmp_path / "shoot"
    folder.mkdir()
    (folder / "dot.png").write_bytes(g.encode(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG"))
    (folder / "sliver.png").write_bytes(g.encode(g.scene(2, (600, 8)), "PNG"))
    (folder / "panorama.jpg").write_bytes(g.encode(g.scene(1, (6000, 80)), "JPEG", quality=92))
    store = Store(tmp_path / "a.db")
    score([str(folder)], store=store, workers=1)
    rows = {Path(r["path"]).name: r for r in rank(store, [str(folder)]).rows}
    assert rows["dot.png"]["sharpness"] is None and rows["sliver.png"]["sharpness"] is None, rows
    assert all("blurry" not in r["flags"] for r in rows.values()), rows
    picks = cull(store, [str(folder)], top=3, group=False)
    assert sorted(Path(r["path"]).name for r in picks.rows) == ["dot.png", "panorama.jpg", "sliver.png"]
    shown = CliRunner().invoke(app, ["show", str(folder / "dot.png"), "--db", str(store.path)])
    assert shown.exit_code == 0 and "sharpness not measurable" in shown.stdout, shown.output


def test_technical_quality_is_monotone() -> None:
    base = {"sharpness": 2.0, "clipped_shadows": 0.05, "clipped_highlights": 0.05, "mean_luma": 0.5, "noise": 1.0}
    q = technical_quality(base)
    assert 0 < q < 1
    assert technical_quality({**base, "sharpness": 3.0}) > q
    assert technical_quality({**base, "clipped_highlights": 0.2}) < q
    assert technical_quality({**base, "clipped_shadows": 0.2}) < q
    assert technical_quality({**base, "clipped_shadows": 0.6, "clipped_highlights": 0.6}) == 0.0
    assert technical_quality({**base, "sharpness": 1e9}) <= 1.0
    assert technical_quality({}) == 0.0


def test_technical_quality_ranks_real_defects_lower() -> None:
    original = g.scene(6, (800, 600))
    q = technical_quality(technical_signals(original))
    assert technical_quality(technical_signals(g.blurred(original, 2))) < q
    assert technical_quality(technical_signals(g.exposed(original, 2.5))) < q


def test_flags() -> None:
    sharp = g.scene(1, (800, 600))
    assert flags(technical_signals(sharp)) == []
    assert "blurry" in flags(technical_signals(g.blurred(sharp, 6)))
    assert "overexposed" in flags(technical_signals(g.exposed(sharp, 3)))
    assert "underexposed" in flags(technical_signals(g.exposed(sharp, -6)))
    assert "noisy" in flags(technical_signals(g.noisy(Image.new("RGB", (512, 384), (128, 128, 128)), 8)))
    assert flags({}) == [] and flags({"sharpness": None}) == []
    assert flags({"sharpness": s.BLURRY_BELOW - 0.01}) == ["blurry"]
    assert flags({"noise": s.NOISY_ABOVE + 0.01, "mean_luma": s.OVEREXPOSED_MEAN_ABOVE + 0.01}) == [
        "overexposed",
        "noisy",
    ]


def test_perceptual_hash_format_and_distance() -> None:
    h = perceptual_hash(g.scene(0))
    assert len(h) == 16 and int(h, 16) >= 0
    assert hash_distance(h, h) == 0
    assert hash_distance("0" * 16, "f" * 16) == 64
    assert hash_distance("8000000000000001", "0000000000000000") == 2


def test_perceptual_hash_groups_near_duplicates_and_separates_scenes() -> None:
    """Burst frames panned 2%, +-1 EV, and a small re-compressed copy stay close; other scenes do not."""
    near, far, firsts = [], [], []
    for seed in range(10):
        frames = g.burst(seed, count=3, size=(320, 240), shift=0.02)
        hashes = [perceptual_hash(f) for f in frames]
        small_jpeg = Image.open(io.BytesIO(g.encode(frames[0].resize((120, 90)), "JPEG", quality=60)))
        near += [hash_distance(hashes[0], hashes[1]), hash_distance(hashes[1], hashes[2])]
        near += [hash_distance(hashes[0], perceptual_hash(g.exposed(frames[0], ev))) for ev in (-1, 1)]
        near.append(hash_distance(hashes[0], perceptual_hash(small_jpeg)))
        firsts.append(hashes[0])
    far = [hash_distance(a, b) for i, a in enumerate(firsts) for b in firsts[:i]]
    assert np.median(near) <= 6 and max(near) <= 16
    assert min(far) > 20 and np.mean(far) > 28
    assert max(near) < min(far)


def test_perceptual_hash_is_size_independent() -> None:
    assert hash_distance(perceptual_hash(g.scene(8, (3000, 2000))), perceptual_hash(g.scene(8, (300, 200)))) <= 4


def test_technical_quality_counts_noise_and_resolution() -> None:
    base = {"sharpness": 4.0, "clipped_shadows": 0.0, "clipped_highlights": 0.0, "noise": 0.5}
    full = technical_quality(base, 4000, 3000)
    assert full == pytest.approx(technical_quality(base), rel=1e-9)  # 12 MP counts as full size
    assert technical_quality(base, 100, 75) < 0.05 * full  # a thumbnail
    assert technical_quality(base, 640, 480) < technical_quality(base, 1600, 1200) < full
    assert technical_quality({**base, "noise": 2.5}, 4000, 3000) < 0.85 * full  # at the "noisy" flag
    assert technical_quality({**base, "noise": 10.0}, 4000, 3000) < 0.05 * full


def test_without_weights_a_thumbnail_or_a_noisy_frame_does_not_rank_first(tmp_path: Path) -> None:
    """The field test's shoot: the clean full-size frame first; a dark, blurry frame is never picked."""
    from aesthete.scoring import score
    from aesthete.select import cull, rank
    from aesthete.store import Store

    folder = tmp_path / "shoot"
    folder.mkdir()
    photo = g.scene(7, (1200, 900))
    (folder / "clean.jpg").write_bytes(g.encode(photo, "JPEG", quality=92))
    (folder / "thumb.jpg").write_bytes(g.encode(photo.resize((100, 75), Image.Resampling.LANCZOS), "JPEG"))
    (folder / "noisy.jpg").write_bytes(g.encode(g.noisy(photo, 25.0), "JPEG", quality=92))
    (folder / "black.jpg").write_bytes(g.encode(Image.new("RGB", (1200, 900)), "JPEG"))
    store = Store(tmp_path / "a.db")
    score([str(folder)], store=store, workers=1)
    ranking = rank(store, [str(folder)])
    assert ranking.basis == "technical"
    order = [Path(r["path"]).name for r in ranking.rows]
    assert order[0] == "clean.jpg" and order[-1] == "black.jpg", order
    picks = cull(store, [str(folder)], top=4, group=False)
    assert "black.jpg" not in {Path(r["path"]).name for r in picks.rows}
    why = next(r["why"] for r in picks.others if r["path"].endswith("black.jpg"))
    assert why in ("blurry", "underexposed")


PAGE_FAULTS = """
import resource, numpy as np
from PIL import Image
from aesthete.decode_worker import init_worker
from aesthete.jobs import WorkerConfig
from aesthete.signals import technical_signals

photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (341, 512), dtype=np.uint8))

def faults_per_photo():
    technical_signals(photo)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        technical_signals(photo)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20

default = faults_per_photo()
init_worker(WorkerConfig(db_path=None, policy=None, key=None, rescore=False))
print(default, faults_per_photo())
"""


@pytest.mark.skipif(not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"), reason="glibc's malloc only")
def test_a_decode_worker_reuses_freed_memory_for_the_signals() -> None:
    """The signals' numpy temporaries cost ~1,500 page faults a working-size photo with glibc's defaults;
    a decode worker keeps freed memory instead (decode_worker.keep_freed_memory), unless the user tuned
    glibc's malloc."""
    root = str(Path(__file__).resolve().parents[1])

    def run(**env: str) -> tuple[float, float]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        done = subprocess.run([sys.executable, "-c", PAGE_FAULTS], env={**environ, "PYTHONPATH": root, **env},
                              capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
        default, worker = map(float, done.stdout.split())
        return default, worker

    default, worker = run()
    assert default > 300 and worker < 50, (default, worker)
    untouched = run(MALLOC_ARENA_MAX="2")  # a MALLOC_ variable of the user's own: left as it is
    assert untouched[1] > 300, untouched
