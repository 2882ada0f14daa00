"""The face stage's cost beside the decode it would follow, on 24-MP JPEGs with and without a face.

    python bench/faces.py [--repeats N] [--size 6000x4000]

Needs the ``faces`` extra and scikit-image (the portrait). Photos are generated here: a 1/f noise field
(bench/photos.py, "no face"), and the same field with scikit-image's ``astronaut`` pasted in at 4/5 of
the frame's height, her face ~1/6 of it ("one face"). For each it times, in this one process (one core):
the reduced-size decode the decode worker does (``aesthete.decode.decode`` to the working size), the
resize to working size, and ``aesthete.face_detection.detect_faces`` on it; medians of ``--repeats`` runs.

Then the whole decode stage as ``score`` runs it: ``decode_worker.process_file`` on the file written to
disk (read, hash, EXIF, reduced-size decode, technical signals, pHash, and with faces on the face stage),
faces off and on, alternated run by run so that a change in the machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aesthete import decode_worker, face_detection, faces  # noqa: E402
from aesthete.decode import decode  # noqa: E402
from aesthete.decode_worker import decode_target  # noqa: E402
from aesthete.signals import working_rgb  # noqa: E402
from bench import photos  # noqa: E402


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=photos.QUALITY)
    return buffer.getvalue()


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
        rgb = np.asarray(working_rgb(decode(data_bytes, target=target).image))
        faces_ms = median_ms(lambda r=rgb: face_detection.detect_faces(r), args.repeats)
        found = len(face_detection.detect_faces(rgb))
        print(f"| {label} | {decode_ms:.1f} | {faces_ms:.1f} | {faces_ms / decode_ms:.0%} | {found} |")
    print()
    print("decode stage (decode_worker.process_file, no model), faces off / on:")
    print("| photo | faces off ms | faces on ms | cost of faces | faces stored |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for label, image in (("no face", plain), ("one face", portrait)):
            path = os.path.join(folder, label.replace(" ", "_") + ".jpg")
            Path(path).write_bytes(jpeg(image))
            off, on, stored = worker_ms(path, args.repeats)
            print(f"| {label} | {off:.1f} | {on:.1f} | {on / off - 1:+.0%} | {stored} |")


def worker_ms(path: str, repeats: int) -> tuple[float, float, int]:
    """Median ms of ``process_file`` with faces off and on (alternated), and the faces the last run stored."""
    size, mtime = os.stat(path).st_size, os.stat(path).st_mtime_ns
    times: dict[bool, list[float]] = {False: [], True: []}
    stored = -1
    for i in range(repeats + 1):
        for look in (False, True):
            decode_worker.init_worker(decode_worker.WorkerConfig(None, None, None, rescore=True, faces=look))
            start = time.perf_counter()
            result = decode_worker.process_file(decode_worker.FileJob(path, size, mtime))
            if i:  # the first round warms the caches and loads the interpreters
                times[look].append((time.perf_counter() - start) * 1000)
            assert result.error is None, result.error
            if look:
                stored = result.image["face_count"]
    return statistics.median(times[False]), statistics.median(times[True]), stored


if __name__ == "__main__":
    main()
