"""The datasets a recipe can train on, by name: how many score bins their votes have, how to read
them, and how to recognise their data root.

Everything that used to branch on ``"ava"`` / ``"aadb"`` (the recipe check of ``model_config.bins``,
the ``train`` command's look at ``--data-root`` before it starts processes, reading the splits) asks
this registry instead, so a new rating source is one reader module and one entry here.

Torch-free, like the readers it names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aesthete.training import aadb, ava
from aesthete.training.splits import DatasetError, DatasetSplits


@dataclass(frozen=True)
class Dataset:
    """One dataset a recipe can name."""

    name: str
    bins: int  # score bins of its vote distributions
    read: Callable[[Path, Mapping[str, Any]], DatasetSplits]  # (data root, recipe's [data]) -> splits
    locate: Callable[[Path], Path]  # the label file that marks a data root; DatasetError if absent

    def fits_bins(self, bins: int) -> bool:
        """Whether a model with ``bins`` output bins can learn from (and be measured on) these votes: its
        own number of bins, or 2 -- a binary classifier (MP_ada) derives its labels from any distribution."""
        return bins in (2, self.bins)


DATASETS: dict[str, Dataset] = {
    "ava": Dataset("ava", ava.BINS, ava.read_from_recipe, ava.find_ava_txt),
    "aadb": Dataset("aadb", aadb.BINS, aadb.read_from_recipe, aadb.find_label_dir),
}


def dataset_names() -> tuple[str, ...]:
    return tuple(DATASETS)


def get_dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; choose {' or '.join(DATASETS)}") from None


def read_dataset(name: str, root: str | Path, options: Mapping[str, Any] | None = None) -> DatasetSplits:
    """Read dataset ``name`` from ``root`` with the recipe's ``[data]`` options."""
    dataset = get_dataset(name)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data root {root} is not a directory")
    return dataset.read(root, dict(options or {}))
