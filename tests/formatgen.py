"""Generated camera files: a DNG with an embedded JPEG preview, a JPEG with an MPF large preview, a HEIC.

Nothing is downloaded: each file is written from scratch, small enough to build in milliseconds.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

_BYTE, _ASCII, _SHORT, _LONG = 1, 2, 3, 4


def _ifd(entries: list[tuple[int, int, int, bytes]], offset: int) -> bytes:
    """One little-endian TIFF IFD at ``offset``: (tag, type, count, value bytes); long values follow it."""
    entries = sorted(entries)
    head = struct.pack("<H", len(entries))
    extra_at = offset + 2 + 12 * len(entries) + 4
    body, extra = b"", b""
    for tag, kind, count, value in entries:
        if len(value) <= 4:
            body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
        else:
            body += struct.pack("<HHII", tag, kind, count, extra_at + len(extra))
            extra += value + b"\0" * (len(value) % 2)
    return head + body + b"\0\0\0\0" + extra


def _short(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}H", *values)


def _long(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def _ascii(text: str) -> bytes:
    return text.encode() + b"\0"


def dng(
    preview: bytes | None,
    *,
    orientation: int = 1,
    raw_size: tuple[int, int] = (64, 48),
    make: str = "Canon",
    model: str = "EOS Test",
    taken: str = "2024:05:01 12:00:03",
    seed: int = 0,
) -> bytes:
    """A minimal DNG LibRaw reads: a 16-bit RGGB CFA in IFD0 (with ``orientation`` and EXIF-style make,
    model and date) and, when ``preview`` (JPEG bytes) is given, that JPEG in a SubIFD, as cameras store
    their full-size preview."""
    raw_w, raw_h = raw_size
    rng = np.random.default_rng(seed)
    cfa = rng.integers(500, 3000, size=(raw_h, raw_w)).astype("<u2").tobytes()
    cfa_at = 8
    preview_at = cfa_at + len(cfa)
    ifd0_at = preview_at + len(preview or b"")
    ifd0_at += ifd0_at % 2

    def ifd0(sub_at: int) -> list[tuple[int, int, int, bytes]]:
        entries = [
            (254, _LONG, 1, _long(0)),  # NewSubFileType: the main image
            (256, _LONG, 1, _long(raw_w)),
            (257, _LONG, 1, _long(raw_h)),
            (258, _SHORT, 1, _short(16)),
            (259, _SHORT, 1, _short(1)),  # uncompressed
            (262, _SHORT, 1, _short(32803)),  # CFA
            (271, _ASCII, len(make) + 1, _ascii(make)),
            (272, _ASCII, len(model) + 1, _ascii(model)),
            (273, _LONG, 1, _long(cfa_at)),
            (274, _SHORT, 1, _short(orientation)),
            (277, _SHORT, 1, _short(1)),
            (278, _LONG, 1, _long(raw_h)),
            (279, _LONG, 1, _long(len(cfa))),
            (306, _ASCII, len(taken) + 1, _ascii(taken)),
            (33421, _SHORT, 2, _short(2, 2)),  # CFARepeatPatternDim
            (33422, _BYTE, 4, bytes([0, 1, 1, 2])),  # CFAPattern: RGGB
            (50706, _BYTE, 4, bytes([1, 4, 0, 0])),  # DNGVersion 1.4
            (50708, _ASCII, len(model) + 1, _ascii(model)),  # UniqueCameraModel
        ]
        if preview is not None:
            entries.append((330, _LONG, 1, _long(sub_at)))  # SubIFDs
        return entries

    size0 = len(_ifd(ifd0(0), ifd0_at))
    sub_at = ifd0_at + size0 + size0 % 2
    out = bytearray(b"II*\0" + _long(ifd0_at)) + cfa + (preview or b"")
    out += b"\0" * (ifd0_at - len(out))
    out += _ifd(ifd0(sub_at), ifd0_at)
    if preview is not None:
        pw, ph = Image.open(io.BytesIO(preview)).size
        out += b"\0" * (sub_at - len(out))
        out += _ifd(
            [
                (254, _LONG, 1, _long(1)),  # a reduced-resolution copy
                (256, _LONG, 1, _long(pw)),
                (257, _LONG, 1, _long(ph)),
                (258, _SHORT, 3, _short(8, 8, 8)),
                (259, _SHORT, 1, _short(7)),  # JPEG
                (262, _SHORT, 1, _short(6)),  # YCbCr
                (273, _LONG, 1, _long(preview_at)),
                (277, _SHORT, 1, _short(3)),
                (279, _LONG, 1, _long(len(preview))),
            ],
            sub_at,
        )
    return bytes(out)


LARGE_THUMBNAIL_FULL_HD = 0x010002  # MPF MP Type of a camera's "Large Thumbnail (Full HD Equivalent)"


def mpo(primary: Image.Image, previews: list[Image.Image], mp_type: int = LARGE_THUMBNAIL_FULL_HD, **params) -> bytes:
    """A JPEG with MPF frames after the primary, as cameras write it.

    Pillow writes the MPF index with the type "Undefined" for every frame after the first; the MP entries
    are patched to ``mp_type`` afterwards (16-byte entries, type in the low 24 bits of the first word)."""
    buffer = io.BytesIO()
    primary.save(buffer, "MPO", save_all=True, append_images=previews, quality=90, **params)
    data = bytearray(buffer.getvalue())
    mpf = data.index(b"MPF\0") + 4
    tiff = bytes(data[mpf:])
    count = struct.unpack_from("<H", tiff, 8)[0]
    for i in range(count):
        tag, _, _, value = struct.unpack_from("<HHII", tiff, 10 + 12 * i)
        if tag == 0xB002:
            for frame in range(1, len(previews) + 1):
                at = mpf + value + 16 * frame
                attribute = struct.unpack_from("<I", data, at)[0]
                struct.pack_into("<I", data, at, (attribute & 0xFF000000) | mp_type)
    return bytes(data)


def heic(image: Image.Image, *, thumbnails: tuple[int, ...] = (), orientation: int = 1) -> bytes:
    """A HEIC (pillow-heif), with thumbnail images whose longer side is each of ``thumbnails``. An EXIF
    ``orientation`` becomes the HEIF's rotation (pillow-heif stores ``image`` turned as the tag says)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "HEIF", quality=85, thumbnails=list(thumbnails), exif=exif.tobytes())
    return buffer.getvalue()
