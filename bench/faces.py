"""The face stage's cost beside the decode it would follow, on 24-MP JPEGs with and without a face.

    python bench/faces.py [--repeats N] [--size 6000x4000]

Needs the ``faces`` extra and scikit-image (the portrait). Photos are generated here: a 1/f noise field
(bench/photos.py, "no face"), and the same field with scikit-image's ``astronaut`` pasted in at 4/5 of
the frame's height, her face ~1/6 of it ("one face"). For each it times, in this one process (one core):
the reduced-size decode the decode worker does (``aesthete.decode.decode`` to the working size), the
resize to working size, and ``aesthete.faces.detect_faces`` on it; medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aesthete import faces  # noqa: E402
from aesthete.decode import decode  # noqa: E402
from aesthete.decode_worker import decode_target  # noqa: E402
from aesthete.signals import WORKING_SIDE  # noqa: E402
from bench import photos  # noqa: E402


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=photos.QUALITY)
    return buffer.getvalue()


def working_rgb(image: Image.Image) -> np.ndarray:
    scale = min(1.0, WORKING_SIDE / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0) if scale < 1 else image)


def median_ms(fn: object, repeats: int) -> float:
    fn()  # warm: interpreters loaded, caches filled
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--size", default="6000x4000")
    args = parser.parse_args()
    if not faces.available():
        sys.exit("error: the face stage needs the 'faces' extra: pip install 'aesthete-photo[faces]'")
    from skimage import data

    width, height = (int(v) for v in args.size.split("x"))
    plain = photos.render(photos.noise_field(width, height), 0)
    portrait = plain.copy()
    side = height * 4 // 5  # her face is then ~1/6 of the frame height, ~60 px at working size
    portrait.paste(Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.LANCZOS), (width // 3, 0))
    target = decode_target(None)
    print(f"{width}x{height} JPEG q{photos.QUALITY}, one core, median of {args.repeats}")
    print("| photo | decode ms | faces ms | faces / decode | faces found |")
    print("|---|---|---|---|---|")
    for label, image in (("no face", plain), ("one face", portrait)):
        data_bytes = jpeg(image)
        decode_ms = median_ms(lambda b=data_bytes: decode(b, target=target), args.repeats)
        rgb = working_rgb(decode(data_bytes, target=target).image)
        faces_ms = median_ms(lambda r=rgb: faces.detect_faces(r), args.repeats)
        found = len(faces.detect_faces(rgb))
        print(f"| {label} | {decode_ms:.1f} | {faces_ms:.1f} | {faces_ms / decode_ms:.0%} | {found} |")


if __name__ == "__main__":
    main()
