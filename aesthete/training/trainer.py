"""The training loop: one code path for one CPU process, one GPU, or N processes under
``torch.distributed.run`` (NCCL on GPUs, gloo on CPU).

What makes it reproduce a paper run whatever the hardware:
- The global batch is the recipe's. Every process draws the same shuffled global batches and takes its
  share (:func:`aesthete.training.data.plan_epoch`); a share larger than ``micro_batch`` is accumulated
  over several forwards. Each micro-batch's loss -- a batch mean, as every model's ``loss`` is -- is
  weighted by ``n_micro * world / global_batch``, so after DDP averages the gradients over the
  processes they are exactly the gradient of the mean loss over the global batch, for any number of
  processes and any split (shares may differ by one photo).
- Augmentation is seeded per photo, and the torch/Python/NumPy RNG states of every process go into
  each checkpoint, so ``--resume`` continues bit for bit on CPU (GPU kernels may not be deterministic).
- Only rank 0 writes: the training state after every epoch (and every ``checkpoint_every`` steps),
  ``metrics.json``, and at the end a self-describing safetensors checkpoint for ``weights add``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from aesthete.errors import AestheteError
from aesthete.models import AestheticModel, get_model
from aesthete.training import data as data_mod
from aesthete.training.metrics import HIGHER_IS_BETTER, METRIC_NAMES, evaluate
from aesthete.training.recipes import differences
from aesthete.training.datasets import read_dataset
from aesthete.training.splits import DatasetSplits, Split, limit_splits, scan_images

STATE_FILE = "state.pt"
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
STATE_VERSION = 1

# torchvision's original ImageNet weights (the papers predate the V2 training recipe).
TORCHVISION_WEIGHTS = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet34": "ResNet34_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "resnet101": "ResNet101_Weights.IMAGENET1K_V1",
    "vgg16": "VGG16_Weights.IMAGENET1K_V1",
}
# The children of a torchvision ResNet that ``build_backbone`` keeps, in order: the trunk is
# ``nn.Sequential`` of them, so its state-dict keys are their indices.
RESNET_TRUNK = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


class TrainingError(AestheteError, RuntimeError):
    """A run that cannot start or continue; the message says why and what to do."""


@dataclass
class RunOptions:
    """Everything about a run that is not the recipe: where, on what, and how to report."""

    data_root: Path
    output: Path
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    resume: bool = False
    limit: int | None = None
    workers: int | None = None  # None: the recipe's value, capped by the CPUs per process
    progress: bool = True


@dataclass
class Context:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    owns_group: bool

    @property
    def main(self) -> bool:
        return self.rank == 0


# --------------------------------------------------------------------------------------------------
# Backbone initialisation


def trunk_state_dict(backbone: str, full_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision classifier's state dict renamed to the keys of ``build_backbone(backbone)``.

    ResNet: the trunk is ``Sequential(conv1, bn1, relu, maxpool, layer1..4)``, so ``layer1.0.conv1.weight``
    becomes ``4.0.conv1.weight``; ``fc.*`` is dropped. VGG16: the trunk is ``features[:-1]`` with the
    same indices, so ``features.`` is stripped and the classifier dropped."""
    if backbone.startswith("resnet"):
        index = {name: i for i, name in enumerate(RESNET_TRUNK)}
        out = {}
        for key, value in full_state.items():
            head, _, rest = key.partition(".")
            if head in index:
                out[f"{index[head]}.{rest}"] = value
        return out
    if backbone.startswith("vgg"):
        return {key.removeprefix("features."): v for key, v in full_state.items() if key.startswith("features.")}
    raise TrainingError(f"no ImageNet weight mapping for backbone {backbone!r}")


def imagenet_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights for ``backbone``: the file ``aesthete weights pull`` verified, else
    torchvision's own download (cached by torch hub), else a clear error."""
    from aesthete.checkpoint import load_state_dict
    from aesthete.weights import backbone_weights_path

    path = backbone_weights_path(backbone)
    if path is not None and path.is_file():
        return load_state_dict(path)
    if backbone not in TORCHVISION_WEIGHTS:
        raise TrainingError(f"no ImageNet weights known for backbone {backbone!r}; pass --no-pretrained")
    import torchvision

    try:
        return torchvision.models.get_weight(TORCHVISION_WEIGHTS[backbone]).get_state_dict(progress=True)
    except Exception as exc:  # no network, proxy, disk full: all end the same way for the user
        raise TrainingError(
            f"ImageNet weights for {backbone} are not available ({type(exc).__name__}: {exc}); "
            f"run `aesthete weights pull {backbone}-imagenet1k-v1` (see `aesthete weights list`) "
            "or pass --no-pretrained"
        ) from None


def load_backbone(model: AestheticModel, backbone: str, full_state: dict[str, torch.Tensor]) -> None:
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Module):
        raise TrainingError(f"{model.arch} has no `features` trunk to initialise; pass --no-pretrained")
    try:
        features.load_state_dict(trunk_state_dict(backbone, full_state), strict=True)
    except RuntimeError as exc:
        raise TrainingError(f"ImageNet weights do not fit {backbone}: {str(exc).splitlines()[0]}") from None


def build_teacher(name: str, device: torch.device) -> nn.Module:
    """A frozen torchvision ImageNet classifier (APM's semantic stage distils its softmax)."""
    import torchvision

    teacher = torchvision.models.get_model(name, weights=None)
    teacher.load_state_dict(imagenet_state_dict(name))
    teacher.requires_grad_(False)
    if device.type == "cuda":
        teacher.to(memory_format=torch.channels_last)
    return teacher.to(device).eval()


def add_teacher_probs(teacher: nn.Module | None, batch: dict[str, Any], device: torch.device, amp: str) -> None:
    if teacher is None:
        return
    with torch.no_grad(), autocast(device, amp):
        batch["teacher_probs"] = teacher(batch["teacher_images"]).float().softmax(dim=-1)


# --------------------------------------------------------------------------------------------------
# Process group, devices, RNG


def setup(device_option: str) -> Context:
    """Join the process group ``torch.distributed.run`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_option, local_rank if world > 1 else None)
    owns_group = False
    if world > 1 and not dist.is_initialized():
        if device.type == "mps":
            raise TrainingError("distributed training is not supported on mps")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns_group = True
    return Context(rank=rank, world=world, local_rank=local_rank, device=device, owns_group=owns_group)


def pick_device(option: str, local_rank: int | None) -> torch.device:
    if option == "auto":
        option = "cuda" if torch.cuda.is_available() else "cpu"
    if option.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError("CUDA was asked for but is not available; use --device cpu")
        if local_rank is not None:
            return torch.device("cuda", local_rank)
        return torch.device(option)
    if option == "mps" and not torch.backends.mps.is_available():
        raise TrainingError("mps was asked for but is not available")
    if option not in ("cpu", "mps"):
        raise TrainingError(f"unknown device {option!r}; use auto, cpu, cuda, cuda:N or mps")
    return torch.device(option)


def capture_rng(device: torch.device) -> dict[str, Any]:
    """This process's RNG states, as types ``torch.load(weights_only=True)`` accepts."""
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(_as_tuples(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` wants tuples where a round trip through storage may give lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def gather(ctx: Context, obj: Any) -> list[Any]:
    if ctx.world == 1:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def broadcast(ctx: Context, obj: Any) -> Any:
    if ctx.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# --------------------------------------------------------------------------------------------------
# Building blocks


def build_optimizer(model: AestheticModel, optim: dict[str, Any]) -> torch.optim.Optimizer:
    groups = model.parameter_groups(optim["lr"])
    if optim["name"] == "sgd":
        return torch.optim.SGD(
            groups,
            lr=optim["lr"],
            momentum=optim["momentum"],
            nesterov=optim["nesterov"],
            weight_decay=optim["weight_decay"],
        )
    optimizer = torch.optim.AdamW if optim["name"] == "adamw" else torch.optim.Adam
    return optimizer(groups, lr=optim["lr"], betas=tuple(optim["betas"]), weight_decay=optim["weight_decay"])


def lr_factor(schedule: dict[str, Any], steps_per_epoch: int) -> Callable[[int], float]:
    """The learning-rate multiplier after ``iteration`` optimiser steps."""
    kind, gamma = schedule["kind"], schedule["gamma"]

    def factor(iteration: int) -> float:
        position = iteration if schedule["unit"] == "iteration" else iteration // max(1, steps_per_epoch)
        if kind == "step":
            return gamma ** (position // schedule["step_size"])
        if kind == "multistep":
            return gamma ** sum(position >= m for m in schedule["milestones"])
        return 1.0

    return factor


def set_train_mode(model: nn.Module, freeze_bn: bool) -> None:
    model.train()
    if freeze_bn:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager[Any]:
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def load_splits(
    ctx: Context,
    recipe: dict[str, Any],
    options: RunOptions,
    say: Callable[[str], None],
    names: tuple[str, ...] = ("train", "val", "test"),
) -> DatasetSplits:
    """Rank 0 reads the labels and scans the images of the ``names`` splits; every process gets the same."""
    splits = None
    error = None
    if ctx.main:
        try:
            splits = scan_images(read_dataset(recipe["dataset"], options.data_root, recipe["data"]), names=names)
            if options.limit:
                splits = limit_splits(splits, options.limit, recipe["data"]["split_seed"])
        except Exception as exc:  # re-raised on every rank below, so no process waits forever
            error = exc
    splits, error = broadcast(ctx, (splits, error))
    if error is not None:
        raise error
    assert splits is not None
    for line in splits.report.lines(splits):
        say(line)
    return splits


# --------------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def predict(
    ctx: Context,
    model: AestheticModel,
    split: Split,
    *,
    batch_size: int,
    workers: int,
    amp: str,
    teacher: nn.Module | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(indices, predicted distributions, mean loss) over ``split``, computed in shards by all processes."""
    policy = model.policy
    groups = data_mod.shape_groups(data_mod.split_shapes(split, lambda w, h: data_mod.eval_shape(policy, w, h)))
    batches = data_mod.eval_batches(groups, batch_size=batch_size, world=ctx.world, rank=ctx.rank)
    dataset = data_mod.PhotoDataset(split, policy, teacher=teacher is not None)
    was_training = model.training
    model.eval()
    indices, probs, loss_sum, count = [], [], 0.0, 0
    channels_last = ctx.device.type == "cuda"
    for raw in data_mod.loader(dataset, batches, workers=workers, pin_memory=channels_last):
        if "images" not in raw:
            continue
        batch = data_mod.to_device(raw, policy, ctx.device, channels_last=channels_last)
        add_teacher_probs(teacher, batch, ctx.device, amp)
        with autocast(ctx.device, amp):
            outputs = model(batch["images"], batch["aspect"])
            loss = model.loss(outputs, batch)
        n = len(batch["index"])
        loss_sum += float(loss) * n
        count += n
        indices.append(raw["index"].numpy())
        probs.append(outputs["probs"].float().cpu().numpy())
    model.train(was_training)
    shards = gather(ctx, (indices, probs, loss_sum, count))
    all_indices = np.concatenate([i for shard in shards for i in shard[0]] or [np.zeros(0, dtype=np.int64)])
    all_probs = [p for shard in shards for p in shard[1]]
    stacked = np.concatenate(all_probs) if all_probs else np.zeros((0, model.bins))
    order = np.argsort(all_indices, kind="stable")
    total = sum(shard[3] for shard in shards)
    mean_loss = sum(shard[2] for shard in shards) / total if total else float("nan")
    return all_indices[order], stacked[order], mean_loss


def evaluate_split(
    ctx: Context,
    model: AestheticModel,
    split: Split,
    recipe: dict[str, Any],
    *,
    workers: int,
    teacher: nn.Module | None = None,
) -> dict[str, float]:
    """The papers' metrics on ``split`` (plus the model's own loss), identical on every process."""
    train = recipe["train"]
    indices, probs, loss = predict(
        ctx,
        model,
        split,
        batch_size=train["eval_batch_size"] or train["batch_size"],
        workers=workers,
        amp=train["amp"],
        teacher=teacher,
    )
    results = {"loss": loss, "images": len(indices)}
    if model.scores_photos and len(indices):
        results.update(
            evaluate(probs, split.dist[indices], threshold=recipe["eval"]["threshold"], rule=recipe["eval"]["rule"])
        )
    return results


def compare(ours: dict[str, float], paper: dict[str, float]) -> list[dict[str, Any]]:
    """Rows of (metric, ours, paper, better-is) in the papers' order, for every metric either side has."""
    names = [m for m in METRIC_NAMES if m in ours or m in paper] + sorted(set(paper) - set(METRIC_NAMES))
    return [
        {
            "metric": name,
            "ours": ours.get(name),
            "paper": paper.get(name),
            "better": "higher" if name in HIGHER_IS_BETTER else "lower",
        }
        for name in names
    ]


def format_metrics(results: dict[str, float]) -> str:
    parts = []
    for name in METRIC_NAMES:
        if name in results:
            value = results[name]
            parts.append(f"{name} {value * 100:.2f}%" if name == "accuracy" else f"{name} {value:.4f}")
    if "loss" in results and not math.isnan(results["loss"]):
        parts.insert(0, f"loss {results['loss']:.4f}")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------------
# State on disk


def save_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TrainingError(f"--resume: no training state at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"--resume: {path} is not a loadable training state ({type(exc).__name__})") from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n", encoding="utf-8")
    tmp.replace(path)


# --------------------------------------------------------------------------------------------------
# The run


class Reporter:
    """Rich progress and per-epoch lines on stderr, from rank 0 only."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console

        self.enabled = enabled
        self.console = Console(stderr=True)
        self.progress: Any = None

    def say(self, line: str) -> None:
        if self.enabled:
            self.console.print(line, highlight=False, soft_wrap=True)

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        if not self.enabled or not self.console.is_terminal:  # a log file gets the epoch lines, not bars
            yield lambda **_: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        ) as progress:
            task = progress.add_task(description, total=total, info="")

            def advance(**fields: Any) -> None:
                progress.update(task, advance=1, **fields)

            yield advance


def run(
    recipe: dict[str, Any],
    options: RunOptions,
    *,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` as described by ``options``; returns what ``metrics.json`` holds.

    ``on_step(global_step)`` is called after every optimiser step (tests use it to interrupt a run)."""
    ctx = setup(options.device)
    try:
        return _run(ctx, recipe, options, on_step)
    finally:
        if ctx.owns_group:
            dist.destroy_process_group()


def _run(
    ctx: Context, recipe: dict[str, Any], options: RunOptions, on_step: Callable[[int], None] | None
) -> dict[str, Any]:
    train = recipe["train"]
    reporter = Reporter(enabled=ctx.main and options.progress)
    output = Path(options.output)
    state_path = output / STATE_FILE
    if ctx.main:
        if state_path.exists() and not options.resume:
            raise TrainingError(f"{output} already holds a run; pass --resume to continue it or choose --output")
        output.mkdir(parents=True, exist_ok=True)
    state = load_state(state_path) if options.resume else None
    if state is not None:
        changed = [k for k in differences(state["recipe"], recipe) if k != "train.epochs"]
        if changed:
            raise TrainingError(f"--resume with a different recipe ({', '.join(changed)}); use a new --output")

    seed = train["seed"]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model: AestheticModel = get_model(recipe["model"], **recipe["model_config"])
    if state is None:
        _initialise(model, recipe, reporter.say)

    splits = load_splits(ctx, recipe, options, reporter.say)
    if len(splits.train) == 0:
        raise TrainingError("no usable training images")
    workers = _workers(options, train["workers"])
    policy = model.policy
    augment = data_mod.Augment.from_recipe(recipe["augment"])
    train_groups = data_mod.shape_groups(
        data_mod.split_shapes(splits.train, lambda w, h: data_mod.train_shape(policy, augment, w, h))
    )
    cuda = ctx.device.type == "cuda"
    teacher = build_teacher(recipe["teacher"], ctx.device) if recipe["teacher"] else None
    dataset = data_mod.PhotoDataset(splits.train, policy, augment=augment, seed=seed, teacher=teacher is not None)

    model.to(ctx.device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    if train["sync_bn"] and ctx.world > 1 and cuda:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net: nn.Module = model
    if ctx.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[ctx.device.index] if cuda else None,
            find_unused_parameters=train["find_unused_parameters"],
        )

    def plan(epoch: int) -> list[data_mod.Step]:
        return data_mod.plan_epoch(
            train_groups,
            global_batch=train["batch_size"],
            world=ctx.world,
            rank=ctx.rank,
            micro_batch=train["micro_batch"],
            seed=seed,
            epoch=epoch,
        )

    steps_per_epoch = len(plan(0))
    if steps_per_epoch == 0:
        raise TrainingError(f"{len(splits.train)} training images make no batch across {ctx.world} processes")
    optimizer = build_optimizer(model, recipe["optim"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(recipe["schedule"], steps_per_epoch))
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and train["amp"] == "fp16")

    start_epoch, start_step, global_step, history = 0, 0, 0, []
    resumed_partial: list[float] = [0.0, 0, 0]
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, start_step, global_step = state["epoch"], state["step"], state["global_step"]
        history = json.loads(state["history"])
        rng = state["rng"]
        partials = state.get("partial") or [[0.0, 0, 0]]
        if len(rng) == ctx.world:
            restore_rng(rng[ctx.rank], ctx.device)
            resumed_partial = partials[ctx.rank] if len(partials) == ctx.world else [0.0, 0, 0]
        else:
            # Another number of processes: rank 0 carries the whole epoch-so-far sum.
            resumed_partial = [sum(p[i] for p in partials) for i in range(3)] if ctx.main else [0.0, 0, 0]
            reporter.say(f"resuming {len(rng)} processes' run on {ctx.world}: RNG streams reseeded, not bit-exact")
            torch.manual_seed(seed + 1000 * start_epoch + ctx.rank)
        reporter.say(f"resumed at epoch {start_epoch + 1}, step {start_step} of {steps_per_epoch}")

    summary: dict[str, Any] = {
        "recipe": recipe["name"],
        "model": recipe["model"],
        "dataset": recipe["dataset"],
        "processes": ctx.world,
        "device": ctx.device.type,
        "global_batch": train["batch_size"],
        "data": {name: len(splits.split(name)) for name in ("train", "val", "test")},
        "data_report": splits.report.lines(),
        "paper": dict(recipe["paper"].get("metrics", {})),
    }

    def checkpoint(epoch: int, step: int, partial: tuple[float, int, int] = (0.0, 0, 0)) -> None:
        """Rank 0 saves the run; ``partial`` is this process's (loss sum, photos, undecodable) so far in a
        mid-epoch checkpoint, so that a resumed epoch reports the same training loss."""
        rng_states = gather(ctx, capture_rng(ctx.device))
        partials = gather(ctx, list(partial))
        if ctx.main:
            save_state(
                state_path,
                {
                    "version": STATE_VERSION,
                    "recipe": recipe,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch,
                    "step": step,
                    "global_step": global_step,
                    "rng": rng_states,
                    "partial": partials,
                    "history": json.dumps(history),
                },
            )

    epochs = train["epochs"]
    for epoch in range(start_epoch, epochs):
        started = time.monotonic()
        set_train_mode(model, train["freeze_bn"])
        steps = plan(epoch)
        first = start_step if epoch == start_epoch else 0
        todo = steps[first:]
        batches = [micro for step in todo for micro in step.micro]
        loader = data_mod.loader(dataset, batches, workers=workers, pin_memory=cuda)
        fetch = iter(loader)
        loss_sum = torch.zeros((), device=ctx.device)  # sum over micro-batches of loss * n
        seen = skipped = 0
        if epoch == start_epoch and first:  # a mid-epoch resume: the sums so far
            loss_sum += float(resumed_partial[0])
            seen, skipped = int(resumed_partial[1]), int(resumed_partial[2])
        with reporter.task(f"epoch {epoch + 1}/{epochs}", total=len(todo)) as advance:
            for offset, step in enumerate(todo):
                for m, _ in enumerate(step.micro):
                    raw = next(fetch)
                    skipped += raw["skipped"]
                    last = m == len(step.micro) - 1
                    if "images" not in raw:
                        if last and ctx.world > 1:
                            raise TrainingError("every photo of a batch failed to decode; check the data")
                        continue
                    batch = data_mod.to_device(raw, policy, ctx.device, channels_last=cuda)
                    add_teacher_probs(teacher, batch, ctx.device, train["amp"])
                    n = len(raw["index"])
                    sync = contextlib.nullcontext() if last or ctx.world == 1 else net.no_sync()
                    with sync:
                        with autocast(ctx.device, train["amp"]):
                            outputs = net(batch["images"], batch["aspect"])
                            loss = model.loss(outputs, batch)
                        scaler.scale(loss * (n * ctx.world / step.global_size)).backward()
                    loss_sum += loss.detach().float() * n
                    seen += n
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                global_step += 1
                done = first + offset + 1
                if on_step is not None:
                    on_step(global_step)
                if offset % 10 == 0 or offset == len(todo) - 1:  # reading the loss waits for the GPU
                    advance(info=f"loss {float(loss_sum) / max(1, seen):.4f}")
                else:
                    advance()
                if train["checkpoint_every"] and done % train["checkpoint_every"] == 0 and done < len(steps):
                    checkpoint(epoch, done, (float(loss_sum), seen, skipped))
        totals = np.sum(gather(ctx, (float(loss_sum), seen, skipped)), axis=0)
        skipped = int(totals[2])
        val = (
            evaluate_split(ctx, model, splits.val, recipe, workers=workers, teacher=teacher) if len(splits.val) else {}
        )
        record = {
            "epoch": epoch + 1,
            "train_loss": float(totals[0] / max(1.0, totals[1])),
            "lr": optimizer.param_groups[0]["lr"],
            "val": val,
            "seconds": round(time.monotonic() - started, 1),
        }
        if skipped:
            record["undecodable"] = skipped
        history.append(record)
        reporter.say(
            f"epoch {epoch + 1}/{epochs}  train loss {record['train_loss']:.4f}  lr {record['lr']:.3g}"
            f"  val {format_metrics(val)}  ({record['seconds']:.0f} s)"
            + (f"  {skipped} undecodable photos skipped" if skipped else "")
        )
        checkpoint(epoch + 1, 0)
        if ctx.main:
            write_json(output / METRICS_FILE, {**summary, "epochs": history})

    test = evaluate_split(ctx, model, splits.test, recipe, workers=workers, teacher=teacher) if len(splits.test) else {}
    reporter.say(f"test  {format_metrics(test)}")
    summary.update({"epochs": history, "test": test, "comparison": compare(test, summary["paper"])})
    if ctx.main:
        from aesthete.checkpoint import save_checkpoint

        write_json(output / METRICS_FILE, summary)
        save_checkpoint(
            model,
            output / MODEL_FILE,
            extra={
                "recipe": recipe["name"],
                "dataset": recipe["dataset"],
                "trained": {"recipe": recipe, "epochs": epochs, "processes": ctx.world},
                "metrics": {k: v for k, v in test.items() if k in METRIC_NAMES},
                "paper_metrics": summary["paper"],
            },
        )
    return summary


def _initialise(model: AestheticModel, recipe: dict[str, Any], say: Callable[[str], None]) -> None:
    """ImageNet weights for the backbone, then an earlier stage's checkpoint (``init``) over the whole
    model or over one submodule (``init_module``: PEAR's prior comes from a trained ``pear-prior``)."""
    whole_model_init = recipe["init"] and not recipe["init_module"]
    if recipe["train"]["pretrained"] and not whole_model_init:
        backbone = model.config.get("backbone")
        if not backbone:
            raise TrainingError(f"{model.arch} names no backbone to initialise; pass --no-pretrained")
        load_backbone(model, backbone, imagenet_state_dict(backbone))
        say(f"backbone {backbone}: ImageNet weights")
    if recipe["init"]:
        from aesthete.checkpoint import load_state_dict

        target: nn.Module = model.get_submodule(recipe["init_module"]) if recipe["init_module"] else model
        missing, unexpected = target.load_state_dict(load_state_dict(recipe["init"]), strict=False)
        where = f" into {recipe['init_module']}" if recipe["init_module"] else ""
        say(f"initialised{where} from {recipe['init']} ({len(missing)} tensors new, {len(unexpected)} unused)")


def _workers(options: RunOptions, recipe_workers: int) -> int:
    if options.workers is not None:
        return options.workers
    per_process = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(recipe_workers, (os.cpu_count() or 1) // per_process - 1))


def evaluate_checkpoint(
    path: str | Path,
    dataset: str,
    data_root: str | Path,
    *,
    split: str = "test",
    device: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """``aesthete eval``: the checkpoint's metrics on one split, beside the paper's numbers.

    The data options (split seed, test list, threshold) are those of the recipe the checkpoint was
    trained with when it was trained on this dataset, so "test" means the same images it was tested on;
    otherwise the defaults for ``dataset``."""
    from aesthete.checkpoint import load_model, read_meta
    from aesthete.training.recipes import resolve

    meta = read_meta(path)
    trained = (meta.get("trained") or {}).get("recipe")
    if trained and trained.get("dataset") == dataset:
        recipe = trained
    else:
        recipe = resolve({"name": Path(path).stem, "model": meta["arch"], "dataset": dataset})
    if batch_size:
        recipe = {**recipe, "train": {**recipe["train"], "eval_batch_size": batch_size}}
    ctx = setup(device)
    model = load_model(path, device=str(ctx.device))
    reporter = Reporter(enabled=progress)
    options = RunOptions(data_root=Path(data_root), output=Path("."), device=device, limit=limit, workers=workers)
    splits = load_splits(ctx, recipe, options, reporter.say, names=(split,))
    teacher = build_teacher(recipe["teacher"], ctx.device) if recipe["teacher"] else None
    workers = _workers(options, recipe["train"]["workers"])
    results = evaluate_split(ctx, model, splits.split(split), recipe, workers=workers, teacher=teacher)
    paper = dict(recipe["paper"].get("metrics", {})) if split == "test" else {}
    return {
        "checkpoint": str(path),
        "dataset": dataset,
        "split": split,
        "metrics": results,
        "paper": paper,
        "comparison": compare(results, paper),
    }
