"""Mutation fuzzing of the decode path: good JPEG, PNG and TIFF files with flipped bytes, truncations,
inserted markers, chunks and tags, and overwritten lengths, fed to what a decode worker does with a file.

Every mutant must come back decoded or failed with a kind and a one-line reason, in bounded time, with no
exception escaping. The tests run a few hundred cases; by hand, thousands::

    python tests/fuzz.py --cases 5000            # in-process, through aesthete.decode_worker.process_file
    python tests/fuzz.py --cases 300 --score     # also end to end: the mutants in a folder, through score

``AESTHETE_FUZZ_CASES`` sets the number of cases the tests run.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import imagegen as g
import numpy as np

from aesthete.decode_worker import init_worker, process_file
from aesthete.input_policy import InputPolicy
from aesthete.jobs import FileJob, FileResult, WorkerConfig
from aesthete.store import ModelKey

CASE_SECONDS = 20  # a mutant still decoding after this long counts as a hang
POLICY = InputPolicy("warp", 64)  # a small model input, so every decoded mutant is also cut for the model


def seeds() -> dict[str, bytes]:
    """The good files mutated: small, with the structures worth breaking (EXIF, ICC, progressive scans,
    palette and 16-bit PNG, multi-strip and 16-bit TIFF)."""
    photo = g.noisy(g.scene(3, (80, 60)), 8)
    values = np.random.default_rng(0).integers(0, 65535, (24, 32, 3), dtype=np.uint16)
    return {
        "baseline.jpg": g.encode(photo, "JPEG", quality=90, exif=g.make_exif(orientation=6)),
        "progressive.jpg": g.encode(photo, "JPEG", quality=80, progressive=True, icc_profile=g.rgb_icc_profile()),
        "cmyk.jpg": g.cmyk_jpeg(photo),
        "rgb.png": g.encode(photo, "PNG"),
        "palette.png": g.palette_png_with_transparency(),
        "rgb16.png": g.png16(values),
        "rgb.tif": g.encode(photo, "TIFF", compression="tiff_lzw", rowsperstrip=8),
        "rgb16.tif": g.tiff16(values),
    }


_MARKERS = [b"\xff\xd8", b"\xff\xd9", b"\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03", b"\xff\xc4\xff\xff",
            b"\xff\xda\x00\x0c\x03", b"\xff\xdb\x00\x43\x00", b"\xff\xe1\xff\xffExif\x00\x00MM\x00*",
            b"\xff\xdd\x00\x04\x00\x00", b"\xff\xe2\x00\x10ICC_PROFILE\x00", b"\x00\x00\x00\x0dIHDR",
            b"\x00\x00\x00\x00IEND\xaeB`\x82", b"\xff\xff\xff\xffIDAT", b"\x00\x00\x00\x01tRNS\x00",
            b"II*\x00\x08\x00\x00\x00", b"\x01\x01\x04\x00\x01\x00\x00\x00\xff\xff\xff\x7f"]  # fmt: skip


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One mutation (sometimes two stacked): (what was done, the mutant)."""
    if len(data) < 8:  # a stacked truncation left too little to mutate
        return "short", data
    out = bytearray(data)
    how = rng.choice(["flip", "flip-header", "truncate", "insert-marker", "overwrite-length", "duplicate", "zero"])
    if how == "flip":
        for _ in range(rng.randint(1, 16)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif how == "flip-header":  # where the sizes, lengths and offsets live
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(min(len(out), 300))] = rng.randrange(256)
    elif how == "truncate":
        out = out[: rng.randrange(1, len(out))]
    elif how == "insert-marker":
        at = rng.randrange(len(out))
        out[at:at] = rng.choice(_MARKERS)
    elif how == "overwrite-length":  # a 16- or 32-bit field set to an extreme
        at = rng.randrange(min(len(out), 400) - 4)
        out[at : at + 4] = struct.pack(">I", rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFF0000, 65535]))
    elif how == "duplicate":  # a stretch repeated: markers and chunks appear twice
        a = rng.randrange(len(out))
        b = min(len(out), a + rng.randint(1, 2000))
        out[b:b] = out[a:b]
    else:
        a = rng.randrange(len(out))
        out[a : a + rng.randint(1, 512)] = bytes(min(len(out) - a, 512))
    if rng.random() < 0.2:
        more, out = mutate(bytes(out), rng)
        how += "+" + more
    return how, bytes(out)


def mutants(cases: int, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    """``cases`` (name, bytes) mutants, the same for the same seed; names keep the original extension."""
    rng = random.Random(seed)
    originals = sorted(seeds().items())
    for case in range(cases):
        name, data = originals[case % len(originals)]
        how, mutant = mutate(data, rng)
        stem, ext = os.path.splitext(name)
        yield f"{case:05}_{stem}_{how}{ext}", mutant


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang


def run_cases(cases: int, seed: int = 0) -> Counter:
    """Feed ``cases`` mutants to ``process_file`` in this process; returns outcome -> count (``ok`` or
    the failure kind). Raises AssertionError on a crash, a hang or a malformed result."""
    folder = Path(tempfile.mkdtemp(prefix="aesthete-fuzz-"))
    previous_int = signal.getsignal(signal.SIGINT)
    previous_alarm = signal.signal(signal.SIGALRM, _alarm)
    init_worker(
        WorkerConfig(db_path=None, policy=POLICY.to_dict(), key=ModelKey("fuzz", "-", POLICY.key), rescore=False)
    )
    outcomes: Counter = Counter()
    try:
        for name, data in mutants(cases, seed):
            path = folder / name
            path.write_bytes(data)
            signal.alarm(CASE_SECONDS)
            try:
                result = process_file(FileJob(str(path), len(data), 0))
            except Hang:
                raise AssertionError(f"{name}: still decoding after {CASE_SECONDS} s") from None
            finally:
                signal.alarm(0)
            check(name, result)
            outcomes[result.error_kind or "ok"] += 1
            path.unlink()
    finally:
        signal.signal(signal.SIGALRM, previous_alarm)
        signal.signal(signal.SIGINT, previous_int)  # init_worker made this process ignore Ctrl-C
        shutil.rmtree(folder)
    return outcomes


def check(name: str, result: FileResult) -> None:
    if result.error_kind:
        assert result.error and "\n" not in result.error, f"{name}: bad reason {result.error!r}"
        assert result.image is None and result.pixels is None, f"{name}: failed but carries pixels"
    else:
        assert result.image is not None and result.pixels is not None, f"{name}: neither decoded nor failed"
        assert result.pixels.shape == (64, 64, 3), f"{name}: model input {result.pixels.shape}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=int(os.environ.get("AESTHETE_FUZZ_CASES", "1000")))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", action="store_true", help="also score the mutants as a folder, end to end")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    outcomes = run_cases(args.cases, args.seed)
    print(f"{args.cases} mutants in {time.perf_counter() - started:.1f} s, no crash, no hang: {dict(outcomes)}")
    if args.score:
        from aesthete.scoring import score
        from aesthete.store import Store

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "mutants"
            folder.mkdir()
            for name, data in mutants(args.cases, args.seed):
                (folder / name).write_bytes(data)
            summary = score([str(folder)], store=Store(Path(tmp) / "fuzz.db"), workers=2)
            # A mutant identical to an earlier one is recognised by its content: cached, not decoded again.
            recorded = summary.analysed + summary.cached + len(summary.failed)
            print(f"score: {summary.found} found, {summary.analysed} analysed, {summary.cached} identical to another,"
                  f" {len(summary.failed)} failed")  # fmt: skip
            if recorded != args.cases:
                print(f"error: {args.cases - recorded} mutants neither analysed nor recorded as failed")
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
