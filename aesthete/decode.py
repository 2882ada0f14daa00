"""Any photo's bytes -> an upright sRGB ``RGB`` image, as small as the model allows.

This runs in the decode workers, so it is torch-free and total: for any input bytes it returns a
:class:`Decoded` or raises :class:`DecodeError` with a short ``kind`` tag and a one-line message,
never anything else. The order of work is chosen for speed on 24-megapixel JPEGs:

1. Open (header only) and refuse more than :data:`MAX_PIXELS` pixels before any pixel is decoded.
2. Ask libjpeg for a reduced-size decode (``Image.draft``, DCT scaling by 1/2, 1/4 or 1/8) that is
   still at least as large as the caller's target; other formats are decoded in full and then shrunk
   by an integer box filter (``Image.reduce``), so workers never ship full-size pixels.
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

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

MAX_PIXELS = 200_000_000
"""Largest canvas decoded, in pixels (a 100-MP medium-format photo passes; a crafted header does not).

Pillow's own hard limit, ``2 * Image.MAX_IMAGE_PIXELS`` (179 MP by default), is kept and also reported
as ``bomb``; Pillow's warning level (89 MP) is not an error here, since real photos exceed it."""

# DecodeError kinds: short, stable tags the store and the summary group failures by.
EMPTY = "empty"  # zero bytes
NOT_AN_IMAGE = "not-an-image"  # no image format recognised
TRUNCATED = "truncated"  # the data ends before the image does
CORRUPT = "corrupt"  # recognised, but the data stream is broken
BOMB = "bomb"  # more than MAX_PIXELS pixels
UNSUPPORTED = "unsupported"  # recognised, but no decoder or pixel mode we can handle
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
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})  # what Image.draft can shrink while decoding (DCT scaling)
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
    format: str  # Pillow's format name: JPEG, MPO, PNG, TIFF, WEBP, ...
    notes: list[str] = field(default_factory=list)  # what was unusual and how it was handled


def decode(
    data: bytes,
    *,
    target: Callable[[int, int], tuple[int, int]] | None = None,
    min_side: int = 0,
) -> Decoded:
    """Decode ``data`` to an upright sRGB RGB image.

    ``target(width, height)`` maps the oriented full size to the (width, height) the model needs
    (it is called once, after the header is read); together with ``min_side`` (shortest side wanted)
    it lets the decode shrink the image as long as the result stays at least that large in both
    dimensions. With neither, the full size is returned.
    """
    if not data:
        raise DecodeError(EMPTY, "empty file (0 bytes)")
    notes: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        return _decode_or_raise(data, target, min_side, notes)
    # Pillow reports oddities (corrupt EXIF, malformed MPO, ...) as warnings: keep them as notes, not
    # stderr noise. catch_warnings swaps process-wide state, so only the main thread (that of each
    # decode worker process) does it; decoding from other threads leaves warnings alone.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decoded = _decode_or_raise(data, target, min_side, notes)
    for w in caught:
        line = _one_line(str(w.message))
        if not issubclass(w.category, Image.DecompressionBombWarning) and line not in notes:
            notes.append(line)  # (the bomb warning is about Pillow's lower limit, see MAX_PIXELS)
    return decoded


def _decode_or_raise(
    data: bytes,
    target: Callable[[int, int], tuple[int, int]] | None,
    min_side: int,
    notes: list[str],
) -> Decoded:
    """The boundary: nothing but DecodeError leaves this function."""
    try:
        return _decode(data, target, min_side, notes)
    except DecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecodeError(BOMB, _one_line(str(exc))) from None
    except UnidentifiedImageError:
        raise DecodeError(NOT_AN_IMAGE, "not a recognised image format") from None
    except Exception as exc:
        raise DecodeError(_classify(exc), _one_line(str(exc)) or type(exc).__name__) from None


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
        im.draft("RGB", (need[1], need[0]) if orientation >= 5 else need)
    im.load()
    if orientation != 1 and _read_orientation(im) != orientation:
        # The plugin turned the pixels upright itself and dropped the tag (Pillow's TIFF reader does,
        # and reports the upright size from the start); the loaded size is the full size.
        orientation = 1
        width, height = im.size
    if not drafted:
        need = _needed_size(width, height, target, min_side)

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
    return Decoded(image=im, width=width, height=height, format=fmt, notes=notes)


def _read_orientation(im: Image.Image) -> object:
    """The raw EXIF orientation value (1 when absent), or ``None`` when the EXIF cannot be parsed."""
    try:
        return im.getexif().get(0x0112, 1)
    except Exception:
        return None


def _orientation(im: Image.Image, notes: list[str]) -> int:
    """EXIF orientation 1..8; broken EXIF or an out-of-range value counts as 1 (upright)."""
    value = _read_orientation(im)
    if isinstance(value, int) and 1 <= value <= 8:
        return value
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
