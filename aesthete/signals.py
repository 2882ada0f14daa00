"""Technical signals that need no trained weights: focus, exposure, noise, and a perceptual hash.

They make culling useful before any aesthetic checkpoint exists, and feed the "blurry" /
"overexposed" flags of the report. All are computed with numpy on the luminance (Pillow's ``L``,
ITU-R 601 luma) of the photo at its working size (:func:`working_size`): its LONGER side
:data:`WORKING_SIDE` pixels (smaller photos are used as they are, never enlarged). Measuring at one
working size makes a 1000-px and a 4000-px copy of the same picture score alike, and matches what a
viewer judges on a screen; the price is that defocus of only a pixel or two at 24 MP is below what
these signals can see. A long strip keeps :data:`MIN_WORKING_SHORT` rows instead (a 100:1 panorama
would keep 5), within :data:`MAX_WORKING_PIXELS`. A photo with fewer rows or columns than the focus
measure needs (:data:`MIN_FOCUS_SIDE`) has no ``sharpness``: None, not measured, never "blurry".

numpy and Pillow are imported by the functions that measure pixels, not with the module: what the stored
signals mean (:func:`flags`, :func:`technical_quality`, :data:`VERSION`) is read by `rank`, `show` and the
rescan's planner, which then start without either.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

# What the store records beside a photo's signals (``images.signals_version``): a rescan measures again,
# without scoring again, every photo an earlier version measured. Raise it when a change here (the working
# size, an estimator, a flag threshold) changes any photo's stored values. 1: every photo at the longer side
# WORKING_SIDE, and sharpness 0.0 where it could not be measured; 2: working_size (strips keep their rows),
# no sharpness under MIN_FOCUS_SIDE.
VERSION = 2

WORKING_SIDE = 512
# A strip keeps this many rows (columns, when upright) where the photo has them, so that the focus
# measure sees enough of it: at WORKING_SIDE alone a panorama wider than ~57:1 kept under 9 rows, too few
# for the Gaussian and Laplacian below, and was always "blurry" (field test). 64: several times the
# operator's 9 rows, as many as an ordinary 8:1 frame keeps.
MIN_WORKING_SHORT = 64
# ... but never more pixels than a square photo's working image, so a 1000:1 strip costs no more memory or
# time than any photo (it keeps fewer rows: 16 at 1000:1).
MAX_WORKING_PIXELS = WORKING_SIDE * WORKING_SIDE

# Exposure: a pixel counts as clipped at or beyond these 8-bit luma levels.
SHADOW_CLIP_LEVEL = 2
HIGHLIGHT_CLIP_LEVEL = 253

# Flag thresholds, on the values technical_signals returns. Provisional: set on generated scenes and
# the estimators' known behaviour, to be revisited against real photo libraries.
BLURRY_BELOW = 1.0  # sharpness; a sharp scene of flat shapes gives ~3, the same blurred by 3 px ~1
UNDEREXPOSED_MEAN_BELOW = 0.12  # mean luma, 0..1
UNDEREXPOSED_CLIPPED_ABOVE = 0.30  # fraction of pixels crushed to black
OVEREXPOSED_MEAN_ABOVE = 0.88
OVEREXPOSED_CLIPPED_ABOVE = 0.10  # fraction blown to white: highlights are less forgiving than shadows
NOISY_ABOVE = 2.5  # noise sigma in 8-bit luma units at working size (downscaling averages noise away)

# technical_quality: a sharpness of SHARPNESS_SCALE earns 63% (1 - 1/e) of the sharpness term; a noise
# sigma of NOISE_SCALE keeps 37% (1/e) of the noise term; RESOLUTION_SCALE_MP megapixels earn 63% of the size
# term. Provisional, like the flag thresholds: set so that the "noisy" flag costs about a fifth and anything
# from about 2 MP counts as full size.
SHARPNESS_SCALE = 2.0
NOISE_SCALE = 2 * NOISY_ABOVE
RESOLUTION_SCALE_MP = 0.5

LOG_SIGMA = 1.0  # pixels at working size
GAUSS_RADIUS = 3
MIN_FOCUS_SIDE = 2 * GAUSS_RADIUS + 3  # the Gaussian's taps and the Laplacian's 3: one 'valid' pixel
PHASH_SIZE = 32
PHASH_BAND = 8  # the 8x8 lowest frequencies: 64 bits


@functools.cache
def log_gaussian() -> np.ndarray:
    """The focus measure's Gaussian taps (sigma LOG_SIGMA, radius GAUSS_RADIUS), summing to 1, float32."""
    import numpy as np

    taps = np.exp(-(np.arange(-GAUSS_RADIUS, GAUSS_RADIUS + 1) ** 2) / (2 * LOG_SIGMA**2)).astype(np.float32)
    return taps / taps.sum()


@functools.cache
def phash_dct() -> np.ndarray:
    """The orthonormal DCT-II matrix of PHASH_SIZE: ``D @ x`` is the DCT of the column vector ``x``."""
    import numpy as np

    n = PHASH_SIZE
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d


def working_gray(image: Image.Image) -> Image.Image:
    """Luma at working size (:func:`working_size`). Idempotent: callers that need several signals of one
    photo compute it once and pass it to each."""
    return _working(image if image.mode == "L" else image.convert("L"))


def working_rgb(image: Image.Image) -> Image.Image:
    """The colour picture at working size, resized as :func:`working_gray` resizes luma (the face signals
    are measured on it)."""
    return _working(image if image.mode == "RGB" else image.convert("RGB"))


def working_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) a ``width`` x ``height`` photo is measured at: the longer side WORKING_SIDE, or
    for a strip the shorter side MIN_WORKING_SHORT, within MAX_WORKING_PIXELS; never enlarged.

    The one definition of the working size: the decode workers decode at least this large
    (``decode_worker.decode_target``) and the device lane resizes to it (``device_lane.working_luma``)."""
    by_longer = WORKING_SIDE / max(width, height)
    by_shorter = min(MIN_WORKING_SHORT / min(width, height), math.sqrt(MAX_WORKING_PIXELS / (width * height)))
    scale = min(1.0, max(by_longer, by_shorter))
    if scale == 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _working(image: Image.Image) -> Image.Image:
    from PIL import Image

    size = working_size(*image.size)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    return image


def technical_signals(image: Image.Image) -> dict[str, float | None]:
    """Sharpness, clipping, brightness and noise of a photo, at working size (see the module docstring).

    - ``sharpness``: RMS of the scale-normalised Laplacian of Gaussian (sigma = 1 px) of luma, in 8-bit
      luma units: the variance-of-Laplacian focus measure (Pech-Pacheco 2000) with a small Gaussian in
      front, so pixel noise and 8-bit quantisation barely count. Any Gaussian blur lowers it (it removes
      energy at every frequency the operator passes); a plain subject also scores low. None when the
      working image is under MIN_FOCUS_SIDE pixels a side (a 1x1 photo): focus cannot be judged there.
    - ``clipped_shadows`` / ``clipped_highlights``: fraction of pixels at luma <= 2 / >= 253.
    - ``mean_luma``: average luma, 0..1.
    - ``noise``: Gaussian noise sigma in 8-bit luma units, Immerkaer's estimator (1996) over all but the
      10% strongest-gradient pixels (Tai & Yang 2008), so edges and texture are not counted as noise.
    """
    import numpy as np

    pixels = np.asarray(working_gray(image))
    luma = pixels.astype(np.float32)
    signals: dict[str, float | None] = {
        "sharpness": None,
        "clipped_shadows": float(np.mean(luma <= SHADOW_CLIP_LEVEL)),
        "clipped_highlights": float(np.mean(luma >= HIGHLIGHT_CLIP_LEVEL)),
        "mean_luma": float(luma.mean(dtype=np.float64) / 255.0),
        "noise": 0.0,
    }
    if min(luma.shape) >= 3:
        signals["noise"] = _noise_sigma(pixels)
    signals["sharpness"] = focus_measure(luma)
    return signals


def focus_measure(luma: np.ndarray) -> float | None:
    """The ``sharpness`` of :func:`technical_signals` for any 2-D float32 luma array (0..255), such as
    one region of a working-size photo; None when it is too small for the Gaussian and the Laplacian."""
    if min(luma.shape) < MIN_FOCUS_SIDE:
        return None
    import numpy as np

    smooth = _gaussian(luma)
    laplacian = smooth[:-2, 1:-1] + smooth[2:, 1:-1] + smooth[1:-1, :-2] + smooth[1:-1, 2:] - 4 * smooth[1:-1, 1:-1]
    return float(LOG_SIGMA**2 * laplacian.std(dtype=np.float64))


def _gaussian(values: np.ndarray) -> np.ndarray:
    """Separable Gaussian blur, 'valid' region only (no invented border pixels)."""
    taps = log_gaussian()
    n = len(taps)
    rows = sum(w * values[:, i : values.shape[1] - n + 1 + i] for i, w in enumerate(taps))
    return sum(w * rows[i : rows.shape[0] - n + 1 + i] for i, w in enumerate(taps))


def _noise_sigma(pixels: np.ndarray) -> float:
    """Immerkaer's fast noise estimate, sigma = sqrt(pi/2)/6 * mean|I * N|, on non-edge pixels.

    N = [[1,-2,1],[-2,4,-2],[1,-2,1]] is the outer product of two second differences, so the
    convolution is computed separably, in int16 (exact for 8-bit input, and fast).
    """
    import numpy as np

    v = pixels.astype(np.int16)
    second = v[:, :-2] - 2 * v[:, 1:-1] + v[:, 2:]
    response = np.abs(second[:-2] - 2 * second[1:-1] + second[2:])
    # Sobel gradient magnitude |gx| + |gy|, separably: difference one way, [1, 2, 1] smoothing the other.
    diff_x = v[:, 2:] - v[:, :-2]
    smooth_x = v[:, :-2] + 2 * v[:, 1:-1] + v[:, 2:]
    gradient = np.abs(diff_x[:-2] + 2 * diff_x[1:-1] + diff_x[2:]) + np.abs(smooth_x[2:] - smooth_x[:-2])
    # The 90th percentile of the integer gradient, from its histogram (a sort would cost more).
    counts = np.cumsum(np.bincount(gradient.ravel()))
    threshold = int(np.searchsorted(counts, 0.9 * counts[-1]))
    flat = gradient <= threshold
    return float(math.sqrt(math.pi / 2) / 6 * response.sum(where=flat, dtype=np.int64) / np.count_nonzero(flat))


def perceptual_hash(image: Image.Image) -> str:
    """64-bit DCT perceptual hash (pHash) as 16 hex digits; near-duplicates differ in few bits.

    Luma is shrunk to 32x32 and transformed with an orthonormal 2-D DCT; each coefficient of the 8x8
    lowest frequencies becomes one bit: above the median of the 63 non-DC ones or not (the DC term,
    the mean brightness, would skew the median; its own bit is nearly always 1). On generated scenes
    a 2% re-framing flips ~7 bits, a 3% one ~10, +-1 EV ~3, and unrelated scenes differ in ~32.
    """
    import numpy as np
    from PIL import Image

    small = working_gray(image).resize((PHASH_SIZE, PHASH_SIZE), Image.Resampling.LANCZOS)
    dct = phash_dct()
    coefficients = dct @ np.asarray(small, dtype=np.float64) @ dct.T
    band = coefficients[:PHASH_BAND, :PHASH_BAND].ravel()
    bits = band > np.median(band[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hash_distance(a: str, b: str) -> int:
    """Hamming distance between two :func:`perceptual_hash` values (0 = same, ~32 = unrelated)."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def technical_quality(signals: dict[str, float | None], width: int | None = None, height: int | None = None) -> float:
    """One 0..1 number to rank photos by when no aesthetic score exists.

    ``quality = sharp * exposure * clean * size`` with

    - ``sharp = 1 - exp(-sharpness / SHARPNESS_SCALE)``: sharper is always better, a featureless frame 0;
    - ``exposure = (1 - clipped)^2``, ``clipped`` the fraction of clipped shadows plus highlights (max 1);
    - ``clean = exp(-(noise / NOISE_SCALE)^2)``: noise adds fine detail that the sharpness measure partly
      takes for focus, so a noisy frame would otherwise rank above a clean one (~0.96 at a clean photo's
      sigma of 1, 0.78 at the "noisy" flag's 2.5, ~0.02 at 10);
    - ``size = 1 - exp(-megapixels / RESOLUTION_SCALE_MP)``: the signals are measured at working size, so a
      100 x 75 thumbnail looks as sharp as a 24-MP frame; it is worth far less (0.015 for the thumbnail,
      0.45 at 640 x 480, 0.98 at 2 MP). Unknown dimensions count as full size.

    Missing signal values count as 0."""
    sharpness = max(0.0, signals.get("sharpness") or 0.0)
    clipped = (signals.get("clipped_shadows") or 0.0) + (signals.get("clipped_highlights") or 0.0)
    exposure_term = (1.0 - min(1.0, max(0.0, clipped))) ** 2
    noise = max(0.0, signals.get("noise") or 0.0)
    clean_term = math.exp(-((noise / NOISE_SCALE) ** 2))
    size_term = 1.0
    if width and height:
        size_term = 1.0 - math.exp(-(width * height / 1e6) / RESOLUTION_SCALE_MP)
    return (1.0 - math.exp(-sharpness / SHARPNESS_SCALE)) * exposure_term * clean_term * size_term


def flags(signals: dict[str, float | None]) -> list[str]:
    """Technical problems worth showing next to a photo, from this module's thresholds.

    Returns a subset of ``["blurry", "underexposed", "overexposed", "noisy"]``; a missing (or None)
    signal raises no flag.
    """

    def above(key: str, limit: float) -> bool:
        value = signals.get(key)
        return value is not None and value > limit

    def below(key: str, limit: float) -> bool:
        value = signals.get(key)
        return value is not None and value < limit

    checks = {
        "blurry": below("sharpness", BLURRY_BELOW),
        "underexposed": below("mean_luma", UNDEREXPOSED_MEAN_BELOW)
        or above("clipped_shadows", UNDEREXPOSED_CLIPPED_ABOVE),
        "overexposed": above("mean_luma", OVEREXPOSED_MEAN_ABOVE)
        or above("clipped_highlights", OVEREXPOSED_CLIPPED_ABOVE),
        "noisy": above("noise", NOISY_ABOVE),
    }
    return [name for name, raised in checks.items() if raised]
