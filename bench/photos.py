"""Photos for the benchmark, generated here (nothing is downloaded).

JPEG cost depends on content: a flat test card compresses to a tenth of a real photo and decodes faster.
So each photo is a 1/f^beta noise field (the power-law spectrum natural images have) with colour
channels that share most of their structure, saved at quality 92. With beta = 1.4 a 24-MP frame
comes out at ~4.7 MB, what a 24-MP camera writes at its finest JPEG setting. One field is computed
per size (an FFT of the full frame) and every photo is a different shift of it, so all photos cost
the same to decode while their bytes, and so their content hashes, differ.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

SPECTRUM_BETA = 1.4
QUALITY = 92

_field: np.ndarray | None = None  # the noise field of the size being generated, per generating process


def noise_field(width: int, height: int, seed: int = 1) -> np.ndarray:
    """A (height, width) float32 field with a 1/f^beta amplitude spectrum, unit variance."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft2(rng.standard_normal((height, width), dtype=np.float32))
    fy = np.fft.fftfreq(height).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(width).astype(np.float32)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0  # keep the mean (DC) term finite
    spectrum *= radius**-SPECTRUM_BETA
    field = np.fft.irfft2(spectrum, s=(height, width)).astype(np.float32)
    return field / field.std()


def render(field: np.ndarray, index: int) -> Image.Image:
    """Photo ``index``: the field shifted by an index-dependent offset, as 8-bit RGB."""
    height, width = field.shape
    base = np.roll(field, (index * 523 % height, index * 1031 % width), axis=(0, 1))
    rgb = np.empty((height, width, 3), np.float32)
    for channel in range(3):  # shared structure plus a little per-channel colour detail
        rgb[..., channel] = 128 + 40 * base + 15 * np.roll(base, (channel * 997, channel * 331), axis=(0, 1))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def _init(width: int, height: int) -> None:
    global _field
    _field = noise_field(width, height)


def _write(args: tuple[int, str]) -> None:
    index, path = args
    assert _field is not None
    render(_field, index).save(path, "JPEG", quality=QUALITY)


def photo_set(folder: Path, size: tuple[int, int], count: int, *, processes: int) -> list[Path]:
    """``count`` JPEGs of ``size`` in ``folder`` (kept between runs: only missing ones are made)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo{i:05d}.jpg" for i in range(count)]
    missing = [(i, str(p)) for i, p in enumerate(paths) if not p.exists()]
    if missing:
        # Rendering a 24-MP frame takes ~0.5 s: spread it over the cores, each holding one field.
        with ProcessPoolExecutor(min(processes, len(missing)), initializer=_init, initargs=size) as pool:
            list(pool.map(_write, missing, chunksize=max(1, len(missing) // (4 * processes))))
    return paths


def raw_set(folder: Path, previews: Sequence[Path]) -> list[Path]:
    """One DNG per JPEG in ``previews``, holding it as its full-size embedded preview (as Canon and Nikon
    RAWs hold theirs), written by the generator the format tests use. Their raw data is a token 64x48
    CFA: scoring reads a RAW's preview, never its raw data, so its size changes only the bytes read."""
    from tests.formatgen import dng

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, preview in enumerate(previews):
        path = folder / f"{preview.stem}.dng"
        if not path.exists():
            path.write_bytes(dng(preview.read_bytes(), seed=index))
        paths.append(path)
    return paths


def linked_subset(paths: Sequence[Path], folder: Path) -> Path:
    """A folder of hard links to ``paths`` (same bytes, no extra disk), for a run over a prefix of a set."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        link = folder / path.name
        if not link.exists():
            os.link(path, link)
    return folder


def small_photos(folder: Path, count: int, size: tuple[int, int] = (320, 240), per_folder: int = 1000) -> Path:
    """``count`` distinct small JPEGs (~20 KB), ``per_folder`` to a subfolder: windows of one field, each
    shifted by a pixel from the last, so no two photos (and no two content hashes) are alike."""
    width, height = size
    field = noise_field(width * 2, height + count // width + 1, seed=2)
    for i in range(count):
        path = folder / f"d{i // per_folder:03d}" / f"small{i:06d}.jpg"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        y, x = i // width, i % width
        render(field[y : y + height, x : x + width], 0).save(path, "JPEG", quality=QUALITY)
    return folder


def placeholder_files(folder: Path, count: int, per_folder: int = 100) -> list[Path]:
    """``count`` files named like photos, ``per_folder`` to a subfolder. A rescan must never open them,
    so their bytes are a tag, not an image: a rescan that decoded any would record a failure."""
    paths = []
    for i in range(count):
        path = folder / f"d{i // per_folder:04d}" / f"IMG_{i:06d}.jpg"
        paths.append(path)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"placeholder %d\n" % i)
    return paths
