"""read_exif() turns camera metadata into typed fields, and never raises on anything; orientation_tag()
reads the orientation every reader of pixels applies."""

from __future__ import annotations

import io
import struct

import exifread
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
        capture_time_source="exif",
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
    assert digitized.capture_time_source == "exif-digitized"
    only_datetime = read_exif(photo(datetime_original=None))
    assert only_datetime.capture_time == "2024-05-01T11:00:00"
    assert only_datetime.capture_time_source == "file-saved"  # a save time, marked as the fallback it is
    assert "(file saved; no capture time)" in exif_line(only_datetime.to_dict())
    assert "file saved" not in exif_line(read_exif(photo()).to_dict())


def _segment(marker: int, payload: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


XMP_PACKET = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
    ' xmp:CreateDate="2019-06-07T08:09:10.55+02:00">{extra}</rdf:Description></rdf:RDF></x:xmpmeta>'
)


def with_xmp(data: bytes, packet: str) -> bytes:
    """``data`` (a JPEG) with an XMP APP1 segment right after SOI, as editors and phones write it."""
    return data[:2] + _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + packet.encode()) + data[2:]


def test_capture_time_from_xmp_before_the_files_save_time() -> None:
    saved_only = photo(datetime_original=None)  # EXIF has only DateTime (e.g. a Photoshop export date)
    info = read_exif(with_xmp(saved_only, XMP_PACKET.format(extra="")))
    assert (info.capture_time, info.capture_time_source) == ("2019-06-07T08:09:10", "xmp")
    # exif:DateTimeOriginal in XMP comes before xmp:CreateDate, in element form too
    extra = "<exif:DateTimeOriginal>2018-01-02T03:04:05</exif:DateTimeOriginal>"
    assert read_exif(with_xmp(saved_only, XMP_PACKET.format(extra=extra))).capture_time == "2018-01-02T03:04:05"
    # EXIF DateTimeOriginal still comes first
    first = read_exif(with_xmp(photo(), XMP_PACKET.format(extra="")))
    assert (first.capture_time, first.capture_time_source) == ("2024-05-01T12:00:00", "exif")
    assert read_exif(with_xmp(saved_only, "<x:xmpmeta>not xml")).capture_time_source == "file-saved"


def test_pillow_reads_an_exif_block_exifread_misses() -> None:
    """A large ICC profile (APP2) ahead of the EXIF segment: exifread gives up, Pillow finds it."""
    data = photo()
    hidden = data[:2] + _segment(0xE2, b"ICC_PROFILE\x00" + bytes(60000)) + data[2:]
    assert not exifread.process_file(io.BytesIO(hidden), details=False)  # the case this fallback is for
    info = read_exif(hidden)
    assert info == read_exif(data)


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


def test_show_does_not_say_no_exif_for_a_file_with_only_an_orientation(tmp_path) -> None:
    from typer.testing import CliRunner

    from aesthete.cli import app
    from aesthete.scoring import score
    from aesthete.store import Store

    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "turned.jpg").write_bytes(g.encode(g.marker_image(), "JPEG", exif=exif))
    (tmp_path / "bare.jpg").write_bytes(g.encode(g.marker_image(), "JPEG"))
    store = Store(tmp_path / "a.db")
    score([str(tmp_path)], store=store, workers=1)
    store.close()
    runner = CliRunner()
    turned = runner.invoke(app, ["show", str(tmp_path / "turned.jpg"), "--db", str(tmp_path / "a.db")])
    assert turned.exit_code == 0, turned.output
    assert "no EXIF" not in turned.stdout and "only Orientation" in turned.stdout
    bare = runner.invoke(app, ["show", str(tmp_path / "bare.jpg"), "--db", str(tmp_path / "a.db")])
    assert bare.exit_code == 0 and "no EXIF" in bare.stdout


def test_score_stores_where_the_capture_time_came_from(tmp_path) -> None:
    from aesthete.scoring import score
    from aesthete.store import Store

    (tmp_path / "xmp.jpg").write_bytes(with_xmp(photo(datetime_original=None), XMP_PACKET.format(extra="")))
    (tmp_path / "saved.jpg").write_bytes(photo(datetime_original=None, model="Pixel 8"))
    store = Store(tmp_path / "a.db")
    score([str(tmp_path)], store=store, workers=1)
    rows = {p["path"].rsplit("/", 1)[1]: p for p in store.photos(None)}
    assert (rows["xmp.jpg"]["capture_time"], rows["xmp.jpg"]["capture_time_source"]) == ("2019-06-07T08:09:10", "xmp")
    assert rows["saved.jpg"]["capture_time_source"] == "file-saved"
