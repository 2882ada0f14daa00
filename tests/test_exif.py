"""read_exif() turns camera metadata into typed fields, and never raises on anything; orientation_tag()
reads the orientation every reader of pixels applies."""

from __future__ import annotations

import io

import imagegen as g
import pytest
from PIL import Image

from aesthete.exif import ExifInfo, exif_line, orientation_tag, read_exif, valid_orientation


def photo(**exif_fields: object) -> bytes:
    return g.encode(g.marker_image(), "JPEG", exif=g.make_exif(**exif_fields))


def orientation(data: bytes) -> int | None:
    return valid_orientation(orientation_tag(Image.open(io.BytesIO(data))))


def test_fields_read_back_from_a_camera_like_jpeg() -> None:
    data = photo(orientation=6, model="  Canon EOS R5\x00 ")
    info = read_exif(data)
    assert info == ExifInfo(
        capture_time="2024-05-01T12:00:00",
        make="Canon",
        camera="Canon EOS R5",
        lens="RF24-70mm F2.8 L IS USM",
        focal_length=50.0,
        f_number=2.8,
        exposure_time=0.004,
        iso=400,
    )
    assert orientation(data) == 6
    assert info.to_dict()["exposure_time"] == 0.004


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_in_png_and_webp(fmt: str) -> None:
    """WebP stores a bare TIFF header in its EXIF chunk, which exifread alone misreads."""
    data = g.encode(g.marker_image(), fmt, exif=g.make_exif(orientation=8))
    info = read_exif(data)
    assert info.camera == "Canon EOS R5"
    assert info.capture_time == "2024-05-01T12:00:00"
    assert orientation(data) == 8


def test_capture_time_falls_back_to_digitized_then_datetime() -> None:
    digitized = read_exif(photo(datetime_original=None, datetime_digitized="2023:01:02 03:04:05"))
    assert digitized.capture_time == "2023-01-02T03:04:05"
    only_datetime = read_exif(photo(datetime_original=None))
    assert only_datetime.capture_time == "2024-05-01T11:00:00"


@pytest.mark.parametrize(
    "value",
    ["0000:00:00 00:00:00", "2024:13:01 12:00:00", "    :  :     :  :  ", "yesterday", "2024:02:30 10:00:00"],
)
def test_impossible_dates_are_none(value: str) -> None:
    assert read_exif(photo(datetime_original=value, datetime=None)).capture_time is None


def test_unknown_values_written_as_zero_are_none() -> None:
    info = read_exif(photo(focal_length=(0, 1), f_number=(0, 0), exposure_time=(1, 0), iso=0, lens="  ", make=""))
    assert (info.focal_length, info.f_number, info.exposure_time, info.iso, info.lens, info.make) == (None,) * 6


@pytest.mark.parametrize("value", [0, 9, 300])
def test_orientation_outside_1_to_8_is_none(value: int) -> None:
    assert orientation(photo(orientation=value)) is None


def test_orientation_absent_is_upright_and_unparseable_is_none() -> None:
    assert orientation_tag(Image.open(io.BytesIO(g.encode(g.marker_image(), "PNG")))) == 1

    class Broken:
        def getexif(self) -> None:
            raise SyntaxError("not a TIFF file")

    assert orientation_tag(Broken()) is None  # type: ignore[arg-type]


def test_no_exif_gives_all_none() -> None:
    assert read_exif(g.encode(g.marker_image(), "PNG")) == ExifInfo()


@pytest.mark.parametrize("seed", range(15))
def test_garbage_never_raises(seed: int) -> None:
    headers = [
        b"",
        b"\xff\xd8\xff\xe1\x01\x00Exif\x00\x00",
        b"II*\x00",
        b"MM\x00*\x00\x00\x00\x08",
        b"RIFF\x00\x00\x00\x00WEBP",
    ]
    data = headers[seed % len(headers)] + g.random_bytes(200 + seed * 37, seed)
    assert isinstance(read_exif(data), ExifInfo)


@pytest.mark.parametrize("seed", range(20))
def test_corrupted_exif_inside_a_valid_jpeg_never_raises(seed: int) -> None:
    blob = bytearray(g.make_exif().tobytes())
    for i in range(seed % 5 + 1):
        blob[(seed * 131 + i * 57) % len(blob)] ^= 0xFF
    data = g.encode(g.marker_image(), "JPEG", exif=bytes(blob))
    assert isinstance(read_exif(data), ExifInfo)


def test_empty_bytes() -> None:
    assert read_exif(b"") == ExifInfo()


def test_exif_line_formats_like_a_photographer_would() -> None:
    assert exif_line(read_exif(photo()).to_dict()) == (
        "Canon EOS R5 · RF24-70mm F2.8 L IS USM · 50 mm · f/2.8 · 1/250 s · ISO 400 · 2024-05-01 12:00"
    )


def test_exif_line_partial_and_make_prefix() -> None:
    assert exif_line({"make": "SONY", "camera": "ILCE-7M3", "exposure_time": 2.5}) == "SONY ILCE-7M3 · 2.5 s"
    assert exif_line({"make": "NIKON CORPORATION", "camera": "NIKON D850", "f_number": 11.0}) == "NIKON D850 · f/11"
    assert exif_line({"exposure_time": 0.4, "focal_length": 24.5}) == "24.5 mm · 0.4 s"
    assert exif_line({}) == ""
    assert exif_line(ExifInfo().to_dict()) == ""


def test_read_exif_accepts_a_real_pillow_exif_object_bytes() -> None:
    exif = Image.Exif()
    exif[0x0110] = "Pixel 8"
    info = read_exif(g.encode(g.marker_image(), "JPEG", exif=exif))
    assert info.camera == "Pixel 8" and info.make is None and info.capture_time is None
