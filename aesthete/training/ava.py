"""AVA (Murray et al., CVPR 2012) as its June 2012 release lays it out.

The release's readme fixes ``AVA.txt``: one image per line, ``index image_id c1 .. c10 tag1 tag2
challenge_id`` where ``c1..c10`` are the counts of ratings 1..10. Images are downloaded separately and
are conventionally stored as ``<root>/images/<id>.jpg``; ``<root>/<id>.jpg`` is accepted too.

Splits, in order of preference:
- ``aesthetics_image_lists/generic_test.jpgl`` (the release's list of the standard test ids; the
  papers call it the split "from [33]"): those ids are the test set and every other row of AVA.txt is
  the training pool, which is how MP_ada ("235,599 images for training and the rest for testing") and
  APM ("held out 2000 images from the train set for validating") use it. Any other list file can be
  named with ``[data] test_list`` (a path under the data root): for example the ``val.txt`` of the split
  HLA-GCN took from PA_IAA, whose lines read ``<id>.jpg <label>``.
- Without a list, a seeded random split whose test size is AVA's own proportion, 19,930 of 255,530
  rows (about 7.8%; exactly 19,930 on the full set), so a small set gets a proportionally small test.

The validation hold-out is ``val_size`` (2,000, as APM and HLA-GCN hold out) drawn from the training
pool with the split seed, capped at a tenth of the pool so a small set still trains on most of it.
Splits are drawn from AVA.txt's ids *before* missing images are removed, so a missing file never
shifts another image to a different split.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from aesthete.training.splits import DatasetError, DatasetSplits, ReadReport, Split, read_id_list

AVA_ROWS = 255_530  # lines of the released AVA.txt
AVA_TEST_IMAGES = 19_930  # the standard test ids that were still downloadable (APM, sec. 4)
DEFAULT_TEST_LIST = "aesthetics_image_lists/generic_test.jpgl"
BINS = 10


def find_ava_txt(root: Path) -> Path:
    for candidate in (root / "AVA.txt", root / "AVA_dataset" / "AVA.txt"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"no AVA.txt in {root} (nor in {root / 'AVA_dataset'}); is this the AVA data root?")


def parse_ava_txt(path: Path, report: ReadReport) -> tuple[list[str], np.ndarray]:
    """Image ids and (N, 10) vote counts; malformed, duplicate, vote-less rows and rows with a negative
    count go to the report."""
    ids: list[str] = []
    votes: list[list[float]] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            tokens = line.split()
            if not tokens:
                continue
            try:
                if len(tokens) < 2 + BINS:
                    raise ValueError
                image_id = tokens[1]
                counts = [float(int(t)) for t in tokens[2 : 2 + BINS]]
            except ValueError:
                report.drop("malformed line in AVA.txt", f"line {number}")
                continue
            if image_id in seen:
                report.drop("duplicate id in AVA.txt", image_id)
            elif min(counts) < 0:
                report.drop("negative vote count", image_id)
            elif sum(counts) == 0:
                report.drop("no votes", image_id)
            else:
                seen.add(image_id)
                ids.append(image_id)
                votes.append(counts)
    return ids, np.asarray(votes, dtype=np.float32).reshape(-1, BINS)


def read_ava(root: Path, *, val_size: int = 2000, split_seed: int = 0, test_list: str = "auto") -> DatasetSplits:
    """Train / validation / test splits of AVA under ``root`` (see the module docstring for the rules).

    ``test_list``: ``"auto"`` (the release's generic test list if present, else random), ``"random"``, or
    a list file under ``root``."""
    report = ReadReport("AVA")
    ava_txt = find_ava_txt(root)
    ids, votes = parse_ava_txt(ava_txt, report)
    if not ids:
        raise DatasetError(f"{ava_txt} holds no usable rows")
    report.source["votes"] = str(ava_txt)

    image_dir = root / "images" if (root / "images").is_dir() else root
    report.source["images"] = str(image_dir)
    paths = [image_dir / f"{image_id}.jpg" for image_id in ids]

    is_test = _test_mask(root, ids, test_list, split_seed, report)
    pool = np.flatnonzero(~is_test)
    val_count = min(val_size, len(pool) // 10)
    val_rng = np.random.default_rng([split_seed, 1])
    val = np.sort(val_rng.choice(pool, size=val_count, replace=False))
    train = np.setdiff1d(pool, val)
    report.source["validation"] = f"{val_count:,} held out of the training pool (seed {split_seed})"

    everything = Split("all", ids, paths, votes)
    return DatasetSplits(
        train=_named(everything.subset(train), "train"),
        val=_named(everything.subset(val), "val"),
        test=_named(everything.subset(np.flatnonzero(is_test)), "test"),
        report=report,
    )


def read_from_recipe(root: Path, data: Mapping[str, Any]) -> DatasetSplits:
    """:func:`read_ava` with the options of a recipe's ``[data]`` table (the registry's reader)."""
    return read_ava(
        root,
        val_size=int(data.get("val_size", 2000)),
        split_seed=int(data.get("split_seed", 0)),
        test_list=str(data.get("test_list", "auto")),
    )


def _test_mask(root: Path, ids: list[str], test_list: str, seed: int, report: ReadReport) -> np.ndarray:
    if test_list == "auto":
        test_list = DEFAULT_TEST_LIST if (root / DEFAULT_TEST_LIST).is_file() else "random"
    if test_list == "random":
        count = min(AVA_TEST_IMAGES, round(len(ids) * AVA_TEST_IMAGES / AVA_ROWS))
        chosen = np.random.default_rng([seed, 0]).choice(len(ids), size=count, replace=False)
        mask = np.zeros(len(ids), dtype=bool)
        mask[chosen] = True
        report.source["test split"] = f"random, {count:,} images (AVA's 19,930 / 255,530 proportion, seed {seed})"
        return mask
    list_path = Path(test_list) if Path(test_list).is_absolute() else root / test_list
    if not list_path.is_file():
        # the default HLA-GCN recipe names ILGnet's val.txt, which the AVA release lacks: say how to go on
        raise DatasetError(
            f"test list {list_path} does not exist (the recipe's data.test_list; "
            "--set data.test_list=auto takes the release's generic_test.jpgl)"
        )
    listed = set(read_id_list(list_path))
    mask = np.array([image_id in listed for image_id in ids], dtype=bool)
    unknown = len(listed) - int(mask.sum())
    report.source["test split"] = str(list_path)
    if unknown:
        report.notes.append(f"{unknown:,} ids of {list_path.name} are not rows of AVA.txt")
    return mask


def _named(split: Split, name: str) -> Split:
    split.name = name
    return split
