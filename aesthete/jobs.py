"""What a ``score`` run asks of its decode workers and what they answer: the planner's jobs, the workers'
results, and the configuration each worker starts with.

Import-free (no numpy, no Pillow, no decoder), so that a rescan, which plans and finds nothing to decode,
never loads the image libraries: :mod:`aesthete.scoring` plans with these, and :mod:`aesthete.pipeline` and
:mod:`aesthete.decode_worker` run them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aesthete.store import ModelKey

if TYPE_CHECKING:
    import numpy as np

FILL_FACES, FILL_SIGNALS = "faces", "signals"


@dataclass
class FileJob:
    path: str
    size: int
    mtime_ns: int
    # An unchanged, already scored photo decoded again only for what it lacks, never scored: FILL_FACES (its
    # faces were never looked for) or FILL_SIGNALS (an earlier aesthete measured its signals); "": not a fill.
    fill: str = ""
    # A plain JPEG (aesthete.decode.plain_jpeg) comes back undecoded, for the model's device to decode.
    device_lane: bool = False
    slot: int | None = None  # the shared-memory slot lent for this file's model input (aesthete.pixel_slots)


@dataclass
class FileResult:
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None = None
    error_kind: str | None = None
    error: str | None = None
    image: dict[str, Any] | None = None  # a new ``images`` row, when this content was not known
    pixels: np.ndarray | None = None  # the model's input, when this content still needs scoring
    pixels_shape: tuple[int, ...] | None = None  # set when the input was left in the job's slot instead
    aspect: float = 1.0
    notes: list[str] = field(default_factory=list)
    fill: str = ""  # the job's fill (see FileJob.fill)
    jpeg: bytes | None = None  # a plain JPEG left for the device lane: ``image`` then lacks its signals
    orientation: int = 1  # that JPEG's EXIF orientation


@dataclass
class WorkerConfig:
    db_path: str | None
    policy: dict[str, Any] | None  # the model's InputPolicy as a dict; None when no model runs
    key: ModelKey | None
    rescore: bool
    parent_pid: int | None = None  # the process that started the pool: a worker dies with it (see init_worker)
    faces: bool = False  # look for faces (``aesthete.faces.available()`` in the process that starts the pool)
    embed_only: bool = False  # the model stores embeddings only (aesthete.embed_only): done = has one
    pixel_slots: tuple[str, int] | None = None  # the main process's PixelSlots: (its file, slot size)
