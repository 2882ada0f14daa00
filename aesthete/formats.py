"""Which file names are photos, and which of them are camera RAW files read through their previews.

Kept apart from :mod:`aesthete.discover` and :mod:`aesthete.decode` so both (and the RAW+JPEG pairing)
share one table, and so it stays import-free: the rescan path pays nothing for it.
"""

from __future__ import annotations

import os

JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe"})
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})  # .hif: Canon and Sony cameras' HEIF
RAW_EXTENSIONS = frozenset(
    {
        ".3fr",  # Hasselblad
        ".arw", ".srf", ".sr2",  # Sony
        ".cr2", ".cr3", ".crw",  # Canon
        ".dng",  # Adobe DNG (Leica, Pentax, Ricoh, phones)
        ".erf",  # Epson
        ".iiq",  # Phase One
        ".kdc", ".dcr",  # Kodak
        ".mef", ".mos",  # Mamiya, Leaf
        ".mrw",  # Minolta
        ".nef", ".nrw",  # Nikon
        ".orf",  # Olympus / OM System
        ".pef",  # Pentax
        ".raf",  # Fujifilm
        ".raw", ".rwl", ".rw2",  # Panasonic, Leica
        ".srw",  # Samsung
    }
)  # fmt: skip
OTHER_EXTENSIONS = frozenset({".png", ".tif", ".tiff", ".webp", ".bmp"})
SUPPORTED_EXTENSIONS = JPEG_EXTENSIONS | HEIF_EXTENSIONS | RAW_EXTENSIONS | OTHER_EXTENSIONS
FORMAT_NAMES = "JPEG, PNG, TIFF, WebP, BMP, HEIC/HEIF, camera RAW"  # the extensions above, as people name them

# What a camera writes beside a RAW file as its own rendering of the same frame, best partner first:
# a RAW with one of these beside it (same folder and stem) is a companion, not a photo of its own.
PAIR_PARTNERS = (".jpg", ".jpeg", ".jpe", ".heic", ".hif", ".heif")


def suffix(path: str) -> str:
    """The lower-cased extension, ``.cr2`` for ``IMG_1.CR2``."""
    return os.path.splitext(path)[1].lower()


def raw_format(path: str) -> str | None:
    """``"CR2"`` for ``IMG_1.cr2``; None when the name is not a camera RAW's (what ``decode(raw=...)`` takes)."""
    ext = suffix(path)
    return ext[1:].upper() if ext in RAW_EXTENSIONS else None
