"""decode(): every input becomes an upright sRGB RGB image or a DecodeError with a kind, never a crash."""

from __future__ import annotations

import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import imagegen as g
import numpy as np
import pytest
from PIL import Image

from aesthete import decode as decode_module
from aesthete.decode import DecodeError, decode
from aesthete.decode_worker import decode_target
from aesthete.signals import working_gray


def rgb(image: Image.Image, xy: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.getpixel(xy), dtype=int)


def close(image: Image.Image, xy: tuple[int, int], expected: tuple[int, int, int], tol: int = 6) -> bool:
    return bool(np.all(np.abs(rgb(image, xy) - np.asarray(expected)) <= tol))


def corrupt_exif_jpeg(seed: int = 0) -> bytes:
    tiff_header = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08"
    return g.encode(g.marker_image(), "JPEG", exif=tiff_header + g.random_bytes(300, seed))


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_turns_the_photo_upright(orientation: int) -> None:
    decoded = decode(g.jpeg_with_orientation(orientation, size=(120, 80)))
    image = decoded.image
    assert image.size == (120, 80)
    assert (decoded.width, decoded.height) == (120, 80)
    assert close(image, (3, 3), (255, 0, 0))  # red block top-left
    assert close(image, (116, 76), (0, 0, 255))  # blue block bottom-right
    assert close(image, (116, 3), (128, 128, 128))


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_orientation_in_other_formats(fmt: str, orientation: int) -> None:
    """Pillow's TIFF reader rotates on load by itself; the decoder must not rotate a second time."""
    stored = g.stored_for_orientation(g.marker_image((120, 80)), orientation)
    params = {"lossless": True} if fmt == "WEBP" else {}
    decoded = decode(g.encode(stored, fmt, exif=g.make_exif(orientation=orientation), **params))
    assert (decoded.width, decoded.height) == decoded.image.size == (120, 80)
    assert close(decoded.image, (3, 3), (255, 0, 0))


def test_orientation_with_reduced_decode_reports_full_upright_size() -> None:
    stored = g.stored_for_orientation(g.scene(3, (1600, 1200)), 6)  # stored 1200x1600, upright 1600x1200
    data = g.encode(stored, "JPEG", exif=g.make_exif(orientation=6))
    decoded = decode(data, target=lambda w, h: (w // 6, h // 6))
    assert (decoded.width, decoded.height) == (1600, 1200)
    assert decoded.image.width > decoded.image.height  # upright landscape
    assert decoded.image.size[0] >= 1600 // 6 and decoded.image.size[1] >= 1200 // 6
    assert decoded.image.size[0] <= 1600 // 2


@pytest.mark.parametrize("value", [0, 9, 42, 65535])
def test_out_of_range_orientation_is_ignored(value: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = value
    decoded = decode(g.encode(g.marker_image(), "JPEG", exif=exif))
    assert decoded.image.size == (120, 80)
    assert close(decoded.image, (3, 3), (255, 0, 0))
    assert any("orientation" in note for note in decoded.notes)


@pytest.mark.parametrize("seed", range(6))
def test_garbage_exif_never_raises(seed: int) -> None:
    decoded = decode(corrupt_exif_jpeg(seed))
    assert decoded.image.size == (120, 80)


def test_pillow_warnings_become_notes_not_stderr() -> None:
    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        decoded = decode(corrupt_exif_jpeg())
    assert outside == []
    assert any("EXIF" in note for note in decoded.notes)


def test_only_the_main_thread_swaps_the_process_wide_warning_filters() -> None:
    """catch_warnings is not thread-safe, so decoding from worker threads must not use it."""
    filters = warnings.filters
    seen: list[tuple[bool, bool]] = []

    def target(width: int, height: int) -> tuple[int, int]:  # called in the middle of decode()
        seen.append((threading.current_thread() is threading.main_thread(), warnings.filters is filters))
        return width, height

    data = g.jpeg_with_orientation(6)
    decode(data, target=target)
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(decode, data, target=target).result().image.size == (120, 80)
    assert seen == [(True, False), (False, True)]
    assert warnings.filters is filters


def test_cmyk_jpeg_becomes_rgb() -> None:
    decoded = decode(g.cmyk_jpeg(Image.new("RGB", (32, 32), (200, 100, 50))))
    assert decoded.image.mode == "RGB"
    assert close(decoded.image, (16, 16), (200, 100, 50), tol=8)


def test_16bit_png_grey_and_rgb_are_scaled_not_truncated() -> None:
    grey = decode(g.png16(np.full((8, 8), 40000, np.uint16)))
    assert close(grey.image, (4, 4), (156, 156, 156), tol=1)  # 40000 / 65535 * 255 = 155.7
    colour = decode(g.png16(np.full((8, 8, 3), [60000, 30000, 1000], np.uint16)))
    assert close(colour.image, (4, 4), (233, 117, 4), tol=1)


def test_16bit_tiff_grey_and_rgb() -> None:
    grey = decode(g.tiff16(np.full((8, 8), 20000, np.uint16)))
    assert close(grey.image, (4, 4), (78, 78, 78), tol=1)  # 20000 / 65535 * 255 = 77.8
    colour = decode(g.tiff16(np.full((8, 8, 3), [60000, 30000, 1000], np.uint16)))
    assert close(colour.image, (4, 4), (233, 117, 4), tol=1)


def test_grayscale_and_1bit() -> None:
    grey = decode(g.encode(Image.new("L", (10, 10), 77), "JPEG", quality=100))
    assert grey.image.mode == "RGB" and close(grey.image, (5, 5), (77, 77, 77), tol=1)
    bilevel = Image.new("1", (10, 10), 0)
    bilevel.paste(1, (5, 0, 10, 10))
    one = decode(g.encode(bilevel, "PNG"))
    assert close(one.image, (1, 1), (0, 0, 0), tol=0) and close(one.image, (8, 1), (255, 255, 255), tol=0)


def test_palette_with_transparency_is_composited_on_white() -> None:
    decoded = decode(g.palette_png_with_transparency((40, 30)))
    assert close(decoded.image, (5, 5), (255, 0, 0), tol=0)
    assert close(decoded.image, (35, 5), (255, 255, 255), tol=0)
    assert any("white" in note for note in decoded.notes)


def test_rgba_is_composited_on_white() -> None:
    decoded = decode(g.rgba_png((40, 30)))
    assert close(decoded.image, (5, 5), (0, 0, 255), tol=0)
    assert close(decoded.image, (35, 5), (255, 255, 255), tol=0)


def test_opaque_alpha_is_dropped_without_a_note() -> None:
    decoded = decode(g.encode(Image.new("RGBA", (8, 8), (10, 20, 30, 255)), "PNG"))
    assert close(decoded.image, (4, 4), (10, 20, 30), tol=0)
    assert decoded.notes == []


def test_lab_tiff_is_converted() -> None:
    decoded = decode(g.encode(Image.new("LAB", (8, 8), (128, 128, 128)), "TIFF"))  # L=50, a=b=0: neutral grey
    r, gg, b = rgb(decoded.image, (4, 4))
    assert abs(r - gg) <= 2 and abs(gg - b) <= 2 and 100 < gg < 140


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_gives_first_frame(fmt: str) -> None:
    decoded = decode(g.animated(fmt))
    assert close(decoded.image, (5, 5), (255, 0, 0), tol=4)
    assert any("first frame" in note for note in decoded.notes)


def test_tiny_and_extreme_aspect_images() -> None:
    one = decode(g.encode(Image.new("RGB", (1, 1), (9, 99, 199)), "PNG"), target=lambda w, h: (224, 224))
    assert one.image.size == (1, 1) and (one.width, one.height) == (1, 1)
    strip = decode(g.encode(Image.new("RGB", (20000, 10), (50, 60, 70)), "PNG"), target=lambda w, h: (224, 224))
    assert (strip.width, strip.height) == (20000, 10)
    assert strip.image.height == 10  # cannot shrink below the target on the short side
    jpeg_strip = decode(g.encode(Image.new("RGB", (20000, 10), (50, 60, 70)), "JPEG"), min_side=5)
    assert jpeg_strip.image.height >= 5 and jpeg_strip.image.width >= 10000


@pytest.mark.parametrize("size", [(16000, 240), (240, 16000)])
def test_a_reduced_decode_keeps_the_rows_the_signals_need(size: tuple[int, int]) -> None:
    """The workers' decode size (decode_worker.decode_target) serves the signals' working size: a panorama's
    reduced-size decode gives the same working image as its full decode, rows and all."""
    photo = g.scene(3, size)
    decoded = decode(g.encode(photo, "JPEG", quality=92), target=decode_target(None))
    assert min(decoded.image.size) < min(size)  # it was reduced
    assert working_gray(decoded.image).size == working_gray(photo).size
    assert min(working_gray(decoded.image).size) >= 60


def test_large_jpeg_reduced_decode_is_at_least_target_and_much_smaller() -> None:
    data = g.large_jpeg((6000, 4000))
    target = (450, 300)
    decoded = decode(data, target=lambda w, h: target)
    assert (decoded.width, decoded.height) == (6000, 4000)
    w, h = decoded.image.size
    assert w >= target[0] and h >= target[1]
    assert w * h <= 6000 * 4000 / 16  # DCT scaling to 1/8 (750x500) on a 6000x4000 JPEG
    full = decode(data)
    assert full.image.size == (6000, 4000)


def test_multi_picture_jpeg_is_drafted_and_not_called_animated() -> None:
    """Many cameras write MPO (a JPEG followed by previews); Pillow names the format MPO."""
    data = g.encode(g.scene(1, (1600, 1200)), "MPO", save_all=True, append_images=[g.scene(2, (1600, 1200))])
    decoded = decode(data, target=lambda w, h: (200, 150))
    assert decoded.format == "MPO" and (decoded.width, decoded.height) == (1600, 1200)
    assert decoded.image.size == (200, 150)
    assert decoded.notes == []


def test_min_side_keeps_the_short_side() -> None:
    picture = g.scene(2, (1200, 800))
    decoded = decode(g.encode(picture, "JPEG"), min_side=150)
    assert 150 <= min(decoded.image.size) < 400  # 1/4 DCT scaling: 300x200
    png = decode(g.encode(picture, "PNG", compress_level=1), min_side=150)  # shrunk by Image.reduce
    assert 150 <= min(png.image.size) < 300


def test_decompression_bomb_is_rejected_before_decoding() -> None:
    start = time.perf_counter()
    with pytest.raises(DecodeError) as excinfo:
        decode(g.png_header_only(100_000, 100_000))
    assert excinfo.value.kind == "bomb"
    assert time.perf_counter() - start < 1.0  # nothing was allocated for 10^10 pixels


@pytest.mark.parametrize("size", [(15_000, 13_000), (100_000, 100_000)])
def test_pillows_bomb_refusal_says_the_photos_size_and_the_limit_in_one_line(size: tuple[int, int]) -> None:
    """Pillow refuses a canvas over 2 x Image.MAX_IMAGE_PIXELS when it opens the header, before aesthete's own
    check: the recorded reason was Pillow's "Image size (195000000 pixels) exceeds limit of ...", without the
    photo's dimensions (field test)."""
    with pytest.raises(DecodeError) as excinfo:
        decode(g.png_header_only(*size))
    limit = 2 * Image.MAX_IMAGE_PIXELS
    assert excinfo.value.kind == "bomb"
    assert str(excinfo.value) == f"{size[0]}x{size[1]} is more than {limit:,} pixels (Pillow's limit)"


def test_max_pixels_is_our_own_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    data = g.encode(g.scene(1, (100, 100)), "PNG")
    monkeypatch.setattr(decode_module, "MAX_PIXELS", 9_999)
    with pytest.raises(DecodeError) as excinfo:
        decode(data)
    assert excinfo.value.kind == "bomb"


def test_canvas_above_pillows_warning_level_is_not_a_bomb() -> None:
    """120 MP (a 100-MP medium-format frame is this size) passes the size check; this file then
    fails only because it holds no pixel data."""
    with pytest.raises(DecodeError) as excinfo:
        decode(g.png_header_only(12_000, 10_000))
    assert excinfo.value.kind == "truncated"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "GIF", "BMP"])
def test_truncated_files_are_rejected(fmt: str) -> None:
    data = g.encode(g.noisy(g.scene(4, (300, 200)), 20), fmt)
    with pytest.raises(DecodeError) as excinfo:
        decode(data[: len(data) // 2])
    assert excinfo.value.kind == "truncated"


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF", "BMP"])
def test_a_truncated_file_is_said_to_end_early_not_to_leave_a_few_bytes(fmt: str) -> None:
    """A JPEG cut in half failed with Pillow's "image file is truncated (38 bytes not processed)": a count
    of its buffer's leftovers, read by a photographer as the bytes missing (field test)."""
    data = g.encode(g.noisy(g.scene(4, (300, 200)), 20), fmt)
    with pytest.raises(DecodeError) as excinfo:
        decode(data[: len(data) // 2])
    assert excinfo.value.kind == "truncated" and "bytes not processed" not in str(excinfo.value)
    assert str(excinfo.value) == decode_module.TRUNCATED_REASON


@pytest.mark.parametrize("params", [{"quality": 80}, {"lossless": True}])
@pytest.mark.parametrize("keep", [0.5, 0.9, 30, 13])
def test_a_webp_cut_short_is_truncated_not_corrupt(params: dict, keep: float) -> None:
    """Field test: a WebP cut in half was "corrupt: could not create decoder object" (libwebp's words for
    any file it cannot start on); its RIFF header declares the bytes it should have, so it is truncated."""
    data = g.encode(g.noisy(g.scene(4, (300, 200)), 20), "WEBP", **params)
    cut = data[: int(len(data) * keep) if keep < 1 else int(keep)]
    with pytest.raises(DecodeError) as excinfo:
        decode(cut)
    assert (excinfo.value.kind, str(excinfo.value)) == ("truncated", decode_module.TRUNCATED_REASON)


def test_a_whole_webp_with_broken_data_is_still_corrupt() -> None:
    """Only a file shorter than its header says is truncated: the same damage at full length is corruption."""
    data = bytearray(g.encode(g.noisy(g.scene(4, (300, 200)), 20), "WEBP", quality=80))
    data[20:60] = bytes(40)  # the VP8 frame header and the start of its data
    with pytest.raises(DecodeError) as excinfo:
        decode(bytes(data))
    assert excinfo.value.kind == "corrupt"


def test_random_bytes_empty_and_text() -> None:
    for data, kind in [(g.random_bytes(5000), "not-an-image"), (b"", "empty"), (b"hello world\n" * 50, "not-an-image")]:
        with pytest.raises(DecodeError) as excinfo:
            decode(data)
        assert excinfo.value.kind == kind
        assert "\n" not in str(excinfo.value) and str(excinfo.value)


@pytest.mark.parametrize("seed", range(40))
def test_corrupted_files_raise_only_decode_error(seed: int) -> None:
    """Flip bytes all over valid files of every format: whatever happens, only DecodeError escapes."""
    rng = np.random.default_rng(seed)
    fmt = ["JPEG", "PNG", "TIFF", "WEBP", "GIF", "BMP"][seed % 6]
    data = bytearray(g.encode(g.scene(seed, (64, 48)), fmt))
    positions = rng.integers(0, len(data), size=1 + seed % 8)
    for p in positions:
        data[p] = int(rng.integers(0, 256))
    try:
        decoded = decode(bytes(data), target=lambda w, h: (16, 16))
    except DecodeError as exc:
        assert exc.kind in {"truncated", "corrupt", "not-an-image", "bomb", "unsupported", "decode-error"}
    else:
        assert decoded.image.mode == "RGB"


def test_icc_profile_is_converted_to_srgb() -> None:
    icc = g.rgb_icc_profile()
    colour = (200, 100, 50)
    decoded = decode(g.encode(Image.new("RGB", (16, 16), colour), "PNG", icc_profile=icc))
    expected = g.p3_to_srgb_reference(colour)  # ~ (216, 92, 24): P3 colours are more saturated
    assert np.all(np.abs(rgb(decoded.image, (8, 8)) - expected) <= 2)
    untagged = decode(g.encode(Image.new("RGB", (16, 16), colour), "PNG"))
    assert close(untagged.image, (8, 8), colour, tol=0)
    assert "icc_profile" not in decoded.image.info  # the pixels are sRGB now; the old tag would lie


def test_srgb_profile_leaves_pixels_alone() -> None:
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    decoded = decode(g.encode(Image.new("RGB", (8, 8), (200, 100, 50)), "PNG", icc_profile=srgb))
    assert close(decoded.image, (4, 4), (200, 100, 50), tol=0)


def test_invalid_or_mismatched_icc_profile_is_skipped_with_a_note() -> None:
    broken = decode(g.encode(Image.new("RGB", (8, 8), (200, 100, 50)), "PNG", icc_profile=b"not a profile" * 20))
    assert close(broken.image, (4, 4), (200, 100, 50), tol=0)
    assert any("ICC" in note for note in broken.notes)
    grey = decode(g.encode(Image.new("L", (8, 8), 90), "PNG", icc_profile=g.rgb_icc_profile()))
    assert close(grey.image, (4, 4), (90, 90, 90), tol=0)
    assert any("does not match" in note for note in grey.notes)


def test_decoded_image_carries_no_stale_metadata() -> None:
    decoded = decode(g.jpeg_with_orientation(6))
    assert decoded.image.info == {}
    assert decoded.format == "JPEG"
