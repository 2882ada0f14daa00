"""The device decode lane (aesthete.device_lane): which JPEGs it takes, and that what it measures and
feeds the model agrees with the CPU workers. On CUDA it decodes with nvJPEG; here it runs on the CPU
(torchvision's libjpeg-turbo), which exercises every step but the device itself."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageFilter

from aesthete import device_lane, faces
from aesthete.decode import decode, plain_jpeg
from aesthete.decode_worker import decode_target
from aesthete.devices import EngineError
from aesthete.input_policy import CLIP_MEAN, CLIP_STD, InputPolicy
from aesthete.jobs import FileResult
from aesthete.scoring import device_lane_decision, score
from aesthete.signals import hash_distance, perceptual_hash, technical_signals, working_gray
from aesthete.store import Store

CPU = torch.device("cpu")
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
WARP = InputPolicy(resize="warp", size=300)
POLICIES = {
    "warp": WARP,
    "short_side": InputPolicy(resize="short_side", size=224, max_long_side=320),
    "center_crop": InputPolicy(
        resize="center_crop", size=224, resize_short=256, resample="bicubic", mean=CLIP_MEAN, std=CLIP_STD
    ),  # fmt: skip
    "patch": InputPolicy(resize="short_side", size=256, patch=224),
}


def scene(seed: int, size: tuple[int, int] = (548, 365), kind: str = "plain") -> Image.Image:
    """A photo-like test picture: colour blocks, a gradient and fine texture; ``kind`` makes it blurred,
    noisy, dark (crushed shadows) or bright (blown highlights)."""
    rng = np.random.default_rng(seed)
    width, height = size
    blocks = Image.fromarray(rng.integers(0, 255, (6, 9, 3), dtype=np.uint8)).resize(size, Image.Resampling.NEAREST)
    pixels = np.asarray(blocks, dtype=np.float32) + np.linspace(-40, 40, width)[None, :, None]
    pixels += 12 * np.sin(np.arange(width) / 1.7)[None, :, None] * np.cos(np.arange(height) / 2.3)[:, None, None]
    if kind == "noisy":
        pixels += rng.normal(0, 12, pixels.shape)
    elif kind == "dark":
        pixels = pixels * 0.25 - 20
    elif kind == "bright":
        pixels = pixels * 0.6 + 150
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(3)) if kind == "blurred" else image


def jpeg_bytes(image: Image.Image, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, **save)
    return buffer.getvalue()


def with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes(image, exif=exif.tobytes())


def through_lane(blobs: list[bytes], policy: InputPolicy) -> list[FileResult]:
    """Each blob as a worker hands it to the lane (header facts, no pixels), finished by the lane."""
    lane = device_lane.DeviceLane(CPU, policy, len(blobs) + 1, device_lane.DECODERS["torchcodec"])  # one flush
    results = []
    for blob in blobs:
        plain = plain_jpeg(blob, decode_target(policy))
        assert plain is not None
        result = FileResult("photo.jpg", len(blob), 0, jpeg=plain.data, orientation=plain.orientation)
        result.image = {"width": plain.width, "height": plain.height}
        assert lane.add(result) == ([], [])
        results.append(result)
    finished, undecodable = lane.flush()
    assert undecodable == [] and lane.decoded == len(blobs)
    assert sorted(map(id, finished)) == sorted(map(id, results))  # grouped by size, so in another order
    return results


def test_plain_jpeg_takes_only_what_the_device_decodes_as_the_cpu_would() -> None:
    target = decode_target(WARP)
    photo = scene(1)
    plain = plain_jpeg(with_orientation(photo, 6), target)
    assert plain is not None and (plain.width, plain.height, plain.orientation) == (365, 548, 6)
    assert plain_jpeg(jpeg_bytes(photo.convert("L")), target) is not None  # grey: decoded as RGB
    refused = {
        "CMYK": jpeg_bytes(photo.convert("CMYK")),
        "ICC profile": jpeg_bytes(photo, icc_profile=SRGB_PROFILE),
        "truncated": jpeg_bytes(photo)[:-4000],
        "shrinkable while decoding": jpeg_bytes(scene(2, (2400, 1600))),
        "tiny": jpeg_bytes(photo.resize((12, 8))),
        "bad orientation": with_orientation(photo, 9),
        "corrupt EXIF": jpeg_bytes(photo, exif=b"Exif\0\0II*\0\x08\0\0\0\xff\xff" + bytes(20)),  # a note, on the CPU
        "PNG": (lambda b: (photo.save(b, "PNG"), b.getvalue())[1])(io.BytesIO()),
        "not an image": b"\xff\xd8 nothing \xff\xd9",
    }  # fmt: skip
    mpo = io.BytesIO()
    photo.save(mpo, "MPO", save_all=True, append_images=[photo.resize((274, 182))])
    refused["MPO"] = mpo.getvalue()
    for name, blob in refused.items():
        assert plain_jpeg(blob, target) is None, name


@pytest.mark.parametrize("decoder", sorted(device_lane.DECODERS))
@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_lane_turns_each_exif_orientation_upright_as_pillow_does(orientation: int, decoder: str) -> None:
    blob = with_orientation(scene(orientation, (300, 200)), orientation)
    expected = np.asarray(decode(blob).image, dtype=np.int16)
    plain = plain_jpeg(blob, decode_target(WARP))
    assert plain is not None and len(plain.data) < len(blob)  # without its EXIF: nothing turns it but the lane
    image = device_lane.decode_jpegs([plain.data], CPU, device_lane.DECODERS[decoder])[0]
    upright = device_lane.upright(image, orientation).permute(1, 2, 0).numpy().astype(np.int16)
    assert upright.shape == expected.shape
    assert np.abs(upright - expected).max() <= 2


def test_on_the_same_luma_the_lane_measures_exactly_what_the_workers_measure() -> None:
    """The estimators themselves: fed the workers' own working-size luma, the lane's are the same
    numbers (the differences in a real run come from the resizes alone)."""
    grays = [working_gray(scene(seed, (548, 365), kind)) for seed, kind in enumerate(["plain", "noisy", "dark"])]
    luma = torch.stack([torch.from_numpy(np.asarray(gray, dtype=np.float32))[None] for gray in grays])
    for gray, lane in zip(grays, device_lane.technical_signals(luma)):
        expected = technical_signals(gray)
        assert lane.keys() == expected.keys()
        for name, value in expected.items():
            assert lane[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name


def test_lane_signals_and_hash_agree_with_the_workers() -> None:
    kinds = ["plain", "blurred", "noisy", "dark", "bright"]
    photos = [scene(seed, size, kind) for seed, kind in enumerate(kinds) for size in [(548, 365), (640, 480)]]
    blobs = [jpeg_bytes(photo) for photo in photos] + [jpeg_bytes(photos[0].convert("L"))]  # and a grey one
    for blob, result in zip(blobs, through_lane(blobs, WARP)):
        gray = working_gray(decode(blob, target=decode_target(WARP)).image)
        expected, lane = technical_signals(gray), result.image
        # The working-size resizes round a few pixels to the other 8-bit level (measured: sharpness within
        # 1.4%, noise within 0.021 of 8-bit luma; the "noisy" flag is at 2.5).
        assert lane["sharpness"] == pytest.approx(expected["sharpness"], rel=0.03)
        assert lane["noise"] == pytest.approx(expected["noise"], rel=0.05, abs=0.05)
        for name in ("clipped_shadows", "clipped_highlights", "mean_luma"):
            assert lane[name] == pytest.approx(expected[name], abs=0.002), name
        assert hash_distance(lane["phash"], perceptual_hash(gray)) <= 4
        assert lane["flags"] and lane["technical"] > 0 and lane["faces"] is None
    blurred, sharp = (through_lane([jpeg_bytes(scene(0, kind=k))], WARP)[0] for k in ("blurred", "plain"))
    assert blurred.image["sharpness"] < sharp.image["sharpness"] / 2  # the measure still measures


@pytest.mark.parametrize("size", [(640, 480), (4000, 60), (8000, 120), (120, 8000), (100_000, 100)])
def test_the_lane_resizes_to_the_workers_working_size(size: tuple[int, int]) -> None:
    """One working size for both paths, strips included (signals.working_size)."""
    image = Image.new("RGB", size, (90, 120, 150))
    luma = device_lane.working_luma(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None])
    assert tuple(luma.shape[-2:]) == working_gray(image).size[::-1]


def test_the_lane_measures_a_thin_panoramas_focus_on_its_rows_as_the_workers_do() -> None:
    """A 66:1 panorama: working size kept 8 of its 60 rows, too few for the blur measure, and both
    paths flagged it blurry (sharpness 0)."""
    blob = jpeg_bytes(scene(0, (4000, 60)))
    lane = through_lane([blob], WARP)[0].image
    gray = working_gray(decode(blob, target=decode_target(WARP)).image)
    assert gray.size == (4000, 60)
    assert lane["sharpness"] == pytest.approx(technical_signals(gray)["sharpness"], rel=0.03)
    assert "blurry" not in json.loads(lane["flags"]), lane


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_lane_model_input_agrees_with_the_policy(name: str) -> None:
    policy = POLICIES[name]
    blobs = [jpeg_bytes(scene(3, (548, 365))), with_orientation(scene(4, (400, 300)), 8)]
    for blob, result in zip(blobs, through_lane(blobs, policy)):
        expected = policy.prepare(decode(blob, target=decode_target(policy)).image).astype(np.int16)
        lane = result.pixels.numpy().astype(np.int16)
        assert lane.shape == expected.shape and result.pixels.dtype == torch.uint8
        limit = 4 if policy.resample == "bicubic" else 2  # bicubic overshoots, and rounds, near sharp edges
        assert np.abs(lane - expected).max() <= limit and np.abs(lane - expected).mean() < 0.5


def test_the_lane_is_taken_only_when_asked_for() -> None:
    assert device_lane_decision("device")
    # auto stays with the workers until a second GPU run confirms the lane's 1.47x (BENCHMARKS.md, GPU)
    assert not device_lane_decision("auto")
    assert not device_lane_decision("workers")
    with pytest.raises(EngineError, match="--decode"):
        device_lane_decision("gpu")


def _rows(db: Path, sql: str) -> dict[str, tuple]:
    with sqlite3.connect(db) as conn:
        return {row[0]: row[1:] for row in conn.execute(sql)}


def test_score_through_the_lane_matches_the_workers(tmp_path: Path, tiny_checkpoints, monkeypatch) -> None:
    monkeypatch.setattr(faces, "available", lambda: False)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(40):
        kind = ["plain", "noisy", "dark", "blurred"][i % 4]
        scene(i, (320, 240) if i % 3 else (240, 320), kind).save(folder / f"p{i:02d}.jpg", quality=90)
    (folder / "broken.jpg").write_bytes(jpeg_bytes(scene(99))[:-3000])  # truncated: the workers' to report
    refuse = (folder / "p07.jpg").read_bytes()  # one the device decoder refuses: the workers decode it
    decode_jpegs = device_lane.decode_jpegs

    def refusing(blobs: list[bytes], device: torch.device, decoder) -> list[torch.Tensor | None]:
        decoded = decode_jpegs(blobs, device, decoder)
        return [None if blob == refuse else image for blob, image in zip(blobs, decoded)]

    monkeypatch.setattr(device_lane, "decode_jpegs", refusing)
    summaries = {}
    for mode in ("workers", "device"):
        store = Store(tmp_path / f"{mode}.db")
        summaries[mode] = score([str(folder)], store=store, weights=str(tiny_checkpoints["nima"]), device="cpu",
                                precision="fp32", workers=1, decode=mode)  # fmt: skip
    lane, workers = summaries["device"], summaries["workers"]
    assert (lane.scored, workers.scored) == (40, 40) and workers.device_decoded == 0
    assert [f.kind for f in lane.failed] == [f.kind for f in workers.failed] == ["truncated"]
    # The files submitted before the model loaded were decoded by the workers, as was the refused one.
    assert 20 <= lane.device_decoded <= 40 - 1
    columns = "content_hash, sharpness, noise, mean_luma, clipped_shadows, phash, width, height, make"
    by_lane, by_workers = (_rows(tmp_path / f"{m}.db", f"SELECT {columns} FROM images") for m in ("device", "workers"))
    assert by_lane.keys() == by_workers.keys() and len(by_lane) == 40
    for digest, (sharp, noise, luma, shadows, phash, *facts) in by_lane.items():
        w_sharp, w_noise, w_luma, w_shadows, w_phash, *w_facts = by_workers[digest]
        assert facts == w_facts
        assert sharp == pytest.approx(w_sharp, rel=0.03) and noise == pytest.approx(w_noise, rel=0.05, abs=0.05)
        assert luma == pytest.approx(w_luma, abs=0.002) and shadows == pytest.approx(w_shadows, abs=0.002)
        assert hash_distance(phash, w_phash) <= 4
    scores = [_rows(tmp_path / f"{m}.db", "SELECT content_hash, mean FROM scores") for m in ("device", "workers")]
    assert scores[0].keys() == scores[1].keys()
    assert max(abs(scores[0][k][0] - scores[1][k][0]) for k in scores[0]) < 0.01


def test_decode_device_skips_faces_in_its_photos_and_a_later_run_adds_them(tmp_path: Path, tiny_checkpoints) -> None:
    if not faces.available():
        pytest.fail("the faces extra is part of the dev install")
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(24):
        scene(i, (320, 240)).save(folder / f"p{i:02d}.jpg", quality=90)
    store = Store(tmp_path / "a.db")
    options = {"weights": str(tiny_checkpoints["nima"]), "device": "cpu", "workers": 1}
    first = score([str(folder)], store=store, decode="device", **options)
    assert first.scored == 24 and first.device_decoded > 0
    assert first.faces_notice and f"{first.device_decoded} photos decoded on the device" in first.faces_notice
    unlooked = _rows(tmp_path / "a.db", "SELECT content_hash, faces_looked FROM images WHERE faces_looked IS NULL")
    assert len(unlooked) == first.device_decoded  # the workers' photos were looked at as usual
    second = score([str(folder)], store=store, decode="device", **options)  # the next run, whatever its --decode
    assert (second.scored, second.faces_filled, second.faces_notice) == (0, first.device_decoded, None)


def test_an_unknown_decode_mode_fails_before_any_work(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aesthete.cli import app

    with pytest.raises(EngineError, match="unknown --decode 'gpu'; use auto, workers, device"):
        score([str(tmp_path)], store=Store(tmp_path / "a.db"), decode="gpu")
    assert not _rows(tmp_path / "a.db", "SELECT id FROM runs")  # no run was even recorded
    result = CliRunner().invoke(app, ["score", str(tmp_path), "--db", str(tmp_path / "a.db"), "--decode", "gpu"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip() == "error: unknown --decode 'gpu'; use auto, workers, device"


def test_the_first_decoder_that_works_on_the_device_is_used(tmp_path: Path, tiny_checkpoints, monkeypatch) -> None:
    def broken(blobs: list[bytes], device: torch.device) -> list[torch.Tensor]:
        raise RuntimeError("nvjpeg: library not found\nmore")

    assert device_lane.pick_decoder(CPU)[1] == "torchcodec"
    monkeypatch.setitem(device_lane.DECODERS, "torchcodec", broken)
    decoder, name = device_lane.pick_decoder(CPU)
    assert name == "torchvision" and decoder([jpeg_bytes(scene(1))], CPU)[0].shape == (3, 365, 548)
    monkeypatch.setitem(device_lane.DECODERS, "torchvision", broken)
    reason = "torchcodec: RuntimeError: nvjpeg: library not found; torchvision: RuntimeError: nvjpeg: library not found"
    assert device_lane.pick_decoder(CPU) == (None, reason)
    # With none: the workers decode every photo, and the summary says why the lane was not used.
    monkeypatch.setattr(faces, "available", lambda: False)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(20):
        scene(i, (320, 240)).save(folder / f"p{i:02d}.jpg")
    summary = score([str(folder)], store=Store(tmp_path / "a.db"), weights=str(tiny_checkpoints["nima"]),
                    device="cpu", workers=1, decode="device")  # fmt: skip
    assert (summary.scored, summary.device_decoded, summary.failed) == (20, 0, [])
    assert summary.decode_notice == f"no JPEG decoder works on cpu ({reason}); the CPU workers decoded"


def test_mutated_jpegs_the_lane_decodes_are_ones_the_workers_decode() -> None:
    """The fuzz corpus's mutants (tests/fuzz.py): the lane never scores a file the workers would record
    as broken (20,000 by hand: 1,645 plain, 1,321 decoded by both, 298 refused by both, 26 refused by the
    lane alone, which the workers then decode; none decoded by the lane alone)."""
    from fuzz import POLICY, mutants

    from aesthete.decode import DecodeError

    target, outcomes = decode_target(POLICY), set()
    for _, data in mutants(3000, seed=5):
        plain = plain_jpeg(data, target)
        if plain is None:
            continue
        lane = device_lane.decode_jpegs([plain.data], CPU, device_lane.DECODERS["torchcodec"])[0] is not None
        try:
            decode(data, target=target)
        except DecodeError:
            assert not lane, "the lane decoded a file the workers record as broken"
            outcomes.add("both refuse")
        else:
            outcomes.add("both decode" if lane else "the workers alone decode")
    assert {"both decode", "both refuse"} <= outcomes  # the mutants reached both outcomes
