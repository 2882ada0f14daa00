"""Input policies: how a decoded photo becomes the pixels a model sees.

Each model declares its policy as data (see ``aesthete.models``), so the scoring engine can decode
at reduced size, group photos of equal resized size into uniform batches, and key the cache by the
exact preprocessing. This module is torch-free on purpose, and imports numpy and Pillow only to
prepare pixels (:meth:`InputPolicy.prepare`): decode workers and the rescan path use it without paying for
``import torch``, and a rescan that decodes nothing without paying for either image library.

Policies return ``uint8`` arrays; normalisation (mean/std) happens on the model's device, where it is
cheap, so workers ship 4x fewer bytes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# OpenAI CLIP's own normalisation (clip/clip.py, _transform), used by models on a CLIP image tower.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# The most pixels one photo's model input may hold (all its patches together). An aspect-keeping policy with
# no longer-side cap (TOPIQ's shorter side 384, MP_ada's patches) turns a long strip into a huge input: a
# 65000x100 scan would be 249600x384 (96 MP) for TOPIQ, whose self-attention then needs hundreds of GB,
# and 1,486 patches for MP_ada (2.4 GB for one activation of its ResNet-18). Such a photo is refused with a
# reason (:meth:`InputPolicy.too_elongated`). 2.5 MP takes a 16:1 panorama at TOPIQ's 384 px (2.4 MP) and a
# 40:1 one through MP_ada's patches; photos of ordinary shape stay far below it (576x384 is 0.22 MP).
MAX_INPUT_PIXELS = 2_500_000
# The shortest side an input may have. A longer-side cap (APM's 1000, SAF's 512) shrinks a strip's shorter
# side with it: a 65000x100 scan became 512x1 for SAF, whose VGG16 max-pools need 16 px and raised mid-run.
# 32 px is a ResNet's stride; below it the model sees a line, not a picture.
MIN_INPUT_SIDE = 32

# The shape a typical photo has, for sizing: 1:1, 4:3, 3:2 and 16:9 inputs, either way round, are no larger.
TYPICAL_ASPECT = (16, 9)

ResizeKind = Literal["warp", "short_side", "center_crop"]
Resample = Literal["bilinear", "bicubic"]


@dataclass(frozen=True)
class InputPolicy:
    """What a model's input is, as plain data.

    - ``warp``: resize to ``size`` x ``size`` ignoring aspect ratio (NIMA, HLA-GCN's layout-preserving
      warp, which passes the original aspect ratio separately).
    - ``short_side``: shorter side to ``size``, aspect kept (APM, SAF); the longer side is capped at
      ``max_long_side`` by shrinking the whole image, so a panorama never becomes a huge tensor and is
      never warped.
    - ``center_crop``: shorter side to ``resize_short``, then a centred ``size`` square (PEAR).
    - ``patch``: when set, the resized image is cut into ``patch`` x ``patch`` crops on a deterministic
      grid that covers it entirely (MP_ada inference); the output gains a leading patch axis.
    - ``resample``: the resize filter; bilinear unless a publisher's preprocessing says otherwise
      (CLIP resizes bicubically).
    """

    resize: ResizeKind
    size: int
    resize_short: int | None = None
    max_long_side: int | None = None
    patch: int | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    version: int = 1
    resample: Resample = "bilinear"

    def __post_init__(self) -> None:
        for name in ("size", "resize_short", "max_long_side", "patch"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"input {name} must be a positive number of pixels, not {value!r}")

    @property
    def key(self) -> str:
        """A short, stable identifier for the cache: change any field and the key changes."""
        parts = [self.resize, str(self.size)]
        if self.resize_short:
            parts.append(f"rs{self.resize_short}")
        if self.max_long_side:
            parts.append(f"max{self.max_long_side}")
        if self.patch:
            parts.append(f"p{self.patch}")
        if self.mean != IMAGENET_MEAN or self.std != IMAGENET_STD:
            parts.append("norm" + ",".join(f"{v:g}" for v in (*self.mean, *self.std)))
        if self.resample != "bilinear":  # only when set, so existing cache keys stay valid
            parts.append(self.resample)
        parts.append(f"v{self.version}")
        return "-".join(parts)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the photo after resizing, before any crop or patching."""
        if self.resize == "warp":
            return self.size, self.size
        short = self.resize_short if self.resize == "center_crop" else self.size
        assert short is not None, "center_crop needs resize_short"
        scale = short / min(width, height)
        if self.max_long_side and max(width, height) * scale > self.max_long_side:
            scale = self.max_long_side / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))

    def input_shape(self, width: int, height: int) -> tuple[int, ...]:
        """The shape of the array :meth:`prepare` makes from a ``width`` x ``height`` photo, computed
        without any pixels: (H, W, 3), or (P, patch, patch, 3) when the policy cuts patches."""
        resized_w, resized_h = self.resized_size(width, height)
        if self.resize == "center_crop":
            resized_w, resized_h = min(resized_w, self.size), min(resized_h, self.size)
        if self.patch:
            return (len(self.patch_origins(resized_w, resized_h)), self.patch, self.patch, 3)
        return (resized_h, resized_w, 3)

    def typical_pixels(self) -> int:
        """Pixels (all patches together) of the input a 16:9 photo makes: what a shared-memory slot
        (``aesthete.pixel_slots``) and a batch (``ModelRunner.photos_per_batch``) are sized by."""
        return math.prod(self.input_shape(*TYPICAL_ASPECT)[:-1])

    def too_elongated(self, width: int, height: int) -> str | None:
        """Why a ``width`` x ``height`` photo cannot be this policy's input, in one line, or None (every photo
        of ordinary shape). Only a long strip gets here: one whose input would exceed :data:`MAX_INPUT_PIXELS`
        (no longer-side cap), or whose shorter side a longer-side cap shrinks below :data:`MIN_INPUT_SIDE`."""
        shape = self.input_shape(width, height)
        pixels = math.prod(shape[:-1])
        made = f"{shape[0]} patches of {self.patch}x{self.patch}" if self.patch else f"a {shape[1]}x{shape[0]} input"
        if pixels > MAX_INPUT_PIXELS:
            return (
                f"{width}x{height} would make {made} for the model "
                f"({pixels / 1e6:.1f} MP; at most {MAX_INPUT_PIXELS / 1e6:.1f} MP)"
            )
        least = min(MIN_INPUT_SIDE, self.size)  # (a policy whose own size is smaller sets the floor itself)
        if not self.patch and min(shape[:2]) < least:
            return f"{width}x{height} would make {made} for the model (its shorter side under {least} px)"
        return None

    def decode_size(self, width: int, height: int) -> tuple[int, int]:
        """The smallest decode that loses nothing for this policy (a hint for reduced-size decoding)."""
        return self.resized_size(width, height)

    def prepare(self, image: Image.Image) -> np.ndarray:
        """RGB image -> uint8 array (H, W, 3), or (P, h, w, 3) when the policy cuts patches."""
        import numpy as np
        from PIL import Image

        if image.mode != "RGB":
            image = image.convert("RGB")
        resized = image.resize(self.resized_size(*image.size), Image.Resampling[self.resample.upper()])
        if self.resize == "center_crop":
            resized = _center_crop(resized, self.size)
        pixels = np.asarray(resized, dtype=np.uint8)
        if self.patch:
            size = self.patch
            return np.stack([pixels[y : y + size, x : x + size] for y, x in self.patch_origins(*resized.size)])
        return pixels

    def patch_origins(self, width: int, height: int) -> list[tuple[int, int]]:
        """Top-left corners (y, x) of the fewest evenly spaced patches that cover the whole image."""
        assert self.patch is not None
        return [(y, x) for y in _cover(height, self.patch) for x in _cover(width, self.patch)]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> InputPolicy:
        """The policy :meth:`to_dict` wrote (a checkpoint's metadata). Anything else, such as a missing or
        unknown field or a value of the wrong kind, raises ``ValueError`` with one line saying which."""
        if not isinstance(data, dict):
            raise ValueError("not a table of fields")
        known = {f.name for f in fields(cls)}
        problems = [f"unknown field {name!r}" for name in sorted(set(data) - known)]
        problems += [f"no {name!r}" for name in ("resize", "size") if name not in data]
        if problems:
            raise ValueError("; ".join(problems))
        data = {**data, "mean": data.get("mean", IMAGENET_MEAN), "std": data.get("std", IMAGENET_STD)}
        for name, allowed in (("resize", get_args(ResizeKind)), ("resample", get_args(Resample))):
            if name in data and data[name] not in allowed:
                raise ValueError(f"{name!r} is {data[name]!r}, not one of {', '.join(allowed)}")
        for name in ("size", "resize_short", "max_long_side", "patch", "version"):
            value = data.get(name)
            optional = name in ("resize_short", "max_long_side", "patch") or name not in data
            if not (_positive_int(value) or (value is None and optional)):
                raise ValueError(f"{name!r} is {value!r}, not a positive integer")
        if data["resize"] == "center_crop" and data.get("resize_short") is None:
            raise ValueError("'center_crop' needs 'resize_short'")
        for name in ("mean", "std"):
            value = data[name]
            if not (isinstance(value, list | tuple) and len(value) == 3 and all(map(_number, value))):
                raise ValueError(f"{name!r} is {value!r}, not three numbers")
        return cls(**{**data, "mean": tuple(data["mean"]), "std": tuple(data["std"])})

    def describe(self) -> str:
        """One line for humans (`aesthete models`)."""
        if self.resize == "warp":
            text = f"warp to {self.size}x{self.size}"
        elif self.resize == "short_side":
            text = f"shorter side {self.size}, aspect kept"
            if self.max_long_side:
                text += f" (longer side <= {self.max_long_side})"
        else:
            text = f"shorter side {self.resize_short}, centre crop {self.size}"
        if self.patch:
            text += f", {self.patch}x{self.patch} patches covering the image"
        if self.resample != "bilinear":
            text += f", {self.resample}"
        return text


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _cover(length: int, patch: int) -> list[int]:
    """Evenly spaced starts of ceil(length / patch) windows spanning [0, length)."""
    if length <= patch:
        return [0]
    count = math.ceil(length / patch)
    return [round(i * (length - patch) / (count - 1)) for i in range(count)]


def _center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    left, top = max(0, (width - size) // 2), max(0, (height - size) // 2)
    return image.crop((left, top, left + size, top + size))
