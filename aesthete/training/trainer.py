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
- Only rank 0 reports, through ``say`` / ``progress`` callbacks; rendering them is the caller's.

The process group lives in :mod:`~aesthete.training.distributed`, evaluation in
:mod:`~aesthete.training.evaluation`; this module holds the loop itself.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aesthete import interrupts
from aesthete.fileops import atomic_path, atomic_write_text
from aesthete.models import AestheticModel, get_model
from aesthete.training import data as data_mod
from aesthete.training.distributed import (
    Context,
    capture_rng,
    gather,
    restore_rng,
    seed_everything,
    setup,
    teardown,
)
from aesthete.training.evaluation import compare, evaluate_checkpoint, evaluate_split, format_metrics
from aesthete.training.metrics import METRIC_NAMES, json_ready
from aesthete.training.options import (
    METRICS_FILE,
    MODEL_FILE,
    STATE_FILE,
    ProgressFn,
    RunOptions,
    SayFn,
    TrainingError,
    loader_workers,
)
from aesthete.training.preflight import check_run_folder
from aesthete.training.recipes import differences
from aesthete.training.runtime import add_teacher_probs, autocast, build_teacher, load_splits, require_images
from aesthete.training.splits import DatasetSplits

# Re-exported: the names callers of this module (the CLI, the launcher, tests) have always used.
__all__ = [
    "METRICS_FILE",
    "MODEL_FILE",
    "STATE_FILE",
    "RunOptions",
    "TrainingError",
    "evaluate_checkpoint",
    "run",
]

STATE_VERSION = 1
LOSS_EVERY = 10  # steps between progress updates that read the loss (reading it waits for the GPU)


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


# --------------------------------------------------------------------------------------------------
# State on disk


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """A write into the run folder that fails -- a full disk, a read-only folder -- is a one-line
    :class:`TrainingError` naming the file and the system's reason. Every file is replaced atomically,
    so the folder keeps the last checkpoint, from which ``--resume`` goes on once there is room."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, RuntimeError, SafetensorError) as exc:
        # torch.save reports a failed write as a RuntimeError raised while handling the OSError; any other
        # RuntimeError is not a write failing, and keeps its traceback
        cause = exc if isinstance(exc, OSError) else exc.__context__
        if isinstance(exc, RuntimeError) and not isinstance(cause, OSError):
            raise
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(exc).strip()
        raise TrainingError(f"cannot write {path}: {reason}") from None


def save_state(path: Path, state: dict[str, Any]) -> None:
    with writing(path), atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a handle: see writing()
        torch.save(state, handle)


def load_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TrainingError(f"--resume: no training state at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"--resume: {path} is not a loadable training state ({type(exc).__name__})") from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    with writing(path):
        atomic_write_text(path, json.dumps(json_ready(data), indent=2, default=float) + "\n")


# --------------------------------------------------------------------------------------------------
# The run


def run(
    recipe: dict[str, Any],
    options: RunOptions,
    *,
    on_step: Callable[[int], None] | None = None,
    say: SayFn | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` as described by ``options``; returns what ``metrics.json`` holds.

    ``say`` gets one line per event worth a line (the data read, each epoch, the test) and ``progress``
    each optimiser step, both from rank 0 only. ``on_step(global_step)`` is called after every optimiser
    step on every process (tests use it to interrupt a run)."""
    ctx = setup(options.device)
    try:
        if not ctx.main:
            say, progress = None, None
        with _run_folder(Path(options.output), ctx.main):
            return _run(ctx, recipe, options, on_step, say or _quiet, progress or _no_progress)
    except Exception:
        # After a Ctrl-C whose KeyboardInterrupt a fork dropped here (see aesthete.interrupts), a failure is
        # part of the same stop: a loader worker that died of it before it ignored it (the loaders start
        # theirs with Ctrl-C held back; this is for any other way it reaches one) ends the loader with
        # "DataLoader worker ... exited unexpectedly".
        interrupts.raise_if_pressed()
        raise
    finally:
        teardown(ctx)


@contextlib.contextmanager
def _run_folder(output: Path, main: bool) -> Iterator[None]:
    """On rank 0, remove the run folder (and the parents made for it) again when the run fails before
    writing anything into it -- a data root that is no dataset, ``--resume`` without a state, Ctrl-C before
    the first checkpoint -- so that a failed start leaves no empty folder behind. A folder that holds
    anything is kept."""
    made = []
    folder = output
    while main and not folder.exists():
        made.append(folder)  # deepest first
        folder = folder.parent
    try:
        yield
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not empty (or not ours to remove): kept, and so are its parents
                break
        raise


def _run(
    ctx: Context,
    recipe: dict[str, Any],
    options: RunOptions,
    on_step: Callable[[int], None] | None,
    say: SayFn,
    progress: ProgressFn,
) -> dict[str, Any]:
    output = Path(options.output)
    state = _open_output(ctx, recipe, output, options.resume)
    seed_everything(recipe["train"]["seed"])
    model: AestheticModel = get_model(recipe["model"], **recipe["model_config"])
    if state is None:
        _initialise(model, recipe, say)
    splits = load_splits(ctx, recipe, options, say)
    require_images(splits, ("train", "test"), options.data_root)
    loop = _Loop.build(ctx, recipe, model, splits, loader_workers(options, recipe["train"]["workers"]))
    loop.output, loop.on_step, loop.say, loop.progress = output, on_step, say, progress
    if state is not None:
        loop.resume(state)
    for epoch in range(loop.start_epoch, recipe["train"]["epochs"]):
        loop.train_epoch(epoch)
    return loop.finish()


def _open_output(ctx: Context, recipe: dict[str, Any], output: Path, resume: bool) -> dict[str, Any] | None:
    """Refuse to overwrite a run; with ``resume``, the saved state, checked against ``recipe``."""
    state_path = output / STATE_FILE
    if ctx.main:
        check_run_folder(output, resume=resume)
        with writing(output):
            output.mkdir(parents=True, exist_ok=True)
    if not resume:
        return None
    state = load_state(state_path)
    changed = [k for k in differences(state["recipe"], recipe) if k != "train.epochs"]
    if changed:
        raise TrainingError(f"--resume with a different recipe ({', '.join(changed)}); use a new --output")
    begun = state["epoch"] + (1 if state["step"] else 0)  # a mid-epoch state is inside epoch `epoch + 1`
    if recipe["train"]["epochs"] < begun:  # the checkpoint would claim fewer epochs than it was trained for
        raise TrainingError(f"--resume: the run in {output} has reached epoch {begun}; --epochs must be at least that")
    return state


def _initialise(model: AestheticModel, recipe: dict[str, Any], say: SayFn) -> None:
    """ImageNet weights for the backbone, then an earlier stage's checkpoint (``init``) over the whole
    model or over one submodule (``init_module``: PEAR's prior comes from a trained ``pear-prior``)."""
    from aesthete.models.backbones import load_imagenet_trunk

    whole_model_init = recipe["init"] and not recipe["init_module"]
    if recipe["train"]["pretrained"] and not whole_model_init:
        backbone = model.config.get("backbone")
        if not backbone:
            raise TrainingError(f"{model.arch} names no backbone to initialise; pass --no-pretrained")
        features = getattr(model, "features", None)
        if not isinstance(features, nn.Module):
            raise TrainingError(f"{model.arch} has no `features` trunk to initialise; pass --no-pretrained")
        load_imagenet_trunk(features, backbone)
        say(f"backbone {backbone}: ImageNet weights")
    if recipe["init"]:
        from aesthete.checkpoint import load_state_dict

        target: nn.Module = model.get_submodule(recipe["init_module"]) if recipe["init_module"] else model
        missing, unexpected = target.load_state_dict(load_state_dict(recipe["init"]), strict=False)
        where = f" into {recipe['init_module']}" if recipe["init_module"] else ""
        say(f"initialised{where} from {recipe['init']} ({len(missing)} tensors new, {len(unexpected)} unused)")


def _quiet(line: str) -> None:
    """The news nobody asked for (or that another rank reports)."""


def _no_progress(task: str, done: int, total: int, info: str | None) -> None:
    """Progress nobody asked for (or that another rank reports)."""


@dataclass
class _Loop:
    """One run from its first step to its checkpoint: the model, its wrapping for this process, the
    data plan, the optimiser, and the history so far."""

    ctx: Context
    recipe: dict[str, Any]
    model: AestheticModel
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    splits: DatasetSplits
    dataset: data_mod.PhotoDataset
    train_groups: np.ndarray
    teacher: nn.Module | None
    workers: int
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    steps_per_epoch: int
    summary: dict[str, Any]
    output: Path = Path(".")
    on_step: Callable[[int], None] | None = None
    say: SayFn = _quiet
    progress: ProgressFn = _no_progress
    start_epoch: int = 0
    start_step: int = 0
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_partial: list[float] = field(default_factory=lambda: [0.0, 0, 0])

    @classmethod
    def build(
        cls, ctx: Context, recipe: dict[str, Any], model: AestheticModel, splits: DatasetSplits, workers: int
    ) -> _Loop:
        """Everything the first step needs, built in an order that keeps the RNG draws of a resumed run
        equal to the uninterrupted run's."""
        train = recipe["train"]
        policy = model.policy
        augment = data_mod.Augment.from_recipe(recipe["augment"])
        train_groups = data_mod.shape_groups(
            data_mod.split_shapes(splits.train, lambda w, h: data_mod.train_shape(policy, augment, w, h))
        )
        teacher = build_teacher(recipe["teacher"], ctx.device) if recipe["teacher"] else None
        dataset = data_mod.PhotoDataset(
            splits.train, policy, augment=augment, seed=train["seed"], teacher=teacher is not None
        )
        model, net = _place(ctx, model, train)
        steps_per_epoch = len(_plan(ctx, train, train_groups, 0))
        if steps_per_epoch == 0:
            raise TrainingError(f"{len(splits.train)} training images make no batch across {ctx.world} processes")
        optimizer = build_optimizer(model, recipe["optim"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(recipe["schedule"], steps_per_epoch))
        scaler = torch.amp.GradScaler("cuda", enabled=ctx.device.type == "cuda" and train["amp"] == "fp16")
        summary: dict[str, Any] = {
            "recipe": recipe["name"],
            "model": recipe["model"],
            "dataset": recipe["dataset"],
            "processes": ctx.world,
            "device": ctx.device.type,
            "global_batch": train["batch_size"],
            "data": {name: len(splits.split(name)) for name in ("train", "val", "test")},
            "data_report": splits.report.lines(),
            "cut_by_limit": list(splits.report.cut_by_limit),  # the splits --limit cut (none: no change)
            "paper": dict(recipe["paper"].get("metrics", {})),
        }
        return cls(
            ctx=ctx, recipe=recipe, model=model, net=net, splits=splits, dataset=dataset,
            train_groups=train_groups, teacher=teacher, workers=workers, optimizer=optimizer,
            scheduler=scheduler, scaler=scaler, steps_per_epoch=steps_per_epoch, summary=summary,
        )  # fmt: skip

    @property
    def train(self) -> dict[str, Any]:
        return self.recipe["train"]

    def resume(self, state: dict[str, Any]) -> None:
        """Continue where ``state`` stopped: weights, optimiser, schedule, position, RNG streams."""
        ctx, seed = self.ctx, self.train["seed"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.start_epoch, self.start_step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.history = json.loads(state["history"])
        rng = state["rng"]
        partials = state.get("partial") or [[0.0, 0, 0]]
        if len(rng) == ctx.world:
            restore_rng(rng[ctx.rank], ctx.device)
            self.resumed_partial = partials[ctx.rank] if len(partials) == ctx.world else [0.0, 0, 0]
        else:
            # Another number of processes: rank 0 carries the whole epoch-so-far sum.
            self.resumed_partial = [sum(p[i] for p in partials) for i in range(3)] if ctx.main else [0.0, 0, 0]
            self.say(f"resuming {len(rng)} processes' run on {ctx.world}: RNG streams reseeded, not bit-exact")
            torch.manual_seed(seed + 1000 * self.start_epoch + ctx.rank)
        epochs = self.train["epochs"]
        if self.start_epoch >= epochs:  # --resume of a finished run: no "epoch 2" of a 1-epoch run
            self.say(f"the run has finished its {epochs} epochs: testing it again (raise --epochs to train on)")
        else:
            self.say(f"resumed at epoch {self.start_epoch + 1}, step {self.start_step} of {self.steps_per_epoch}")

    def checkpoint(self, epoch: int, step: int, partial: tuple[float, int, int] = (0.0, 0, 0)) -> None:
        """Rank 0 saves the run; ``partial`` is this process's (loss sum, photos, undecodable) so far in a
        mid-epoch checkpoint, so that a resumed epoch reports the same training loss."""
        ctx = self.ctx
        rng_states = gather(ctx, capture_rng(ctx.device))
        partials = gather(ctx, list(partial))
        if ctx.main:
            save_state(
                self.output / STATE_FILE,
                {
                    "version": STATE_VERSION,
                    "recipe": self.recipe,
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "epoch": epoch,
                    "step": step,
                    "global_step": self.global_step,
                    "rng": rng_states,
                    "partial": partials,
                    "history": json.dumps(self.history),
                },
            )

    def train_epoch(self, epoch: int) -> None:
        """One epoch (the rest of it when resuming mid-epoch), its validation, and its checkpoint."""
        started = time.monotonic()
        set_train_mode(self.model, self.train["freeze_bn"])
        steps = _plan(self.ctx, self.train, self.train_groups, epoch)
        first = self.start_step if epoch == self.start_epoch else 0
        loss_sum, seen, skipped = self._steps(epoch, steps, first)
        totals = np.sum(gather(self.ctx, (float(loss_sum), seen, skipped)), axis=0)
        skipped = int(totals[2])
        val = self._evaluate(self.splits.val)
        record = {
            "epoch": epoch + 1,
            "train_loss": float(totals[0] / max(1.0, totals[1])),
            "lr": self.optimizer.param_groups[0]["lr"],
            "val": val,
            "seconds": round(time.monotonic() - started, 1),
        }
        if skipped:
            record["undecodable"] = skipped
        self.history.append(record)
        epochs = self.train["epochs"]
        self.say(
            f"epoch {epoch + 1}/{epochs}  train loss {record['train_loss']:.4f}  lr {record['lr']:.3g}"
            + (f"  val {format_metrics(val)}" if val else "")  # data.val_size = 0 (MP_ada's recipe): no val
            + f"  ({record['seconds']:.0f} s)"
            + (f"  {skipped} undecodable photos skipped" if skipped else "")
        )
        self.checkpoint(epoch + 1, 0)
        if self.ctx.main:
            write_json(self.output / METRICS_FILE, {**self.summary, "epochs": self.history})

    def _steps(self, epoch: int, steps: list[data_mod.Step], first: int) -> tuple[torch.Tensor, int, int]:
        """Steps ``first``.. of ``steps``; returns this process's (loss sum, photos, undecodable photos)."""
        ctx, train = self.ctx, self.train
        cuda = ctx.device.type == "cuda"
        todo = steps[first:]
        batches = [micro for step in todo for micro in step.micro]
        fetch = data_mod.loader(self.dataset, batches, workers=self.workers, pin_memory=cuda)
        loss_sum = torch.zeros((), device=ctx.device)  # sum over micro-batches of loss * n
        seen = skipped = 0
        if epoch == self.start_epoch and first:  # a mid-epoch resume: the sums so far
            loss_sum += float(self.resumed_partial[0])
            seen, skipped = int(self.resumed_partial[1]), int(self.resumed_partial[2])
        task = f"epoch {epoch + 1}/{train['epochs']}"
        for offset, step in enumerate(todo):
            for m, _ in enumerate(step.micro):
                raw = next(fetch)
                skipped += raw["skipped"]
                last = m == len(step.micro) - 1
                if "images" not in raw:
                    if last and ctx.world > 1:
                        raise TrainingError("every photo of a batch failed to decode; check the data")
                    continue
                n = len(raw["index"])
                loss = self._forward_backward(raw, weight=n * ctx.world / step.global_size, sync=last)
                loss_sum += loss.detach().float() * n
                seen += n
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            self.global_step += 1
            done = first + offset + 1
            if self.on_step is not None:
                self.on_step(self.global_step)
            interrupts.raise_if_pressed()  # a Ctrl-C that the DataLoader's fork swallowed
            reads_loss = offset % LOSS_EVERY == 0 or offset == len(todo) - 1
            self.progress(
                task, offset + 1, len(todo), f"loss {float(loss_sum) / max(1, seen):.4f}" if reads_loss else None
            )
            if train["checkpoint_every"] and done % train["checkpoint_every"] == 0 and done < len(steps):
                self.checkpoint(epoch, done, (float(loss_sum), seen, skipped))
        return loss_sum, seen, skipped

    def _forward_backward(self, raw: dict[str, Any], *, weight: float, sync: bool) -> torch.Tensor:
        """One micro-batch's loss, its gradient added scaled by ``weight`` (its share of the global
        batch); DDP averages the gradients over the processes only on the step's last micro-batch."""
        ctx, amp = self.ctx, self.train["amp"]
        batch = data_mod.to_device(raw, self.model.policy, ctx.device, channels_last=ctx.device.type == "cuda")
        add_teacher_probs(self.teacher, batch, ctx.device, amp)
        no_sync = contextlib.nullcontext() if sync or ctx.world == 1 else self.net.no_sync()
        with no_sync:
            with autocast(ctx.device, amp):
                outputs = self.net(batch["images"], batch["aspect"])
                loss = self.model.loss(outputs, batch)
            self.scaler.scale(loss * weight).backward()
        return loss

    def _evaluate(self, split: Any) -> dict[str, float]:
        if not len(split):
            return {}
        return evaluate_split(self.ctx, self.model, split, self.recipe, workers=self.workers, teacher=self.teacher)

    def finish(self) -> dict[str, Any]:
        """Test, then rank 0 writes ``metrics.json`` and the self-describing checkpoint."""
        recipe, summary = self.recipe, self.summary
        test = self._evaluate(self.splits.test)
        self.say(f"test  {format_metrics(test)}")
        summary.update({"epochs": self.history, "test": test, "comparison": compare(test, summary["paper"])})
        if self.ctx.main:
            from aesthete.checkpoint import save_checkpoint

            write_json(self.output / METRICS_FILE, summary)
            with writing(self.output / MODEL_FILE):
                save_checkpoint(
                    self.model,
                    self.output / MODEL_FILE,
                    extra={
                        "recipe": recipe["name"],
                        "dataset": recipe["dataset"],
                        "trained": {"recipe": recipe, "epochs": self.train["epochs"], "processes": self.ctx.world},
                        "metrics": json_ready({k: v for k, v in test.items() if k in METRIC_NAMES}),
                        "paper_metrics": summary["paper"],
                    },
                )
        return summary


def _place(ctx: Context, model: AestheticModel, train: dict[str, Any]) -> tuple[AestheticModel, nn.Module]:
    """The model on this process's device (SyncBatchNorm where asked, on CUDA), and the module a step
    calls: the model, or its DistributedDataParallel wrapper."""
    cuda = ctx.device.type == "cuda"
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
    return model, net


def _plan(ctx: Context, train: dict[str, Any], groups: np.ndarray, epoch: int) -> list[data_mod.Step]:
    return data_mod.plan_epoch(
        groups,
        global_batch=train["batch_size"],
        world=ctx.world,
        rank=ctx.rank,
        micro_batch=train["micro_batch"],
        seed=train["seed"],
        epoch=epoch,
    )
