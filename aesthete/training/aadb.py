"""AADB (Kong et al., ECCV 2016) as its release lays it out.

What was confirmed from public code and the dataset author's own answer (see docs/training.md):
- Label lists in ``imgListFiles_label/``: ``imgList{Train,Validation,Test,TestNew}Regression_{name}.txt``,
  one ``<image file name> <value>`` per line, for ``name`` = ``score`` (the mean rating rescaled to
  [0, 1]) and the 11 attributes below. The attribute file names keep the release's spelling
  ``BalacingElements``. Attributes are read into [0, 1], the range PEAR's prior trains on: nine are
  published in [-1, 1] and are mapped by ``(v + 1) / 2``; Repetition and Symmetry are published in
  [0, 1] and kept (the split of ranges is taken from public AADB loaders, not from the release notes).
- The lists are the benchmark's fixed split: a line that cannot be read is an error naming its file and
  line, not a skipped image (AVA.txt's damaged rows are skipped and counted instead).
- Train + Validation + Test hold 9,958 images (8,458 / 500 / 1,000: the papers' "8,500 / 500 / 1,000").
  ``TestNew`` is the same test set without 127 images the author judged bad (adult content, cartoons);
  HLA-GCN's loader reads ``Test``, so ``test_list = "auto"`` does too when it exists.
- Images in ``datasetImages_originalSize/`` (``images/`` or the root are accepted too).
- Per-rater scores in ``AADB_AllinAll.csv``, the Mechanical Turk results: each row is one worker's
  task with columns ``Input.image_url1..10`` and ``Answer.overallScore1..10``. An image's file name is
  built from its Flickr URL ``http://farm<F>.staticflickr.com/<server>/<name>.jpg`` as
  ``farm<F>_<server>_<name>.jpg`` -- the rule of HLA-GCN's official loader, the only public reader of
  this file found; it is an assumption checked only against that code.

The vote distribution is the histogram of those scores over 1..5 (a score outside 1..5 is counted in
the report and ignored). Images with fewer than ``min_ratings`` (default 2) ratings are dropped: the
HLA-GCN *paper* says it discards "about 100 images that have only one rating" following Zeng et al.,
but its released loader (hlagcn-jittor ``utils_jittor/dataset.py:93-95``) drops only images with no
vote, which is ``min_ratings = 1`` (recipe ``hla-gcn-r50-aadb-official``). The released code also
thresholds AADB's 1..5 mean score at 2.5 (``bins / 2``, ``util.py`` ``binary_accuracy``), not at the
paper's ``ceil(S/2) = 3``: that is the recipe's ``[eval] threshold``, not this reader's business.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from aesthete.training.splits import DatasetError, DatasetSplits, ReadReport, Split

ATTRIBUTES = (
    "BalacingElements",
    "ColorHarmony",
    "Content",
    "DoF",
    "Light",
    "MotionBlur",
    "Object",
    "Repetition",
    "RuleOfThirds",
    "Symmetry",
    "VividColor",
)
UNIT_RANGE = frozenset({"Repetition", "Symmetry"})  # published in [0, 1]; the others in [-1, 1]
BINS = 5
_PARTS = {"train": "Train", "val": "Validation"}
_URL_COLUMN = re.compile(r"^Input\.image_url(\d+)$")


def image_name_from_url(url: str) -> str:
    """``http://farm4.staticflickr.com/3701/9488_2c2e_b.jpg`` -> ``farm4_3701_9488_2c2e_b.jpg``."""
    parsed = urlparse(url.strip())
    parts = [p for p in parsed.path.split("/") if p]
    if not parsed.netloc or len(parts) < 2:
        raise ValueError(f"not a Flickr image URL: {url!r}")
    return f"{parsed.netloc.split('.')[0]}_{parts[0]}_{parts[-1]}"


def find_label_dir(root: Path) -> Path:
    marker = "imgListTrainRegression_score.txt"
    for candidate in (
        root,
        root / "imgListFiles_label",
        root / "AADB_imgListFiles_label",
        root / "AADB_imgListFiles_label" / "imgListFiles_label",
    ):
        if (candidate / marker).is_file():
            return candidate
    found = sorted(root.glob(f"*/*/{marker}")) + sorted(root.glob(f"*/*/*/{marker}"))
    if found:
        return found[0].parent
    raise DatasetError(f"no imgListFiles_label/{marker} under {root}; is this the AADB data root?")


def find_ratings_csv(root: Path) -> Path:
    if (root / "AADB_AllinAll.csv").is_file():
        return root / "AADB_AllinAll.csv"
    found = sorted(root.glob("*AllinAll*.csv")) + sorted(root.glob("*/*AllinAll*.csv"))
    if found:
        return found[0]
    raise DatasetError(
        f"no AADB_AllinAll.csv under {root}: the per-rater scores are needed for the vote distributions "
        "(the label lists only hold each image's mean)"
    )


def read_ratings(path: Path, report: ReadReport) -> dict[str, np.ndarray]:
    """Image file name -> counts of ratings 1..5, from the Mechanical Turk results file."""
    counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(BINS, dtype=np.float32))
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        slots = sorted(int(m.group(1)) for c in reader.fieldnames or [] if (m := _URL_COLUMN.match(c)))
        if not slots:
            raise DatasetError(f"{path} has no Input.image_url<k> columns; not the AADB Mechanical Turk results")
        missing = [f"Answer.overallScore{k}" for k in slots if f"Answer.overallScore{k}" not in reader.fieldnames]
        if missing:
            raise DatasetError(
                f"{path} has no {', '.join(missing)} column(s) for its image URLs; not the AADB Mechanical Turk results"
            )
        for row in reader:
            for k in slots:
                url, answer = row.get(f"Input.image_url{k}") or "", row.get(f"Answer.overallScore{k}") or ""
                if not url.strip():
                    continue
                try:
                    name, score = image_name_from_url(url), int(float(answer))
                except ValueError:
                    report.drop("unreadable rating", f"{url} {answer!r}")
                    continue
                if 1 <= score <= BINS:
                    counts[name][score - 1] += 1
                else:
                    report.drop("rating outside 1..5 ignored", f"{url} {answer!r}")
    return dict(counts)


def attribute_unit(name: str, value: float) -> float:
    """An attribute value in [0, 1]."""
    return value if name in UNIT_RANGE else (value + 1.0) / 2.0


def read_list(path: Path) -> dict[str, float]:
    """Image file name -> value, from a label list. The lists are the benchmark's fixed split: a line that
    is not ``<image file name> <number>`` is refused with its file and line, never skipped (dropping a
    test image would change the benchmark without a word)."""
    values = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            value = float(tokens[1])
        except (IndexError, ValueError):  # a name alone, or a value that is no number
            value = math.nan
        if not math.isfinite(value):
            raise DatasetError(
                f"{path}:{number}: {line.strip()!r} is not '<image file name> <number>'; AADB's splits are "
                "fixed, so a damaged label list is not read (restore it from the release)"
            )
        values[tokens[0]] = value
    return values


def read_aadb(root: Path, *, test_list: str = "auto", min_ratings: int = 2) -> DatasetSplits:
    """Train / validation / test splits of AADB under ``root`` (see the module docstring).

    ``test_list``: ``"Test"`` (1,000 images), ``"TestNew"`` (873) or ``"auto"`` (Test if present)."""
    report = ReadReport("AADB")
    labels = find_label_dir(root)
    if test_list == "auto":
        test_list = "Test" if (labels / "imgListTestRegression_score.txt").is_file() else "TestNew"
    if test_list not in ("Test", "TestNew"):
        raise DatasetError(f"AADB test_list must be Test, TestNew or auto, not {test_list!r}")
    parts = {**_PARTS, "test": test_list}
    ratings_csv = find_ratings_csv(root)
    ratings = read_ratings(ratings_csv, report)
    image_dir = next(
        (d for d in (root / "datasetImages_originalSize", root / "images") if d.is_dir()),
        root,
    )
    report.source.update({"labels": str(labels), "votes": str(ratings_csv), "images": str(image_dir)})

    have_attributes = all(
        (labels / f"imgList{part}Regression_{a}.txt").is_file() for part in parts.values() for a in ATTRIBUTES
    )
    if not have_attributes:
        report.notes.append("attribute lists incomplete: photographic attributes not loaded")

    splits = {}
    for split, part in parts.items():
        score_file = labels / f"imgList{part}Regression_score.txt"
        if not score_file.is_file():
            raise DatasetError(f"missing AADB label list {score_file}")
        names = list(read_list(score_file))
        attribute_maps = (
            [read_list(labels / f"imgList{part}Regression_{a}.txt") for a in ATTRIBUTES] if have_attributes else []
        )
        kept, votes, attributes = [], [], []
        for name in names:
            counts = ratings.get(name)
            if counts is None or counts.sum() < min_ratings:
                report.drop(f"fewer than {min_ratings} ratings", name)
                continue
            if attribute_maps and any(name not in values for values in attribute_maps):
                report.drop("attribute values missing", name)
                continue
            kept.append(name)
            votes.append(counts)
            attributes.append([attribute_unit(a, values[name]) for a, values in zip(ATTRIBUTES, attribute_maps)])
        splits[split] = Split(
            name=split,
            ids=kept,
            paths=[image_dir / name for name in kept],
            votes=np.asarray(votes, dtype=np.float32).reshape(-1, BINS),
            attributes=np.asarray(attributes, dtype=np.float32).reshape(-1, len(ATTRIBUTES))
            if have_attributes
            else None,
        )
        report.source[f"{split} list"] = score_file.name
    return DatasetSplits(report=report, **splits)


def read_from_recipe(root: Path, data: Mapping[str, Any]) -> DatasetSplits:
    """:func:`read_aadb` with the options of a recipe's ``[data]`` table (the registry's reader)."""
    return read_aadb(
        root,
        test_list=str(data.get("test_list", "auto")),
        min_ratings=int(data.get("min_ratings", 2)),
    )
