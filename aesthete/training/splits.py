"""The split types every dataset reader hands the trainer: three splits of (image path, vote counts,
attributes), plus a report of everything that was dropped and why, and the operations on them that
know no dataset (scanning image headers, ``--limit`` subsets, id lists). Readers live in their own
modules (``ava``, ``aadb``) and are found through :mod:`aesthete.training.datasets`.

Torch-free on purpose: reading AVA.txt and checking 255,000 image headers is the slow part of starting
a run, and ``aesthete train --dry-run`` or a reader test should not pay for ``import torch``.

Splits are column-oriented (one NumPy array per field) because AVA has a quarter of a million rows and
the trainer only ever subsets, shuffles and indexes them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aesthete.errors import AestheteError

SPLITS = ("train", "val", "test")
MAX_EXAMPLES = 5  # problem files named in a report, per reason


class DatasetError(AestheteError, ValueError):
    """A data root that cannot be read as the dataset asked for; the message says what is missing."""


@dataclass
class Split:
    """One split: row ``i`` is image ``ids[i]`` at ``paths[i]`` with vote counts ``votes[i]``.

    ``sizes`` (width, height after EXIF orientation) is filled by :func:`scan_images`; the trainer needs
    it before decoding to batch variable-size inputs and to pass each photo's aspect ratio.
    """

    name: str
    ids: list[str]
    paths: list[Path]
    votes: np.ndarray  # (N, S) vote counts per score bin, float32
    attributes: np.ndarray | None = None  # (N, 11) AADB photographic attributes
    sizes: np.ndarray | None = None  # (N, 2) int64 width, height

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dist(self) -> np.ndarray:
        """Vote counts normalised to distributions (rows sum to 1), in float64 for the metrics."""
        votes = self.votes.astype(np.float64)
        return votes / votes.sum(axis=1, keepdims=True)

    def subset(self, index: Sequence[int] | np.ndarray) -> Split:
        index = np.asarray(index, dtype=np.int64)
        return Split(
            name=self.name,
            ids=[self.ids[i] for i in index],
            paths=[self.paths[i] for i in index],
            votes=self.votes[index],
            attributes=None if self.attributes is None else self.attributes[index],
            sizes=None if self.sizes is None else self.sizes[index],
        )


@dataclass
class ReadReport:
    """Counts of what a reader kept and dropped, with a few example files per reason."""

    dataset: str
    source: dict[str, str] = field(default_factory=dict)  # what was read: labels, split lists, images
    dropped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cut_by_limit: dict[str, int] = field(default_factory=dict)  # split -> its images before --limit cut it

    def drop(self, reason: str, example: str) -> None:
        self.dropped[reason] += 1
        bucket = self.examples.setdefault(reason, [])
        if len(bucket) < MAX_EXAMPLES:
            bucket.append(example)

    def lines(self, splits: DatasetSplits | None = None) -> list[str]:
        """Human-readable summary, one fact per line."""
        out = [f"{self.dataset}: {what} from {where}" for what, where in self.source.items()]
        if splits is not None:
            out.append(f"{self.dataset}: " + ", ".join(f"{name} {len(getattr(splits, name)):,}" for name in SPLITS))
        for reason, count in sorted(self.dropped.items()):
            examples = ", ".join(self.examples.get(reason, []))
            out.append(f"{self.dataset}: skipped {count:,} ({reason})" + (f", e.g. {examples}" if examples else ""))
        out.extend(f"{self.dataset}: {note}" for note in self.notes)
        if splits is not None and self.cut_by_limit:
            cut = ", ".join(f"{name} {len(splits.split(name)):,} of {n:,}" for name, n in self.cut_by_limit.items())
            out.append(f"{self.dataset}: --limit kept {cut}")
        return out


@dataclass
class DatasetSplits:
    train: Split
    val: Split
    test: Split
    report: ReadReport

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return getattr(self, name)


def scan_images(splits: DatasetSplits, *, names: Sequence[str] = SPLITS, threads: int = 16) -> DatasetSplits:
    """Read the header (not the pixels) of every image of the ``names`` splits: record its oriented size,
    drop missing and unreadable files into the report. Truncated pixel data is only found when the
    image is decoded; the trainer skips such a photo then and counts it. Other splits are kept as read."""
    kept = {name: splits.split(name) for name in SPLITS}
    for name in names:
        split = splits.split(name)
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            results = list(pool.map(_header_size, split.paths))
        good = [i for i, (size, _) in enumerate(results) if size is not None]
        for path, (size, reason) in zip(split.paths, results):
            if size is None:
                splits.report.drop(reason, path.name)
        subset = split.subset(good)
        subset.sizes = np.array([results[i][0] for i in good], dtype=np.int64).reshape(-1, 2)
        kept[name] = subset
    return DatasetSplits(report=splits.report, **kept)


def _header_size(path: Path) -> tuple[tuple[int, int] | None, str]:
    """(oriented width, height) from the header, or (None, reason)."""
    from PIL import Image, UnidentifiedImageError

    from aesthete.exif import orientation_tag, valid_orientation

    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = valid_orientation(orientation_tag(image)) or 1  # broken EXIF: upright, as decoded
    except FileNotFoundError:
        return None, "image file missing"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return None, f"unreadable image: {type(exc).__name__}"
    if width < 1 or height < 1:
        return None, "unreadable image: empty canvas"
    if orientation >= 5:
        width, height = height, width
    return (width, height), ""


def limit_splits(splits: DatasetSplits, limit: int, seed: int, names: Sequence[str] = SPLITS) -> DatasetSplits:
    """At most ``limit`` images in each of the ``names`` splits, drawn with ``seed`` (``--limit`` smoke
    runs); the report records which splits it cut, so a limit larger than the data is no change."""
    rng = np.random.default_rng(seed)
    limited = {name: splits.split(name) for name in SPLITS}
    for name in names:
        split = limited[name]
        if len(split) > limit:
            splits.report.cut_by_limit[name] = len(split)
            limited[name] = split.subset(np.sort(rng.choice(len(split), size=limit, replace=False)))
    return DatasetSplits(report=splits.report, **limited)


def read_id_list(path: Path) -> list[str]:
    """Image ids from a list file: the first whitespace-separated token of each line, without an image
    extension (AVA's ``*.jpgl`` lists hold bare ids; other published lists write ``<id>.jpg <label>``)."""
    ids = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        token = line.split()[0] if line.split() else ""
        if token:
            ids.append(token.rsplit(".", 1)[0] if token.lower().endswith((".jpg", ".jpeg")) else token)
    return ids
