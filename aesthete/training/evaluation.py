"""Measuring a model on a split: predictions sharded over the processes, the papers' metrics, the
comparison with the paper's numbers, and ``aesthete eval`` for any checkpoint."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aesthete import interrupts
from aesthete.architectures import ARCHITECTURES
from aesthete.models import AestheticModel
from aesthete.training import data as data_mod
from aesthete.training.distributed import Context, gather, setup
from aesthete.training.metrics import HIGHER_IS_BETTER, METRIC_NAMES, evaluate
from aesthete.training.options import RunOptions, SayFn, TrainingError, loader_workers
from aesthete.training.runtime import add_teacher_probs, autocast, build_teacher, load_splits, require_images
from aesthete.training.splits import Split


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
        interrupts.raise_if_pressed()  # a Ctrl-C that the DataLoader's fork swallowed
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
        # PEAR's prior predicts attributes, not a score distribution (bins = 0): its loss is its measure
        probs.append(outputs["probs"].float().cpu().numpy() if model.scores_photos else np.zeros((n, 0)))
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
    """One line: the loss, then the papers' metrics (accuracy in percent)."""
    parts = []
    for name in METRIC_NAMES:
        if name in results:
            value = results[name]
            parts.append(f"{name} {value * 100:.2f}%" if name == "accuracy" else f"{name} {value:.4f}")
    if "loss" in results and not math.isnan(results["loss"]):
        parts.insert(0, f"loss {results['loss']:.4f}")
    return " ".join(parts)


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
    say: SayFn | None = None,
) -> dict[str, Any]:
    """``aesthete eval``: the checkpoint's metrics on one split, beside the paper's numbers.

    The data options (split seed, test list, threshold) are those of the recipe the checkpoint was
    trained with when it was trained on this dataset, so "test" means the same images it was tested on;
    otherwise the defaults for ``dataset``, which hold no paper figures (the papers report each model
    trained and tested on one dataset; ``trained_on`` names the checkpoint's). ``say`` gets the data
    report's lines."""
    from aesthete.checkpoint import load_model, read_meta
    from aesthete.training.datasets import get_dataset
    from aesthete.training.recipes import resolve

    meta = read_meta(path)
    votes = get_dataset(dataset)
    arch = ARCHITECTURES.get(meta["arch"])
    if arch is not None and not arch.scores_photos:  # PEAR's prior: its attributes have no votes to meet
        raise TrainingError(f"{path} holds {meta['arch']}, which scores no photo: nothing to measure against votes")
    if meta["output"] == "distribution" and not votes.fits_bins(meta["bins"]):
        trained_on = f" (trained on {meta['dataset']})" if meta.get("dataset") else ""
        raise TrainingError(
            f"{path} predicts {meta['bins']} score bins{trained_on}; {dataset}'s votes have {votes.bins}"
        )
    trained = (meta.get("trained") or {}).get("recipe")
    changes = None
    if trained and trained.get("dataset") == dataset:
        recipe, changes = trained, _recipe_changes(trained)
    else:
        recipe = resolve({"name": Path(path).stem, "model": meta["arch"], "dataset": dataset})
    if batch_size:
        recipe = {**recipe, "train": {**recipe["train"], "eval_batch_size": batch_size}}
    ctx = setup(device)
    model = load_model(path, device=str(ctx.device))
    options = RunOptions(data_root=Path(data_root), output=Path("."), device=device, limit=limit, workers=workers)
    splits = load_splits(ctx, recipe, options, say or _quiet, names=(split,))
    require_images(splits, (split,), options.data_root)
    teacher = build_teacher(recipe["teacher"], ctx.device) if recipe["teacher"] else None
    workers = loader_workers(options, recipe["train"]["workers"])
    results = evaluate_split(ctx, model, splits.split(split), recipe, workers=workers, teacher=teacher)
    paper = dict(recipe["paper"].get("metrics", {})) if split == "test" else {}
    return {
        "checkpoint": str(path),
        "dataset": dataset,
        "trained_on": meta.get("dataset"),
        "split": split,
        "cut_by_limit": split in splits.report.cut_by_limit,
        "recipe_changes": changes,
        "metrics": results,
        "paper": paper,
        "comparison": compare(results, paper),
    }


def _recipe_changes(trained: dict[str, Any]) -> list[str] | None:
    """The recipe keys a checkpoint's training changed from the recipe of its name as aesthete ships it (the
    paper's setting), as `train` lists them under its table; None when aesthete ships no recipe of that name
    (a recipe of one's own: nothing to compare with)."""
    from aesthete.training.recipes import differences, load_recipe, recipes_dir, resolve

    shipped = recipes_dir() / f"{trained.get('name')}.toml"
    return differences(resolve(load_recipe(shipped)), trained) if shipped.is_file() else None


def _quiet(line: str) -> None:
    """The report nobody asked for."""
