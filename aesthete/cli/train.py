"""``aesthete train`` and ``aesthete eval``: reproduce a paper's AVA/AADB run, and measure any checkpoint.

Thin on purpose: options become a resolved recipe and run options, the library does the work
(:mod:`aesthete.training`). Nothing here imports torch at module level, so ``--help`` and
``--dry-run`` start instantly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from aesthete.cli.common import JsonOption, err, fail, out, print_json

DATASETS = ("ava", "aadb")
SPLITS = ("train", "val", "test")


def train_command(
    model_or_recipe: Annotated[
        str | None,
        typer.Argument(help="A model (hla-gcn), a recipe name (hla-gcn-r101-ava) or a recipe .toml file."),
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="ava or aadb: picks the model's recipe.")] = None,
    data_root: Annotated[
        Path | None, typer.Option(help="The dataset folder (AVA.txt and images/, or AADB's release).")
    ] = None,
    recipe: Annotated[Path | None, typer.Option(help="A recipe TOML file (instead of one from train/).")] = None,
    gpus: Annotated[int, typer.Option(min=0, help="GPUs on this machine: one NCCL process each.")] = 0,
    nproc: Annotated[int, typer.Option(min=0, help="CPU processes on gloo (distributed training without GPUs).")] = 0,
    nodes: Annotated[int, typer.Option(min=1, help="Machines taking part (run the same command on each).")] = 1,
    node_rank: Annotated[int, typer.Option(min=0, help="This machine's index, 0..nodes-1.")] = 0,
    master_addr: Annotated[str, typer.Option(help="Address of the node-rank-0 machine.")] = "127.0.0.1",
    master_port: Annotated[int, typer.Option(help="Free port on the node-rank-0 machine.")] = 29500,
    epochs: Annotated[int | None, typer.Option(min=1, help="Override train.epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Override the global batch (train.batch_size).")] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="Override optim.lr.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override any recipe value, KEY=VALUE (TOML literal); repeatable."),
    ] = None,
    no_pretrained: Annotated[bool, typer.Option(help="Start the backbone from random weights, not ImageNet.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run saved in --output.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="At most N images per split (a smoke run).")] = None,
    output: Annotated[Path | None, typer.Option(help="Run folder. [default: runs/RECIPE]", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the resolved recipe and exit.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps (one process).")] = "auto",
    workers: Annotated[int | None, typer.Option(min=0, help="Data-loading processes per training process.")] = None,
) -> None:
    """Train MODEL_OR_RECIPE with its paper's recipe; print its metrics beside the paper's.

    Writes RUN/state.pt every epoch (for --resume), RUN/metrics.json, and at the end RUN/model.safetensors,
    a self-describing checkpoint for `aesthete weights add`.
    """
    from aesthete.training.recipes import RecipeError, find_recipe, load_recipe, parse_override, resolve, to_toml

    try:
        path = _recipe_path(model_or_recipe, recipe, dataset, find_recipe)
        raw = load_recipe(path)
        if model_or_recipe and recipe and model_or_recipe not in (raw.get("model"), raw.get("name")):
            fail(f"--recipe {recipe} trains {raw.get('model')}, not {model_or_recipe}")
        if dataset and raw.get("dataset") != dataset:
            fail(f"recipe {raw['name']} is for {raw.get('dataset')}, not {dataset}")
        named = [("train.epochs", epochs), ("train.batch_size", batch_size), ("optim.lr", lr)]
        overrides = [parse_override(text) for text in set_ or []]
        overrides += [(key, value) for key, value in named if value is not None]
        if no_pretrained:
            overrides.append(("train.pretrained", False))
        resolved = resolve(raw, overrides)
    except RecipeError as exc:
        fail(str(exc))
    if dry_run:
        out.print(f"# recipe {resolved['name']} from {path}", highlight=False, markup=False)
        out.print(to_toml(resolved), highlight=False, markup=False, end="")
        return
    if data_root is None:
        fail("--data-root is required (the folder holding the dataset)")
    if not data_root.is_dir():
        fail(f"--data-root {data_root} is not a folder")
    if gpus and nproc:
        fail("use --gpus for GPU processes or --nproc for CPU processes, not both")
    processes = gpus or nproc or 1
    if nodes > 1 and node_rank >= nodes:
        fail(f"--node-rank must be below --nodes ({nodes})")
    if gpus:
        _check_gpus(gpus)
        device = "cuda"
    elif nproc:
        device = "cpu"

    from aesthete.training.splits import DatasetError
    from aesthete.training.trainer import METRICS_FILE, STATE_FILE, RunOptions, TrainingError, run

    options = RunOptions(
        data_root=data_root.resolve(),
        output=(output or Path("runs") / resolved["name"]).resolve(),
        device=device,
        resume=resume,
        limit=limit,
        workers=workers,
    )
    if processes > 1 or nodes > 1:
        # Checked here as well as in the trainer: a failing worker would end in torchrun's own report.
        state = options.output / STATE_FILE
        if node_rank == 0 and state.exists() and not resume:
            fail(f"{options.output} already holds a run; pass --resume to continue it or choose --output")
        if node_rank == 0 and resume and not state.is_file():
            fail(f"--resume: no training state at {state}")
        try:  # the label files at least exist (reading them is rank 0's job, in the workers)
            if resolved["dataset"] == "ava":
                from aesthete.training.ava import find_ava_txt

                find_ava_txt(options.data_root)
            else:
                from aesthete.training.aadb import find_label_dir

                find_label_dir(options.data_root)
        except DatasetError as exc:
            fail(str(exc))
        from aesthete.training.launcher import launch

        code = launch(
            resolved, options, nproc=processes, nodes=nodes, node_rank=node_rank,
            master_addr=master_addr, master_port=master_port,
        )  # fmt: skip
        if code != 0:
            fail(f"training processes exited with status {code}", code=code)
        metrics_path = options.output / METRICS_FILE
        if not metrics_path.is_file():  # another machine's rank 0 wrote it
            return
        summary = json.loads(metrics_path.read_text(encoding="utf-8"))
    else:
        try:
            summary = run(resolved, options)
        except (TrainingError, DatasetError) as exc:
            fail(str(exc))
    out.print(comparison_table(summary.get("comparison", []), title=f"{resolved['name']}: test split"))
    err.print(f"run saved in {options.output}", highlight=False)


def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint `aesthete train` wrote (model.safetensors).")],
    dataset: Annotated[str, typer.Option(help="ava or aadb.")],
    data_root: Annotated[Path, typer.Option(help="The dataset folder.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    batch_size: Annotated[int | None, typer.Option(min=1, help="Photos per forward.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    workers: Annotated[int | None, typer.Option(min=0, help="Data-loading processes.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most N images (a smoke run).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Measure CHECKPOINT on a dataset split with the papers' metrics, beside the paper's numbers."""
    if dataset not in DATASETS:
        fail(f"--dataset must be one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        fail(f"--split must be one of {', '.join(SPLITS)}")
    from aesthete.checkpoint import CheckpointError
    from aesthete.training.recipes import RecipeError
    from aesthete.training.splits import DatasetError
    from aesthete.training.trainer import TrainingError, evaluate_checkpoint

    try:
        report = evaluate_checkpoint(
            checkpoint, dataset, data_root, split=split, device=device, batch_size=batch_size,
            workers=workers, limit=limit, progress=not as_json,
        )  # fmt: skip
    except (CheckpointError, DatasetError, RecipeError, TrainingError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        print_json(report)
    else:
        out.print(comparison_table(report["comparison"], title=f"{checkpoint.name} on {dataset} {split}"))


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``eval`` to the main CLI."""
    app.command("train")(train_command)
    app.command("eval")(eval_command)


def comparison_table(rows: list[dict[str, Any]], *, title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("ours", justify="right")
    table.add_column("paper", justify="right")
    table.add_column("better", justify="center")
    for row in rows:
        table.add_row(
            row["metric"], _cell(row["metric"], row["ours"]), _cell(row["metric"], row["paper"]), row["better"]
        )
    return table


def _cell(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.2f}%" if metric == "accuracy" else f"{value:.4f}"


def _recipe_path(model_or_recipe: str | None, recipe: Path | None, dataset: str | None, find: Any) -> Path:
    if recipe is not None:
        return find(str(recipe))
    if not model_or_recipe:
        fail("name a model or recipe (e.g. `aesthete train hla-gcn --dataset ava`), or pass --recipe FILE")
    if dataset is not None and dataset not in DATASETS:
        fail(f"--dataset must be one of {', '.join(DATASETS)}")
    return find(model_or_recipe, dataset)


def _check_gpus(count: int) -> None:
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available < count:
        fail(f"--gpus {count} asked for, but {available} CUDA device(s) are visible")
