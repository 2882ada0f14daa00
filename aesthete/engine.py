"""Precision and the model runner: uint8 pixel batches in, probability rows (or, for a model whose
``output`` is ``"score"``, one number per photo) out. The device is picked
by :func:`aesthete.devices.pick_device` (re-exported here), as training picks its own.

This is the only part of scoring that imports torch; it is imported after the decode workers have
started, so they never carry torch and a run with nothing to score never pays for it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from aesthete.devices import COMPILE_MODES, PRECISIONS, EngineError, check_precision, normalise, pick_device
from aesthete.models.base import AestheticModel

# pick_device and EngineError live in aesthete.devices; scoring and bench import them from here.
__all__ = [
    "COMPILE_MODES",
    "MAX_COMPILED_SHAPES",
    "PRECISIONS",
    "EngineError",
    "LaunchedBatch",
    "ModelRunner",
    "autocast_dtype",
    "cpu_has_amx",
    "cpu_has_native_bf16",
    "fold_batchnorm",
    "inductor_cache_dir",
    "pick_device",
    "precision_name",
]

# Input shapes compiled per run; a batch of any further shape runs eagerly. Models that keep the photo's
# aspect ratio (apm, saf) see one shape per ratio: the first few (3:2, 2:3, 4:3, 3:4 cover most cameras)
# get compiled code, and a folder of odd panoramas cannot turn a run into a series of compilations.
MAX_COMPILED_SHAPES = 4


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none: not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True when the CPU executes bf16 natively (AVX512-BF16 or AMX). Without it, bf16 autocast is
    emulated and several times *slower* than fp32 (measured: 6.5x on an AVX2-only EPYC)."""
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_has_amx() -> bool:
    """True when the CPU has AMX's bf16 tile unit (Intel Xeon since Sapphire Rapids), where oneDNN's
    prepacked bf16 convolutions run far ahead of eager autocast (BENCHMARKS.md, "Compiled inference")."""
    return "amx_bf16" in _cpu_flags()


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or None for plain fp32."""
    check_precision(precision)
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def precision_name(dtype: torch.dtype | None) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"``: what an autocast dtype (:func:`autocast_dtype`) runs in."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


# The convN -> bnN attribute pairs of torchvision's ResNet blocks and stem, which their forward runs in
# that order; any other module may name its own pairs in a ``conv_bn_pairs`` attribute (TOPIQ's trunk).
RESNET_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold each eval-mode BatchNorm that directly follows a convolution into the convolution's weights,
    in place: the same function with one pass over the activations fewer per layer (~10% of a ResNet-50's
    CPU inference, measured). Only pairs whose order is certain: a Conv2d then a BatchNorm2d in an
    ``nn.Sequential``, the conv/bn pairs of torchvision's ResNet blocks and stem, and those a module
    lists in ``conv_bn_pairs``."""
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if type(module[i]) is nn.Conv2d and type(module[i + 1]) is nn.BatchNorm2d:
                    module[i], module[i + 1] = fuse_conv_bn_eval(module[i], module[i + 1]), nn.Identity()
            continue
        pairs = RESNET_PAIRS if isinstance(module, (BasicBlock, Bottleneck, ResNet)) else ()
        for conv_name, norm_name in getattr(module, "conv_bn_pairs", pairs):
            conv, norm = getattr(module, conv_name, None), getattr(module, norm_name, None)
            if type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d:
                setattr(module, conv_name, fuse_conv_bn_eval(conv, norm))
                setattr(module, norm_name, nn.Identity())
    return model


def inductor_cache_dir(base: Path, *, model: str, weights: str, policy: str) -> Path:
    """Where inductor keeps compiled code for one model: under aesthete's cache, one folder per torch
    version, model, weights and input policy (the input shapes follow from the policy; inductor keys each
    shape's code inside the folder). Freezing turns the weights into constants of the compiled code, hence
    the weights in the key; a new torch version never reads the old one's artefacts."""
    tag = hashlib.sha256(f"{torch.__version__}|{model}|{weights}|{policy}".encode()).hexdigest()[:16]
    return base / "inductor" / f"{torch.__version__.replace('+', '-')}" / f"{model}-{tag}"


def _no_cuda_runtime_notice(record: logging.LogRecord) -> bool:
    """Drops torch's "No CUDA runtime is found, using CUDA_HOME=..." warning. Inductor imports
    torch.utils.cpp_extension when it compiles, and that import logs it on any machine with a CUDA toolkit
    (nvcc on the PATH, /usr/local/cuda) but no GPU: a stray line on `score --compile on`'s terminal, though
    compiling for the CPU needs no CUDA. Every other record of that logger passes."""
    return not str(record.msg).startswith("No CUDA runtime is found")


@dataclass
class ModelRunner:
    """Runs one model in inference mode on uniform uint8 batches.

    Pixels arrive as (B, H, W, 3) or, for patch models, (B, P, h, w, 3); they are moved to the device
    as uint8 (4x fewer bytes than float), then normalised there in channels-last layout. The runner owns
    its model: it is put in eval mode and its BatchNorms are folded into the convolutions before them.
    """

    model: AestheticModel
    device: torch.device
    dtype: torch.dtype | None
    # torch.compile (inductor) the model: on CPU with freezing (weights folded into the compiled code as
    # constants; ResNet-50@300 1.21x eager in fp32 on an idle 2-core AVX2 CPU, 2.4x in bf16 on a 2-core
    # Xeon with AMX, BENCHMARKS.md). Compilation happens on the first batch of each shape; if it fails the
    # runner says so in one line and stays eager.
    compile: bool = False
    cache_dir: Path | None = None  # TORCHINDUCTOR_CACHE_DIR for this model (see inductor_cache_dir)
    # Photos per batch (fewer for large inputs: photos_per_batch). A compiled batch smaller than that (a
    # bucket's last one) is padded up to it, so a run compiles one batch size per shape, not one per
    # remainder; None: no padding.
    batch_size: int | None = None
    compiled_shapes: set[tuple[int, ...]] = field(default_factory=set)
    compile_failure: str | None = None

    def __post_init__(self) -> None:
        self.model = fold_batchnorm(self.model.to(self.device).eval())
        if self.device.type in ("cuda", "cpu"):
            self.model = self.model.to(memory_format=torch.channels_last)
        self._compiled: Any = None
        if self.compile:
            if self.cache_dir is not None:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(self.cache_dir)  # read by inductor at compile time
            logging.getLogger("torch.utils.cpp_extension").addFilter(_no_cuda_runtime_notice)
            # dynamic=False: one specialised kernel set per shape, and the shapes are capped by
            # MAX_COMPILED_SHAPES and padding, not by symbolic sizes. Freezing: see _compiling.
            self._compiled = torch.compile(self.model, dynamic=False)

    @property
    def compiled(self) -> bool:
        """True while the runner runs compiled code (False after a compilation failed)."""
        return self._compiled is not None

    @property
    def output(self) -> str:
        """``"distribution"`` (rows of probabilities) or ``"score"`` (one number per photo)."""
        return self.model.output

    @property
    def precision(self) -> str:
        return precision_name(self.dtype)

    def photos_per_batch(self, shape: Sequence[int]) -> int:
        """How many photos whose input has ``shape`` (one photo's, channels last, as the workers make it) make
        a batch: ``batch_size``, fewer when each holds more pixels than a 16:9 photo's input, so that a batch
        of panoramas takes no more memory than one of ordinary photos (eight 12:1 panoramas at TOPIQ's 384 px
        took 8 GB on the CPU, four times eight 3:2 photos). At least one."""
        assert self.batch_size, "score sets the batch size"
        per_photo = int(np.prod(shape[:-1]))
        return max(1, min(self.batch_size, self.batch_size * self._typical_pixels // per_photo))

    @functools.cached_property
    def _typical_pixels(self) -> int:
        """The policy's :meth:`~aesthete.input_policy.InputPolicy.typical_pixels`, once: the batcher asks for
        every photo (up to ~10 us each, for a policy that cuts patches)."""
        return self.model.policy.typical_pixels()

    def _runs_compiled(self, shape: tuple[int, ...]) -> bool:
        """Whether a batch of ``shape`` runs compiled code: one already compiled, or a new one while fewer than
        :data:`MAX_COMPILED_SHAPES` are."""
        return self._compiled is not None and (
            shape in self.compiled_shapes or len(self.compiled_shapes) < MAX_COMPILED_SHAPES
        )

    def _forward(self, batch: torch.Tensor, ratios: torch.Tensor) -> dict[str, torch.Tensor]:
        shape = tuple(batch.shape)
        if not self._runs_compiled(shape):
            return self.model(batch, ratios)
        try:
            with self._compiling():
                outputs = self._compiled(batch, ratios)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: the eager model still scores
            reason = f"{exc.__class__.__name__}: {exc}".splitlines()[0][:200]
            self.compile_failure, self._compiled = reason, None
            print(f"aesthete: torch.compile failed ({reason}); scoring without compilation", file=sys.stderr)
            return self.model(batch, ratios)
        self.compiled_shapes.add(shape)
        return outputs

    def _compiling(self) -> Any:
        """Inductor's settings for the compiled calls. Freezing pays on CPU (the weights become constants:
        prepacked oneDNN convolutions with their activations and adds fused in); on CUDA it saves little
        and costs memory, so it stays off there. It is set globally for the call, not passed as
        ``torch.compile(options=...)``: TorchDynamo decides whether parameters become graph inputs from the
        global setting when it traces (``is_parameter_freezing``), before those options apply, so with
        them inductor got the weights as inputs and froze nothing (torch 2.14)."""
        import torch._inductor.config as inductor_config

        return inductor_config.patch(freezing=self.device.type == "cpu")

    def __call__(self, pixels: np.ndarray, aspect: np.ndarray) -> np.ndarray:
        return self.run(pixels, aspect)[0]

    def stack(self, inputs: Sequence[np.ndarray | torch.Tensor]) -> torch.Tensor:
        """One batch of model inputs. The workers' arrays are stacked on the host, on CUDA straight into
        pinned memory (one copy, not two); inputs the device lane made on the device are stacked there."""
        if not all(isinstance(one, np.ndarray) for one in inputs):
            return torch.stack([torch.as_tensor(one, device=self.device) for one in inputs])
        if self.device.type != "cuda":
            return torch.from_numpy(np.stack(inputs))
        batch = torch.empty((len(inputs), *inputs[0].shape), dtype=torch.uint8, pin_memory=True)
        np.stack(inputs, out=batch.numpy())
        return batch

    def run(self, pixels: np.ndarray | torch.Tensor, aspect: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(B, S) probabilities, rows summing to 1, for a distribution model; (B,) scores for a score
        model (no distribution is made up for it); None for an embed-only model; and the (B, E)
        embeddings as float16, or None for a model without them."""
        return self.launch(pixels, aspect).result()

    def launch(self, pixels: np.ndarray | torch.Tensor, aspect: np.ndarray) -> LaunchedBatch:
        """Start the model on a batch and return without waiting for it on CUDA, where the kernels and
        the copy of the outputs back to the host run while the caller goes on; on a CPU the batch has
        run when this returns. :meth:`LaunchedBatch.result` reads the outputs as :meth:`run` returns them."""
        real = len(pixels)
        batch = torch.as_tensor(pixels)
        if self.device.type == "cuda" and batch.device.type == "cpu" and not batch.is_pinned():
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True)
        *_, height, width, channels = batch.shape  # the model gets them channels first (normalise, below)
        size = self.photos_per_batch(batch.shape[1:]) if self.batch_size else 0
        padded = (size, *batch.shape[1:-3], channels, height, width)
        if real < padded[0] and self._runs_compiled(padded):
            # Pad with copies of the last photo (dropped below): one compiled batch size, not one per remainder.
            # A batch that runs eagerly (a shape past the cap) is not padded: that would only add work.
            pad = padded[0] - real
            batch = torch.cat([batch, batch[-1:].expand(pad, *batch.shape[1:])])
            aspect = np.concatenate([aspect, np.repeat(aspect[-1:], pad)])
        policy = self.model.policy
        batch = normalise(batch.movedim(-1, -3), policy.mean, policy.std, channels_last=True)
        ratios = torch.from_numpy(aspect.astype(np.float32)).to(self.device)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            outputs = self._forward(batch, ratios)
        # float32 on the device, then into pinned host memory without blocking (CUDA); the event marks
        # the copies' end, which is all the host waits for.
        host = {}
        for name in ("probs", "score", "embedding"):
            if outputs.get(name) is not None:
                value = outputs[name][:real].float()
                host[name] = (value.flatten(1) if name == "embedding" else value).to("cpu", non_blocking=True)
        done = None
        if self.device.type == "cuda":
            done = torch.cuda.Event()
            done.record()
        return LaunchedBatch(self.output, host, done)


@dataclass
class LaunchedBatch:
    """A batch :meth:`ModelRunner.launch` started: its outputs on the host once ``done`` has happened."""

    output: str  # the model's: "distribution", "score" or "embedding"
    host: dict[str, torch.Tensor]  # float32 "probs", "score" and/or "embedding" rows
    done: Any = None  # torch.cuda.Event recorded after the copies to the host; None on a CPU

    def result(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Wait for the batch (CUDA) and return what :meth:`ModelRunner.run` does."""
        if self.done is not None:
            self.done.synchronize()
        embedding = self.host.get("embedding")
        if embedding is not None:  # float16 is what the store keeps
            # Clipped to float16's range: an overflow would store inf, which no later fit can use.
            embedding = np.clip(embedding.numpy(), -65504, 65504).astype(np.float16)
        if self.output == "embedding":  # an ImageNet trunk (aesthete.embed_only): no score to return
            return None, embedding
        if self.output == "score":
            return self.host["score"].numpy().astype(np.float64), embedding
        # Renormalise in float64: a softmax computed under bf16 autocast sums to 1 only within ~1e-3.
        probs = self.host["probs"].numpy().astype(np.float64)
        return probs / probs.sum(axis=1, keepdims=True), embedding
