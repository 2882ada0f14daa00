"""From dataset splits to the tensors a model trains on, driven by the model's own input policy.

- Decoding goes through :func:`aesthete.decode.decode` (EXIF orientation, sRGB, reduced-size JPEG
  decoding with ``Image.draft``), the same path scoring uses, so a model trains on the pixels it will
  later score.
- Evaluation views are exactly ``policy.prepare(image)``. Training views follow the policy's kind with
  the recipe's augmentation: a warp is warped to ``size * scale`` and randomly cropped back (HLA-GCN's
  "scale 1.05 then random crop"); a centre-crop policy gets a random crop of the same size; a
  shorter-side policy keeps the aspect ratio and crops its longer side down to a multiple of
  ``bucket_step`` (never a warp), which is what lets photos of similar shape share a batch; a patch
  policy gets ``patches`` random crops. Horizontal flips where the recipe asks.
- Randomness is a pure function of (seed, epoch, photo): every augmentation is the same whatever the
  number of processes, loader workers, or where a run was resumed. That is what makes a resumed run
  continue bit for bit and lets N processes reproduce one process's step.
- Workers ship uint8 tensors; :func:`to_device` normalises on the device (4x fewer bytes to move)
  with :func:`aesthete.devices.normalise`, the helper scoring uses.
- Batches are planned per *global* batch (:func:`plan_epoch`): every process draws the same shuffled
  list of global batches, takes its share of each, and splits it into micro-batches when a share is
  larger than ``micro_batch``. Variable-size inputs form their global batches within one shape bucket.
"""

from __future__ import annotations

import math
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from aesthete import interrupts
from aesthete.decode import DecodeError, decode
from aesthete.devices import normalise
from aesthete.input_policy import IMAGENET_MEAN, IMAGENET_STD, InputPolicy
from aesthete.training.splits import Split

Shape = tuple[int, ...]
# The standard fixed-size ImageNet view (shorter side 256, centre 224) a teacher classifier sees.
TEACHER_VIEW = InputPolicy(resize="center_crop", size=224, resize_short=256)


@dataclass(frozen=True)
class Augment:
    """The recipe's ``[augment]`` table."""

    hflip: bool = True
    scale: float = 1.0
    patches: int = 1
    bucket_step: int = 32

    @classmethod
    def from_recipe(cls, table: dict[str, Any]) -> Augment:
        return cls(
            hflip=bool(table["hflip"]),
            scale=float(table["scale"]),
            patches=int(table["patches"]),
            bucket_step=int(table["bucket_step"]),
        )


def eval_shape(policy: InputPolicy, width: int, height: int) -> Shape:
    """The shape ``policy.prepare`` gives a photo of this size (without decoding it)."""
    if policy.resize in ("warp", "center_crop") and not policy.patch:
        return (policy.size, policy.size)
    resized_w, resized_h = policy.resized_size(width, height)
    if policy.patch:
        return (len(policy.patch_origins(resized_w, resized_h)), policy.patch, policy.patch)
    return (resized_h, resized_w)


def train_shape(policy: InputPolicy, augment: Augment, width: int, height: int) -> Shape:
    """The shape of a training view of a photo of this size: photos with equal shapes share batches."""
    if policy.patch:
        return (augment.patches, policy.patch, policy.patch)
    if policy.resize in ("warp", "center_crop"):
        return (policy.size, policy.size)
    resized_w, resized_h = policy.resized_size(width, height)
    return (_bucket(resized_h, policy.size, augment.bucket_step), _bucket(resized_w, policy.size, augment.bucket_step))


def _bucket(side: int, keep: int, step: int) -> int:
    """A side cropped down to a multiple of ``step``; the policy's own size is kept exactly."""
    if side == keep or side <= step:
        return side
    return max(keep if side > keep else 0, side // step * step)


def train_view(image: Image.Image, policy: InputPolicy, augment: Augment, rng: np.random.Generator) -> np.ndarray:
    """A randomly augmented uint8 view: (H, W, 3), or (P, h, w, 3) for a patch policy."""
    width, height = image.size
    if policy.resize == "warp" and not policy.patch:
        side = max(policy.size, round(policy.size * augment.scale))
        pixels = np.asarray(image.resize((side, side), Image.Resampling.BILINEAR), dtype=np.uint8)
        return _flip(_random_crop(pixels, policy.size, policy.size, rng), augment, rng)
    pixels = np.asarray(image.resize(policy.resized_size(width, height), Image.Resampling.BILINEAR), dtype=np.uint8)
    if policy.patch:
        return np.stack(
            [_flip(_random_crop(pixels, policy.patch, policy.patch, rng), augment, rng) for _ in range(augment.patches)]
        )
    if policy.resize == "center_crop":
        return _flip(_random_crop(pixels, policy.size, policy.size, rng), augment, rng)
    out_h, out_w = train_shape(policy, augment, width, height)
    return _flip(_random_crop(pixels, out_h, out_w, rng), augment, rng)


def _random_crop(pixels: np.ndarray, out_h: int, out_w: int, rng: np.random.Generator) -> np.ndarray:
    height, width = pixels.shape[:2]
    if height < out_h or width < out_w:  # tiny photo: stretch just enough, the only resize a crop allows
        scale = max(out_h / height, out_w / width)
        size = (max(out_w, math.ceil(width * scale)), max(out_h, math.ceil(height * scale)))
        pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)
        height, width = pixels.shape[:2]
    top = int(rng.integers(0, height - out_h + 1))
    left = int(rng.integers(0, width - out_w + 1))
    return pixels[top : top + out_h, left : left + out_w]


def _flip(pixels: np.ndarray, augment: Augment, rng: np.random.Generator) -> np.ndarray:
    return pixels[:, ::-1] if augment.hflip and rng.random() < 0.5 else pixels


class PhotoDataset(Dataset):
    """Photos of one split as training or evaluation samples.

    Training keys are ``(index, epoch)`` so the augmentation is seeded by (seed, epoch, index) inside
    any worker; evaluation keys are plain indices. A photo that fails to decode yields ``None`` and is
    dropped by :func:`collate` (counted, never fatal: AVA has a few truncated files). With ``teacher``
    each sample also carries the photo's :data:`TEACHER_VIEW`, unaugmented: the target is the photo's.
    """

    def __init__(
        self,
        split: Split,
        policy: InputPolicy,
        *,
        augment: Augment | None = None,
        seed: int = 0,
        teacher: bool = False,
    ) -> None:
        if split.sizes is None:
            raise ValueError("scan the split's images first (splits.scan_images)")
        self.split = split
        self.policy = policy
        self.augment = augment
        self.seed = seed
        self.teacher = teacher
        self.dist = split.dist.astype(np.float32)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | None:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        width, height = (int(v) for v in self.split.sizes[index])
        try:
            image = decode(self.split.paths[index].read_bytes(), target=self._decode_target).image
        except (DecodeError, OSError):
            return None
        if self.augment is None:
            pixels = self.policy.prepare(image)
        else:
            rng = np.random.default_rng([self.seed, epoch, index])
            pixels = train_view(image, self.policy, self.augment, rng)
        item = {
            "index": index,
            "images": _channels_first(pixels),
            "aspect": width / height,  # the original's w / h, which HLA-GCN's spatial graph needs
            "dist": torch.from_numpy(self.dist[index]),
        }
        if self.split.attributes is not None:
            item["attributes"] = torch.from_numpy(self.split.attributes[index])
        if self.teacher:
            item["teacher_images"] = _channels_first(TEACHER_VIEW.prepare(image))
        return item

    def _decode_target(self, width: int, height: int) -> tuple[int, int]:
        """The smallest decode that loses nothing for the views (JPEG DCT scaling stays above it)."""
        if self.augment is not None and self.policy.resize == "warp":
            side = math.ceil(self.policy.size * max(1.0, self.augment.scale))
            need = (side, side)
        else:
            need = self.policy.decode_size(width, height)
        if self.teacher:
            extra = TEACHER_VIEW.decode_size(width, height)
            need = (max(need[0], extra[0]), max(need[1], extra[1]))
        return need


def _channels_first(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) or (P, h, w, 3) -> (3, H, W) or (P, 3, h, w); flips and read-only views are copied."""
    tensor = torch.from_numpy(np.require(pixels, requirements=["C", "W"]))
    return tensor.permute(0, 3, 1, 2) if tensor.dim() == 4 else tensor.permute(2, 0, 1)


def collate(items: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Stack the decodable samples; ``skipped`` counts the others."""
    good = [item for item in items if item is not None]
    batch: dict[str, Any] = {"skipped": len(items) - len(good)}
    if not good:
        return batch
    batch["index"] = torch.tensor([item["index"] for item in good], dtype=torch.long)
    batch["images"] = torch.stack([item["images"] for item in good])
    batch["aspect"] = torch.tensor([item["aspect"] for item in good], dtype=torch.float32)
    batch["dist"] = torch.stack([item["dist"] for item in good])
    for key in ("attributes", "teacher_images"):
        if key in good[0]:
            batch[key] = torch.stack([item[key] for item in good])
    return batch


def to_device(
    batch: dict[str, Any], policy: InputPolicy, device: torch.device, *, channels_last: bool
) -> dict[str, Any]:
    """uint8 images -> normalised float on ``device``; other tensors moved as they are."""
    out = {key: value.to(device, non_blocking=True) for key, value in batch.items() if isinstance(value, torch.Tensor)}
    out["images"] = normalise(out["images"], policy.mean, policy.std, channels_last=channels_last)
    if "teacher_images" in out:
        out["teacher_images"] = normalise(
            out["teacher_images"], IMAGENET_MEAN, IMAGENET_STD, channels_last=channels_last
        )
    return out


@dataclass
class Step:
    """One optimiser step for this process: its micro-batches of dataset keys, and the size of the
    global batch they belong to (each micro-batch's loss is weighted by its share of it)."""

    global_size: int
    micro: list[list[Any]]


def shape_groups(shapes: Sequence[Shape]) -> np.ndarray:
    """A group id per photo: photos with one shape share an id (ids ordered by shape, so deterministic)."""
    order = {shape: i for i, shape in enumerate(sorted(set(shapes)))}
    return np.array([order[shape] for shape in shapes], dtype=np.int64)


def plan_epoch(
    groups: np.ndarray,
    *,
    global_batch: int,
    world: int,
    rank: int,
    micro_batch: int,
    seed: int,
    epoch: int,
) -> list[Step]:
    """This process's steps for one epoch.

    All processes compute the same shuffled global batches (seeded by seed and epoch); a global batch
    never mixes groups (shapes). A global batch smaller than the number of processes is dropped, since
    every process must take part in every step. Each process takes its ``np.array_split`` share and
    cuts it into ``ceil(largest share / micro_batch)`` micro-batches, smallest first, so that its last
    micro-batch -- the one whose backward synchronises gradients -- is never empty.
    """
    rng = np.random.default_rng([seed, epoch, 7])
    batches: list[np.ndarray] = []
    for group in np.unique(groups):
        members = rng.permutation(np.flatnonzero(groups == group))
        batches.extend(members[i : i + global_batch] for i in range(0, len(members), global_batch))
    batches = [batches[i] for i in rng.permutation(len(batches))] if batches else []
    steps = []
    for batch in batches:
        if len(batch) < world:
            continue
        share = np.array_split(batch, world)[rank]
        largest = math.ceil(len(batch) / world)
        count = math.ceil(largest / micro_batch) if micro_batch else 1
        chunks = [chunk for chunk in reversed(np.array_split(share, count)) if len(chunk)]
        steps.append(Step(global_size=len(batch), micro=[[(int(i), epoch) for i in chunk] for chunk in chunks]))
    return steps


def eval_batches(groups: np.ndarray, *, batch_size: int, world: int, rank: int) -> list[list[int]]:
    """This process's evaluation batches: a contiguous shard of the split, grouped by shape."""
    shard = np.array_split(np.arange(len(groups)), world)[rank]
    batches = []
    for group in np.unique(groups[shard]):
        members = shard[groups[shard] == group]
        batches.extend(members[i : i + batch_size].tolist() for i in range(0, len(members), batch_size))
    return batches


def loader(dataset: Dataset, batches: Sequence[Sequence[Any]], *, workers: int, pin_memory: bool) -> Iterator[Any]:
    """An iterator of a DataLoader over precomputed batches of keys, its workers started.

    It gets its own generator: a DataLoader otherwise draws its workers' base seed from the global torch
    RNG, so creating one at a resume point would shift the dropout masks that follow. Its workers start
    with Ctrl-C held back (see aesthete.interrupts): one forked as it came died of it, and the loader
    raised "DataLoader worker exited unexpectedly" instead of the interrupt (field test, --workers 2)."""
    batches_of = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
        generator=torch.Generator().manual_seed(0),
        worker_init_fn=_leave_ctrl_c_to_the_main_process,
    )
    with interrupts.held_while_starting_children():
        return iter(batches_of)


def _leave_ctrl_c_to_the_main_process(worker_id: int) -> None:
    """A terminal's Ctrl-C reaches the loader's workers too; the main process stops them as it stops.

    When it stops while a worker hands it a batch (a tensor's file descriptor, through multiprocessing's
    resource sharer), the worker's sharer thread meets a closed connection and printed its traceback
    (``ConnectionResetError``) after the interrupted notice: 1 Ctrl-C in ~100 in the tests. A
    connection error there only means the main process is gone, which reports for itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    interrupts.release_in_child()
    sys.excepthook = _silent_on_connection_errors


def _silent_on_connection_errors(kind: type[BaseException], value: BaseException, trace: Any) -> None:
    if not issubclass(kind, ConnectionError):
        sys.__excepthook__(kind, value, trace)


def split_shapes(split: Split, shape_of: Callable[[int, int], Shape]) -> list[Shape]:
    assert split.sizes is not None
    return [shape_of(int(w), int(h)) for w, h in split.sizes]
