"""The device decode lane: plain JPEGs decoded and measured on the model's device (nvJPEG on CUDA).

On a GPU the model outruns the CPU decode workers on small photos: each worker spends ~1 ms of its
~7.5 core-ms per 0.2-MP photo on the JPEG itself and the rest on the technical signals, the perceptual
hash and the model's resize (BENCHMARKS.md). In this lane the workers only read, hash and parse EXIF;
the bytes of a plain JPEG (:func:`aesthete.decode.plain_jpeg`) come back undecoded, and here they are
decoded in batches on the device (TorchCodec's ``decode_jpeg``, else torchvision's: :data:`DECODERS`),
turned upright, measured, and cut to the model's input without leaving the device.

The measurements are :mod:`aesthete.signals`' estimators computed with torch on whole batches of
equal size: the same definitions, the same 8-bit luma (Pillow's integer ITU-R 601 weights), and the
working-size and model resizes with antialiased interpolation (within one 8-bit level of Pillow's).
Two things differ slightly from the CPU path, and the tests bound both: the pHash's 32x32 shrink is
bicubic (Pillow's is Lanczos, which torch lacks), and nvJPEG's IDCT may differ from libjpeg-turbo's by
a level or two. A file the device cannot decode goes back to the CPU workers, which decode it or
record why not.

The lane runs in ``score``'s own process, without the workers' isolation: a decoder that crashed
here would end the run (the batches already scored stay saved), which is why it takes only the JPEGs
whose header Pillow has read and found plain. It runs only when asked for (``score --decode device``):
on an H200 it was no faster than the workers over 12,000 photos and 1.47x faster over 40,000 (BENCHMARKS.md).
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from aesthete.decode_worker import signal_columns
from aesthete.input_policy import InputPolicy
from aesthete.jobs import FileResult
from aesthete.signals import (
    HIGHLIGHT_CLIP_LEVEL,
    LOG_SIGMA,
    MIN_FOCUS_SIDE,
    PHASH_BAND,
    PHASH_SIZE,
    SHADOW_CLIP_LEVEL,
    log_gaussian,
    phash_dct,
    working_size,
)

Decoder = Callable[[list[bytes], torch.device], list[torch.Tensor]]  # JPEG bytes -> (3, H, W) uint8 on a device
# Pillow's RGB -> L: (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16 (libImaging/Convert.c).
_LUMA_WEIGHTS = (19595, 38470, 7471)
# Largest gradient |gx| + |gy| of the noise estimator's Sobel on 8-bit luma: its histogram's length.
_MAX_GRADIENT = 8 * 255


class DeviceLane:
    """Collects results that carry JPEG bytes and finishes them a batch at a time on ``device``."""

    def __init__(self, device: torch.device, policy: InputPolicy, batch_size: int, decoder: Decoder) -> None:
        self.device, self.policy, self.batch_size, self.decoder = device, policy, batch_size, decoder
        self.waiting: list[FileResult] = []
        self.decoded = 0  # photos this lane decoded

    def add(self, result: FileResult) -> tuple[list[FileResult], list[FileResult]]:
        """Queue ``result``; when a batch is full, :meth:`flush`."""
        self.waiting.append(result)
        return self.flush() if len(self.waiting) >= self.batch_size else ([], [])

    def flush(self) -> tuple[list[FileResult], list[FileResult]]:
        """(finished, undecodable): the finished results carry their model input (``pixels``, on the
        device) and, where they had one, their completed ``images`` row; the undecodable ones are for the
        CPU workers to decode or to record."""
        batch, self.waiting = self.waiting, []
        if not batch:
            return [], []
        images = decode_jpegs([r.jpeg for r in batch], self.device, self.decoder)
        finished, failed = [], []
        by_size: dict[tuple[int, int], list[tuple[FileResult, torch.Tensor]]] = defaultdict(list)
        for result, image in zip(batch, images):
            result.jpeg = None
            if image is None:
                failed.append(result)
                continue
            image = upright(image, result.orientation)
            by_size[tuple(image.shape[-2:])].append((result, image))
        for group in by_size.values():
            self._finish(group)
            finished.extend(result for result, _ in group)
        self.decoded += len(finished)
        return finished, failed

    def _finish(self, group: list[tuple[FileResult, torch.Tensor]]) -> None:
        results = [result for result, _ in group]
        images = torch.stack([image for _, image in group])
        for result, pixels in zip(results, model_input(images, self.policy)):
            result.pixels = pixels
        rows = [result.image for result in results]
        if all(row is None for row in rows):  # known content: only the model's input was needed
            return
        luma = working_luma(images)
        signals, hashes = technical_signals(luma), perceptual_hashes(luma)
        for row, values, phash in zip(rows, signals, hashes):
            if row is not None:
                row.update(signal_columns(values, phash, row["width"], row["height"]))


def _torchcodec(blobs: list[bytes], device: torch.device) -> list[torch.Tensor]:
    from torchcodec.decoders import decode_jpeg

    return list(decode_jpeg(list(blobs), mode="RGB", device=device))


def _torchvision(blobs: list[bytes], device: torch.device) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(blob), dtype=torch.uint8) for blob in blobs]
    return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))


# First choice TorchCodec, PyTorch's image decoders since torchvision 0.29 deprecated its own (its 0.17
# wheel bundles libjpeg-turbo and NVIDIA's nvJPEG); then torchvision's, which the bench decoded 12,215 img/s
# with on an H100 (BENCHMARKS.md). TorchCodec's CUDA path has not run in this project yet, so the first
# that decodes a probe on the device is used.
DECODERS: dict[str, Decoder] = {"torchcodec": _torchcodec, "torchvision": _torchvision}


def pick_decoder(device: torch.device) -> tuple[Decoder | None, str]:
    """The first of :data:`DECODERS` that decodes a probe JPEG on ``device`` and its name, or None and
    why none did."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 120, 40)).save(buffer, "JPEG")
    problems = []
    for name, decoder in DECODERS.items():
        try:
            decoder([buffer.getvalue()], device)
        except Exception as exc:  # noqa: BLE001 - not installed, no device library, ...: try the next
            problems.append(f"{name}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        return decoder, name
    return None, "; ".join(problems)


def decode_jpegs(blobs: list[bytes], device: torch.device, decoder: Decoder) -> list[torch.Tensor | None]:
    """(3, H, W) uint8 RGB images as stored (not yet upright), one per blob, ``None`` where the
    decoder refused it: one batched call (one nvJPEG call on CUDA), file by file only when it fails."""
    try:
        return list(decoder(blobs, device))
    except Exception:  # noqa: BLE001 - which file, and why, is found out one by one
        images: list[torch.Tensor | None] = []
        for blob in blobs:
            try:
                images.append(decoder([blob], device)[0])
            except Exception:  # noqa: BLE001 - the CPU workers decode it, or record why not
                images.append(None)
        return images


def upright(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """``image`` (..., H, W) turned as EXIF ``orientation`` says (Pillow's ``ImageOps.exif_transpose``)."""
    if orientation >= 5:  # 5-8 swap the axes: a transpose, then the flips of 1-4
        image = image.transpose(-1, -2)
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    flips = {1: (), 2: (-1,), 3: (-2, -1), 4: (-2,)}[orientation]
    return image.flip(flips) if flips else image


def _resize(images: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """(B, C, H, W) -> (B, C, *size) float with integer values: Pillow's antialiased resize, rounded as
    Pillow rounds to 8 bits."""
    values = images.float()
    if tuple(values.shape[-2:]) != size:
        values = F.interpolate(values, size=size, mode=mode, antialias=True, align_corners=False)
    return values.round_().clamp_(0, 255)


def working_luma(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> (B, 1, h, w) float luma at the signals' working size
    (:func:`aesthete.signals.working_size`), as :func:`aesthete.signals.working_gray` computes it."""
    rgb = images.float()
    # Exact in float32: the weighted sum stays below 2**24, and dividing by 2**16 only shifts the exponent.
    weighted = rgb[:, 0:1] * _LUMA_WEIGHTS[0] + rgb[:, 1:2] * _LUMA_WEIGHTS[1] + rgb[:, 2:3] * _LUMA_WEIGHTS[2]
    luma = torch.floor((weighted + 0x8000) / 65536)
    height, width = luma.shape[-2:]
    new_w, new_h = working_size(width, height)
    return _resize(luma, (new_h, new_w)) if (new_w, new_h) != (width, height) else luma


def technical_signals(luma: torch.Tensor) -> list[dict[str, float | None]]:
    """:func:`aesthete.signals.technical_signals` of each (1, h, w) working-size luma of the batch."""
    count = luma[:, 0].flatten(1).shape[1]
    columns = torch.stack(
        [
            focus_measures(luma),
            (luma <= SHADOW_CLIP_LEVEL).flatten(1).sum(1).double() / count,
            (luma >= HIGHLIGHT_CLIP_LEVEL).flatten(1).sum(1).double() / count,
            luma.flatten(1).double().mean(1) / 255.0,
            noise_sigmas(luma),
        ],
        dim=1,
    ).cpu()
    names = ("sharpness", "clipped_shadows", "clipped_highlights", "mean_luma", "noise")
    # NaN (focus_measures: too small to measure) is the CPU path's None.
    return [{n: None if math.isnan(v) else float(v) for n, v in zip(names, row)} for row in columns.tolist()]


def focus_measures(luma: torch.Tensor) -> torch.Tensor:
    """(B,) float64: RMS of the scale-normalised Laplacian of Gaussian (sigma 1 px), 'valid' region only;
    NaN when the picture is too small for it (:func:`aesthete.signals.focus_measure`'s None). Shifted
    slices rather than convolutions: elementwise float32, as the CPU computes it, where a GPU convolution
    may round its inputs to TF32."""
    if min(luma.shape[-2:]) < MIN_FOCUS_SIDE:
        return torch.full((len(luma),), math.nan, dtype=torch.float64, device=luma.device)
    values = luma[:, 0]
    gaussian = log_gaussian()
    taps = len(gaussian)
    rows = sum(float(w) * values[:, :, i : values.shape[2] - taps + 1 + i] for i, w in enumerate(gaussian))
    smooth = sum(float(w) * rows[:, i : rows.shape[1] - taps + 1 + i] for i, w in enumerate(gaussian))
    centre = smooth[:, 1:-1, 1:-1]
    laplacian = smooth[:, :-2, 1:-1] + smooth[:, 2:, 1:-1] + smooth[:, 1:-1, :-2] + smooth[:, 1:-1, 2:] - 4 * centre
    return LOG_SIGMA**2 * laplacian.flatten(1).double().std(dim=1, correction=0)


def noise_sigmas(luma: torch.Tensor) -> torch.Tensor:
    """(B,) float64: Immerkaer's noise sigma over all but the 10% strongest-gradient pixels, as
    :func:`aesthete.signals.technical_signals` measures it (separable, in integers held exactly in
    float32); 0 when the picture is too small for it."""
    if min(luma.shape[-2:]) < 3:
        return torch.zeros(len(luma), dtype=torch.float64, device=luma.device)
    v = luma[:, 0]
    second = v[:, :, :-2] - 2 * v[:, :, 1:-1] + v[:, :, 2:]
    response = (second[:, :-2] - 2 * second[:, 1:-1] + second[:, 2:]).abs().flatten(1)
    diff_x = v[:, :, 2:] - v[:, :, :-2]
    smooth_x = v[:, :, :-2] + 2 * v[:, :, 1:-1] + v[:, :, 2:]
    gradient = (diff_x[:, :-2] + 2 * diff_x[:, 1:-1] + diff_x[:, 2:]).abs() + (smooth_x[:, 2:] - smooth_x[:, :-2]).abs()
    gradient = gradient.flatten(1).long()
    histogram = torch.zeros(len(v), _MAX_GRADIENT + 1, dtype=torch.long, device=luma.device)
    histogram.scatter_add_(1, gradient, torch.ones_like(gradient))
    cumulative = histogram.cumsum(1).double()
    threshold = torch.searchsorted(cumulative, 0.9 * cumulative[:, -1:])  # the 90th percentile
    flat = gradient <= threshold
    return math.sqrt(math.pi / 2) / 6 * (response.double() * flat).sum(1) / flat.sum(1)


def perceptual_hashes(luma: torch.Tensor) -> list[str]:
    """:func:`aesthete.signals.perceptual_hash` of each working-size luma, its 32x32 shrink bicubic."""
    small = _resize(luma, (PHASH_SIZE, PHASH_SIZE), "bicubic")[:, 0].double()
    dct = torch.from_numpy(phash_dct()).to(luma.device)
    band = (dct @ small @ dct.T)[:, :PHASH_BAND, :PHASH_BAND].flatten(1)
    bits = (band > band[:, 1:].median(dim=1, keepdim=True).values).cpu().tolist()
    return [f"{int(''.join('1' if b else '0' for b in row), 2):016x}" for row in bits]


def model_input(images: torch.Tensor, policy: InputPolicy) -> list[Any]:
    """:meth:`InputPolicy.prepare` of each (3, H, W) uint8 image of the batch, on its device: (H, W, 3)
    uint8, or (P, h, w, 3) when the policy cuts patches."""
    height, width = images.shape[-2:]
    new_w, new_h = policy.resized_size(width, height)
    resized = _resize(images, (new_h, new_w), policy.resample).to(torch.uint8).permute(0, 2, 3, 1)
    if policy.resize == "center_crop":
        left, top = max(0, (new_w - policy.size) // 2), max(0, (new_h - policy.size) // 2)
        resized = resized[:, top : top + policy.size, left : left + policy.size]
    if policy.patch:
        size = policy.patch
        origins = policy.patch_origins(resized.shape[2], resized.shape[1])
        resized = torch.stack([resized[:, y : y + size, x : x + size] for y, x in origins], dim=1)
    return list(resized.contiguous())
