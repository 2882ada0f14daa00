"""Any photo's bytes -> an upright sRGB ``RGB`` image, as small as the model allows.

This runs in the decode workers, so it is torch-free and total: for any input bytes it returns a
:class:`Decoded` or raises :class:`DecodeError` with a short ``kind`` tag and a one-line message,
never anything else. The order of work is chosen for speed on 24-megapixel JPEGs:

1. Open (header only) and refuse more than :data:`MAX_PIXELS` pixels before any pixel is decoded.
2. Ask libjpeg for a reduced-size decode (``Image.draft``, DCT scaling by 1/2, 1/4 or 1/8) that is
   still at least as large as the caller's target; other formats are decoded in full and then shrunk
   by an integer box filter (``Image.reduce``), so workers never ship full-size pixels. Cheaper
   still, an embedded preview that is large enough is decoded instead of the photo:

   - a JPEG's MPF "Large Thumbnail" (cameras write a 1620x1080-class copy after the primary image;
     it decodes ~10x faster than a reduced-size decode of a 24-MP primary);
   - a HEIC/HEIF's thumbnail image (pillow-heif's ``draft``), else the full HEVC decode;
   - a camera RAW's embedded JPEG preview (LibRaw through rawpy), never a demosaic. A RAW whose
     preview is missing, unreadable or smaller than the target is decoded from its raw data at half
     size (each 2x2 Bayer block one pixel: no demosaicing), and a note says so.

   A preview's own EXIF orientation is ignored: the file's (the JPEG primary's, the RAW's) applies.
3. Bring every mode to 8 bits per channel (16-bit PNG/TIFF scaled, not truncated), apply the EXIF
   orientation, flatten transparency onto white, convert an embedded ICC profile to sRGB.

Transparent pixels are composited on white because that is how viewers and contact sheets show a
transparent PNG; a model fed black there would judge a different picture.
Truncated files are rejected (kind ``truncated``) rather than scored with a grey band: a partial
photo's score would be a score of a different picture.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from aesthete.exif import orientation_tag, valid_orientation

try:
    import rawpy
except ImportError:  # a core dependency, but a broken install must still score every other photo
    rawpy = None
try:
    from pillow_heif import register_heif_opener
except ImportError:  # the optional ``heic`` extra (its wheels bundle GPL-2 code; see README)
    HEIF_AVAILABLE = False
else:
    # One decoder thread: the decode workers already keep every core busy.
    register_heif_opener(decode_threads=1)
    HEIF_AVAILABLE = True
ALL_DECODERS = rawpy is not None and HEIF_AVAILABLE  # only then is a NO_DECODER failure worth retrying

MAX_PIXELS = 200_000_000
"""Largest canvas decoded, in pixels (a 100-MP medium-format photo passes; a crafted header does not).

Pillow's own hard limit, ``2 * Image.MAX_IMAGE_PIXELS`` (179 MP by default), is kept and also reported
as ``bomb``; Pillow's warning level (89 MP) is not an error here, since real photos exceed it."""

# DecodeError kinds: short, stable tags the store and the summary group failures by.
EMPTY = "empty"  # zero bytes
NOT_AN_IMAGE = "not-an-image"  # no image format recognised
TRUNCATED = "truncated"  # the data ends before the image does
# Pillow's own words add "(N bytes not processed)": its buffer's leftovers, not what is missing (a JPEG cut
# in half said 38 bytes; field test).
TRUNCATED_REASON = "the file ends before the image does (cut short, as by an interrupted copy or download)"
CORRUPT = "corrupt"  # recognised, but the data stream is broken
BOMB = "bomb"  # more than MAX_PIXELS pixels
UNSUPPORTED = "unsupported"  # recognised, but no decoder or pixel mode we can handle
NO_DECODER = "no-decoder"  # recognised, but its optional decoder is not installed (retried once it is)
DECODE_ERROR = "decode-error"  # anything else

# EXIF orientation -> the transpose that makes the image upright (the table of ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What Image.draft can shrink while decoding: DCT scaling for JPEG, an embedded thumbnail for HEIF.
_DRAFT_FORMATS = frozenset({"JPEG", "MPO", "HEIF"})
# LibRaw's ``sizes.flip`` (dcraw's bits: 1 mirror, 2 flip, 4 transpose; 3 = 180 degrees, 5 = 90 counter-clockwise,
# 6 = 90 clockwise) -> EXIF orientation.
_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
# Raised when the data is not what Pillow or LibRaw reads (LibRaw's errors, classified in _unidentified).
_UNRECOGNISED = (UnidentifiedImageError,) if rawpy is None else (UnidentifiedImageError, rawpy.LibRawError)
_PREVIEW_ASPECT_TOLERANCE = 0.01  # an MPF frame is a scaled copy of the primary if its aspect ratio is this close
_ICC_SPACE_FOR_MODE = {"RGB": "RGB", "RGBA": "RGB", "L": "GRAY", "LA": "GRAY", "CMYK": "CMYK"}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class DecodeError(Exception):
    """A photo that cannot be scored; ``kind`` is a short tag, ``str(error)`` a one-line reason."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Decoded:
    """The decoded photo and the facts about the original that the cache records."""

    image: Image.Image  # mode RGB, upright, sRGB; possibly reduced in size
    width: int  # full-resolution size of the original, after orientation
    height: int
    format: str  # Pillow's format name (JPEG, MPO, PNG, TIFF, WEBP, HEIF...); a RAW's extension (CR2, NEF...)
    notes: list[str] = field(default_factory=list)  # what was unusual and how it was handled


def decode(
    data: bytes,
    *,
    target: Callable[[int, int], tuple[int, int]] | None = None,
    min_side: int = 0,
    raw: str | None = None,
) -> Decoded:
    """Decode ``data`` to an upright sRGB RGB image.

    ``target(width, height)`` maps the oriented full size to the (width, height) the model needs
    (it is called once, after the header is read); together with ``min_side`` (shortest side wanted)
    it lets the decode shrink the image as long as the result stays at least that large in both
    dimensions. With neither, the full size is returned (for a RAW: its largest preview).
    ``raw`` names the camera RAW format (``"CR2"``; the file's extension, since Pillow would read many
    RAWs as a TIFF thumbnail) to read ``data`` through LibRaw.
    """
    if not data:
        raise DecodeError(EMPTY, "empty file (0 bytes)")
    notes: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        return _decode_or_raise(data, target, min_side, raw, notes)
    # Pillow reports oddities (corrupt EXIF, malformed MPO, ...) as warnings: keep them as notes, not
    # stderr noise. catch_warnings swaps process-wide state, so only the main thread (that of each
    # decode worker process) does it; decoding from other threads leaves warnings alone.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decoded = _decode_or_raise(data, target, min_side, raw, notes)
    for w in caught:
        line = _one_line(str(w.message))
        if not issubclass(w.category, Image.DecompressionBombWarning) and line not in notes:
            notes.append(line)  # (the bomb warning is about Pillow's lower limit, see MAX_PIXELS)
    return decoded


@dataclass(frozen=True)
class PlainJpeg:
    """A JPEG that a device decoder (nvJPEG) turns into exactly the pixels :func:`decode` would start
    from: the facts :func:`plain_jpeg` read from its header."""

    width: int  # full size, upright
    height: int
    orientation: int  # EXIF orientation 1..8, for the caller to apply after the decode
    data: bytes  # the JPEG without its EXIF segment, so that no decoder turns the pixels itself


def plain_jpeg(data: bytes, target: Callable[[int, int], tuple[int, int]], min_side: int = 16) -> PlainJpeg | None:
    """The header facts of ``data`` when it can skip the CPU decode, else ``None`` (decode it here).

    Plain means: a JPEG (not an MPO, whose preview :func:`decode` would prefer) in RGB or grey (not CMYK),
    with no ICC profile to convert, a valid EXIF orientation, a header Pillow reads without a warning
    (which :func:`decode` would keep as a note), its end-of-image marker present (a truncated file must
    fail here, as ``truncated``, not decode as a partial picture), at least ``min_side`` pixels a side,
    and no reduced-size decode possible: the size ``target`` asks for is more than half of it, so
    libjpeg's DCT scaling would not shrink it and the CPU does the same full-size work the device would.
    Only the header is read; nothing here raises; off the main thread it always answers None.
    """
    if data[:2] != b"\xff\xd8" or not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None  # Pillow's warnings can be caught only on the main thread (see decode)
    try:
        with warnings.catch_warnings(record=True) as caught:  # e.g. corrupt EXIF: decode() notes it
            warnings.simplefilter("always")
            im = Image.open(io.BytesIO(data))
            if im.format != "JPEG" or im.mode not in ("RGB", "L") or im.info.get("icc_profile"):
                return None
            orientation = valid_orientation(orientation_tag(im))
    except Exception:  # anything unusual is the CPU decoder's to report
        return None
    if caught:
        return None
    if orientation is None or min(im.size) < min_side or im.width * im.height > MAX_PIXELS:
        return None
    width, height = (im.height, im.width) if orientation >= 5 else im.size
    need_w, need_h = target(width, height)
    if width // max(1, need_w) >= 2 and height // max(1, need_h) >= 2:  # Image.draft's own test for 1/2
        return None
    stripped = _without_exif(data)
    return PlainJpeg(width, height, orientation, stripped) if stripped is not None else None


def _without_exif(data: bytes) -> bytes | None:
    """``data`` without its EXIF (APP1 ``Exif``) segments, or None if its markers do not parse.

    Some decoders turn the pixels by the EXIF orientation themselves (TorchCodec does on the CPU),
    others may not: without the tag every decoder returns the pixels as stored."""
    kept, pos = [data[:2]], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker in (0xDA, 0xD9):  # start of scan (the rest is image data), or end of image
            kept.append(data[pos:])
            return b"".join(kept)
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            kept.append(data[pos : pos + 2])
            pos += 2
        else:
            end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
            if marker != 0xE1 or data[pos + 4 : pos + 10] != b"Exif\0\0":
                kept.append(data[pos:end])
            pos = end
    return None


def _decode_or_raise(
    data: bytes,
    target: Callable[[int, int], tuple[int, int]] | None,
    min_side: int,
    raw: str | None,
    notes: list[str],
) -> Decoded:
    """The boundary: nothing but DecodeError leaves this function."""
    try:
        if raw:
            return _decode_raw(data, target, min_side, raw, notes)
        return _decode(data, target, min_side, notes)
    except DecodeError:
        raise
    except _UNRECOGNISED as exc:
        raise _unidentified(exc, data) from None
    except Image.DecompressionBombError as exc:
        raise DecodeError(BOMB, _bomb_reason(exc, data)) from None
    except Exception as exc:
        kind = TRUNCATED if _riff_cut_short(data) else _classify(exc)
        reason = TRUNCATED_REASON if kind == TRUNCATED else _one_line(str(exc)) or type(exc).__name__
        raise DecodeError(kind, reason) from None


def _decode(
    data: bytes,
    target: Callable[[int, int], tuple[int, int]] | None,
    min_side: int,
    notes: list[str],
) -> Decoded:
    im = Image.open(io.BytesIO(data))
    raw_w, raw_h = im.size
    if raw_w * raw_h > MAX_PIXELS:
        raise DecodeError(BOMB, f"{raw_w}x{raw_h} is more than {MAX_PIXELS:,} pixels")
    fmt = im.format or "unknown"
    orientation = _orientation(im, notes)
    width, height = (raw_h, raw_w) if orientation >= 5 else (raw_w, raw_h)
    if fmt != "MPO" and getattr(im, "is_animated", False):  # an MPO's extra frames are previews
        notes.append("animated: first frame used")

    drafted = fmt in _DRAFT_FORMATS
    need = _needed_size(width, height, target, min_side) if drafted else None
    if need is not None:
        stored_need = (need[1], need[0]) if orientation >= 5 else need
        preview = _large_preview(data, stored_need, notes) if fmt == "MPO" else None
        if preview is not None:
            im = preview
        else:
            im.draft("RGB", stored_need)
    im.load()
    if orientation != 1 and not drafted and orientation_tag(im) != orientation:
        # The plugin turned the pixels upright itself and dropped the tag (Pillow's TIFF reader does,
        # and reports the upright size from the start); the loaded size is the full size.
        orientation = 1
        width, height = im.size
    if not drafted:
        need = _needed_size(width, height, target, min_side)
    return Decoded(image=_finish(im, need, orientation, notes), width=width, height=height, format=fmt, notes=notes)


def _finish(im: Image.Image, need: tuple[int, int] | None, orientation: int, notes: list[str]) -> Image.Image:
    """Loaded pixels, as stored -> 8-bit, shrunk to ``need`` (oriented), upright, opaque, sRGB, RGB."""
    im = _to_8bit(im, notes)
    if need is not None:
        stored_need = (need[1], need[0]) if orientation >= 5 else need
        factor = min(im.width // stored_need[0], im.height // stored_need[1])
        if factor >= 2:
            im = im.reduce(factor)
    if orientation in _TRANSPOSE:
        im = im.transpose(_TRANSPOSE[orientation])
    im = _flatten_alpha(im, notes)
    icc = im.info.get("icc_profile")
    if icc:
        im = _to_srgb(im, icc, notes)
    if im.mode != "RGB":
        im = im.convert("RGB")
    im.info = {}  # its EXIF orientation and ICC profile no longer describe these pixels
    return im


def _large_preview(data: bytes, stored_need: tuple[int, int], notes: list[str]) -> Image.Image | None:
    """The smallest MPF "Large Thumbnail" of a JPEG that is a scaled copy of its primary image and at least
    ``stored_need`` large, loaded at reduced size; None when there is none or it cannot be read (a file
    cut short loses its previews, which come last, before its primary). Opened separately, so a failure
    leaves the caller's image untouched."""
    im = Image.open(io.BytesIO(data))
    try:
        entries = im.mpinfo[0xB002]
    except (AttributeError, KeyError, TypeError):
        return None
    primary = im.size
    best: tuple[int, int] | None = None  # (pixels, frame)
    for frame, entry in enumerate(entries[1:], start=1):
        # Pillow names the VGA and Full HD classes; the 4K-16K ones of MPF 1.1 come out as "Unknown".
        kind = entry.get("Attribute", {}).get("MPType", "") if isinstance(entry, dict) else ""
        if not (kind.startswith("Large Thumbnail") or kind == "Unknown"):
            continue
        try:
            im.seek(frame)
        except Exception:  # a broken preview header: try the next one
            continue
        w, h = im.size
        scaled_copy = abs(w * primary[1] - h * primary[0]) <= _PREVIEW_ASPECT_TOLERANCE * h * primary[0]
        large_enough = w >= stored_need[0] and h >= stored_need[1]
        if scaled_copy and large_enough and w < primary[0] and (best is None or w * h < best[0]):
            best = (w * h, frame)
    if best is None:
        return None
    try:
        im.seek(best[1])
        im.draft("RGB", stored_need)
        im.load()
    except Exception as exc:
        notes.append(f"MPF preview unreadable ({_one_line(str(exc))}): primary image decoded")
        return None
    return im


def _decode_raw(
    data: bytes,
    target: Callable[[int, int], tuple[int, int]] | None,
    min_side: int,
    fmt: str,
    notes: list[str],
) -> Decoded:
    """A camera RAW through LibRaw: its embedded preview when large enough, else its raw data at half size."""
    if rawpy is None:
        raise DecodeError(NO_DECODER, "camera RAW files need rawpy (pip install rawpy)")
    with rawpy.imread(io.BytesIO(data)) as raw:
        sizes = raw.sizes
        if sizes.width * sizes.height > MAX_PIXELS:
            raise DecodeError(BOMB, f"{sizes.width}x{sizes.height} is more than {MAX_PIXELS:,} pixels")
        orientation = _FLIP_TO_ORIENTATION.get(sizes.flip, 1)
        width, height = (sizes.height, sizes.width) if orientation >= 5 else (sizes.width, sizes.height)
        need = _needed_size(width, height, target, min_side)
        stored_need = None if need is None else (need[1], need[0]) if orientation >= 5 else need
        im = _raw_preview(raw, stored_need, notes)
        if im is None:
            # user_flip=0: LibRaw leaves the pixels as stored, so orientation is applied below, once.
            pixels = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8, user_flip=0)
            im = Image.fromarray(pixels, "RGB")
    # (LibRaw's capture time, ``raw.other``, is not read: rawpy unpacks the whole sensor data for it.)
    return Decoded(image=_finish(im, need, orientation, notes), width=width, height=height, format=fmt, notes=notes)


def _raw_preview(raw: Any, stored_need: tuple[int, int] | None, notes: list[str]) -> Image.Image | None:
    """The RAW's embedded preview, loaded (reduced-size where it is a JPEG), or None (with a note) when it
    is missing, unreadable, or smaller than ``stored_need``."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        notes.append("no usable embedded preview: raw data decoded at half size")
        return None
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            im = Image.open(io.BytesIO(thumb.data))
        else:
            im = Image.fromarray(thumb.data)
        if stored_need is not None and (im.width < stored_need[0] or im.height < stored_need[1]):
            notes.append(f"embedded preview {im.width}x{im.height} is too small: raw data decoded at half size")
            return None
        if stored_need is not None:
            im.draft("RGB", stored_need)
        im.load()
    except Exception as exc:
        notes.append(f"embedded preview unreadable ({_one_line(str(exc))}): raw data decoded at half size")
        return None
    return im


def _bomb_reason(exc: Image.DecompressionBombError, data: bytes) -> str:
    """Pillow's refusal in aesthete's words, as :data:`MAX_PIXELS`' own: the photo's size and the limit it is
    over (Pillow's message gives the pixel count alone). Pillow's message where the canvas is not what
    crossed the limit (a frame, a tile) or cannot be read."""
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    size = _claimed_size(data)
    if size is not None and size[0] * size[1] > limit:
        return f"{size[0]}x{size[1]} is more than {limit:,} pixels (Pillow's limit)"
    return _one_line(str(exc))


def _claimed_size(data: bytes) -> tuple[int, int] | None:
    """The canvas ``data``'s header claims, read as ``Image.open`` reads it (the first registered format
    that accepts its first bytes) but without the decompression-bomb check that made ``Image.open`` raise."""
    Image.init()
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        accepted = accept(data[:16]) if accept else True
        if not accepted or isinstance(accepted, str):  # a str: Pillow's warning that it cannot read this one
            continue
        try:
            return factory(io.BytesIO(data), "").size
        except Exception:  # noqa: BLE001 - not this format's header (Image.open tries the next one too)
            continue
    return None


def _unidentified(exc: Exception, data: bytes) -> DecodeError:
    """Neither Pillow nor LibRaw recognised ``data``: say why, and what to install when that is the reason."""
    if _riff_cut_short(data):  # a WebP cut within its first chunk's header
        return DecodeError(TRUNCATED, TRUNCATED_REASON)
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS and not HEIF_AVAILABLE:
        return DecodeError(NO_DECODER, "HEIC/HEIF needs pillow-heif: pip install 'aesthete-photo[heic]'")
    if rawpy is not None and isinstance(exc, rawpy.LibRawError):
        message = exc.args[0] if exc.args else ""
        message = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
        if isinstance(exc, rawpy.LibRawFileUnsupportedError):
            return DecodeError(NOT_AN_IMAGE, "not a camera RAW file LibRaw can read")
        kind = TRUNCATED if "eof" in message.lower() or "end of file" in message.lower() else CORRUPT
        return DecodeError(kind, f"LibRaw: {_one_line(message) or type(exc).__name__}")
    return DecodeError(NOT_AN_IMAGE, "not a recognised image format")


def _orientation(im: Image.Image, notes: list[str]) -> int:
    """EXIF orientation 1..8; broken EXIF or an out-of-range value counts as 1 (upright)."""
    value = orientation_tag(im)
    if (orientation := valid_orientation(value)) is not None:
        return orientation
    notes.append("unreadable EXIF, orientation ignored" if value is None else f"invalid orientation {value!r} ignored")
    return 1


def _needed_size(
    width: int,
    height: int,
    target: Callable[[int, int], tuple[int, int]] | None,
    min_side: int,
) -> tuple[int, int] | None:
    """Smallest oriented (w, h) the decode may shrink to, or ``None`` for the full size."""
    short = min(width, height)
    if (target is None and min_side <= 0) or min_side >= short:
        return None
    need_w, need_h = target(width, height) if target is not None else (1, 1)
    if min_side > 0:
        need_w = max(need_w, -(-width * min_side // short))  # ceil: the short side stays >= min_side
        need_h = max(need_h, -(-height * min_side // short))
    return max(1, int(need_w)), max(1, int(need_h))


def _to_8bit(im: Image.Image, notes: list[str]) -> Image.Image:
    """Bring any Pillow mode to one of RGB, RGBA, L, LA, CMYK (the modes ICC transforms accept).

    16-bit data (``I;16*`` from PNG and TIFF, ``I`` from other 16-bit sources) is scaled from
    0..65535, floating-point (``F``) from 0..1; values outside are clipped.
    """
    mode = im.mode
    if mode in ("RGB", "RGBA", "L", "LA", "CMYK"):
        return im
    if mode.startswith("I") or mode == "F":
        full_scale = 1.0 if mode == "F" else 65535.0
        notes.append(f"{'floating-point' if mode == 'F' else '16-bit'} image scaled to 8 bits")
        values = np.asarray(im, dtype=np.float64) * (255.0 / full_scale)
        gray = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
        return _keep_info(gray, im)
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return im.convert("RGBA" if has_alpha else "RGB")
    if mode == "1":
        return im.convert("L")
    if mode in ("La", "RGBa"):
        return im.convert(mode.upper())
    if mode == "LAB":
        return _keep_info(ImageCms.applyTransform(im, _lab_to_srgb()), im)
    try:
        return im.convert("RGB")  # YCbCr, HSV, RGBX, ...
    except ValueError as exc:
        raise DecodeError(UNSUPPORTED, f"unsupported pixel mode {mode}") from exc


def _keep_info(new: Image.Image, old: Image.Image) -> Image.Image:
    """Carry the ICC profile (and other info) across a conversion that rebuilt the image."""
    new.info.update(old.info)
    return new


def _flatten_alpha(im: Image.Image, notes: list[str]) -> Image.Image:
    """Composite onto white (see the module docstring); an opaque alpha channel is just dropped."""
    if im.mode not in ("RGBA", "LA"):
        return im
    base_mode = im.mode[:-1]
    alpha = im.getchannel("A")
    if alpha.getextrema()[0] == 255:
        flat = im.convert(base_mode)
    else:
        notes.append("transparency composited on white")
        flat = Image.new(base_mode, im.size, 255 if base_mode == "L" else (255, 255, 255))
        flat.paste(im.convert(base_mode), mask=alpha)
    return _keep_info(flat, im)


def _to_srgb(im: Image.Image, icc: bytes, notes: list[str]) -> Image.Image:
    """Convert through the embedded profile; a broken or mismatched profile is noted and skipped."""
    try:
        transform, note = _transform_to_srgb(bytes(icc), im.mode)
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as exc:
        notes.append(f"invalid ICC profile ignored ({_one_line(str(exc))})")
        return im
    if note:
        notes.append(note)
    return transform.apply(im) if transform is not None else im


@lru_cache(maxsize=32)
def _transform_to_srgb(icc: bytes, mode: str) -> tuple[ImageCms.ImageCmsTransform | None, str]:
    """A cached (transform or None, note) for this profile and pixel mode.

    A library holds few distinct profiles (camera sRGB, phone Display P3, an editor's Adobe RGB), and
    building a transform costs more than applying it to a model-sized image. ``NOCACHE`` keeps a
    shared transform safe to apply from several threads.
    """
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    space = profile.profile.xcolor_space.strip()
    description = (profile.profile.profile_description or "").strip()
    if space != _ICC_SPACE_FOR_MODE.get(mode):
        return None, f"ICC profile for {space} does not match {mode} pixels: ignored"
    if space == "RGB" and description.startswith("sRGB"):
        return None, ""  # already sRGB: converting would only add rounding
    transform = ImageCms.buildTransform(
        profile, _SRGB, mode, "RGB", renderingIntent=ImageCms.Intent.PERCEPTUAL, flags=ImageCms.Flags.NOCACHE
    )
    return transform, f"converted from ICC profile '{description or space}' to sRGB"


@lru_cache(maxsize=1)
def _lab_to_srgb() -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransform(ImageCms.createProfile("LAB"), _SRGB, "LAB", "RGB")


def _riff_cut_short(data: bytes) -> bool:
    """Whether ``data`` is a WebP shorter than its RIFF header says. libwebp refuses such a file with
    "could not create decoder object", its words for any file it cannot start on, corrupt ones too: the
    header's size (of what follows its first 8 bytes) tells the two apart."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return False
    return int.from_bytes(data[4:8], "little") + 8 > len(data)


def _classify(exc: Exception) -> str:
    """Pillow signals most failures as OSError; the message tells truncation from corruption."""
    message = str(exc).lower()
    if "truncated" in message or isinstance(exc, EOFError):
        return TRUNCATED
    if "decoder" in message and "not available" in message:
        return UNSUPPORTED
    if isinstance(exc, (OSError, SyntaxError)):
        return CORRUPT
    return DECODE_ERROR


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."
