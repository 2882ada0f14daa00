"""EXIF -> a small typed record: when, with what, and how a photo was taken.

Camera metadata is written by thousands of firmwares and editors, and much of it is wrong, so every
field is validated on its own and falls back to ``None``; :func:`read_exif` never raises. Only the
main IFD and the Exif sub-IFD are read (``details=False`` skips maker notes, which are slow and the
usual source of parser crashes).

The orientation is not part of that record: it says how to turn the pixels, not how the photo was
taken, so it is read from the opened image (:func:`orientation_tag`) by whoever turns them: the decoder,
and the training data's size scan.
"""

from __future__ import annotations

import io
import logging
import math
import re
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import exifread

if TYPE_CHECKING:
    from PIL import Image

# exifread logs a warning for every file without EXIF (every PNG, most edited JPEGs). Missing or
# broken EXIF is an ordinary outcome here, reported as None fields, so keep that noise off stderr.
logging.getLogger("exifread").setLevel(logging.ERROR)

_DATE_RE = re.compile(r"\s*(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})[ T](\d{1,2}):(\d{2}):(\d{2})")
# Capture time, best first, each with the ``capture_time_source`` it records: when the shutter fired
# (EXIF DateTimeOriginal), the same in XMP (editors and phones that keep EXIF thin), when it was digitised
# (a scanner's or a camera's second record), and last the file's own DateTime, which an editor rewrites on
# every save (a Photoshop export date): kept only as a marked fallback.
SOURCE_EXIF, SOURCE_XMP, SOURCE_DIGITIZED, SOURCE_SAVED = "exif", "xmp", "exif-digitized", "file-saved"
_XMP_TIME_PROPERTIES = (
    "{http://ns.adobe.com/exif/1.0/}DateTimeOriginal",
    "{http://ns.adobe.com/photoshop/1.0/}DateCreated",
    "{http://ns.adobe.com/xap/1.0/}CreateDate",
)
_XMP_DATE_RE = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?")
MAX_XMP_BYTES = 4 << 20  # an XMP packet with a long edit history is ~100 kB
# Pillow's names of the tags read when exifread finds nothing (its IFD0 and Exif sub-IFD numbers).
_PIL_TAGS = {
    "Image Make": 0x010F, "Image Model": 0x0110, "Image DateTime": 0x0132, "EXIF DateTimeOriginal": 0x9003,
    "EXIF DateTimeDigitized": 0x9004, "EXIF LensModel": 0xA434, "EXIF FocalLength": 0x920A,
    "EXIF FNumber": 0x829D, "EXIF ExposureTime": 0x829A, "EXIF ISOSpeedRatings": 0x8827,
}  # fmt: skip
_EXIF_IFD = 0x8769
# 0x8827 (called PhotographicSensitivity since EXIF 2.3), then the REI some cameras write beside it.
_ISO_TAGS = ("EXIF ISOSpeedRatings", "EXIF RecommendedExposureIndex")
ORIENTATION = 0x0112  # the EXIF Orientation tag (274)


@dataclass
class ExifInfo:
    """What the cache stores and ``rank``/``cull`` filter on; every field may be ``None``."""

    capture_time: str | None = None  # ISO 8601 local time, 'YYYY-MM-DDTHH:MM:SS' (no zone, no subseconds)
    # where capture_time came from: "exif" (DateTimeOriginal), "xmp", "exif-digitized", or "file-saved" (the
    # file's DateTime: when it was last saved, a fallback that may be an export date, not the capture)
    capture_time_source: str | None = None
    make: str | None = None
    camera: str | None = None  # the EXIF Model
    lens: str | None = None
    focal_length: float | None = None  # mm, as recorded (not 35 mm equivalent)
    f_number: float | None = None
    exposure_time: float | None = None  # seconds
    iso: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, ready for a database row or JSON."""
        return asdict(self)


def read_exif(data: bytes) -> ExifInfo:
    """Parse the EXIF in a photo's bytes (JPEG, TIFF, PNG, WebP, HEIC); garbage gives ``None`` fields.

    exifread first; where it finds nothing, Pillow's parser (it reads some EXIF blocks exifread misses).
    The capture time may also come from the photo's embedded XMP (see :data:`SOURCE_EXIF` and after)."""
    try:
        tags = _process(data)
        if not tags and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            tags = _process(_webp_exif(data))
    except Exception:  # exifread raises many types on malformed input; no EXIF is the honest answer
        tags = {}
    if not tags:
        tags = _pillow_tags(data)
    capture_time, source = _capture_time(tags, data)
    iso = next((v for v in (_int(tags.get(name)) for name in _ISO_TAGS) if v is not None), None)
    return ExifInfo(
        capture_time=capture_time,
        capture_time_source=source,
        make=_text(tags.get("Image Make")),
        camera=_text(tags.get("Image Model")),
        lens=_text(tags.get("EXIF LensModel")),
        focal_length=_positive(tags.get("EXIF FocalLength")),
        f_number=_positive(tags.get("EXIF FNumber")),
        exposure_time=_positive(tags.get("EXIF ExposureTime")),
        iso=iso,
    )


def _capture_time(tags: dict[str, Any], data: bytes) -> tuple[str | None, str | None]:
    """(capture time, its source), the best the EXIF tags and the embedded XMP offer."""
    original = _datetime(tags.get("EXIF DateTimeOriginal"))
    if original:
        return original, SOURCE_EXIF
    from_xmp = xmp_capture_time(data)
    if from_xmp:
        return from_xmp, SOURCE_XMP
    for name, source in (("EXIF DateTimeDigitized", SOURCE_DIGITIZED), ("Image DateTime", SOURCE_SAVED)):
        value = _datetime(tags.get(name))
        if value:
            return value, source
    return None, None


def xmp_capture_time(data: bytes) -> str | None:
    """The capture time in a photo's embedded XMP packet (exif:DateTimeOriginal, photoshop:DateCreated,
    xmp:CreateDate, in that order), as local 'YYYY-MM-DDTHH:MM:SS'; None when there is none or it does
    not parse. The packet is found by its ``<x:xmpmeta`` wrapper, wherever the container keeps it."""
    import xml.etree.ElementTree as ET

    from aesthete.xmp import property_values

    start = data.find(b"<x:xmpmeta")
    end = data.find(b"</x:xmpmeta>", start) if start >= 0 else -1
    if start < 0 or end < 0 or end - start > MAX_XMP_BYTES:
        return None
    packet = data[start : end + len(b"</x:xmpmeta>")]
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:  # XMP never declares them; refuse entity tricks
        return None
    try:
        root = ET.fromstring(packet)
    except ET.ParseError:
        return None
    for name in _XMP_TIME_PROPERTIES:
        for text in property_values(root, name):
            match = _XMP_DATE_RE.match(text)
            if not match:
                continue
            try:  # a date alone (photoshop:DateCreated may be one) counts as that day's midnight
                return datetime(*(int(g) if g else 0 for g in match.groups())).isoformat()
            except ValueError:
                continue
    return None


def _pillow_tags(data: bytes) -> dict[str, Any]:
    """The tags :func:`read_exif` uses, from Pillow's EXIF parser, in exifread's shape (``.values``)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data": broken EXIF is an ordinary outcome here
            with Image.open(io.BytesIO(data)) as image:
                exif = image.getexif()
                found = {**dict(exif), **dict(exif.get_ifd(_EXIF_IFD))}
    except Exception:  # not an image Pillow knows, or a broken block: nothing more to learn
        return {}
    tags: dict[str, Any] = {}
    for name, number in _PIL_TAGS.items():
        value = found.get(number)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = list(value)
        tags[name] = _PillowTag(value if isinstance(value, (str, bytes, list)) else [value])
    return tags


@dataclass
class _PillowTag:
    """A Pillow EXIF value dressed as an exifread tag (rationals are Pillow's IFDRational, a number)."""

    values: Any


def exif_tag_names(path: str) -> list[str] | None:
    """The names of the EXIF tags in the photo at ``path`` (``Orientation``, ...), [] when it has no EXIF,
    None when it cannot be read. For ``show``: a file whose EXIF holds no camera details still has EXIF."""
    from PIL import ExifTags, Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                exif = image.getexif()
                numbers = [*exif, *exif.get_ifd(_EXIF_IFD)]
    except Exception:
        return None
    return [ExifTags.TAGS.get(n, f"0x{n:04x}") for n in numbers if n != _EXIF_IFD]


def orientation_tag(image: Image.Image) -> object:
    """An opened image's EXIF orientation as written (1 when there is none), or ``None`` when its EXIF
    cannot be parsed. Pillow's parser, which knows the EXIF of every container Pillow opens."""
    try:
        return image.getexif().get(ORIENTATION, 1)
    except Exception:  # a broken EXIF block raises many types; the caller decides what that means
        return None


def valid_orientation(value: object) -> int | None:
    """``value`` when it is an EXIF orientation (1..8), else ``None``."""
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _process(data: bytes) -> dict[str, Any]:
    tags = exifread.process_file(io.BytesIO(data), details=False, extract_thumbnail=False)
    return tags if isinstance(tags, dict) else {}


def _webp_exif(data: bytes) -> bytes:
    """The TIFF-format payload of a WebP's EXIF chunk.

    exifread expects the chunk to start with ``Exif\\0\\0`` as in JPEG, but the WebP container spec
    (and Pillow, libwebp) store the bare TIFF header, which exifread then misreads as empty.
    """
    offset = 12
    while offset + 8 <= len(data):
        kind, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        if kind == b"EXIF":
            payload = data[offset + 8 : offset + 8 + size]
            return payload[6:] if payload.startswith(b"Exif\x00\x00") else payload
        offset += 8 + size + (size & 1)  # chunks are padded to even sizes
    return b""


def _first(tag: Any) -> Any:
    """The first value of an exifread tag (values are lists, strings, or tuples for doubles)."""
    values = getattr(tag, "values", None)
    while isinstance(values, (list, tuple)):
        if not values:
            return None
        values = values[0]
    return values


def _text(tag: Any) -> str | None:
    values = getattr(tag, "values", None)
    if isinstance(values, bytes):
        values = values.decode("utf-8", "replace")
    if not isinstance(values, str):
        return None
    text = " ".join(values.replace("\x00", " ").split())
    return text or None


def _positive(tag: Any) -> float | None:
    """A strictly positive, finite number; cameras write 0 (or 0/0) for 'unknown'."""
    try:
        value = float(_first(tag))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _int(tag: Any) -> int | None:
    value = _positive(tag)
    return round(value) if value is not None and value < 2**31 else None


def _datetime(tag: Any) -> str | None:
    text = _text(tag)
    match = _DATE_RE.match(text) if text else None
    if not match:
        return None
    try:
        return datetime(*(int(g) for g in match.groups())).isoformat()
    except ValueError:  # '0000:00:00 00:00:00' and other impossible dates
        return None


def camera_name(info: dict[str, Any]) -> str:
    """Make and model as people say them: 'Canon EOS R5' (not 'Canon Canon EOS R5'), 'SONY ILCE-7M3'."""
    camera, make = info.get("camera"), info.get("make")
    make_word = make.split()[0] if make and make.split() else ""
    if camera and make_word and not camera.casefold().startswith(make_word.casefold()):
        camera = f"{make} {camera}"  # 'ILCE-7M3' alone says less than 'SONY ILCE-7M3'
    return camera or make or ""


def exif_line(info: dict[str, Any]) -> str:
    """One human line, e.g. ``Canon EOS R5 · RF24-70mm · 50 mm · f/2.8 · 1/250 s · ISO 400 · 2024-05-01 12:00``.

    Takes the dict form (a cache row or :meth:`ExifInfo.to_dict`); missing fields are left out.
    """
    parts: list[str] = []
    if camera := camera_name(info):
        parts.append(camera)
    if info.get("lens"):
        parts.append(info["lens"])
    if info.get("focal_length"):
        parts.append(f"{_num(info['focal_length'])} mm")
    if info.get("f_number"):
        parts.append(f"f/{_num(info['f_number'])}")
    if info.get("exposure_time"):
        parts.append(_shutter(info["exposure_time"]))
    if info.get("iso"):
        parts.append(f"ISO {info['iso']}")
    if info.get("capture_time"):
        taken = str(info["capture_time"])[:16].replace("T", " ")
        parts.append(
            f"{taken} (file saved; no capture time)" if info.get("capture_time_source") == SOURCE_SAVED else taken
        )
    return " · ".join(parts)


def _shutter(seconds: float) -> str:
    """Photographers' notation: 1/250 s for short exposures, 0.4 s or 2 s otherwise."""
    if seconds < 1:
        denominator = 1 / seconds
        if abs(denominator - round(denominator)) < 0.02 * denominator:
            return f"1/{round(denominator)} s"
    return f"{_num(seconds)} s"


def _num(value: float) -> str:
    """One decimal at most, no trailing zeros, never scientific: 50, 2.8, 0.4, 1200."""
    return f"{round(float(value), 1):g}" if value >= 1e-1 else f"{value:.2g}"
