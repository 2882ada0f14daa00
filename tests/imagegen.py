"""Generated test photos: every file the tests need is made here, deterministically, in memory.

Functions return encoded ``bytes`` (write them with ``path.write_bytes``) or PIL images. Scenes are
built from shapes and gradients in coordinates relative to the frame, so the same ``seed`` renders
the same picture at any size, which is what size-independence and near-duplicate tests need.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, TiffImagePlugin

# EXIF orientation -> the transpose that a camera's stored pixels need to become upright.
ORIENTATION_TO_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# ... and its inverse, to fake what the camera stored from an upright picture.
_UPRIGHT_TO_STORED = {
    **ORIENTATION_TO_UPRIGHT,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


# ---------------------------------------------------------------------------------------- scenes


def scene(
    seed: int, size: tuple[int, int] = (640, 480), *, view: tuple[float, float, float, float] = (0, 0, 1, 1)
) -> Image.Image:
    """A structured RGB picture (gradient sky, shapes, lines) that looks alike at any ``size``.

    ``view`` is the (left, top, right, bottom) window of the unit scene to render, so a window moved
    by a few percent is the same scene re-framed, like consecutive frames of a burst.
    """
    rng = random.Random(seed)
    w, h = size
    left, top, right, bottom = view

    def px(x: float, y: float) -> tuple[float, float]:
        return (x - left) / (right - left) * w, (y - top) / (bottom - top) * h

    def colour() -> tuple[int, int, int]:
        return rng.randrange(256), rng.randrange(256), rng.randrange(256)

    c0, c1 = np.array(colour(), float), np.array(colour(), float)
    angle = rng.uniform(0, 2 * np.pi)
    # The sky is a linear ramp: compute it on a coarse grid and let bilinear resizing fill it in.
    gw, gh = min(w, 64), min(h, 64)
    ux = left + (np.arange(gw) + 0.5) / gw * (right - left)
    uy = top + (np.arange(gh) + 0.5) / gh * (bottom - top)
    t = np.clip(0.5 + np.cos(angle) * (ux[None, :] - 0.5) + np.sin(angle) * (uy[:, None] - 0.5), 0, 1)[..., None]
    sky = Image.fromarray((c0 * (1 - t) + c1 * t + 0.5).astype(np.uint8), "RGB")
    image = sky.resize((w, h), Image.Resampling.BILINEAR) if (gw, gh) != (w, h) else sky
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(8, 14)):
        kind = rng.choice(("rect", "ellipse", "polygon", "line"))
        x0, y0 = rng.uniform(-0.1, 0.9), rng.uniform(-0.1, 0.9)
        x1, y1 = x0 + rng.uniform(0.05, 0.5), y0 + rng.uniform(0.05, 0.5)
        a, b = px(x0, y0), px(x1, y1)
        if kind == "rect":
            draw.rectangle((*a, *b), fill=colour())
        elif kind == "ellipse":
            draw.ellipse((*a, *b), fill=colour())
        elif kind == "polygon":
            points = [px(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(rng.randint(3, 6))]
            draw.polygon(points, fill=colour())
        else:
            draw.line((*a, *b), fill=colour(), width=max(1, round(rng.uniform(0.003, 0.02) * w)))
    return image


def burst(seed: int, count: int = 4, size: tuple[int, int] = (640, 480), *, shift: float = 0.02) -> list[Image.Image]:
    """``count`` frames of one scene, each panned right by ``shift`` (a fraction of the frame width)."""
    width = 0.7  # of the unit scene, so the pan has scene to move into
    return [
        scene(seed, size, view=(0.1 + i * shift * width, 0.1, 0.1 + (1 + i * shift) * width, 0.1 + width))
        for i in range(count)
    ]


def exposed(image: Image.Image, ev: float) -> Image.Image:
    """The same picture ``ev`` stops brighter (negative: darker), in linear light, clipped like a sensor."""
    linear = (np.asarray(image, dtype=np.float64) / 255.0) ** 2.2 * 2.0**ev
    return Image.fromarray((np.clip(linear, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8), image.mode)


def noisy(image: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    """Add white Gaussian noise of ``sigma`` (8-bit units) to every channel."""
    rng = np.random.default_rng(seed)
    values = np.asarray(image, dtype=np.float64)
    values = values + rng.normal(0, sigma, values.shape)
    return Image.fromarray(np.clip(values + 0.5, 0, 255).astype(np.uint8), image.mode)


def blurred(image: Image.Image, radius: float) -> Image.Image:
    """Gaussian blur (Pillow's ``radius`` is the standard deviation in pixels)."""
    return image.filter(ImageFilter.GaussianBlur(radius))


def marker_image(size: tuple[int, int] = (120, 80)) -> Image.Image:
    """Grey frame with a pure red block in the top-left and a blue one in the bottom-right corner."""
    image = Image.new("RGB", size, (128, 128, 128))
    w, h = size
    image.paste((255, 0, 0), (0, 0, w // 4, h // 4))
    image.paste((0, 0, 255), (w - w // 4, h - h // 4, w, h))
    return image


def stored_for_orientation(upright: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera stores for ``upright`` when it tags them with ``orientation``."""
    return upright.transpose(_UPRIGHT_TO_STORED[orientation]) if orientation in _UPRIGHT_TO_STORED else upright.copy()


# ------------------------------------------------------------------------------------ encoders


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    """Encode with Pillow (``quality``, ``exif``, ``icc_profile``, ... passed through)."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def make_exif(
    *,
    make: str | None = "Canon",
    model: str | None = "Canon EOS R5",
    orientation: int | None = None,
    datetime: str | None = "2024:05:01 11:00:00",
    datetime_original: str | None = "2024:05:01 12:00:00",
    datetime_digitized: str | None = None,
    lens: str | None = "RF24-70mm F2.8 L IS USM",
    focal_length: tuple[int, int] | None = (50, 1),
    f_number: tuple[int, int] | None = (28, 10),
    exposure_time: tuple[int, int] | None = (1, 250),
    iso: int | None = 400,
) -> Image.Exif:
    """EXIF as cameras write it: main IFD (make, model, orientation, DateTime) and the Exif IFD
    (0x8769: DateTimeOriginal, lens, rationals for focal length, f-number and shutter, ISO)."""
    exif = Image.Exif()
    main = {0x010F: make, 0x0110: model, 0x0112: orientation, 0x0132: datetime}
    sub = {
        0x9003: datetime_original,
        0x9004: datetime_digitized,
        0xA434: lens,
        0x920A: focal_length and TiffImagePlugin.IFDRational(*focal_length),
        0x829D: f_number and TiffImagePlugin.IFDRational(*f_number),
        0x829A: exposure_time and TiffImagePlugin.IFDRational(*exposure_time),
        0x8827: iso,
    }
    for tag, value in main.items():
        if value is not None:
            exif[tag] = value
    exif_ifd = exif.get_ifd(0x8769)
    for tag, value in sub.items():
        if value is not None:
            exif_ifd[tag] = value
    return exif


def jpeg_with_orientation(orientation: int, size: tuple[int, int] = (120, 80)) -> bytes:
    """A JPEG of :func:`marker_image` (upright ``size``) stored rotated/flipped and tagged ``orientation``."""
    stored = stored_for_orientation(marker_image(size), orientation)
    return encode(stored, "JPEG", quality=95, exif=make_exif(orientation=orientation))


def cmyk_jpeg(image: Image.Image) -> bytes:
    """A CMYK JPEG (Pillow writes Adobe-style inverted CMYK with an APP14 marker, as Photoshop does)."""
    return encode(image.convert("CMYK"), "JPEG", quality=95)


def png16(values: np.ndarray) -> bytes:
    """A 16-bit PNG from a uint16 array: (h, w) grey or (h, w, 3) RGB, written chunk by chunk
    because Pillow cannot write 16-bit RGB."""
    values = np.asarray(values, dtype=">u2")
    h, w = values.shape[:2]
    colour_type = 2 if values.ndim == 3 else 0
    rows = b"".join(b"\x00" + values[y].tobytes() for y in range(h))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def tiff16(values: np.ndarray) -> bytes:
    """An uncompressed little-endian 16-bit TIFF from a uint16 array, (h, w) grey or (h, w, 3) RGB."""
    values = np.asarray(values, dtype="<u2")
    h, w = values.shape[:2]
    samples = 3 if values.ndim == 3 else 1
    pixels = values.tobytes()
    entries = [  # (tag, type, count, value); type 3 = SHORT, 4 = LONG
        (256, 4, 1, w),
        (257, 4, 1, h),
        (258, 3, samples, None),  # BitsPerSample: inline for 1 sample, else at bps_offset
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, 2 if samples == 3 else 1),  # RGB or BlackIsZero
        (273, 4, 1, None),  # StripOffsets
        (277, 3, 1, samples),
        (278, 4, 1, h),
        (279, 4, 1, len(pixels)),
        (284, 3, 1, 1),  # chunky
    ]
    ifd_offset = 8
    bps_offset = ifd_offset + 2 + 12 * len(entries) + 4
    data_offset = bps_offset + (2 * samples if samples > 1 else 0)
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        if tag == 258:
            out += (
                struct.pack("<HHIHH", tag, kind, count, 16, 0)
                if samples == 1
                else struct.pack("<HHII", tag, kind, count, bps_offset)
            )
        elif tag == 273:
            out += struct.pack("<HHII", tag, kind, count, data_offset)
        elif kind == 3:
            out += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, kind, count, value)
    out += struct.pack("<I", 0)
    if samples > 1:
        out += struct.pack("<" + "H" * samples, *([16] * samples))
    return bytes(out + pixels)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a ``width`` x ``height`` canvas (valid signature, IHDR and CRC) and holds
    almost no data: the shape of a decompression bomb, rejected before any pixel is decoded."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    ihdr = struct.pack(">I", len(header)) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    idat_payload = zlib.compress(b"\x00" * 64)
    idat = (
        struct.pack(">I", len(idat_payload))
        + b"IDAT"
        + idat_payload
        + struct.pack(">I", zlib.crc32(b"IDAT" + idat_payload))
    )
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def palette_png_with_transparency(size: tuple[int, int] = (40, 30)) -> bytes:
    """A palette PNG, left half opaque red, right half fully transparent (tRNS on index 1)."""
    image = Image.new("P", size, 0)
    image.putpalette([255, 0, 0, 0, 0, 0] + [0, 0, 0] * 254)
    image.paste(1, (size[0] // 2, 0, size[0], size[1]))
    return encode(image, "PNG", transparency=1)


def rgba_png(size: tuple[int, int] = (40, 30)) -> bytes:
    """An RGBA PNG: left half opaque blue, right half blue at alpha 0 (shows white once flattened)."""
    image = Image.new("RGBA", size, (0, 0, 255, 255))
    image.paste((0, 0, 255, 0), (size[0] // 2, 0, size[0], size[1]))
    return encode(image, "PNG")


def animated(
    fmt: str = "GIF", colours: Sequence[tuple[int, int, int]] = ((255, 0, 0), (0, 255, 0), (0, 0, 255))
) -> bytes:
    """An animated GIF or WebP whose frames are solid ``colours`` (first frame red by default)."""
    frames = [Image.new("RGB", (32, 24), c) for c in colours]
    params: dict[str, object] = {"lossless": True} if fmt == "WEBP" else {}
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **params)


def large_jpeg(size: tuple[int, int] = (6000, 4000), quality: int = 85) -> bytes:
    """A big JPEG of a smooth scene (cheap to make: rendered small, then enlarged)."""
    return encode(
        scene(7, (size[0] // 8, size[1] // 8)).resize(size, Image.Resampling.BILINEAR), "JPEG", quality=quality
    )


def random_bytes(n: int = 4096, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# ------------------------------------------------------------------------------------ ICC profiles

# Display P3 primaries adapted to D50 (the colorants in Apple's Display P3 profile), and sRGB's.
DISPLAY_P3_D50 = ((0.515121, 0.241196, -0.001053), (0.291977, 0.692245, 0.041885), (0.157104, 0.066574, 0.784073))
SRGB_D50 = ((0.436075, 0.222504, 0.013932), (0.385065, 0.716879, 0.097105), (0.143080, 0.060617, 0.714173))
D50 = (0.9642, 1.0, 0.8249)


def rgb_icc_profile(
    colorants: Sequence[Sequence[float]] = DISPLAY_P3_D50, gamma: float = 2.2, description: str = "Display P3-like test"
) -> bytes:
    """A minimal ICC v2 RGB display profile (matrix + pure gamma), built byte by byte.

    Pillow can only create sRGB/LAB/XYZ profiles, so a non-sRGB RGB profile is written here: with
    the Display P3 primaries and a 2.2 gamma its effect on pixel values is easy to compute by hand.
    """

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(v: Sequence[float]) -> bytes:
        return b"XYZ \x00\x00\x00\x00" + b"".join(s15(c) for c in v)

    ascii_text = description.encode("ascii") + b"\x00"
    desc = (
        b"desc\x00\x00\x00\x00"
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + b"\x00" * 8
        + b"\x00\x00\x00"
        + b"\x00" * 67
    )
    curve = b"curv\x00\x00\x00\x00" + struct.pack(">I", 1) + struct.pack(">H", round(gamma * 256)) + b"\x00\x00"
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(D50)),
        (b"rXYZ", xyz(colorants[0])),
        (b"gXYZ", xyz(colorants[1])),
        (b"bXYZ", xyz(colorants[2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\x00\x00\x00\x00no copyright, test data\x00"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, payload in tags:
        payload += b"\x00" * (-len(payload) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(payload))
        body += payload
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\x00" * 24  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # rendering intent: perceptual
        + b"".join(s15(c) for c in D50)
        + b"lcms"
        + b"\x00" * 44
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def p3_to_srgb_reference(rgb: Sequence[int], gamma: float = 2.2) -> np.ndarray:
    """What a colour-managed viewer shows for 8-bit ``rgb`` tagged with :func:`rgb_icc_profile`:
    decode the gamma, P3 -> XYZ(D50) -> linear sRGB, sRGB transfer curve (computed independently of LittleCMS)."""
    linear = (np.asarray(rgb, dtype=np.float64) / 255.0) ** gamma
    xyz_value = np.asarray(DISPLAY_P3_D50).T @ linear
    srgb_linear = np.clip(np.linalg.solve(np.asarray(SRGB_D50).T, xyz_value), 0, 1)
    encoded = np.where(srgb_linear <= 0.0031308, 12.92 * srgb_linear, 1.055 * srgb_linear ** (1 / 2.4) - 0.055)
    return encoded * 255.0
