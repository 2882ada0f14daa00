"""A hostile-input corpus: bad and awkward files beside good photos, each with the outcome aesthete owes it.

Used by the reliability tests and by hand::

    python tests/corpus.py DIR        # writes DIR (and DIR-outside, the target of a symlink) and lists the kinds

Outcomes (:class:`Kind`.outcome):

- ``scored``: decoded and scored (or analysed, in a run without weights);
- ``failed:KIND``: recorded as failed with that kind and a one-line reason;
- ``skipped``: reported by the folder walk (``discovery_errors`` in ``score --json``), never opened;
- ``ignored``: not a photo to aesthete (hidden, unsupported extension, not a regular file): not listed.

The two race kinds (a file that disappears, one that changes between discovery and decoding) are written
as good photos; :func:`race` performs the change and must run after discovery (the tests wrap discovery).
Everything is generated deterministically and small (the whole corpus is well under 1 MB).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imagegen as g
import numpy as np
from PIL import Image

GOOD = 6  # good JPEGs, good_0.jpg ... good_5.jpg, besides the good files among the kinds below
NON_UTF8_NAME = b"caf\xe9 \xff.jpg"  # Latin-1 bytes: not valid UTF-8
VANISHES, CHANGES = "race_vanishes.jpg", "race_changes.jpg"


@dataclass(frozen=True)
class Kind:
    name: str  # what it is, one line
    path: str  # relative to the corpus folder ('/'-separated); the file whose outcome is checked
    outcome: str


def _photo(seed: int, size: tuple[int, int] = (96, 64)) -> Image.Image:
    return g.scene(seed, size)


def _jpeg(seed: int, **params: object) -> bytes:
    return g.encode(_photo(seed), "JPEG", quality=90, **params)


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A small valid JPEG whose SOF header is patched to declare ``width`` x ``height``: a bomb's header."""
    data = bytearray(_jpeg(50))
    sof = data.index(b"\xff\xc0")  # baseline SOF0: marker, length (2), precision (1), height (2), width (2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _ycck_jpeg() -> bytes:
    """A CMYK JPEG whose Adobe APP14 transform flag says YCCK (2): libjpeg then decodes it as YCCK, the
    path real YCCK files from Photoshop take (Pillow cannot write YCCK itself)."""
    data = bytearray(g.cmyk_jpeg(_photo(51)))
    adobe = data.index(b"Adobe")
    data[adobe + 11] = 2  # 'Adobe', version (2), flags0 (2), flags1 (2), transform (1)
    return bytes(data)


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _write(folder: Path, rel: str, data: bytes) -> None:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# (what it is, relative path, outcome, its bytes); the links, the pipe and the odd name are made in write_corpus.
_FILES: list[tuple[str, str, str, Callable[[], bytes]]] = [
    ("zero bytes", "zero.jpg", "failed:empty", lambda: b""),
    ("a JPEG cut in half", "half.jpg", "failed:truncated", lambda: _half(g.encode(g.noisy(_photo(60), 20), "JPEG"))),
    ("a PNG cut in half", "half.png", "failed:truncated", lambda: _half(g.encode(g.noisy(_photo(61), 20), "PNG"))),
    ("random bytes named .jpg", "random.jpg", "failed:not-an-image", lambda: g.random_bytes(3000, seed=7)),
    ("a text file named .jpg", "notes.jpg", "failed:not-an-image", lambda: b"shopping list: milk, film\n" * 40),
    ("only the JPEG start and end markers", "markers_only.jpg", "failed:not-an-image", lambda: b"\xff\xd8\xff\xd9"),
    ("a PNG named .jpg", "png_inside.jpg", "scored", lambda: g.encode(_photo(62), "PNG")),
    ("a JPEG named .png", "jpeg_inside.png", "scored", lambda: _jpeg(63)),
    ("a decompression bomb PNG (100000 x 100000 declared)", "bomb.png", "failed:bomb",
     lambda: g.png_header_only(100_000, 100_000)),
    ("a decompression bomb JPEG (65535 x 65535 declared)", "bomb.jpg", "failed:bomb",
     lambda: _jpeg_declaring(65_535, 65_535)),
    ("a CMYK JPEG", "cmyk.jpg", "scored", lambda: g.cmyk_jpeg(_photo(64))),
    ("a YCCK JPEG", "ycck.jpg", "scored", _ycck_jpeg),
    ("a 16-bit RGB PNG", "rgb16.png", "scored",
     lambda: g.png16(np.random.default_rng(1).integers(0, 65535, (40, 60, 3), dtype=np.uint16))),
    ("a 16-bit grey TIFF", "grey16.tif", "scored",
     lambda: g.tiff16(np.random.default_rng(2).integers(0, 65535, (40, 60), dtype=np.uint16))),
    ("a 16-bit RGB TIFF", "rgb16.tiff", "scored",
     lambda: g.tiff16(np.random.default_rng(3).integers(0, 65535, (30, 50, 3), dtype=np.uint16))),
    ("a grayscale JPEG", "grey.jpg", "scored", lambda: g.encode(_photo(65).convert("L"), "JPEG")),
    ("a palette PNG with transparency", "palette.png", "scored", lambda: g.palette_png_with_transparency()),
    ("an RGBA PNG", "alpha.png", "scored", lambda: g.rgba_png()),
    ("an animated WebP", "animated.webp", "scored", lambda: g.animated("WEBP")),
    ("an animated GIF (GIF is not a photo format aesthete lists)", "animated.gif", "ignored",
     lambda: g.animated("GIF")),
    ("a 1 x 1 image", "one_pixel.png", "scored", lambda: g.encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG")),
    ("a 20000 x 10 strip", "strip.png", "scored", lambda: g.encode(_photo(66, (20_000, 10)), "PNG")),
    ("garbage in the EXIF block", "exif_garbage.jpg", "scored",
     lambda: _jpeg(67, exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08" + g.random_bytes(300, seed=3))),
    ("EXIF orientation 9 (outside 1..8)", "orientation_9.jpg", "scored",
     lambda: _jpeg(68, exif=g.make_exif(orientation=9))),
    ("EXIF orientation 0", "orientation_0.jpg", "scored", lambda: _jpeg(69, exif=g.make_exif(orientation=0))),
    ("an invalid ICC profile", "bad_icc.jpg", "scored", lambda: _jpeg(70, icc_profile=b"not a profile" * 20)),
    ("a progressive JPEG", "progressive.jpg", "scored", lambda: _jpeg(71, progressive=True)),
    ("a JPEG with junk after its end", "trailing_junk.jpg", "scored", lambda: _jpeg(72) + g.random_bytes(500, seed=4)),
    ("a hidden file", ".hidden.jpg", "ignored", lambda: g.random_bytes(100, seed=5)),
    ("a photo inside a folder named x.jpg", "folder.jpg/inside.jpg", "scored", lambda: _jpeg(73)),
    ("a file that disappears between discovery and decoding", VANISHES, "failed:vanished", lambda: _jpeg(74)),
    ("a file that changes between discovery and decoding", CHANGES, "scored", lambda: _jpeg(75)),
]  # fmt: skip


def kinds() -> list[Kind]:
    """Every kind in the corpus, the good photos excluded."""
    out = [Kind(name, rel, outcome) for name, rel, outcome, _ in _FILES]
    out += [
        Kind("a folder named x.jpg", "folder.jpg", "ignored"),
        Kind("a file name that is not valid UTF-8", os.fsdecode(NON_UTF8_NAME), "scored"),
        Kind("a symlink loop", "loop/up", "skipped"),
        Kind("a dangling symlink", "dangling.jpg", "skipped"),
        Kind("a symlink to a folder outside the tree (followed)", "outside/elsewhere.jpg", "scored"),
        Kind("a named pipe called .jpg (opening it would block)", "pipe.jpg", "ignored"),
    ]
    return out


def write_corpus(folder: Path, outside: Path | None = None) -> dict[str, str]:
    """Write the corpus into ``folder`` (and a photo in ``outside``, default ``<folder>-outside``, which a
    symlink in ``folder`` points to). Returns relative path -> expected outcome, good photos included."""
    folder.mkdir(parents=True, exist_ok=True)
    outside = outside or folder.with_name(folder.name + "-outside")
    expected: dict[str, str] = {}
    for i in range(GOOD):
        _write(folder, f"good_{i}.jpg", _jpeg(i))
        expected[f"good_{i}.jpg"] = "scored"
    for _, rel, _, make in _FILES:
        _write(folder, rel, make())
    with open(os.path.join(os.fsencode(folder), NON_UTF8_NAME), "wb") as handle:
        handle.write(_jpeg(80))
    (folder / "loop").mkdir(exist_ok=True)
    _link(folder, folder / "loop" / "up")
    _link(folder / "nowhere.jpg", folder / "dangling.jpg")
    _write(outside, "elsewhere.jpg", _jpeg(81))
    _link(outside, folder / "outside")
    if not (folder / "pipe.jpg").exists():
        os.mkfifo(folder / "pipe.jpg")
    expected.update({kind.path: kind.outcome for kind in kinds()})
    return expected


def _link(target: Path, link: Path) -> None:
    if not os.path.lexists(link):
        os.symlink(target, link)


def race(folder: Path) -> None:
    """What happens on the card while aesthete runs: one photo is deleted, another rewritten."""
    (folder / VANISHES).unlink()
    (folder / CHANGES).write_bytes(_jpeg(76))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    expected = write_corpus(args.folder)
    for kind in kinds():
        print(f"{kind.outcome:22} {kind.path:32} {kind.name}")
    print(f"{len(kinds())} kinds and {GOOD} good photos in {args.folder} ({len(expected)} entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
